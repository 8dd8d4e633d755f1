"""The parameter-free operations of the layer tables: max and average pooling (with the
non-overlapping case as a reshape) and local response normalisation."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import linen as nn

from models.activations import spread_max_pool

Array = jax.Array


def pool(
  x: Array,
  kind: str,
  window: int,
  stride: int,
  padding: int | str = 0,
  backward: str = "gradient",
) -> Array:
  """A `kind` ("max" or "avg") pool of `window`×`window`; `backward` is the network's backward
  rule (models/activations.py), which for "dependency" spreads a max pool's cotangents."""
  if kind == "max" and backward == "dependency":
    return spread_max_pool(
      functools.partial(pool, kind="max", window=window, stride=stride, padding=padding),
      functools.partial(pool, kind="avg", window=window, stride=stride, padding=padding),
    )(x)
  if window == stride and padding in (0, "VALID"):
    return tiled_pool(x, kind, window)
  pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
  if kind == "max":
    return nn.max_pool(x, (window, window), (stride, stride), pad)
  return nn.avg_pool(x, (window, window), (stride, stride), pad, count_include_pad=False)


def tiled_pool(x: Array, kind: str, window: int) -> Array:
  """Non-overlapping pooling (LeNet-5's and VGG's 2×2/2) as a reshape and a reduction.

  Equal to `reduce_window` with VALID padding, but XLA:CPU runs it as one fused loop, and its
  gradient is elementwise instead of a select-and-scatter: the pools of a LeNet-5 step took
  a third of its compute time the other way (profiled). A max pool's gradient is shared among
  tied maxima instead of going to the first (after a ReLU, ties are windows of zeros, whose
  gradient the ReLU stops either way).
  """
  n, height, width, channels = x.shape
  rows, cols = height // window, width // window
  tiles = x[:, : rows * window, : cols * window].reshape(n, rows, window, cols, window, channels)
  return tiles.max(axis=(2, 4)) if kind == "max" else tiles.mean(axis=(2, 4))


def local_response_norm(
  x: Array, k: float = 2.0, n: int = 5, alpha: float = 1e-4, beta: float = 0.75
) -> Array:
  """b_i = a_i / (k + α Σ_{j=i−n/2}^{i+n/2} a_j²)^β over channels (Krizhevsky et al. 2012 §3.3)."""
  half = n // 2  # the sum runs from i − n/2 to i + n/2, clipped at the first and last channel
  squared = jnp.square(x.astype(jnp.float32))
  padded = jnp.pad(squared, [(0, 0)] * (x.ndim - 1) + [(half, half)])
  window_sum = jax.lax.reduce_window(
    padded, 0.0, jax.lax.add, (1,) * (x.ndim - 1) + (2 * half + 1,), (1,) * x.ndim, "VALID"
  )
  return (x / (k + alpha * window_sum) ** beta).astype(x.dtype)
