"""Drawing the techniques' arrays as PNG figures: image grids, a scatter, a line plot."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

import records


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
) -> pathlib.Path:
  """Images in a table of rows; each image [H, W] or [H, W, 3] with values in [0, 1]."""
  height, width = len(rows), max(len(row) for row in rows)
  figure = Figure(figsize=(cell * width + 1.2, cell * height + 0.6))
  figure.suptitle(title, fontsize=9)
  for r, row in enumerate(rows):
    for c, image in enumerate(row):
      axis = figure.add_subplot(height, width, r * width + c + 1)
      axis.imshow(image, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
      axis.set_xticks([])
      axis.set_yticks([])
      if c == 0 and r < len(row_labels):
        axis.set_ylabel(row_labels[r], fontsize=7)
      if r == 0 and c < len(column_labels):
        axis.set_title(column_labels[c], fontsize=7)
  records.save(figure, path)
  return path


def beside_images(
  path: pathlib.Path,
  pixels: np.ndarray,
  shown: np.ndarray,
  title: str,
  row_labels: Sequence[str],
  cmap: str,
) -> pathlib.Path:
  """Each image (pixels [N, H, W, C]) beside its picture (`shown`, values in [0, 1])."""
  images = photo(pixels)
  return grid(
    path,
    [[images[i], shown[i]] for i in range(len(shown))],
    title,
    row_labels=row_labels,
    column_labels=["image", title],
    cmap=cmap,
    cell=1.6,
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
  records.save(figure, path)
  return path


def line_plot(
  path: pathlib.Path, labels: Sequence[str], series: dict[str, Sequence[float]], title: str
) -> pathlib.Path:
  figure = Figure(figsize=(7, 4))
  axis = figure.add_subplot(1, 1, 1)
  for name, values in series.items():
    axis.plot(range(len(labels)), values, marker="o", label=name)
  axis.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
  axis.set_ylabel("rank correlation with the trained map")
  axis.axhline(0, color="grey", lw=0.5)
  axis.legend(fontsize=7)
  axis.set_title(title, fontsize=9)
  axis.grid(alpha=0.3)
  records.save(figure, path)
  return path
