"""The edits of a layer table that make ablations: remove layers (`model.remove`), set widths
(`model.widths`), and the names both accept.

A table is edited before the network is built, so the layers that follow adapt to the new
shapes by themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from models.layers import Conv, Dense, Layer, Residual


def layer_names(layers: Sequence[Layer]) -> list[str]:
  """Every name `remove_layers` accepts: the layers' own names and their groups, in order."""
  names = []
  for layer in layers:
    for name in (layer.group, layer.name):
      if name and name not in names:
        names.append(name)
  return names


def remove_layers(layers: Sequence[Layer], remove: Sequence[str]) -> tuple[Layer, ...]:
  """The table without the named layers (and the layers of named groups)."""
  known = layer_names(layers)
  for name in remove:
    if name not in known:
      raise ValueError(f"cannot remove {name!r}: no such layer; valid names: {', '.join(known)}")
  kept = tuple(l for l in layers if l.name not in remove and l.group not in remove)
  head = layers[-1]
  if not kept or kept[-1] != head:
    raise ValueError(
      f"cannot remove {head.name!r}: it produces the class scores; "
      f"valid names: {', '.join(n for n in known if n != head.name)}"
    )
  return kept


def set_widths(layers: Sequence[Layer], widths: dict[str, int]) -> tuple[Layer, ...]:
  """The table with the named layers' widths (filters, units, block channels) replaced."""
  resizable = {l.name for l in layers[:-1] if isinstance(l, (Conv, Dense, Residual))}
  for name, width in widths.items():
    if name not in resizable:
      raise ValueError(
        f"cannot set the width of {name!r}; layers with a width: "
        f"{', '.join(l.name for l in layers if l.name in resizable)}"
      )
    if width <= 0:
      raise ValueError(f"width of {name!r} must be positive, got {width}")
  return tuple(
    dataclasses.replace(l, features=widths[l.name]) if l.name in widths else l for l in layers
  )
