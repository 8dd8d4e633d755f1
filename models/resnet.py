"""ResNets and their plain counterparts (He et al. 2015): stage sizes and a block type."""

from __future__ import annotations

import config_values
from models.layers import Conv, Dense, GlobalAvgPool, Pool, Residual
from models.registry import register

IMAGENET_STAGES = {
  18: ("basic", (2, 2, 2, 2)),
  34: ("basic", (3, 4, 6, 3)),
  50: ("bottleneck", (3, 4, 6, 3)),
  101: ("bottleneck", (3, 4, 23, 3)),
  152: ("bottleneck", (3, 8, 36, 3)),
}
CIFAR_DEPTHS = (20, 32, 44, 56, 110)  # 6n + 2
SHORTCUTS = ("A", "B", "C", "none")  # "none": the plain counterpart
# torchvision's (and timm's) ImageNet ResNets are "v1.5": a downsampling bottleneck strides on
# its 3×3, not its first 1×1, and the stem's max pool pads one pixel on every side where
# He et al.'s Caffe model (ceil rounding, no padding) pads one after: the same shapes, other
# windows (torchvision/models/resnet.py).
VARIANTS = {
  "paper": {"stride_at": "1x1", "pool_padding": "SAME"},
  "torchvision": {"stride_at": "3x3", "pool_padding": 1},
}


def parse_depth(argument: str, depths: tuple[int, ...], family: str) -> tuple[bool, int]:
  """ "50" → (False, 50), "plain34" → (True, 34): a config argument naming a depth."""
  plain = argument.startswith("plain")
  digits = argument.removeprefix("plain")
  known = [str(d) for d in depths] + [f"plain{d}" for d in depths]
  config_values.check_choice(family, argument, known)
  return plain, int(digits)


def stages(
  block: str,
  blocks_per_stage: tuple[int, ...],
  widths: tuple[int, ...],
  residual: bool,
  shortcut: str,
  stride_at: str = "1x1",
) -> list:
  """stage{i}_block{j} entries, grouped by stage; the first block of stages 2+ strides 2."""
  config_values.check_choice("model.shortcut", shortcut, SHORTCUTS)
  residual = residual and shortcut != "none"
  return [
    Residual(
      f"stage{i}_block{j}",
      block,
      width,
      2 if i > 1 and j == 1 else 1,
      residual,
      shortcut,
      group=f"stage{i}",
      stride_at=stride_at,
    )
    for i, (count, width) in enumerate(zip(blocks_per_stage, widths, strict=True), start=1)
    for j in range(1, count + 1)
  ]


def variants(prefix: str, depths) -> dict[str, dict]:
  """Registry names of a depth table, residual and plain: resnet18 …, plain18 …"""
  return {
    f"{prefix}{kind}{depth}": {"depth": depth, "residual": kind != "plain"}
    for depth in depths
    for kind in ("resnet", "plain")
  }


@register(variants("", IMAGENET_STAGES), input_size=224, norm="batch")
def resnet(
  num_classes: int, depth: int, residual: bool = True, shortcut: str = "B", variant: str = "paper"
) -> tuple:
  """224×224×3 → conv1 112 → pool1 56 → stages 56, 28, 14, 7 → average pool → classes."""
  block, blocks = IMAGENET_STAGES[depth]
  differences = config_values.choose("ResNet variant", variant, VARIANTS)
  return (
    Conv("conv1", 64, 7, 2, 3),
    Pool("pool1", 3, 2, padding=differences["pool_padding"]),
    *stages(block, blocks, (64, 128, 256, 512), residual, shortcut, differences["stride_at"]),
    GlobalAvgPool("avgpool"),
    Dense("fc", num_classes, activation=False),
  )


@register(variants("cifar_", CIFAR_DEPTHS), input_size=32, num_classes=10, norm="batch")
def cifar_resnet(num_classes: int, depth: int, residual: bool = True, shortcut: str = "A") -> tuple:
  """32×32×3 → conv1 16 → stages of 16, 32, 64 channels at 32, 16, 8 → average pool →
  classes (§4.2)."""
  n = (depth - 2) // 6
  return (
    Conv("conv1", 16, 3, 1, 1),
    *stages("basic", (n, n, n), (16, 32, 64), residual, shortcut),
    GlobalAvgPool("avgpool"),
    Dense("fc", num_classes, activation=False),
  )
