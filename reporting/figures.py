"""The reports' figures, drawn on matplotlib `Figure`s (no pyplot, no global backend) and saved
as PNG by `records.save`: a confusion matrix, per-class errors, example images, a study's
curves and errors (a run's own curves are `records.plot_curves`).

PNG from matplotlib, not an interactive plot library: the pages must read offline and without
JavaScript, matplotlib is already what every other convzoo picture is drawn with, and a PNG
looks the same in a browser, a Markdown viewer and an e-mail.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

import records

ANNOTATED_CLASSES = 20  # up to this many classes, confusion-matrix cells show their numbers


def confusion(matrix: np.ndarray, class_names: Sequence[str], path: pathlib.Path) -> pathlib.Path:
  """The confusion matrix twice: counts, and each true class's row as % of its examples."""
  classes = len(class_names)
  size = min(6.5, 2.5 + 0.3 * classes)
  figure = Figure(figsize=(2 * size + 2.4, size + 0.8))
  rows = matrix.sum(axis=1, keepdims=True)
  normalised = 100.0 * matrix / np.maximum(rows, 1)
  for axis, values, title, unit in zip(
    figure.subplots(1, 2),
    (matrix, normalised),
    ("counts", "row-normalised"),
    ("examples", "% of the true class's examples"),
    strict=True,
  ):
    if classes <= ANNOTATED_CLASSES:
      image = axis.imshow(values, cmap="Blues", interpolation="nearest")
    else:  # more cells than pixels: averaged down, and on a log scale so that the few
      # off-diagonal confusions among many empty cells show (ImageNet's ids group related
      # classes, so its confusions form blocks near the diagonal)
      norm = LogNorm(vmin=max(values[values > 0].min(initial=1.0), 1e-3), vmax=max(values.max(), 1))
      image = axis.imshow(values, cmap="Blues", interpolation="antialiased", norm=norm)
      unit += " (log scale)"
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label=unit)
    axis.set(title=title, xlabel="predicted class", ylabel="true class")
    if classes <= ANNOTATED_CLASSES:
      ticks = range(classes)
      axis.set_xticks(ticks, class_names, rotation=60, ha="right", fontsize=7)
      axis.set_yticks(ticks, class_names, fontsize=7)
      high = values.max() / 2
      for (i, j), value in np.ndenumerate(values):
        if value:
          text = f"{value:.0f}" if values is matrix else f"{value:.1f}"
          colour = "white" if value > high else "black"
          axis.text(j, i, text, ha="center", va="center", fontsize=6, color=colour)
  records.save(figure, path)
  return path


def per_class_errors(
  errors: np.ndarray, class_names: Sequence[str], overall: float, path: pathlib.Path
) -> pathlib.Path:
  """Each class's top-1 error as a bar, the overall error as a line; a histogram of the
  classes' errors when there are too many classes to name."""
  classes = len(class_names)
  if classes <= 50:
    figure = Figure(figsize=(7, 1.2 + 0.25 * classes))
    axis = figure.subplots()
    axis.barh(range(classes), errors, color="C0")
    axis.set_yticks(range(classes), class_names, fontsize=7)
    axis.invert_yaxis()  # class 0 on top, as in the confusion matrix
    axis.axvline(overall, color="C3", lw=1, label=f"all classes: {overall:.2f} %")
    axis.set(xlabel="top-1 error (%)", title="top-1 error per true class")
  else:
    figure = Figure(figsize=(7, 4))
    axis = figure.subplots()
    axis.hist(errors[np.isfinite(errors)], bins=50, color="C0")
    axis.axvline(overall, color="C3", lw=1, label=f"all classes: {overall:.2f} %")
    axis.set(xlabel="top-1 error of a class (%)", ylabel="classes", title="per-class top-1 error")
  axis.legend(fontsize=7)
  axis.grid(alpha=0.3, axis="x")
  records.save(figure, path)
  return path


def example_image(image: np.ndarray, path: pathlib.Path, size: float = 1.6) -> pathlib.Path:
  """One stored uint8 image [H, W, C], drawn without axes (grey for one channel)."""
  figure = Figure(figsize=(size, size))
  axis = figure.add_axes((0, 0, 1, 1))
  shown = image[..., 0] if image.shape[-1] == 1 else image
  axis.imshow(shown, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
  axis.set_axis_off()
  figure.savefig(path, dpi=100)
  return path


def overlaid_curves(
  runs: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], path: pathlib.Path
) -> pathlib.Path | None:
  """Several runs' training loss, training top-1 error and test top-1 error against step, a
  colour per run."""
  panels = (
    ("train", "loss", "training loss", "cross-entropy"),
    ("train", "top1_error", "training top-1 error", "top-1 error (%, the log interval's batches)"),
    ("eval", "top1_error", "test top-1 error", "top-1 error (%)"),
  )
  if not any(runs.values()):
    return None
  figure = Figure(figsize=(14, 4))
  for axis, (split, key, title, ylabel) in zip(figure.subplots(1, 3), panels, strict=True):
    for number, (name, metrics) in enumerate(runs.items()):
      rows = [row for row in metrics.get(split, []) if row.get(key) is not None]
      if rows:
        style = "-" if split == "train" else "o-"
        axis.plot(
          [row["step"] for row in rows],
          [row[key] for row in rows],
          style,
          markersize=4,
          color=f"C{number % 10}",
          label=name,
        )
    axis.set(title=title, xlabel="step", ylabel=ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
  records.save(figure, path)
  return path


def errors_by_variant(
  rows: Sequence[Mapping[str, Any]], baseline: str, path: pathlib.Path
) -> pathlib.Path:
  """Each variant's top-1 test error as a bar (the baseline's in another colour), its value and
  its delta written beside it; variants with no error are left out."""
  shown = [row for row in rows if row.get("top1_error") is not None]
  figure = Figure(figsize=(7, 1.0 + 0.4 * len(shown)))
  axis = figure.subplots()
  errors = [row["top1_error"] for row in shown]
  colours = ["C3" if row["variant"] == baseline else "C0" for row in shown]
  axis.barh(range(len(shown)), errors, color=colours)
  axis.set_yticks(range(len(shown)), [row["variant"] for row in shown], fontsize=8)
  axis.invert_yaxis()  # the table's order
  for y, row in enumerate(shown):
    delta = row.get("top1_error_delta")
    note = f" {row['top1_error']:.2f}" + (
      f" ({delta:+.2f})" if delta is not None and row["variant"] != baseline else ""
    )
    axis.text(row["top1_error"], y, note, va="center", fontsize=7)
  axis.set_xlim(0, max(max(errors) * 1.25, 1.0))  # room for the labels; 1 % when all are 0
  axis.set(xlabel="top-1 test error (%)", title=f"top-1 test error (delta against {baseline})")
  axis.grid(alpha=0.3, axis="x")
  records.save(figure, path)
  return path
