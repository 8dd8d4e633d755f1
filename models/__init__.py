"""The model registry: a network's name → its Flax module and native input size."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax.numpy as jnp
from flax import linen as nn

from models import lenet


@dataclasses.dataclass(frozen=True)
class ModelEntry:
  module: Callable[..., nn.Module]
  input_size: int  # native square input resolution in pixels
  fields: tuple[str, ...]  # config fields under `model` the module takes


REGISTRY: dict[str, ModelEntry] = {
    "lenet5": ModelEntry(lenet.LeNet5, 32, ("form", "activation", "kernel_init")),
}

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def check_model_name(name: str) -> ModelEntry:
  if name not in REGISTRY:
    raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(REGISTRY))}")
  return REGISTRY[name]


def create_model(model_config: Any, num_classes: int) -> nn.Module:
  """Builds the module named by `model_config.name` with its fields from the config."""
  entry = check_model_name(model_config.name)
  if model_config.dtype not in DTYPES:
    raise ValueError(f"unknown model.dtype {model_config.dtype!r}; known: {', '.join(DTYPES)}")
  fields = {f: model_config[f] for f in entry.fields if f in model_config}
  return entry.module(num_classes=num_classes, dtype=DTYPES[model_config.dtype], **fields)
