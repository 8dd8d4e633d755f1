"""GoogLeNet / Inception-v1 (Szegedy et al. 2014, Table 1) from its inception table."""

from __future__ import annotations

import config_values
from models.layers import LRN, AuxHead, Conv, Dense, Dropout, GlobalAvgPool, Inception, Pool
from models.registry import register

# name: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj. None marks a 3×3/2 max pool.
INCEPTION_TABLE = (
  ("inception_3a", (64, 96, 128, 16, 32, 32)),  # 28×28×256
  ("inception_3b", (128, 128, 192, 32, 96, 64)),  # 28×28×480
  ("pool3", None),  # 14×14×480
  ("inception_4a", (192, 96, 208, 16, 48, 64)),  # 14×14×512
  ("inception_4b", (160, 112, 224, 24, 64, 64)),  # 14×14×512
  ("inception_4c", (128, 128, 256, 24, 64, 64)),  # 14×14×512
  ("inception_4d", (112, 144, 288, 32, 64, 64)),  # 14×14×528
  ("inception_4e", (256, 160, 320, 32, 128, 128)),  # 14×14×832
  ("pool4", None),  # 7×7×832
  ("inception_5a", (256, 160, 320, 32, 128, 128)),  # 7×7×832
  ("inception_5b", (384, 192, 384, 48, 128, 128)),  # 7×7×1024
)
# Auxiliary classifiers sit on the outputs of these modules (§5).
AUX_AFTER = {"inception_4a": "aux1", "inception_4d": "aux2"}


# torchvision's GoogLeNet (the one its published weights fit) differs from the paper where
# every shape still matches: its "5×5" branches are 3×3 convolutions and its last max pool is
# 2×2/2 (torchvision/models/googlenet.py); it has batch norm (ε 1e-3) instead of LRN.
VARIANTS = {"paper": {"c5_kernel": 5, "pool4": 3}, "torchvision": {"c5_kernel": 3, "pool4": 2}}


@register("googlenet", input_size=224, norm="lrn")
def googlenet(
  num_classes: int, aux_classifiers: bool = True, variant: str = "paper", lrn: str = "paper"
) -> tuple:
  """224×224×3 → 112×112×64 → 56 → 28×28×192 → inceptions → 7×7×1024 → classes.

  The max pools pad after ("SAME"), which is Caffe's ceil rounding for these sizes: BVLC
  GoogLeNet's windows exactly. `lrn=caffe` gives its LRN constants.
  """
  differences = config_values.choose("GoogLeNet variant", variant, VARIANTS)
  layers = [
    Conv("conv1", 64, 7, 2, 3),  # 112×112×64
    Pool("pool1", 3, 2, padding="SAME"),  # 56×56×64
    LRN.of("norm1", lrn),
    Conv("conv2_reduce", 64, 1),
    Conv("conv2", 192, 3, 1, 1),  # 56×56×192
    LRN.of("norm2", lrn),
    Pool("pool2", 3, 2, padding="SAME"),  # 28×28×192
  ]
  for name, row in INCEPTION_TABLE:
    if row is None:
      window = differences["pool4"] if name == "pool4" else 3
      layers.append(Pool(name, window, 2, padding="SAME"))
      continue
    layers.append(Inception(name, *row, c5_kernel=differences["c5_kernel"]))
    if aux_classifiers and name in AUX_AFTER:
      layers.append(AuxHead(AUX_AFTER[name], num_classes, group=name))
  layers += [GlobalAvgPool("avgpool"), Dropout("dropout", 0.4), Dense("linear", num_classes, False)]
  return tuple(layers)
