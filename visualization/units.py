"""What single units respond to: their filters, and the image patches that excite them most
over a whole split (Zeiler & Fergus 2014, Fig. 2), found with a running top-k."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from visualization.receptive import Field

Array = jax.Array


def filter_images(kernel: np.ndarray) -> np.ndarray:
  """A conv kernel [k, k, C_in, C_out] as images [C_out, k, k, C_in], each scaled to [0, 1]
  (colour for RGB first layers; deeper layers show each input channel as a slice)."""
  images = np.moveaxis(np.asarray(kernel, np.float32), -1, 0)
  low = images.min(axis=(1, 2, 3), keepdims=True)
  high = images.max(axis=(1, 2, 3), keepdims=True)
  return (images - low) / np.maximum(high - low, 1e-12)


class TopK:
  """The k largest values per unit seen so far, with where they were: one pass over a split,
  memory k per unit whatever the split's size."""

  def __init__(self, units: int, k: int):
    self.k = k
    self.values = np.full((units, 0), -np.inf, np.float32)
    self.images = np.zeros((units, 0), np.int64)
    self.positions = np.zeros((units, 0, 2), np.int64)

  def add(self, values: np.ndarray, images: np.ndarray, positions: np.ndarray) -> None:
    """Candidates: values [U, B], their image indices [B] and positions [U, B, 2]."""
    units, batch = values.shape
    values = np.concatenate([self.values, values], 1)
    images = np.concatenate([self.images, np.broadcast_to(images, (units, batch))], 1)
    positions = np.concatenate([self.positions, positions], 1)
    # Largest first; equal values keep the earlier image (a stable sort on the negation).
    order = np.argsort(-values, axis=1, kind="stable")[:, : self.k]
    self.values = np.take_along_axis(values, order, 1)
    self.images = np.take_along_axis(images, order, 1)
    self.positions = np.take_along_axis(positions, order[..., None], 1)


def strongest_positions(activations: Array, units: Array) -> tuple[Array, Array]:
  """For each image and unit, the largest activation and its (row, column): [U, B], [U, B, 2].
  Units of a layer without a spatial map are at (0, 0)."""
  if activations.ndim == 2:
    activations = activations[:, None, None, :]
  chosen = activations[..., units]  # [B, h, w, U]
  batch, _, width, _ = chosen.shape
  flat = chosen.reshape(batch, -1, len(units))
  where = jnp.argmax(flat, axis=1)  # [B, U]
  values = jnp.max(flat, axis=1)
  positions = jnp.stack([where // width, where % width], -1)  # [B, U, 2]
  return values.T, jnp.transpose(positions, (1, 0, 2))


def top_activations(
  layer_of: Callable[[Array], Array],
  batches: Iterable[tuple[int, Array]],
  units: np.ndarray,
  k: int,
) -> TopK:
  """The k images (one position each) that excite each unit most, over `batches` of
  (index of the first image, inputs)."""
  found = TopK(len(units), k)
  step = jax.jit(lambda x: strongest_positions(layer_of(x), jnp.asarray(units)))
  for first, x in batches:
    values, positions = step(x)
    found.add(np.asarray(values), np.arange(first, first + len(x)), np.asarray(positions))
  return found


def cut_patch(image: np.ndarray, field: Field | None, y: int, x: int, fill: float) -> np.ndarray:
  """The pixels unit (y, x) reads, at the field's full size: where the field runs past the
  image's edge (into the padding) the patch is `fill`."""
  if field is None:
    return image
  rows, cols = field.size
  patch = np.full((rows, cols, image.shape[2]), fill, image.dtype)
  top, bottom, left, right = field.box(y, x)
  first_row = y * field.rows.stride + field.rows.first
  first_col = x * field.cols.stride + field.cols.first
  patch[top - first_row : bottom - first_row + 1, left - first_col : right - first_col + 1] = image[
    top : bottom + 1, left : right + 1
  ]
  return patch
