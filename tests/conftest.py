"""Shared fixtures: a small Fashion-MNIST-format dataset built by the tests, configs on it, and
one trained tiny run that read-only tests share.

Tiers: `pytest -m "not slow"` runs every unit, model and CLI test in a few minutes; tests marked
`slow` (end-to-end training, multi-process, resume) run with the full suite (`make test`).
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

# Multi-device code is tested on 8 host CPU devices; set before JAX starts its backends.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()

import ml_collections
import numpy as np
import pytest

import checkpoints
import config_values
import training
from configs import default
from input_pipeline import datasets, fashion_mnist

REPO = pathlib.Path(__file__).resolve().parent.parent
TINY_TRAIN, TINY_TEST = 512, 300
# A fast run on the tiny dataset: 40 steps of batch 32, evaluated and saved at 20 and 40.
TINY_RUN = {
  "batch_size": 32,
  "num_train_steps": 40,
  "eval_every_steps": 20,
  "checkpoint_every_steps": 20,
  "eval_batch_size": 64,
}


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
  """Writes uint8 `array` as a gzipped IDX file (magic 0x00000803 for 3-D, 0x00000801 for 1-D)."""
  header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def make_idx_files(folder: pathlib.Path, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Learnable fake Fashion-MNIST: class c is a bright band at rows 2c..2c+7, plus noise."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  splits = {}
  for split, count in (("train", TINY_TRAIN), ("test", TINY_TEST)):
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 80, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
      image[2 * label : 2 * label + 8] += 150
    images_file, labels_file = fashion_mnist.FILES[split]
    write_idx(folder / images_file, images)
    write_idx(folder / labels_file, labels)
    splits[split] = (images, labels)
  return splits


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> str:
  """A TFDS data dir holding a small `fashion_mnist` (512 train, 300 test) from test IDX files."""
  root = tmp_path_factory.mktemp("tiny")
  make_idx_files(root / "idx")
  fashion_mnist.prepare(str(root / "tfds"), str(root / "idx"))
  return str(root / "tfds")


@pytest.fixture(scope="session")
def real_data_dir() -> str:
  """The project's prepared real Fashion-MNIST (`make data`)."""
  data_dir = datasets.default_data_dir()
  datasets.open_builder("fashion_mnist", data_dir)  # a clear error if it is not prepared
  return data_dir


def make_config(data_dir: str, **overrides) -> ml_collections.ConfigDict:
  """The default config on `data_dir`, with overrides named with `__` for dots
  (`model__form="classic"` sets model.form)."""
  config = default.get_config()
  config.dataset.data_dir = data_dir
  config.log_every_steps = 10
  return config_values.with_overrides(
    config, {name.replace("__", "."): value for name, value in overrides.items()}
  )


@pytest.fixture
def tiny_config(tiny_data_dir):
  """A fast config on the tiny dataset (TINY_RUN), with overrides."""
  return lambda **overrides: make_config(tiny_data_dir, **{**TINY_RUN, **overrides})


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  workdir: pathlib.Path
  metrics: dict[str, Any]  # what train_and_evaluate returned

  def copy(self, destination: pathlib.Path) -> pathlib.Path:
    """A copy of the workdir, for tests that change it."""
    shutil.copytree(self.workdir, destination)
    return destination


@pytest.fixture(scope="session")
def trained_tiny_run(tiny_data_dir, tmp_path_factory) -> TrainedRun:
  """The tiny default run, trained once per session: tests only read it (or copy it)."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  metrics = training.train_and_evaluate(make_config(tiny_data_dir, **TINY_RUN), workdir)
  return TrainedRun(workdir, metrics)


def crash_after_checkpoint(monkeypatch, crash_step, config, workdir):
  """Runs `config` in `workdir` until its checkpoint of `crash_step` is on disk, then fails."""
  save = checkpoints.save

  def save_then_crash(manager, step, state):
    save(manager, step, state)
    if step == crash_step:
      manager.wait_until_finished()
      raise KeyboardInterrupt(f"killed after the checkpoint of step {crash_step}")

  monkeypatch.setattr(checkpoints, "save", save_then_crash)
  with pytest.raises(KeyboardInterrupt):
    training.train_and_evaluate(config, workdir)
  monkeypatch.undo()


def run_script(
  *args: str, cwd: pathlib.Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
  """A convzoo program run as a user would (`python SCRIPT ARGS`), its output captured."""
  return subprocess.run(
    [sys.executable, *args],
    cwd=cwd,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, **(env or {})},
  )


def snapshot(folder: pathlib.Path) -> dict[pathlib.Path, tuple[int, int]]:
  """Every path under `folder` with its size and modification time: to show nothing changed."""
  return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}
