"""The model registry: a network's name → its layer table, native input and defaults.

Every model is a `ConvNet` over a table of named layers (models/layers.py); the config's
`model` fields pick the table, edit it (`remove`, `widths`, `norm`) and set the network-wide
choices (`activation`, `kernel_init`, `dtype`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from models import alexnet, alphago, googlenet, lenet, nin, resnet, vgg
from models.layers import (ACTIVATIONS, INITIALIZERS, LRN, ConvNet, layer_names, lookup,
                           remove_layers, set_widths)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
NORMS = ("default", "lrn", "batch", "none")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  table: Callable[..., tuple]     # (num_classes, **fields) → layer table
  input_size: int                 # native square input, pixels
  channels: int = 3
  num_classes: int = 1000         # for summaries without a dataset
  norm: str = "none"              # what "default" means: lrn, batch or none
  fields: tuple[str, ...] = ()    # family fields read from the config's `model`
  activation: Callable[..., str] = lambda **_: "relu"


def _entries() -> dict[str, ModelEntry]:
  entries = {
      "lenet5": ModelEntry(lenet.lenet5, 32, 1, 10, fields=("form",),
                           activation=lenet.lenet5_activation),
      "alexnet": ModelEntry(alexnet.alexnet, 227, norm="lrn",
                            fields=("variant", "groups", "lrn_order")),
      "zfnet": ModelEntry(alexnet.zfnet, 224, norm="lrn", fields=("lrn_order",)),
      "googlenet": ModelEntry(googlenet.googlenet, 224, norm="lrn", fields=("aux_classifiers",)),
      "nin": ModelEntry(nin.nin, 224),
      "alphago_policy": ModelEntry(alphago.alphago_policy, 19, 48, alphago.BOARD_POINTS,
                                   fields=("filters",)),
  }
  for configuration in vgg.CONFIGS:
    entries[f"vgg_{configuration}"] = ModelEntry(
        functools.partial(vgg.vgg, configuration=configuration), 224, norm="lrn")
  for depth in resnet.IMAGENET_STAGES:
    for prefix, residual in (("resnet", True), ("plain", False)):
      entries[f"{prefix}{depth}"] = ModelEntry(
          functools.partial(resnet.resnet, depth=depth, residual=residual), 224, norm="batch",
          fields=("shortcut",))
  for depth in resnet.CIFAR_DEPTHS:
    for prefix, residual in (("cifar_resnet", True), ("cifar_plain", False)):
      entries[f"{prefix}{depth}"] = ModelEntry(
          functools.partial(resnet.cifar_resnet, depth=depth, residual=residual), 32,
          num_classes=10, norm="batch", fields=("shortcut",))
  return entries


REGISTRY: dict[str, ModelEntry] = _entries()


def check_model_name(name: str) -> ModelEntry:
  if name not in REGISTRY:
    raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(REGISTRY))}")
  return REGISTRY[name]


def split_names(text: str | tuple | list) -> list[str]:
  """"fc7,conv4" (or a sequence) → ["fc7", "conv4"]."""
  items = text.split(",") if isinstance(text, str) else list(text)
  return [item.strip() for item in items if item.strip()]


def parse_widths(text: str) -> dict[str, int]:
  """"fc6=2048,fc7=2048" → {"fc6": 2048, "fc7": 2048}."""
  widths = {}
  for item in split_names(text):
    name, _, value = item.partition("=")
    if not value.strip().lstrip("-").isdigit():
      raise ValueError(f"bad model.widths entry {item!r}; expected NAME=INTEGER, e.g. fc6=2048")
    widths[name.strip()] = int(value)
  return widths


def apply_norm(layers: tuple, norm: str, entry: ModelEntry, name: str) -> tuple[tuple, bool]:
  """The table and whether convs carry batch norm, for norm in default/lrn/batch/none."""
  if norm not in NORMS:
    raise ValueError(f"unknown model.norm {norm!r}; known: {', '.join(NORMS)}")
  has_lrn = any(isinstance(layer, LRN) for layer in layers)
  if norm == "lrn" and not has_lrn:
    raise ValueError(f"model {name!r} has no LRN layers; model.norm may be batch or none")
  if norm == "default":
    norm = entry.norm if entry.norm != "lrn" or has_lrn else "none"
  if norm != "lrn":
    layers = tuple(layer for layer in layers if not isinstance(layer, LRN))
  return layers, norm == "batch"


def family_fields(model_config: Any, entry: ModelEntry) -> dict[str, Any]:
  return {f: model_config[f] for f in entry.fields if f in model_config}


def create_model(model_config: Any, num_classes: int) -> ConvNet:
  """Builds the network named by `model_config.name`, edited as the config says."""
  entry = check_model_name(model_config.name)
  dtype = model_config.get("dtype", "float32")
  if dtype not in DTYPES:
    raise ValueError(f"unknown model.dtype {dtype!r}; known: {', '.join(DTYPES)}")
  fields = family_fields(model_config, entry)
  layers = entry.table(num_classes, **fields)
  layers = remove_layers(layers, split_names(model_config.get("remove", "")))
  layers = set_widths(layers, parse_widths(model_config.get("widths", "")))
  layers, batch_norm = apply_norm(layers, model_config.get("norm", "default"), entry,
                                  model_config.name)
  activation = model_config.get("activation") or entry.activation(**fields)
  lookup(ACTIVATIONS, "model.activation", activation)
  kernel_init = model_config.get("kernel_init", "he")
  lookup(INITIALIZERS, "model.kernel_init", kernel_init)
  return ConvNet(layers, activation, kernel_init, batch_norm, DTYPES[dtype])


def native_input_shape(name: str) -> tuple[int, int, int]:
  entry = check_model_name(name)
  return entry.input_size, entry.input_size, entry.channels


def trace(model: ConvNet, input_shape: tuple[int, ...], num_classes: int,
          batch: int = 1) -> tuple[Any, dict[str, jax.ShapeDtypeStruct]]:
  """Shapes of the variables and of every layer's output, traced without compiling.

  Raises a ValueError for an input the network cannot take, or a table that does not end in
  `num_classes` scores (e.g. after a removal).
  """
  described = "×".join(map(str, input_shape))
  try:
    (logits, intermediates), variables = jax.eval_shape(
        lambda: model.init_with_output(jax.random.key(0), jnp.zeros((batch, *input_shape))))
  except (TypeError, ValueError, ZeroDivisionError) as error:
    raise ValueError(f"the network cannot take input {described}: "
                     f"{str(error).splitlines()[0]}") from error
  empty = [name for name, value in intermediates.items() if 0 in value.shape]
  if empty:
    raise ValueError(f"input {described} is too small for this network: layer {empty[0]!r} "
                     "would have an empty output")
  if logits.shape != (batch, num_classes):
    raise ValueError(f"the network ends in shape {logits.shape[1:]}, not {num_classes} class "
                     f"scores; check model.remove (layers: {', '.join(layer_names(model.layers))})")
  return variables, intermediates
