"""A trained network as the functions the techniques take: scores, activations, halves."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import models
from input_pipeline import augment

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Network:
  """A model, its variables ({"params", "batch_stats"}) and how uint8 images become its input.

  Everything runs in inference mode (batch norm from its running averages, no dropout), so
  every image of a batch is independent of the others.
  """

  model: models.ConvNet
  variables: dict[str, Any]
  stats: augment.ColorStats
  normalization: str = "standardize"
  crop_size: int = 0  # the centre crop the network sees (dataset.crop_size); 0: the whole image
  convention: augment.InputConvention = augment.InputConvention()  # channel order, units

  @property
  def layer_names(self) -> list[str]:
    return [layer.name for layer in self.model.layers]

  def inputs(self, images: Array) -> Array:
    """uint8 [N, H, W, C] images → the network's float input (normalised, centre-cropped)."""
    x = augment.normalize(images, self.stats, self.normalization, self.convention)
    return augment.center_crop_batch(x, self.crop_size) if self.crop_size else x

  def pixels(self, x: Array) -> Array:
    """The network's input → RGB [0, 1] pixels (the inverse of the normalisation, unclipped; a
    per-pixel mean is undone with its per-channel average)."""
    return augment.pixels(x, self.stats, self.normalization, self.convention)

  def grey(self) -> Array:
    """The dataset's mean colour in input space [C]: what occlusion fills with."""
    if self.normalization == "none":
      mean = self.convention.reorder(np.asarray(self.stats.mean)) * self.convention.pixel_range
      return jnp.asarray(mean, jnp.float32)
    return jnp.zeros(len(self.stats.mean), jnp.float32)  # normalising subtracts the mean

  def _apply(self, layers: tuple, rule: str) -> Callable[[Array], tuple[Array, dict]]:
    model = self.model.clone(layers=layers, backward=rule)
    return lambda x: model.apply(self.variables, x, train=False)

  def scores(self, rule: str = "gradient") -> Callable[[Array], Array]:
    """x [N, H, W, C] → class scores [N, classes] (before the softmax)."""
    apply = self._apply(tuple(self.model.layers), rule)
    return lambda x: apply(x)[0]

  def activations(self, rule: str = "gradient") -> Callable[[Array], dict[str, Array]]:
    """x → every layer's output, by name."""
    apply = self._apply(tuple(self.model.layers), rule)
    return lambda x: apply(x)[1]

  def check_layer(self, name: str) -> int:
    """The table position of layer `name`, or a ValueError listing the layers."""
    names = self.layer_names
    if name not in names:
      raise ValueError(f"unknown layer {name!r}; layers: {', '.join(names)}")
    if self.model.layers[names.index(name)].branches_off:
      raise ValueError(f"layer {name!r} is an auxiliary head off the main path")
    return names.index(name)

  def split(
    self, name: str, rule: str = "gradient"
  ) -> tuple[Callable[[Array], Array], Callable[[Array], Array]]:
    """(head, tail): head(x) is layer `name`'s output, tail(head(x)) the class scores.

    Each half is a ConvNet over a slice of the table; parameters are named after their
    entries, so both read the same variables.
    """
    index = self.check_layer(name)
    layers = tuple(self.model.layers)
    head, tail = self._apply(layers[: index + 1], rule), self._apply(layers[index + 1 :], rule)
    return (lambda x: head(x)[0]), (lambda a: tail(a)[0])

  def with_params(self, params: Any) -> Network:
    return dataclasses.replace(self, variables={**self.variables, "params": params})


def chunked(fn: Callable[[Array], Array], x: Array, size: int) -> np.ndarray:
  """fn over x in chunks of `size` along the first axis (to bound memory), as numpy."""
  return np.concatenate([np.asarray(fn(x[i : i + size])) for i in range(0, len(x), size)])
