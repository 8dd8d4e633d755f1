"""Network in Network (Lin et al. 2014): mlpconv blocks and global average pooling, no FC layers."""

from __future__ import annotations

from models.layers import Conv, Dropout, GlobalAvgPool, Pool
from models.registry import register


def mlpconv(
  block: int,
  features: int,
  kernel: int,
  stride: int,
  padding: int,
  out_features: int | None = None,
  last_activation: bool = True,
) -> list:
  """A k×k convolution followed by two 1×1 convolutions (the "cccp" layers), grouped as block{i}."""
  group = f"block{block}"
  return [
    Conv(f"conv{block}", features, kernel, stride, padding, group=group),
    Conv(f"cccp{2 * block - 1}", features, 1, group=group),
    Conv(f"cccp{2 * block}", out_features or features, 1, activation=last_activation, group=group),
  ]


@register("nin", input_size=224)
def nin(num_classes: int) -> tuple:
  """The ImageNet model: 224×224×3 → 54 → 26 → 12 → 5×5×classes → average pool → classes."""
  return (
    *mlpconv(1, 96, 11, 4, 0),
    Pool("pool1", 3, 2),
    *mlpconv(2, 256, 5, 1, 2),
    Pool("pool2", 3, 2),
    *mlpconv(3, 384, 3, 1, 1),
    Pool("pool3", 3, 2),
    Dropout("dropout", 0.5),
    *mlpconv(4, 1024, 3, 1, 1, out_features=num_classes, last_activation=False),
    GlobalAvgPool("avgpool"),
  )
