"""What a run draws: the techniques, and the layers, units and classes they look at.

Every visualize.* setting is checked here, against the network's shapes and the data's size,
before anything compiles; a ValueError names the first bad value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np

import config_rules
import config_values
from input_pipeline import datasets
from visualization.network import Network


@dataclasses.dataclass(frozen=True)
class Plan:
  """What the settings ask for, checked against the network before anything compiles."""

  techniques: list[str]
  layer: str  # the layer with a spatial map that patches, deconvnet and Grad-CAM look at
  patch_layers: list[str]
  unit_ids: dict[str, np.ndarray]  # per patch layer (and the layer): its units
  classes: np.ndarray  # class ids for class models
  chosen_units: bool  # unit_ids named (deconvnet projects the first, not each image's strongest)
  invert_layers: list[str]


def check(
  config: ml_collections.ConfigDict,
  network: Network,
  shapes: dict[str, Any],
  names: list[str],
  eval_images: int,
  known: Sequence[str],
) -> Plan:
  """The plan for `config`'s visualize.* settings: `names` are the class names, `eval_images`
  the size of the eval split, `known` the techniques in the order they run."""
  settings = config.visualize
  config_rules.check_ranges(config, config_rules.VISUALIZE)
  if settings.images > eval_images:  # each becomes a row of every per-image picture
    classes = f" (dataset.classes {config.dataset.classes})" if config.dataset.classes else ""
    raise ValueError(
      f"visualize.images {settings.images} is more than the {eval_images} images of split "
      f"{config.dataset.eval_split!r}{classes}"
    )
  techniques = config_values.split_list(settings.only) or list(known)
  for name in techniques:
    config_values.check_choice("technique", name, list(known))
  spatial = spatial_layers(network, shapes)

  def spatial_layer(name: str) -> str:
    network.check_layer(name)
    if name not in spatial:
      raise ValueError(
        f"layer {name!r} has no spatial map (output {tuple(shapes[name].shape[1:])}); "
        f"layers with one: {', '.join(spatial)}"
      )
    return name

  layer = spatial_layer(settings.layer or spatial[-1])
  patch_layers = [spatial_layer(n) for n in config_values.split_list(settings.patch_layers)]
  patch_layers = patch_layers or [layer]
  inverted = invert_layers(network, settings)
  for name in inverted:
    network.check_layer(name)
  chosen = config_values.split_list(settings.unit_ids)
  unit_ids = {}
  for name in dict.fromkeys([*patch_layers, layer]):
    channels = shapes[name].shape[-1]
    try:
      ids = np.asarray([int(unit) for unit in chosen], int)
    except ValueError:
      raise ValueError(
        f"bad visualize.unit_ids {settings.unit_ids!r}; expected e.g. 3,17"
      ) from None
    if chosen and not ((ids >= 0) & (ids < channels)).all():
      raise ValueError(
        f"visualize.unit_ids {settings.unit_ids!r}: layer {name!r} has units 0–{channels - 1}"
      )
    unit_ids[name] = ids if chosen else np.arange(min(settings.units, channels))
  classes = []
  for entry in config_values.split_list(settings.classes):
    if entry in names:
      classes.append(names.index(entry))
    elif entry.isdigit() and int(entry) < len(names):
      classes.append(int(entry))
    else:
      raise ValueError(
        f"unknown class {entry!r} in visualize.classes; ids 0–{len(names) - 1} or names: "
        f"{', '.join(names)}"
      )
  classes = np.asarray(classes or range(len(names)), int)
  return Plan(techniques, layer, patch_layers, unit_ids, classes, bool(chosen), inverted)


def spatial_layers(network: Network, shapes: dict[str, Any]) -> list[str]:
  """Main-path layers whose output is a map larger than 1×1 (LeNet-5's c5 is 1×1: a Grad-CAM
  or a patch search there says nothing about where)."""
  return [
    l.name
    for l in network.model.layers
    if not l.branches_off and len(shapes[l.name].shape) == 4 and shapes[l.name].shape[1] > 1
  ]


def invert_layers(network: Network, settings: ml_collections.ConfigDict) -> list[str]:
  """visualize.invert_layers, else every fourth main-path layer and the one before the output."""
  names = [l.name for l in network.model.layers if not l.branches_off]
  chosen = config_values.split_list(settings.invert_layers)
  return chosen or [*names[: len(names) - 1 : 4], names[-2]]


def class_names(config: ml_collections.ConfigDict, info: datasets.DatasetInfo) -> list[str]:
  """The dataset's class names (of the classes kept), else the class ids as text."""
  return datasets.class_names(config.dataset, info)
