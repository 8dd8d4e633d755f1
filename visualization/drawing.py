"""Drawing the techniques' arrays as PNG figures: image grids (with colour bars and legends
under their columns), a scatter, a line plot."""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch

import records

Colour = tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class ColourBar:
  """What a grid column's colours mean: its images (values in [0, 1]) are drawn with `cmap`,
  and a bar under the column reads 0 … 1 as `low` … `high` of the quantity `label` names."""

  label: str  # a line or two: long lines run past the column
  cmap: str = "viridis"
  low: float = 0.0
  high: float = 1.0


# What goes under a grid column: a colour bar, or a legend (name → colour) for class maps
# drawn in colour.
Key = ColourBar | Mapping[str, Colour]

BAR = 0.1  # a colour bar's thickness, inches
OTHER: Colour = (0.5, 0.5, 0.5)  # classes past the palette, when there are too many to name


def to_display(images: np.ndarray) -> np.ndarray:
  """[N, H, W, C] → what imshow takes: grey [N, H, W] for one channel, RGB clipped to [0, 1]."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  return images[..., 0] if images.shape[-1] == 1 else images


def photo(images: np.ndarray) -> np.ndarray:
  """[N, H, W, C] pixels as RGB [N, H, W, 3], so that a grid's colour map leaves them grey."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  return np.repeat(images, 3, -1) if images.shape[-1] == 1 else images


def scaled(images: np.ndarray) -> np.ndarray:
  """Each image stretched to [0, 1] on its own (for gradients and optimised images)."""
  images = np.asarray(images, np.float32)
  axes = tuple(range(1, images.ndim))
  low, high = images.min(axis=axes, keepdims=True), images.max(axis=axes, keepdims=True)
  return (images - low) / np.maximum(high - low, 1e-12)


def relative(maps: np.ndarray) -> np.ndarray:
  """Non-negative maps [N, ...], each divided by its own maximum: zero stays 0, the maximum is 1
  (stretching the minimum to 0 as well would hide that a map is nowhere near zero)."""
  maps = np.asarray(maps, np.float32)
  high = maps.max(axis=tuple(range(1, maps.ndim)), keepdims=True)
  return maps / np.maximum(high, 1e-12)


def class_colours(maps: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, dict[str, Colour]]:
  """Maps of class ids [N, H, W] in a qualitative palette, RGB [N, H, W, 3], and their legend:
  name → colour for each class the maps hold.

  Up to 20 classes, each class keeps its own colour (by id, from tab10 as in the t-SNE plot, or
  tab20). With more, the 18 classes that cover the most cells get tab20's colours bar its greys
  and the rest one grey, named by their count."""
  maps = np.asarray(maps)
  present, cells = np.unique(maps, return_counts=True)
  table = np.tile(np.float32(OTHER), (len(names), 1))
  if len(names) <= 20:
    palette = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"].colors
    named, rest = present, []
    table[named] = [palette[c] for c in named]
  else:
    palette = [c for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i not in (14, 15)]
    by_area = present[np.argsort(-cells, kind="stable")]
    named, rest = by_area[: len(palette)], by_area[len(palette) :]
    table[named] = palette[: len(named)]
  legend = {names[c]: tuple(map(float, table[c])) for c in named}
  if len(rest):
    legend[f"{len(rest)} other classes"] = OTHER
  return table[maps], legend


def signed(images: np.ndarray) -> np.ndarray:
  """Gradient-like images [N, H, W, C], each scaled to [0, 1] with zero at 0.5."""
  images = np.asarray(images)
  bound = np.abs(images).max(axis=(1, 2, 3), keepdims=True) + 1e-12
  return to_display(0.5 + 0.5 * images / bound)


def grid(
  path: pathlib.Path,
  rows: Sequence[Sequence[np.ndarray]],
  title: str,
  row_labels: Sequence[str] = (),
  column_labels: Sequence[str] = (),
  cmap: str = "gray",
  cell: float = 1.1,
  keys: Sequence[Key | None] = (),
) -> pathlib.Path:
  """Images in a table of rows; each image [H, W] or [H, W, 3] with values in [0, 1].

  `keys[c]`, if given, goes under column c: a colour bar, whose colour map then draws that
  column instead of `cmap`, or a legend."""
  height, width = len(rows), max(len(row) for row in rows)
  keys = list(keys) + [None] * (width - len(keys))
  below = max((_key_height(key) for key in keys if key is not None), default=0.0)
  figure = Figure(figsize=(cell * width + 1.2, cell * height + 0.6 + below))
  # The keys' row is a bar thick; what hangs below the bar (its ticks and label, a legend) is
  # in the figure's bottom margin, which `below` pays for.
  layout = figure.add_gridspec(
    height + bool(below), width, height_ratios=[cell] * height + [BAR] * bool(below)
  )
  figure.suptitle(title, fontsize=9)
  for r, row in enumerate(rows):
    for c, image in enumerate(row):
      axis = figure.add_subplot(layout[r, c])
      colours = keys[c].cmap if isinstance(keys[c], ColourBar) else cmap
      axis.imshow(image, cmap=colours, vmin=0.0, vmax=1.0, interpolation="nearest")
      axis.set_xticks([])
      axis.set_yticks([])
      if c == 0 and r < len(row_labels):
        axis.set_ylabel(row_labels[r], fontsize=7)
      if r == 0 and c < len(column_labels):
        axis.set_title(column_labels[c], fontsize=7)
  for c, key in enumerate(keys):
    if key is not None:
      _draw_key(figure.add_subplot(layout[height, c]), key)
  records.save(figure, path)
  return path


def _legend_columns(entries: int) -> int:
  return 1 if entries <= 5 else 2


def _key_height(key: Key) -> float:
  """Inches a key takes: the bar with its ticks and label, or the legend's lines."""
  if isinstance(key, ColourBar):
    return BAR + 0.3 + 0.12 * len(key.label.splitlines())
  return math.ceil(len(key) / _legend_columns(len(key))) * 0.16 + 0.1


def _draw_key(axis: Axes, key: Key) -> None:
  if isinstance(key, ColourBar):
    scale = ScalarMappable(Normalize(key.low, key.high), key.cmap)
    bar = axis.figure.colorbar(scale, cax=axis, orientation="horizontal")
    bar.set_ticks([key.low, (key.low + key.high) / 2, key.high])
    bar.ax.tick_params(labelsize=6)
    bar.set_label(key.label, fontsize=7)
    return
  axis.axis("off")
  axis.legend(
    handles=[Patch(facecolor=c, edgecolor="grey", label=name) for name, c in key.items()],
    loc="upper center",
    bbox_to_anchor=(0.5, 1.0),
    ncols=_legend_columns(len(key)),
    fontsize=7,
    frameon=False,
    borderaxespad=0.0,
    handlelength=1.0,
    columnspacing=0.8,
  )


def beside_images(
  path: pathlib.Path,
  pixels: np.ndarray,
  shown: np.ndarray,
  title: str,
  row_labels: Sequence[str],
  bar: ColourBar,
) -> pathlib.Path:
  """Each image (pixels [N, H, W, C]) beside its picture (`shown`, values in [0, 1]), which
  `bar` draws and explains."""
  images = photo(pixels)
  return grid(
    path,
    [[images[i], shown[i]] for i in range(len(shown))],
    title,
    row_labels=row_labels,
    column_labels=["image", title],
    cell=1.6,
    keys=[None, bar],
  )


def scatter(
  path: pathlib.Path,
  points: np.ndarray,
  labels: np.ndarray,
  class_names: Sequence[str],
  thumbnails: np.ndarray,
  thumbnail_points: np.ndarray,
  title: str,
) -> pathlib.Path:
  """A 2-D embedding coloured by class, with a few images drawn at their points."""
  from matplotlib.offsetbox import AnnotationBbox, OffsetImage

  figure = Figure(figsize=(9, 8))
  axis = figure.add_subplot(1, 1, 1)
  colours = [f"C{i % 10}" for i in range(len(class_names))]
  for c, name in enumerate(class_names):
    chosen = labels == c
    axis.scatter(points[chosen, 0], points[chosen, 1], s=3, c=colours[c], label=name)
  for image, point in zip(to_display(thumbnails), thumbnail_points, strict=True):
    box = OffsetImage(image, zoom=0.8, cmap="gray")
    axis.add_artist(AnnotationBbox(box, point, frameon=False))
  axis.legend(markerscale=4, fontsize=7, loc="best")
  axis.set_title(title, fontsize=9)
  axis.set_xticks([])
  axis.set_yticks([])
  # t-SNE keeps neighbours, not distances: its coordinates have no unit and no scale.
  axis.set_xlabel("t-SNE dimension 1 (unitless)", fontsize=8)
  axis.set_ylabel("t-SNE dimension 2 (unitless)", fontsize=8)
  records.save(figure, path)
  return path


def line_plot(
  path: pathlib.Path, labels: Sequence[str], series: dict[str, Sequence[float]], title: str
) -> pathlib.Path:
  """The sanity check's curves: per map, its rank correlation at each step (`labels`)."""
  figure = Figure(figsize=(7, 4))
  axis = figure.add_subplot(1, 1, 1)
  for name, values in series.items():
    axis.plot(range(len(labels)), values, marker="o", label=name)
  axis.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
  axis.set_xlabel("re-initialised from the output down to this layer (cumulative)", fontsize=8)
  axis.set_ylabel("mean Spearman rank correlation\nwith the trained map (unitless)", fontsize=8)
  axis.axhline(0, color="grey", lw=0.5)
  axis.legend(fontsize=7)
  axis.set_title(title, fontsize=9)
  axis.grid(alpha=0.3)
  records.save(figure, path)
  return path
