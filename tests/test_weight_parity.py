"""Parity of imported networks with their sources' own code: torchvision's and timm's modules
(seeded random weights, batch-norm statistics and affine parameters randomised) and, for Caffe,
caffemodels written here from the published layer definitions run by a PyTorch twin with
Caffe's semantics (ceil-mode pools, its LRN, groups, BatchNorm + Scale).

PyTorch is test-only, in .venv-torch (`make torch-env`, which `make test` runs); its side lives
in tests/torch_side/ and runs as a subprocess. Same images, same logits: max |Δ| ≤ 1e-4 ×
max |logit| in float32, the same top-1, and equal block outputs where the networks have blocks.
"""

from __future__ import annotations

import json
import subprocess

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from conftest import REPO

import checkpoints
import models
from input_pipeline import augment, color_pca
from tests import caffe_nets
from weights import caffemodel, importing, sources

TORCH_PYTHON = REPO / ".venv-torch" / "bin" / "python"
pytestmark = pytest.mark.skipif(
  not TORCH_PYTHON.exists(), reason="PyTorch's test virtualenv is missing: run `make torch-env`"
)
TOLERANCE = 1e-4  # of the largest |logit| (float32 on both sides, different summation orders)
TORCH_NETWORKS = ("alexnet", "vgg16", "vgg11_bn", "googlenet", "resnet18", "resnet50")
TIMM_NETWORKS = ("timm:resnet50", "timm:vgg16")


def torch_side(script: str, *args) -> None:
  result = subprocess.run(
    [str(TORCH_PYTHON), str(REPO / "tests" / "torch_side" / script), *map(str, args)],
    capture_output=True,
    text=True,
    timeout=1200,
  )
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
  """Two 227×227 RGB images, smooth enough to look like photographs to a ConvNet."""
  rng = np.random.default_rng(0)
  coarse = rng.integers(0, 256, (2, 15, 15, 3)).astype(np.float32)
  smooth = jax.image.resize(jnp.asarray(coarse), (2, 227, 227, 3), "linear")
  noisy = np.asarray(smooth) + rng.normal(0, 12, (2, 227, 227, 3))
  return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def torch_references(tmp_path_factory, images):
  """The torchvision and timm state_dicts (.pth, .safetensors) and their modules' outputs."""
  folder = tmp_path_factory.mktemp("torch")
  np.save(folder / "images.npy", images[:, :224, :224])
  torch_side(
    "torchvision_reference.py",
    f"--out={folder}",
    f"--images={folder / 'images.npy'}",
    *TORCH_NETWORKS,
    *TIMM_NETWORKS,
  )
  return folder


def imported_outputs(workdir, images: np.ndarray, **model_changes):
  """(logits, every layer's output) of the imported network on uint8 images at its input size,
  normalised as the workdir's config says."""
  config = ml_collections.ConfigDict(json.loads((workdir / checkpoints.CONFIG_FILE).read_text()))
  config.model.update(model_changes)
  model = models.create_model(config.model, sources.NUM_CLASSES)
  _, saved = checkpoints.read_newest(workdir, "parity", lambda _: None)
  variables = {"params": saved["params"], "batch_stats": saved.get("batch_stats") or {}}
  convention = augment.InputConvention.of(config.dataset)
  x = augment.normalize(
    jnp.asarray(images), color_pca.IMAGENET, config.dataset.normalization, convention
  )
  logits, intermediates = jax.jit(lambda x: model.apply(variables, x, train=False))(x)
  return np.asarray(logits), {k: np.asarray(v) for k, v in intermediates.items()}


def assert_close(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
  assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
  scale = np.abs(theirs).max()
  error = np.abs(ours - theirs).max()
  assert error <= TOLERANCE * scale, f"{what}: max |Δ| {error:.3g} > {TOLERANCE} × {scale:.3g}"


def assert_same_logits(ours: np.ndarray, theirs: np.ndarray) -> None:
  assert_close(ours, theirs, "logits")
  np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


def torch_taps(name: str) -> dict[str, str]:
  """torchvision's module name → convzoo's layer name, for the block outputs compared."""
  if name.startswith("resnet") or name == "timm:resnet50":
    depth = int(name.rpartition("resnet")[2])
    blocks = models.resnet.IMAGENET_STAGES[depth][1]
    taps = {"maxpool": "pool1"}
    for stage, count in enumerate(blocks, start=1):
      taps |= {f"layer{stage}.{b}": f"stage{stage}_block{b + 1}" for b in range(count)}
    return taps
  if name == "googlenet":
    taps = {"maxpool1": "pool1", "conv2": "conv2_reduce", "conv3": "conv2", "maxpool2": "pool2"}
    taps |= {"maxpool3": "pool3", "maxpool4": "pool4"}
    return taps | {f"inception{n[-2:]}": n for n in sources.INCEPTIONS}
  return {}


# torchvision's names from both formats; timm publishes safetensors.
FILES = [(n, s) for n in TORCH_NETWORKS for s in ("pth", "safetensors")]
FILES += [(n, "safetensors") for n in TIMM_NETWORKS]


@pytest.mark.slow
@pytest.mark.parametrize("name,suffix", FILES)
def test_imports_give_the_source_modules_logits_and_block_outputs(
  torch_references, images, tmp_path, name, suffix
):
  stem = name.replace(":", "_")
  spec = name if name.startswith("timm:") else f"torchvision:{name}"
  importing.import_weights(
    spec, torch_references / f"{stem}.{suffix}", tmp_path / "run", report=lambda _: None
  )
  reference = np.load(torch_references / f"{stem}.npz")
  logits, intermediates = imported_outputs(tmp_path / "run", images[:, :224, :224])
  assert_same_logits(logits, reference["logits"])
  for theirs, ours in torch_taps(name).items():
    assert_close(intermediates[ours], reference[theirs], f"{theirs} / {ours}")


@pytest.mark.slow
def test_a_resnet_v1_5_file_is_imported_as_v1_5_and_the_variant_matters(
  torch_references, images, tmp_path
):
  importing.import_weights(
    "torchvision:resnet50", torch_references / "resnet50.safetensors", tmp_path / "run"
  )
  reference = np.load(torch_references / "resnet50.npz")["logits"]
  as_published, _ = imported_outputs(tmp_path / "run", images[:, :224, :224])
  assert_same_logits(as_published, reference)
  as_paper, _ = imported_outputs(tmp_path / "run", images[:, :224, :224], variant="paper")
  assert np.abs(as_paper - reference).max() > 0.05 * np.abs(reference).max()


# ---------------------------------------------------------------------------------------------
# Caffe.

# name → (the test's net builder, the logits' layer, {Caffe top: convzoo layer} compared)
CAFFE_NETWORKS = {
  "bvlc_alexnet": (caffe_nets.bvlc_alexnet, "fc8", {"pool5": "pool3", "norm2": "norm2"}),
  "caffenet": (caffe_nets.caffenet, "fc8", {"pool5": "pool3", "norm2": "norm2"}),
  "bvlc_googlenet": (
    caffe_nets.bvlc_googlenet,
    "loss3/classifier",
    {f"{n}/output": n for n in sources.INCEPTIONS}
    | {"layer:loss1/classifier": "aux1", "layer:loss2/classifier": "aux2"},
  ),
  "resnet50": (
    lambda seed: caffe_nets.resnet(50, seed),
    "fc1000",
    {
      "pool1": "pool1",
      "res2a": "stage1_block1",
      "res3a": "stage2_block1",
      "res5c": "stage4_block3",
    },
  ),
  "vgg16": (lambda seed: caffe_nets.vgg(16, seed), "fc8", {"pool5": "pool5"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CAFFE_NETWORKS))
def test_caffe_imports_give_the_twins_logits(images, tmp_path, name):
  build, logits_layer, taps = CAFFE_NETWORKS[name]
  layers, size = build(seed=1)
  caffemodel.write_net(tmp_path / "net.caffemodel", name, layers)
  caffe_nets.dump_for_twin(layers, tmp_path / "net.json", tmp_path / "blobs.npz")
  recipe = sources.SOURCES["caffe"][name]
  crops = images[:, :size, :size]
  # Caffe's input: BGR, 0–255, less the mean pixel, NCHW.
  bgr = crops[..., ::-1].astype(np.float32) - np.float32(recipe.dataset["mean"])
  np.save(tmp_path / "input.npy", np.ascontiguousarray(bgr.transpose(0, 3, 1, 2)))
  torch_side("caffe_twin.py", tmp_path / "net.json", tmp_path / "blobs.npz",
             tmp_path / "input.npy", tmp_path / "out.npz")  # fmt: skip
  twin = np.load(tmp_path / "out.npz")
  importing.import_weights(f"caffe:{name}", tmp_path / "net.caffemodel", tmp_path / "run")
  logits, intermediates = imported_outputs(tmp_path / "run", crops)
  assert_same_logits(logits, twin[f"layer:{logits_layer}"])
  for theirs, ours in taps.items():
    assert_close(intermediates[ours], twin[theirs], f"{theirs} / {ours}")


def test_a_caffe_googlenet_without_its_auxiliary_heads_imports_without_them(tmp_path):
  layers, _ = caffe_nets.bvlc_googlenet(seed=2, aux=False)
  caffemodel.write_net(tmp_path / "net.caffemodel", "GoogleNet", layers)
  importing.import_weights("caffe:bvlc_googlenet", tmp_path / "net.caffemodel", tmp_path / "run")
  config = json.loads((tmp_path / "run" / checkpoints.CONFIG_FILE).read_text())
  assert config["model"]["aux_classifiers"] is False
