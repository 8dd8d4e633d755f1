"""Building blocks shared by every network family: activations, initialisers, layer tables."""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

Array = jax.Array


def swish(x: Array) -> Array:
  """x·σ(x) (Ramachandran et al. 2017)."""
  return x * jax.nn.sigmoid(x)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "leaky_relu": lambda x: nn.leaky_relu(x, negative_slope=0.01),
    "swish": swish,
}

INITIALIZERS: dict[str, Callable] = {
    # He et al. 2015 ("Xavier/2"): the default for ReLU networks.
    "he": nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"),
    "glorot": nn.initializers.glorot_uniform(),
    # Krizhevsky et al. 2012 §5: zero-mean Gaussian, standard deviation 0.01.
    "gaussian": nn.initializers.normal(stddev=0.01),
    # PyTorch's default for conv and linear layers (uniform, bound 1/sqrt(fan_in)).
    "lecun_uniform": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
}


def lookup(table: dict, kind: str, name: str):
  """Returns table[name], or raises a ValueError listing the known names."""
  if name not in table:
    raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
  return table[name]


@dataclasses.dataclass(frozen=True)
class Conv:
  """A convolution followed by the network's activation."""
  name: str
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0


@dataclasses.dataclass(frozen=True)
class Pool:
  """Max or average pooling; `activation=True` applies the activation after it."""
  name: str
  window: int
  stride: int
  kind: str = "max"
  activation: bool = False


@dataclasses.dataclass(frozen=True)
class Dense:
  """A fully connected layer; the input is flattened first. `activation=False` on the head."""
  name: str
  features: int
  activation: bool = True


Layer = Conv | Pool | Dense


class LayerStack(nn.Module):
  """Applies a table of layers in order and records every output by its layer name."""
  layers: Sequence[Layer]
  activation: str = "relu"
  kernel_init: str = "he"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, dict[str, Array]]:
    act = lookup(ACTIVATIONS, "activation", self.activation)
    init = lookup(INITIALIZERS, "initializer", self.kernel_init)
    intermediates = {}
    for layer in self.layers:
      if isinstance(layer, Conv):
        x = nn.Conv(layer.features, (layer.kernel, layer.kernel), (layer.stride, layer.stride),
                    padding=[(layer.padding, layer.padding)] * 2, kernel_init=init,
                    dtype=self.dtype, name=layer.name)(x)
        x = act(x)
      elif isinstance(layer, Pool):
        pool = nn.max_pool if layer.kind == "max" else nn.avg_pool
        x = pool(x, (layer.window, layer.window), (layer.stride, layer.stride))
        if layer.activation:
          x = act(x)
      else:
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(layer.features, kernel_init=init, dtype=self.dtype, name=layer.name)(x)
        if layer.activation:
          x = act(x)
      intermediates[layer.name] = x
    return x, intermediates
