"""Receptive fields from the layer table: which input pixels each unit of a layer reads.

Every table entry knows the span of its own window (`models.geometry.Span`: stride and the
first and last input offsets); a layer's receptive field is their composition along the main
path, with the spatial sizes traced from the network, so SAME padding and strides are exact
for every network. Parallel branches (inception, residual shortcuts) take the union.
"""

from __future__ import annotations

import dataclasses
import functools

from models import trace
from models.geometry import Span
from models.network import ConvNet


@dataclasses.dataclass(frozen=True)
class Field:
  """The receptive field of one layer's units: the spans (rows, columns) of the main-path
  entries up to it, with the size of the map each one reads."""

  steps: tuple[tuple[Span, Span, int, int], ...]

  @property
  def rows(self) -> Span:
    return functools.reduce(Span.then, [rows for rows, _, _, _ in self.steps], Span())

  @property
  def cols(self) -> Span:
    return functools.reduce(Span.then, [cols for _, cols, _, _ in self.steps], Span())

  @property
  def size(self) -> tuple[int, int]:
    """The unclipped extent in pixels (rows, columns)."""
    return self.rows.last - self.rows.first + 1, self.cols.last - self.cols.first + 1

  def box(self, y: int, x: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the input pixels, inclusive, that unit (y, x) reads.

    Walked back one entry at a time and clipped to each map, since a window that runs into
    padding reads no pixel through it (a stride can leave an image's last rows unread).
    """
    top, bottom, left, right = y, y, x, x
    for rows, cols, height, width in reversed(self.steps):
      top, bottom = (
        max(top * rows.stride + rows.first, 0),
        min(bottom * rows.stride + rows.last, height - 1),
      )
      left, right = (
        max(left * cols.stride + cols.first, 0),
        min(right * cols.stride + cols.last, width - 1),
      )
    return top, bottom, left, right


def receptive_fields(
  model: ConvNet, input_shape: tuple[int, int, int], num_classes: int
) -> dict[str, Field | None]:
  """Every layer's Field; None for layers whose units read the whole image (after a dense
  layer, a global pool or a flattening)."""
  _, outputs = trace(model, input_shape, num_classes)
  fields: dict[str, Field | None] = {}
  height, width = input_shape[:2]
  steps: tuple | None = ()
  for layer in model.layers:
    rows, cols = layer.span(height), layer.span(width)
    here = None if steps is None or rows is None else (*steps, (rows, cols, height, width))
    fields[layer.name] = None if here is None else Field(here)
    if not layer.branches_off:
      steps = here
      shape = outputs[layer.name].shape
      if len(shape) == 4:
        height, width = shape[1], shape[2]
  return fields
