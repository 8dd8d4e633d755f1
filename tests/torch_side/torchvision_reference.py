"""Reference state_dicts and outputs of torchvision's and timm's networks: the PyTorch side of the
tests of convzoo's importer of published weights.

  .venv-torch/bin/python tests/torch_side/torchvision_reference.py --out=DIR --images=IMAGES.npy
      NAME [NAME ...]

Runs only under .venv-torch (`make torch-env`: torch, torchvision, timm, safetensors, numpy);
nothing in convzoo imports it, and pytest never collects it (no test_ prefix). IMAGES.npy: uint8
[N, 224, 224, 3] RGB. NAME: a torchvision network (alexnet, vgg11 … vgg19, vgg11_bn … vgg19_bn,
googlenet, resnet18 … resnet152) or a timm one as `timm:NAME` (timm:resnet18, timm:resnet50,
timm:vgg16, ...). For each, with FILE the NAME with ':' replaced by '_', it writes

  DIR/FILE.pth          the state_dict, torch.save (zip format), as published weights come;
  DIR/FILE.safetensors  the same tensors, safetensors.torch.save_file;
  DIR/FILE.npz          `logits` [N, 1000] and module outputs by module name, 4-d ones NHWC:
                        ResNets (torchvision's, timm's): conv1 (before its batch norm), maxpool,
                        every block (layer1.0, layer1.1, ...); GoogLeNet: GOOGLENET_TAPS;
                        AlexNet, VGG: features (timm's VGG also pre_logits, [N, 1, 1, 4096]).

The network is built without weights (torchvision `weights=None`, timm `pretrained=False`; no
model hub is reached) and seeded per name: the same NAME and images give the same files.
GoogLeNet is built as its published weights use it: auxiliary heads present (their tensors are in
the state_dict; they do not run in eval mode) and `transform_input=True`, so the network itself
maps the normalised input back to x / 127.5 − 1 before conv1. Then every batch norm gets random
running statistics and affine parameters (running_mean N(0, 0.1²), running_var U(0.5, 1.5),
weight U(0.5, 1.5), bias N(0, 0.1²)), so that their mapping is tested, and every convolution and
linear layer is rescaled, in forward order, to give outputs of unit standard deviation on the
first BATCH images (seeded synthetic ones join them up to CALIBRATION_IMAGES): raw initialisations
vanish (AlexNet, GoogLeNet's std-0.01 init) or grow with depth, and random batch-norm statistics
normalise nothing. The classifier's bias then centres those images' logits per class (else what
all images share dominates, and all get one top-1 class), their std LOGIT_STD. So the weights
depend on the images too.

The outputs are computed in eval mode, float32, on the images as torchvision's published weights
expect them: x / 255, less the mean (0.485, 0.456, 0.406), over the std (0.229, 0.224, 0.225),
NCHW. One line per name is printed: the time taken, max |logit| and the distinct top-1 classes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm: never reach the Hugging Face hub

import numpy as np  # noqa: E402
import safetensors.torch  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
TORCHVISION = (
  "alexnet", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
  "googlenet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
)  # fmt: skip
GOOGLENET_TAPS = (
  "conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
  "inception4a", "inception4b", "inception4c", "inception4d", "inception4e", "maxpool4",
  "inception5a", "inception5b",
)  # fmt: skip
LOGIT_STD = 3.0  # the logits' standard deviation on the calibration images, centred per class
CALIBRATION_IMAGES = 4  # at least
BATCH = 8  # images per forward pass


def file_stem(name: str) -> str:
  return name.replace(":", "_")


def is_known(name: str) -> bool:
  if name.startswith("timm:"):
    return timm.is_model(name.removeprefix("timm:"))
  return name in TORCHVISION


def seed_of(name: str) -> int:
  return zlib.crc32(name.encode())


def build(name: str) -> nn.Module:
  """The network `name`, seeded, without weights."""
  torch.manual_seed(seed_of(name))
  if name.startswith("timm:"):
    return timm.create_model(name.removeprefix("timm:"), pretrained=False)
  if name == "googlenet":
    return torchvision.models.googlenet(
      weights=None, aux_logits=True, transform_input=True, init_weights=True
    )
  return getattr(torchvision.models, name)(weights=None)


def taps(name: str, model: nn.Module) -> list[str]:
  """The modules whose outputs go into the npz, by their names in `model`."""
  modules = dict(model.named_modules())
  if name == "googlenet":
    return list(GOOGLENET_TAPS)
  if "layer1" in modules:  # a ResNet, torchvision's or timm's: the stem, then every block
    blocks = [n for n in modules if n.startswith("layer") and n.count(".") == 1]
    return ["conv1", "maxpool", *blocks]
  return [n for n in ("features", "pre_logits") if n in modules]  # AlexNet, VGG; timm's VGG head


@torch.no_grad()
def randomise_batch_norms(model: nn.Module) -> int:
  count = 0
  for m in model.modules():
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
      m.running_mean.copy_(torch.randn_like(m.running_mean) * 0.1)
      m.running_var.uniform_(0.5, 1.5)
      m.weight.uniform_(0.5, 1.5)
      m.bias.copy_(torch.randn_like(m.bias) * 0.1)
      count += 1
  return count


def normalise(images: np.ndarray) -> torch.Tensor:
  """uint8 NHWC RGB → float32 NCHW as torchvision's published weights expect."""
  x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
  return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def calibration_images(name: str, images: np.ndarray) -> np.ndarray:
  """The first BATCH `images`, with seeded synthetic ones (coarse random colour blocks with noise,
  unlike each other) up to CALIBRATION_IMAGES."""
  given = images[:BATCH]
  missing = CALIBRATION_IMAGES - len(given)
  if missing <= 0:
    return given
  rng = np.random.default_rng(seed_of(name))
  h, w = images.shape[1:3]
  coarse = rng.uniform(0, 255, (missing, 7, 7, 3))
  blocks = np.repeat(np.repeat(coarse, -(-h // 7), axis=1), -(-w // 7), axis=2)[:, :h, :w]
  noisy = blocks + rng.normal(0, 30, blocks.shape)
  return np.concatenate([given, np.clip(noisy, 0, 255).astype(np.uint8)])


@torch.no_grad()
def rescale(model: nn.Module, x: torch.Tensor) -> None:
  """Scales every Conv2d and Linear, in the order they run, to unit output std on `x`; each sees
  its predecessors already rescaled. The last, the classifier, then gets a bias that centres the
  logits of `x` on zero per class, and LOGIT_STD: otherwise what all images share (ReLU features
  are positive, averaged over space) dominates, and every image gets the same top-1 class."""
  layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
  ran = []

  def hook(module, inputs, output):
    if any(module is m for m, _ in ran):  # a layer called twice is scaled once
      return output
    s = output.float().std().item()
    if not np.isfinite(s) or s == 0:
      raise SystemExit(f"error: a {type(module).__name__} gave std {s} during calibration")
    module.weight.div_(s)
    if module.bias is not None:
      module.bias.div_(s)
    ran.append((module, output / s))
    return ran[-1][1]

  handles = [m.register_forward_hook(hook) for m in layers]
  try:
    model(x)
  finally:
    for h in handles:
      h.remove()
  last, logits = ran[-1]
  if last.bias is not None:
    last.bias.sub_(logits.mean(0))
    logits = logits - logits.mean(0)
  scale = LOGIT_STD / logits.std().item()
  last.weight.mul_(scale)
  if last.bias is not None:
    last.bias.mul_(scale)


@torch.no_grad()
def run(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, np.ndarray]:
  """Logits and the outputs of the modules `names` (4-d ones NHWC), in batches of BATCH."""
  modules = dict(model.named_modules())
  outputs: dict[str, list[np.ndarray]] = {"logits": [], **{n: [] for n in names}}

  def keep(n):
    def hook(module, inputs, output):
      y = output.detach()
      if y.ndim == 4:
        y = y.permute(0, 2, 3, 1)
      outputs[n].append(y.numpy().copy())  # before any in-place op downstream changes it

    return hook

  handles = [modules[n].register_forward_hook(keep(n)) for n in names]
  try:
    for i in range(0, len(x), BATCH):
      logits = model(x[i : i + BATCH])
      outputs["logits"].append(logits.numpy().copy())
  finally:
    for h in handles:
      h.remove()
  return {k: np.concatenate(v) for k, v in outputs.items()}


def reference(name: str, images: np.ndarray, out: Path) -> str:
  start = time.perf_counter()
  model = build(name)
  batch_norms = randomise_batch_norms(model)
  model.eval()
  rescale(model, normalise(calibration_images(name, images)))
  state = model.state_dict()
  stem = out / file_stem(name)
  torch.save(state, f"{stem}.pth")
  safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, f"{stem}.safetensors")
  arrays = run(model, taps(name, model), normalise(images))
  np.savez(f"{stem}.npz", **arrays)

  logits = arrays["logits"]
  if logits.shape != (len(images), 1000):
    raise SystemExit(f"error: {name} gave logits of shape {logits.shape}")
  top1 = logits.argmax(axis=1)
  peak = float(np.abs(logits).max())
  line = (
    f"{name}: {time.perf_counter() - start:.1f} s | {len(state)} tensors, {batch_norms} batch norms"
    f" | max |logit| {peak:.2f} | top-1 {len(set(top1.tolist()))} distinct of {len(top1)}"
  )
  if not np.isfinite(logits).all() or not 1 <= peak <= 100:
    line += " | WARNING: logits out of range"
  return line


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", required=True, type=Path, help="folder for the files")
  parser.add_argument("--images", required=True, type=Path, help="uint8 [N, 224, 224, 3] RGB")
  parser.add_argument("names", nargs="+", metavar="NAME", help="e.g. resnet50, timm:vgg16")
  args = parser.parse_args()
  unknown = [n for n in args.names if not is_known(n)]
  if unknown:
    parser.error(f"unknown networks {unknown}; torchvision's: {', '.join(TORCHVISION)}; timm:NAME")

  images = np.load(args.images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
    parser.error(f"{args.images}: want uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
  torch.set_num_threads(2)
  args.out.mkdir(parents=True, exist_ok=True)
  for name in args.names:
    print(reference(name, images, args.out), flush=True)


if __name__ == "__main__":
  sys.exit(main())
