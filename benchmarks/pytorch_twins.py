"""Hand-written PyTorch eager twins of convzoo's case-study networks and train step.

Run by benchmarks/versus_pytorch.py with the PyTorch virtualenv's Python (.venv-torch); it
imports torch and the standard library only, and nothing in convzoo imports it.

  .venv-torch/bin/python benchmarks/pytorch_twins.py NETWORK BATCH

Serves one network on stdin/stdout, one JSON line per request: first {"parameters": N}, then
for every line "SECONDS" it trains that long and answers {"images_per_second": X}.

A twin is what a PyTorch user would write for the same network and step: the same layers,
widths and parameter count (asserted against convzoo's), the same augmentation on the batch
(normalisation, random crops, flips, PCA lighting where the convzoo config has them), SGD with
momentum and weight decay, NCHW tensors, every core as a thread.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch without numpy

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> list:
  return [nn.Conv2d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm2d(cout)]


def lenet5(num_classes: int) -> nn.Module:
  """LeNet-5, modern form (ReLU, max pooling), 32×32×1."""
  return nn.Sequential(
    nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
    nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
    nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),
    nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
  )  # fmt: skip


class BasicBlock(nn.Module):
  """Two 3×3 conv-BN; shortcut "A" (strided, zero-padded identity) or "B" (1×1 projection)."""

  def __init__(self, cin: int, cout: int, stride: int, shortcut: str):
    super().__init__()
    self.body = nn.Sequential(
      *conv_bn(cin, cout, 3, stride, 1), nn.ReLU(), *conv_bn(cout, cout, 3, 1, 1)
    )
    self.stride, self.pad = stride, cout - cin
    changes = stride != 1 or cin != cout
    self.projection = (
      nn.Sequential(*conv_bn(cin, cout, 1, stride)) if changes and shortcut == "B" else None
    )

  def forward(self, x):
    if self.projection is not None:
      shortcut = self.projection(x)
    elif self.stride != 1 or self.pad:
      shortcut = F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.pad))
    else:
      shortcut = x
    return F.relu(self.body(x) + shortcut)


class Bottleneck(nn.Module):
  """1×1 (strided, as convzoo and the paper's released models), 3×3, 1×1 ×4; projection "B"."""

  def __init__(self, cin: int, width: int, stride: int):
    super().__init__()
    cout = 4 * width
    self.body = nn.Sequential(
      *conv_bn(cin, width, 1, stride), nn.ReLU(),
      *conv_bn(width, width, 3, 1, 1), nn.ReLU(),
      *conv_bn(width, cout, 1),
    )  # fmt: skip
    changes = stride != 1 or cin != cout
    self.projection = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if changes else None

  def forward(self, x):
    shortcut = self.projection(x) if self.projection is not None else x
    return F.relu(self.body(x) + shortcut)


def cifar_resnet(depth: int, num_classes: int) -> nn.Module:
  """He et al. §4.2: 3×3 conv 16, three stages of (depth−2)/6 basic blocks, option A."""
  n, layers, cin = (depth - 2) // 6, [*conv_bn(3, 16, 3, 1, 1), nn.ReLU()], 16
  for stage, width in enumerate((16, 32, 64)):
    for block in range(n):
      layers.append(BasicBlock(cin, width, 2 if stage and not block else 1, "A"))
      cin = width
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def resnet(depth: int, num_classes: int) -> nn.Module:
  """ImageNet ResNet-18 (basic blocks) or -50 (bottlenecks), shortcut option B."""
  blocks = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
  layers, cin = [*conv_bn(3, 64, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1)], 64
  for stage, (count, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
    for block in range(count):
      stride = 2 if stage and not block else 1
      if depth == 50:
        layers.append(Bottleneck(cin, width, stride))
        cin = 4 * width
      else:
        layers.append(BasicBlock(cin, width, stride, "B"))
        cin = width
  return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


class LRN(nn.Module):
  """Krizhevsky et al.'s LRN: torch divides α by n, so it gets α·n to match."""

  def __init__(self, n: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    super().__init__()
    self.norm = nn.LocalResponseNorm(n, alpha * n, beta, k)

  def forward(self, x):
    return self.norm(x)


def classifier(features: int, num_classes: int) -> list:
  return [
    nn.Flatten(),
    nn.Linear(features, 4096), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(4096, num_classes),
  ]  # fmt: skip


def alexnet(num_classes: int) -> nn.Module:
  """The paper's widths, one group, ReLU → LRN → pool, 227×227."""
  return nn.Sequential(
    nn.Conv2d(3, 96, 11, 4), nn.ReLU(), LRN(), nn.MaxPool2d(3, 2),
    nn.Conv2d(96, 256, 5, 1, 2), nn.ReLU(), LRN(), nn.MaxPool2d(3, 2),
    nn.Conv2d(256, 384, 3, 1, 1), nn.ReLU(),
    nn.Conv2d(384, 384, 3, 1, 1), nn.ReLU(),
    nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(), nn.MaxPool2d(3, 2),
    *classifier(256 * 6 * 6, num_classes),
  )  # fmt: skip


def vgg16(num_classes: int) -> nn.Module:
  """Configuration D: 13 3×3 convolutions in five stages, each ending in a 2×2 max pool."""
  layers, cin = [], 3
  for stage in ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3):
    for width in stage:
      layers += [nn.Conv2d(cin, width, 3, 1, 1), nn.ReLU()]
      cin = width
    layers.append(nn.MaxPool2d(2, 2))
  return nn.Sequential(*layers, *classifier(512 * 7 * 7, num_classes))


# network → (builder, classes, stored image H=W, channels, crop, normalisation, random crop and
# flip, PCA lighting σ, learning rate, weight decay): convzoo's config for it.
NETWORKS = {
  "lenet5": (lenet5, 10, 32, 1, 32, "standardize", False, 0.0, 0.05, 5e-4),
  "cifar_resnet20": (functools.partial(cifar_resnet, 20), 10, 40, 3, 32, "mean_per_pixel", True,
                     0.0, 0.1, 1e-4),
  "cifar_resnet56": (functools.partial(cifar_resnet, 56), 10, 40, 3, 32, "mean_per_pixel", True,
                     0.0, 0.1, 1e-4),
  "alexnet": (alexnet, 1000, 256, 3, 227, "mean", True, 0.1, 0.01, 5e-4),
  "resnet18": (functools.partial(resnet, 18), 1000, 256, 3, 224, "mean", True, 0.1, 0.1, 1e-4),
  "resnet50": (functools.partial(resnet, 50), 1000, 256, 3, 224, "mean", True, 0.1, 0.1, 1e-4),
  "vgg16": (vgg16, 1000, 256, 3, 224, "mean", True, 0.1, 0.01, 5e-4),
}  # fmt: skip


def make_preprocess(stored: int, channels: int, crop: int, normalization: str, augment: bool,
                    lighting: float):  # fmt: skip
  """uint8 [B, H, W, C] → float [B, C, crop, crop], as convzoo's device-side preprocessing."""
  mean = torch.full((channels,), 0.5)
  std = torch.full((channels,), 0.25)
  mean_image = torch.full((stored, stored, channels), 0.5)
  eigvals, eigvecs = torch.full((channels,), 0.01), torch.eye(channels)
  offsets = torch.arange(crop)

  def preprocess(images: torch.Tensor) -> torch.Tensor:
    x = images.float() / 255.0
    if normalization == "standardize":
      x = (x - mean) / std
    elif normalization == "mean_per_pixel":
      x = x - mean_image
    else:
      x = x - mean
    batch = x.shape[0]
    if lighting > 0:  # Krizhevsky et al. §4.1: P·(α∘λ), α ~ N(0, σ²) per image
      alpha = torch.randn(batch, channels) * lighting
      x = x + ((alpha * eigvals) @ eigvecs.T)[:, None, None, :]
    if crop < stored:
      if augment:
        top = torch.randint(0, stored - crop + 1, (batch,))
        left = torch.randint(0, stored - crop + 1, (batch,))
      else:
        top = left = torch.full((batch,), (stored - crop) // 2)
      rows = (top[:, None] + offsets)[:, :, None]
      cols = (left[:, None] + offsets)[:, None, :]
      x = x[torch.arange(batch)[:, None, None], rows, cols]
    if augment:
      flip = torch.rand(batch) < 0.5
      x = torch.where(flip[:, None, None, None], x.flip(2), x)
    return x.permute(0, 3, 1, 2).contiguous()

  return preprocess


def main() -> None:
  name, batch_size = sys.argv[1], int(sys.argv[2])
  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(0)
  build, classes, stored, channels, crop, normalization, augment, lighting, lr, decay = NETWORKS[
    name
  ]
  model = build(classes).train()
  optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=decay)
  preprocess = make_preprocess(stored, channels, crop, normalization, augment, lighting)
  images = torch.randint(0, 256, (batch_size, stored, stored, channels), dtype=torch.uint8)
  labels = torch.randint(0, classes, (batch_size,))

  def step() -> None:
    optimizer.zero_grad(set_to_none=True)
    logits = model(preprocess(images))
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()
    (logits.argmax(1) != labels).float().mean()  # the top-1 error convzoo's step reports

  for _ in range(2):  # warm-up: allocator and oneDNN primitive caches
    step()
  print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}), flush=True)
  for line in sys.stdin:
    seconds, steps, start = float(line), 0, time.perf_counter()
    while steps < 2 or time.perf_counter() - start < seconds:
      step()
      steps += 1
    rate = steps * batch_size / (time.perf_counter() - start)
    print(json.dumps({"images_per_second": rate}), flush=True)


if __name__ == "__main__":
  main()
