"""Networks: a name → its layer table, native input and defaults, built as the config says.

Every model is a `ConvNet` (models/network.py) over a table of named layers (models/layers.py).
Each family file here (lenet.py, vgg.py, resnet.py, …) declares its tables and registers their
names with `@register` (models/registry.py); every module of this package is imported below, so
a new family is one new file. The config's `model` fields pick the table, edit it (`remove`,
`widths`, `norm`: models/edits.py) and set the network-wide choices (`activation`,
`kernel_init`: models/activations.py; `dtype`), all checked here when the network is created.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

import config_values
from models import conv
from models.activations import ACTIVATIONS, INITIALIZERS
from models.edits import layer_names, remove_layers, set_widths
from models.layers import LRN
from models.network import ConvNet
from models.registry import NORMS, REGISTRY, ModelEntry, entry, register

__all__ = [
  "apply_for_training",
  "ConvNet",
  "ModelEntry",
  "REGISTRY",
  "create_model",
  "entry",
  "family_fields",
  "register",
  "set_model",
  "trace",
]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

for _module in pkgutil.iter_modules(__path__):  # each family file registers its networks
  importlib.import_module(f"{__name__}.{_module.name}")


def apply_norm(layers: tuple, norm: str, model: ModelEntry) -> tuple[tuple, bool]:
  """The table and whether convs carry batch norm, for norm in default/lrn/batch/none."""
  config_values.check_choice("model.norm", norm, NORMS)
  has_lrn = any(isinstance(layer, LRN) for layer in layers)
  if norm == "lrn" and not has_lrn:
    raise ValueError(f"model {model.name!r} has no LRN layers; model.norm may be batch or none")
  if norm == "default":
    norm = model.norm if model.norm != "lrn" or has_lrn else "none"
  if norm != "lrn":
    layers = tuple(layer for layer in layers if not isinstance(layer, LRN))
  return layers, norm == "batch"


def family_fields(model_config: Any, model: ModelEntry) -> dict[str, Any]:
  """The family fields the config sets (the builder's defaults stand for the others)."""
  return {f: model_config[f] for f in model.fields if f in model_config}


def parse_widths(text: str) -> dict[str, int]:
  """ "fc6=2048,fc7=2048" → {"fc6": 2048, "fc7": 2048}."""
  return dict(config_values.parse_pairs(text, "model.widths", int, "NAME=INTEGER, e.g. fc6=2048"))


def create_model(model_config: Any, num_classes: int) -> ConvNet:
  """Builds the network named by `model_config.name`, edited as the config says."""
  model = entry(model_config.name)
  dtype = config_values.choose("model.dtype", model_config.get("dtype", "float32"), DTYPES)
  fields = family_fields(model_config, model)
  layers = model.build(num_classes, **fields)
  layers = remove_layers(layers, config_values.split_list(model_config.get("remove", "")))
  layers = set_widths(layers, parse_widths(model_config.get("widths", "")))
  layers, batch_norm = apply_norm(layers, model_config.get("norm", "default"), model)
  activation = model_config.get("activation") or model.activation(**fields)
  config_values.check_choice("model.activation", activation, ACTIVATIONS)
  kernel_init = model_config.get("kernel_init", "he")
  config_values.check_choice("model.kernel_init", kernel_init, INITIALIZERS)
  conv_impl = model_config.get("conv_impl", "auto")
  config_values.check_choice("model.conv_impl", conv_impl, conv.IMPLEMENTATIONS)
  if conv_impl == "onednn":
    conv.check_onednn()
  epsilon = model_config.get("batch_norm_epsilon", 1e-5)
  momentum = model_config.get("batch_norm_momentum", 0.9)
  if not 0 < epsilon < 1:
    raise ValueError(f"model.batch_norm_epsilon {epsilon} must be in (0, 1)")
  if not 0 <= momentum < 1:
    raise ValueError(f"model.batch_norm_momentum {momentum} must be in [0, 1)")
  return ConvNet(
    layers,
    activation,
    kernel_init,
    batch_norm,
    dtype,
    conv_impl=conv_impl,
    batch_norm_epsilon=epsilon,
    batch_norm_momentum=momentum,
  )


def apply_for_training(
  apply_fn: Callable, variables: dict[str, Any], images: jax.Array, dropout_key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array], Any]:
  """A training-mode pass of `apply_fn` (a ConvNet's apply): logits, every layer's output and
  the updated batch-norm statistics ({} for networks without batch norm)."""
  (logits, intermediates), updates = apply_fn(
    variables, images, train=True, rngs={"dropout": dropout_key}, mutable=["batch_stats"]
  )
  return logits, intermediates, updates.get("batch_stats", variables.get("batch_stats", {}))


def set_model(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """Points `config.model` at network `name`: the fields of the family it had are dropped,
  the new family's are added with their defaults (values already set for them are kept)."""
  old = REGISTRY.get(config.model.get("name", ""))
  new = entry(name)
  if old is not None:
    for field in set(old.fields) - set(new.fields):
      del config.model[field]
  config.model.name = name
  for field, default in new.defaults.items():
    if field not in config.model:
      config.model[field] = default
  return config


def for_shapes(model: ConvNet) -> ConvNet:
  """`model` with XLA's convolutions, for tracing shapes: the shapes are the same, and the CPU
  route (models/conv.py) would time its candidates for every new convolution shape while
  tracing, seconds to minutes of compiles for nothing (a GoogLeNet trace took 76 s)."""
  return model.clone(conv_impl="xla")


def _output_shapes(model: ConvNet, input_shape: tuple[int, ...], batch: int) -> tuple:
  """(logits, intermediates), variables as shapes; raises what the network raises."""
  return jax.eval_shape(
    lambda: for_shapes(model).init_with_output(jax.random.key(0), jnp.zeros((batch, *input_shape)))
  )


def _takes(model: ConvNet, size: int, channels: int) -> bool:
  """Whether the network takes a size×size input with no layer's output empty."""
  try:
    (_, intermediates), _ = _output_shapes(model, (size, size, channels), 1)
  except (TypeError, ValueError, ZeroDivisionError):
    return False
  return all(0 not in value.shape for value in intermediates.values())


def smallest_input(model: ConvNet, size: int, channels: int, largest: int = 1024) -> int | None:
  """The smallest square input above `size` the network takes (None if not even `largest`):
  what to tell someone whose input was too small. Traced only on that error path."""
  if not _takes(model, largest, channels):
    return None
  low, high = size, largest  # low fails, high works
  while high - low > 1:
    middle = (low + high) // 2
    low, high = (low, middle) if _takes(model, middle, channels) else (middle, high)
  return high


def trace(
  model: ConvNet, input_shape: tuple[int, ...], num_classes: int, batch: int = 1
) -> tuple[Any, dict[str, jax.ShapeDtypeStruct]]:
  """Shapes of the variables and of every layer's output, traced without compiling.

  Raises a ValueError for an input the network cannot take (naming the smallest it takes), or
  a table that does not end in `num_classes` scores (e.g. after a removal).
  """
  described = "×".join(map(str, input_shape))

  def too_small(why: str, smallest: int | None) -> ValueError:
    fits = f"; the smallest it takes is {smallest}×{smallest}" if smallest else ""
    return ValueError(f"input {described} is too small for this network ({why}){fits}")

  try:
    (logits, intermediates), variables = _output_shapes(model, input_shape, batch)
  except (TypeError, ValueError, ZeroDivisionError) as error:
    smallest = smallest_input(model, min(input_shape[:2]), input_shape[-1])
    if smallest and smallest > min(input_shape[:2]):
      raise too_small(str(error).splitlines()[0], smallest) from error
    raise ValueError(
      f"the network cannot take input {described}: {str(error).splitlines()[0]}"
    ) from error
  empty = [name for name, value in intermediates.items() if 0 in value.shape]
  if empty:
    smallest = smallest_input(model, min(input_shape[:2]), input_shape[-1])
    raise too_small(f"layer {empty[0]!r} would have an empty output", smallest)
  if logits.shape != (batch, num_classes):
    raise ValueError(
      f"the network ends in shape {logits.shape[1:]}, not {num_classes} class "
      f"scores; check model.remove (layers: {', '.join(layer_names(model.layers))})"
    )
  return variables, intermediates
