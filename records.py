"""What runs leave for people: progress lines, metric logs, results.json and PNG plots.

Plots are drawn on matplotlib `Figure` objects, which render to PNG without pyplot or a
global backend choice (nothing changes for other matplotlib users in the same process).
"""

from __future__ import annotations

import datetime
import json
import math
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import tensorboardX
from matplotlib.figure import Figure

METRICS_FILE = "metrics.jsonl"
RESULTS_FILE = "results.json"
CURVES_FILE = "curves.png"
# What became of the training run: status (running, finished, stopped, interrupted, failed),
# message, devices, total_steps, started and ended (ISO times).
RUN_FILE = "run.json"
TENSORBOARD = "tensorboard"  # the folder of the event files


class MetricsWriter:
  """Writes scalars as TensorBoard events (`DIR/tensorboard`) and JSON lines
  (`DIR/metrics.jsonl`); each line also says `seconds_so_far`: the run's time, compile and
  loading included, since this process `started` (`time.perf_counter()`; default: now) plus,
  for a resumed run, what its rows up to `start_step` had counted."""

  def __init__(self, workdir: pathlib.Path, start_step: int = 0, started: float | None = None):
    self._started = time.perf_counter() if started is None else started
    earlier = [
      row["seconds_so_far"]
      for rows in read_metrics(workdir).values()
      for row in rows
      if row["step"] <= start_step and isinstance(row.get("seconds_so_far"), (int, float))
    ]
    self._started -= max(earlier, default=0.0) if start_step else 0.0
    # purge_step hides events a killed run wrote after its last checkpoint.
    self._tensorboard = tensorboardX.SummaryWriter(
      str(workdir / TENSORBOARD), purge_step=start_step or None
    )
    # Open for the writer's lifetime (a line per log interval), closed by close().
    self._jsonl = open(workdir / METRICS_FILE, "a")  # noqa: SIM115

  def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
    for name, value in scalars.items():
      self._tensorboard.add_scalar(f"{split}/{name}", value, step)
    seconds = round(time.perf_counter() - self._started, 2)
    row = {"step": step, "split": split, "seconds_so_far": seconds, **scalars}
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()

  def close(self) -> None:
    self._tensorboard.close()
    self._jsonl.close()


class NullWriter:
  """The writer of processes other than the lead one: they log nothing."""

  def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
    pass

  def close(self) -> None:
    pass


class Progress:
  """Step, loss, images/s and ETA, measured between calls (compile time is reported apart)."""

  def __init__(self, start_step: int, total_steps: int, batch_size: int):
    self.total_steps, self.batch_size = total_steps, batch_size
    self._step, self._time = start_step, time.perf_counter()
    self._paused = 0.0
    self.images_per_second = float("nan")

  def pause(self, seconds: float) -> None:
    """Excludes time spent elsewhere (evaluation) from the throughput."""
    self._paused += seconds

  def line(self, step: int, scalars: Mapping[str, float]) -> str:
    now = time.perf_counter()
    elapsed = now - self._time - self._paused
    steps = step - self._step
    self.images_per_second = steps * self.batch_size / elapsed if elapsed > 0 else float("nan")
    eta = (self.total_steps - step) * elapsed / steps if steps else 0.0
    self._step, self._time, self._paused = step, now, 0.0
    values = " | ".join(f"{k} {v:.4g}" for k, v in scalars.items())
    return (
      f"step {step}/{self.total_steps} ({100 * step / self.total_steps:.0f}%) | {values} | "
      f"{self.images_per_second:,.0f} img/s | ETA {datetime.timedelta(seconds=round(eta))}"
    )


def read_metrics(workdir: pathlib.Path) -> dict[str, list[dict]]:
  """Metric rows by split; where a resumed run repeated a step, its latest row wins."""
  rows: dict[tuple[str, int], dict] = {}
  path = workdir / METRICS_FILE
  if path.exists():
    for line in path.read_text(errors="replace").splitlines():
      try:
        row = json.loads(line)
        rows[(row["split"], row["step"])] = row
      except (json.JSONDecodeError, KeyError, TypeError):
        continue  # a run killed while writing leaves its last row cut short
  by_split: dict[str, list[dict]] = {}
  for (split, _), row in sorted(rows.items(), key=lambda item: item[0][1]):
    by_split.setdefault(split, []).append(row)
  return by_split


# (metric key, panel title, y label); train rows and eval rows share a panel.
CURVE_PANELS = (
  ("loss", "loss", "cross-entropy"),
  ("top1_error", "top-1 error", "top-1 error (%)"),
  ("top5_error", "top-5 error", "top-5 error (%)"),
  ("learning_rate", "learning rate", "learning rate"),
  ("images_per_second", "training throughput", "images/s"),
)
CURVE_X = {"step": "step", "seconds_so_far": "wall time (s, compile and evaluation included)"}


def plot_curves(
  metrics: Mapping[str, Sequence[Mapping[str, Any]]], x: str, path: pathlib.Path
) -> pathlib.Path | None:
  """Every metric of `read_metrics` (CURVE_PANELS) against `x` (CURVE_X), a panel per metric
  and a line per split; None when no row has any of them. `DIR/curves.png` is against step."""
  panels = [
    panel
    for panel in CURVE_PANELS
    if any(panel[0] in row for rows in metrics.values() for row in rows)
  ]
  if not panels:
    return None
  columns = min(3, len(panels))
  rows_of_panels = math.ceil(len(panels) / columns)
  figure = Figure(figsize=(4.2 * columns, 3.3 * rows_of_panels))
  axes = figure.subplots(rows_of_panels, columns, squeeze=False).ravel()
  for axis, (key, title, ylabel) in zip(axes, panels, strict=False):
    for split, rows in metrics.items():
      points = [(row[x], row[key]) for row in rows if row.get(key) is not None and x in row]
      if points:
        xs, ys = zip(*points, strict=True)
        axis.plot(xs, ys, "-" if split == "train" else "o-", markersize=3, label=split)
    axis.set(title=title, xlabel=CURVE_X[x], ylabel=ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
  for axis in axes[len(panels) :]:
    axis.set_visible(False)
  save(figure, path)
  return path


SIZE_LABELS = {"params": "parameters", "flops": "multiply-adds per image (FLOPs)"}


def plot_errors_against(
  rows: Sequence[Mapping[str, Any]], size: str, path: pathlib.Path, highlight: str
) -> None:
  """Top-1 test error against a size (`params` or `flops`, SIZE_LABELS), one labelled point per
  row that has an error (`variant`, the size, `top1_error`); the `highlight` variant in another
  colour."""
  figure = Figure(figsize=(7, 4.5))
  axis = figure.subplots()
  for row in rows:
    if row.get("top1_error") is None:
      continue
    axis.scatter(row[size], row["top1_error"], color="C3" if row["variant"] == highlight else "C0")
    axis.annotate(
      row["variant"],
      (row[size], row["top1_error"]),
      textcoords="offset points",
      xytext=(4, 4),
      fontsize=8,
    )
  axis.set(
    xscale="log",
    xlabel=SIZE_LABELS[size],
    ylabel="top-1 test error (%)",
    title=f"error against {SIZE_LABELS[size].split(' (')[0]}",
  )
  axis.grid(alpha=0.3)
  save(figure, path)


def save(figure: Figure, path: pathlib.Path) -> None:
  figure.tight_layout()
  figure.savefig(path, dpi=100)


def record_run(workdir: pathlib.Path, **fields: Any) -> dict:
  """Sets `fields` in `DIR/run.json`, adding the time as `ended` when the status is an end."""
  now = datetime.datetime.now().isoformat(timespec="seconds")
  stamp = {"started": now} if fields.get("status") == "running" else {"ended": now}
  return update_json(workdir / RUN_FILE, {**fields, **stamp})


def write_results(workdir: pathlib.Path, protocol: str, metrics: Mapping[str, float]) -> dict:
  """Sets `protocol`'s entry of `DIR/results.json`, keeping the other protocols' entries."""
  return update_json(workdir / RESULTS_FILE, {protocol: dict(metrics)})


def update_json(path: pathlib.Path, entries: Mapping[str, Any]) -> dict:
  """Sets `entries` in the JSON object at `path`, keeping its other keys; returns the whole.

  Written to a temporary file and renamed, so a kill leaves the old file or the new one; an
  unreadable file is kept beside as `NAME.unreadable` rather than overwritten."""
  try:
    whole = json.loads(path.read_text()) if path.exists() else {}
    if not isinstance(whole, dict):
      raise ValueError(f"{path} holds no JSON object")
  except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
    whole = {}
    path.replace(path.with_name(path.name + ".unreadable"))
  whole.update(entries)
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(json.dumps(whole, indent=2, default=str) + "\n")
  temporary.replace(path)
  return whole
