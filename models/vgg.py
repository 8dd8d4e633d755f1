"""VGG configurations A, A-LRN, B, C, D, E (Simonyan & Zisserman 2014, Table 1) from one table."""

from __future__ import annotations

import config_values
from models.alexnet import head
from models.layers import LRN, Conv, Pool
from models.registry import register

# Per stage, its convolutions: an int is a 3×3 conv with that many filters, "1x256" a 1×1 conv,
# "LRN" a local response normalisation. Each stage ends with a 2×2/2 max pool.
CONFIGS = {
  "a": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
  "a_lrn": ((64, "LRN"), (128,), (256, 256), (512, 512), (512, 512)),
  "b": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
  "c": ((64, 64), (128, 128), (256, 256, "1x256"), (512, 512, "1x512"), (512, 512, "1x512")),
  "d": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
  "e": ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def stage_layers(stage: int, entries: tuple) -> list:
  """conv{stage}_1, conv{stage}_2, …, pool{stage}; all in group "stage{stage}"."""
  group, layers, index = f"stage{stage}", [], 0
  for entry in entries:
    if entry == "LRN":
      layers.append(LRN(f"norm{stage}", group=group))
      continue
    index += 1
    name = f"conv{stage}_{index}"
    if isinstance(entry, str):  # "1xN"
      layers.append(Conv(name, int(entry[2:]), 1, group=group))
    else:
      layers.append(Conv(name, entry, 3, 1, 1, group=group))
  return layers + [Pool(f"pool{stage}", 2, 2, group=group)]


@register({f"vgg_{c}": {"configuration": c} for c in CONFIGS}, input_size=224, norm="lrn")
def vgg(num_classes: int, configuration: str = "d") -> tuple:
  """224×224×3 → five stages halving the size → 7×7×512 → 4096 → 4096 → classes."""
  stages = config_values.choose("VGG configuration", configuration, CONFIGS)
  body = [
    layer for stage, entries in enumerate(stages, start=1) for layer in stage_layers(stage, entries)
  ]
  return (*body, *head(num_classes))
