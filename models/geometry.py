"""Receptive-field geometry of sliding windows: which input positions an output position reads
(`Span`), and how wide a window's output is (`window_output`).

Each layer reports its `Span` (models/layers.py); visualization/receptive.py chains them into a
unit's receptive field.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Span:
  """Along one spatial axis, output position i reads input positions i·stride + first to
  i·stride + last (before clipping to the input): how receptive fields are computed."""

  stride: int = 1
  first: int = 0
  last: int = 0

  def then(self, after: Span) -> Span:
    """This span followed by `after` (the next entry's, on this one's output)."""
    return Span(
      self.stride * after.stride,
      after.first * self.stride + self.first,
      after.last * self.stride + self.last,
    )

  def union(self, other: Span) -> Span:
    """Parallel branches of one stride (inception, a residual block and its shortcut)."""
    assert self.stride == other.stride, (self, other)
    return Span(self.stride, min(self.first, other.first), max(self.last, other.last))


def window_span(kernel: int, stride: int, padding: int | str, size: int) -> Span:
  """The span of a sliding window (convolution or pool) over an input of `size`."""
  if padding == "VALID":
    before = 0
  elif padding == "SAME":  # XLA pads the odd pixel after: the earlier half before
    before = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0) // 2
  else:
    before = padding
  return Span(stride, -before, kernel - 1 - before)


def window_output(kernel: int, stride: int, padding: int | str, size: int) -> int:
  """The output size of a sliding window over an input of `size`."""
  if padding == "SAME":
    return math.ceil(size / stride)
  pad = 0 if padding == "VALID" else padding
  return (size + 2 * pad - kernel) // stride + 1
