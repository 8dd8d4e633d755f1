"""AlexNet (Krizhevsky et al. 2012) and ZFNet (Zeiler & Fergus 2013): one table, two geometries."""

from __future__ import annotations

import config_values
from models.layers import LRN, Conv, Dense, Dropout, Pool
from models.registry import register

# (conv1..conv5 filters, conv1 padding), paper and torchvision's "one weird trick" widths.
VARIANTS = {
  "paper": ((96, 256, 384, 384, 256), 0),
  "torchvision": ((64, 192, 384, 256, 256), 2),
}
LRN_ORDERS = ("relu_lrn_pool", "pool_lrn")


def head(num_classes: int, dropout: float = 0.5) -> tuple:
  """fc6, fc7 with dropout on their outputs, and fc8 class scores (Krizhevsky et al. 2012 §4.2)."""
  return (
    Dense("fc6", 4096),
    Dropout("drop6", dropout, group="fc6"),
    Dense("fc7", 4096),
    Dropout("drop7", dropout, group="fc7"),
    Dense("fc8", num_classes, activation=False),
  )


def conv_pool_lrn(conv: Conv, pool: Pool, lrn: LRN, lrn_order: str) -> tuple:
  config_values.check_choice("model.lrn_order", lrn_order, LRN_ORDERS)
  return (conv, lrn, pool) if lrn_order == "relu_lrn_pool" else (conv, pool, lrn)


@register("alexnet", input_size=227, norm="lrn")
def alexnet(
  num_classes: int,
  variant: str = "paper",
  groups: int = 1,
  lrn_order: str = "relu_lrn_pool",
  lrn: str = "paper",
) -> tuple:
  """227×227×3 → 55×55×96 → 27 → 13 → 6×6×256 → 4096 → 4096 → classes.

  `groups=2` is the two-GPU original: conv2, conv4 and conv5 see only their own GPU's maps.
  `lrn` names the LRN constants (models/layers.py LRN_CONSTANTS: paper, or caffe as in BVLC
  AlexNet); `lrn_order=pool_lrn` with caffe constants is CaffeNet.
  """
  (f1, f2, f3, f4, f5), pad1 = config_values.choose("AlexNet variant", variant, VARIANTS)
  config_values.check_choice("AlexNet groups", groups, (1, 2))
  return (
    *conv_pool_lrn(
      Conv("conv1", f1, 11, 4, pad1), Pool("pool1", 3, 2), LRN.of("norm1", lrn), lrn_order
    ),
    *conv_pool_lrn(
      Conv("conv2", f2, 5, 1, 2, groups), Pool("pool2", 3, 2), LRN.of("norm2", lrn), lrn_order
    ),
    Conv("conv3", f3, 3, 1, 1),
    Conv("conv4", f4, 3, 1, 1, groups),
    Conv("conv5", f5, 3, 1, 1, groups),
    Pool("pool3", 3, 2),
    *head(num_classes),
  )


@register("zfnet", input_size=224, norm="lrn")
def zfnet(num_classes: int, lrn_order: str = "relu_lrn_pool") -> tuple:
  """224×224×3 → 110 → 55 → 26 → 13 → 6×6×512 (Zeiler & Fergus 2013, Fig. 3).

  conv1 is 7×7/2 and conv2 strides 2; conv3–5 use the 512, 1024, 512 filters of the
  improved model. Pools pad by one so the sizes match the paper's figure.
  """
  return (
    *conv_pool_lrn(
      Conv("conv1", 96, 7, 2, 1), Pool("pool1", 3, 2, padding=1), LRN("norm1"), lrn_order
    ),
    *conv_pool_lrn(
      Conv("conv2", 256, 5, 2, 0), Pool("pool2", 3, 2, padding=1), LRN("norm2"), lrn_order
    ),
    Conv("conv3", 512, 3, 1, 1),
    Conv("conv4", 1024, 3, 1, 1),
    Conv("conv5", 512, 3, 1, 1),
    Pool("pool3", 3, 2),
    *head(num_classes),
  )
