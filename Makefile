# convzoo: `make main` sets everything up and trains the default experiment;
# `make test` sets everything up, lints and runs the whole test suite (what CI runs);
# `make test-fast` runs the tests not marked slow (under 3 minutes), `make test-smoke` the quickest
# (under a minute). All are idempotent; each prints its 15 slowest tests.

PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
DATA_DIR    := data/tfds
WORKDIR     ?= workdirs/default
FASHION_DIR := /usr/share/datasets/fashion-mnist
PREPARED    := $(DATA_DIR)/fashion_mnist/3.0.1/dataset_info.json
ONEDNN_LIB  := native/build/libconvzoo_onednn.so

.PHONY: main test test-fast test-smoke lint setup torch-env data bench bench-pytorch clean-env

main: setup data
	$(PY) train.py --config=configs/default.py --workdir=$(WORKDIR)

test: setup data torch-env lint
	$(PY) -m pytest --durations=15

test-fast: setup data torch-env
	$(PY) -m pytest -m "not slow" --durations=15

test-smoke: setup data
	$(PY) -m pytest -m smoke --durations=15

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

setup: $(VENV)/.installed $(ONEDNN_LIB)

# Reinstalled only when the lock changes.
$(VENV)/.installed: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	touch $@

# oneDNN's convolutions as JAX FFI targets (native/onednn_conv.cc, models/onednn.py), against
# the oneDNN headers and library the lock installs into the venv (x86-64 Linux). Without a
# compiler or oneDNN, setup says so and convzoo runs on XLA's convolutions alone.
$(ONEDNN_LIB): native/onednn_conv.cc $(VENV)/.installed
	@mkdir -p $(@D)
	@if ! command -v $(CXX) >/dev/null; then \
	  echo "note: no C++ compiler ($(CXX)): oneDNN convolutions not built, XLA's are used"; \
	elif [ ! -e $(VENV)/include/oneapi/dnnl/dnnl.hpp ]; then \
	  echo "note: oneDNN not installed for this platform: oneDNN convolutions not built, XLA's are used"; \
	else \
	  $(CXX) -O2 -std=c++17 -shared -fPIC -fopenmp -fvisibility=hidden \
	    -isystem "$$($(PY) -c 'import jax; print(jax.ffi.include_dir())')" -isystem $(VENV)/include \
	    $< -L$(VENV)/lib -ldnnl -Wl,-rpath,'$$ORIGIN/../../$(VENV)/lib' -o $@.tmp \
	  && mv $@.tmp $@ \
	  || echo "note: building $@ failed: oneDNN convolutions not built, XLA's are used"; \
	fi

# PyTorch (torch, torchvision, timm), for the tests against published weights and for
# `make bench-pytorch`, lives in a virtualenv of its own; nothing in convzoo imports it.
# requirements-torch.txt says why it is the CUDA build (it runs on the CPU).
TORCH_VENV := .venv-torch
torch-env: $(TORCH_VENV)/.installed

# Reinstalled only when requirements-torch.txt changes.
$(TORCH_VENV)/.installed: requirements-torch.txt
	test -x $(TORCH_VENV)/bin/python || $(PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TORCH_VENV)/bin/python -m pip install --quiet -r requirements-torch.txt
	touch $@

data: $(PREPARED)

$(PREPARED): | $(VENV)/.installed
	@if [ ! -e $(FASHION_DIR)/train-images-idx3-ubyte.gz ] && [ -z "$$FASHION_MNIST_DIR" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist; \
	  else \
	    echo "error: Fashion-MNIST not found in $(FASHION_DIR); run 'sudo apt-get install dataset-fashion-mnist' or set FASHION_MNIST_DIR to a folder with the four IDX .gz files" >&2; \
	    exit 1; \
	  fi; \
	fi
	$(PY) -m input_pipeline.fashion_mnist --data_dir=$(DATA_DIR)

# Figures are steadier under jemalloc (apt-get install libjemalloc2): the VM returns freed memory.
JEMALLOC := if ldconfig -p | grep -q libjemalloc.so.2; then \
	  export LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1; \
	else echo "note: libjemalloc2 not installed; timings will be noisier"; fi

bench: setup data
	@$(JEMALLOC); $(PY) benchmarks/train_loop.py && $(PY) benchmarks/devices.py

# convzoo's train step against hand-written PyTorch eager twins, run by .venv-torch's Python.
bench-pytorch: setup torch-env
	@$(JEMALLOC); $(PY) benchmarks/versus_pytorch.py

clean-env:
	rm -rf $(VENV) $(TORCH_VENV)
