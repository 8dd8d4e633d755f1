"""`DIR/report.html`: one page of what a run is and what it learned, from the files in its
workdir alone (nothing is re-evaluated), with its pictures in `DIR/report/`.

Written at the end of training (finished, stopped, failed) and of `eval.py`, and by `report.py`
for any workdir: trained, resumed, imported. Each section says plainly when the workdir lacks
what it would show (no evaluation yet, an imported run's missing curves, a dataset not here).
"""

from __future__ import annotations

import datetime
import json
import pathlib
import statistics
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np

import checkpoints
import cli
import experiment
import input_pipeline
import models
import prediction
import records
from configs import base
from models import accounting
from reporting import figures, markup
from reporting import predictions as saved_predictions

PAGE = "report.html"
ASSETS = "report"  # the folder of the page's pictures, beside it
WRONG_SHOWN = 24  # the most confidently wrong test images on the page
CONFUSIONS_SHOWN = 10  # the largest off-diagonal cells, as a table
CLASSES_LISTED = 30  # more classes than this: the table lists the worst ones only
PROTOCOL_NAMES = {"single": "single crop", "ten_crop": "10-crop"}
VISUALIZATIONS = "visualizations/index.html"  # visualize.py's page (visualization/page.py)
IMPORTED = "imported.json"  # weights/importing.PROVENANCE_FILE


def write(workdir: str | pathlib.Path) -> pathlib.Path:
  """Writes `workdir`/report.html (and its pictures); returns its path."""
  workdir = pathlib.Path(workdir).resolve()
  config = ml_collections.ConfigDict(cli.saved_config(str(workdir)))
  assets = markup.emptied_assets(workdir / ASSETS)
  model, input_shape, num_classes = experiment.model_and_input(config)
  run = read_json(workdir / records.RUN_FILE)
  results = read_json(workdir / records.RESULTS_FILE)
  metrics = records.read_metrics(workdir)
  imported = read_json(workdir / IMPORTED)
  try:
    predictions = saved_predictions.read(workdir)
    predictions_problem = None
  except ValueError as error:
    predictions, predictions_problem = None, str(error)
  names = prediction.class_names(config, num_classes)
  summary = accounting.summarize(model, input_shape, num_classes)
  title = f"{config.model.name} on {dataset_name(config)}: {workdir.name}"
  # The split the latest evaluation read (eval.py may have been given another).
  split = predictions.split if predictions else config.dataset.eval_split
  analysed = analysis_sections(config, predictions, predictions_problem, names, assets)
  parts = [
    (
      "summary",
      "Summary",
      summary_section(workdir, config, split, run, results, metrics, imported),
    ),
    ("config", "Config", config_section(config)),
    ("curves", "Curves", curves_section(metrics, assets)),
    ("classes", "Per-class error", analysed["classes"]),
    ("confusion", "Confusion matrix", analysed["confusion"]),
    ("wrong", "Most confidently wrong", analysed["wrong"]),
    ("layers", "Layers", layers_section(summary, input_shape, num_classes)),
    ("visualizations", "Visualisations", visualizations_section(workdir)),
  ]
  head = [
    f"<h1>{markup.escape(title)}</h1>",
    status_line(run, imported, checkpoints.latest_step(workdir), bool(metrics)),
  ]
  return markup.write_page(workdir / PAGE, title, head, parts, "report.py --workdir=DIR")


def write_or_say(
  workdir: pathlib.Path,
  say: Callable[[str], None],
  writer: Callable[[pathlib.Path], pathlib.Path] = write,
) -> None:
  """`writer` (this page's or a study's), where a page that cannot be written must not hide
  what the run did: its failure is one line."""
  try:
    say(f"report written to {writer(workdir)}")
  except Exception as error:  # noqa: BLE001 — the run's own outcome matters more
    say(f"report not written: {type(error).__name__}: {error}")


# ---------------------------------------------------------------------------------------------
# Sections: each returns its body's HTML pieces.


def status_line(run: dict, imported: dict, latest_step: int | None, trained: bool) -> str:
  """What became of the run: finished, stopped, failed, running or killed, imported; `trained`:
  whether the workdir holds training metrics."""
  status = run.get("status")
  if imported and not run:
    text, kind = f"Imported from {imported.get('source')}, not trained here.", "info"
  elif status == "finished":
    text, kind = "Finished.", "ok"
  elif status in ("stopped", "failed", "interrupted"):
    text, kind = f"{status.capitalize()}: {run.get('message', '')}", "warn"
  elif status == "running":
    text, kind = (
      "No end recorded: still training, or killed (the page shows what the workdir holds; "
      f"newest checkpoint: step {latest_step}).",
      "warn",
    )
  elif trained:
    text = "How this run ended is not recorded (no run.json: trained before it was kept)."
    kind = "info"
  else:
    text, kind = "No training recorded in this workdir (run.json is missing).", "info"
  return f"<p class='status {kind}'>{markup.escape(text)}</p>"


def summary_section(
  workdir: pathlib.Path,
  config: ml_collections.ConfigDict,
  split: str,
  run: dict,
  results: dict,
  metrics: dict[str, list[dict]],
  imported: dict,
) -> list[str]:
  rows: list[tuple[str, Any]] = [
    ("network", config.model.name),
    ("dataset", f"{dataset_name(config)}, evaluated on its {split!r} split"),
  ]
  for protocol, name in PROTOCOL_NAMES.items():
    if protocol in results:
      entry = results[protocol]
      rows.append(
        (
          f"{split} error ({name})",
          f"top-1 {percent(entry.get('top1_error'))}, top-5 {percent(entry.get('top5_error'))} "
          f"({entry.get('num_examples', '?'):,} examples, step {entry.get('step', '?')})",
        )
      )
  if not results:
    rows.append((f"{split} error", "not evaluated yet"))
  latest = checkpoints.latest_step(workdir)
  total = run.get("total_steps")
  rows.append(("steps", f"{latest if latest is not None else 'none saved'} of {total or '?'}"))
  seconds = [row["seconds_so_far"] for rows in metrics.values() for row in rows]
  rows.append(("wall time", duration(max(seconds)) if seconds else "not recorded"))
  speeds = [
    row["images_per_second"] for row in metrics.get("train", []) if "images_per_second" in row
  ]
  if speeds:  # the median: the first log interval includes compiling
    rows.append(("training throughput", f"{statistics.median(speeds):,.0f} images/s (median)"))
  rows.append(("batch", f"{config.batch_size} over {run.get('devices', 'devices not recorded')}"))
  if imported:
    rows.append(("imported from", f"{imported.get('source')} ({imported.get('file')})"))
    if imported.get("published_top1_top5"):
      rows.append(("published accuracy (top-1, top-5 %)", imported["published_top1_top5"]))
  rows.append(("workdir", str(workdir)))
  return [markup.table(None, rows, numeric=False)]


def config_section(config: ml_collections.ConfigDict) -> list[str]:
  """The fields this run chose: its config against configs/base.py with its family's defaults."""
  reference = models.set_model(base.get_config(), config.model.name)
  differences = checkpoints.config_differences(reference, config)
  count = f"{len(differences)} field{'s differ' if len(differences) != 1 else ' differs'}"
  intro = markup.paragraph(
    f"{count} from `configs/base.py` with {config.model.name}'s defaults (`models.set_model`): "
    "what this run chose."
  )
  rows = [(f, json.dumps(default), json.dumps(now)) for f, (default, now) in differences.items()]
  whole = markup.folded("the whole config", markup.preformatted(config.to_json(indent=2)))
  return [intro, markup.table(["field", "default", "this run"], rows, numeric=False), whole]


def curves_section(metrics: dict[str, list[dict]], assets: pathlib.Path) -> list[str]:
  if not metrics:
    return [markup.paragraph("No metrics recorded (metrics.jsonl): nothing was trained here.")]
  workdir = assets.parent
  # Against step: the run's own curves.png, drawn again only if metrics were logged after it
  # (training draws it as it ends, just before this page).
  step_curves = workdir / records.CURVES_FILE
  if (
    not step_curves.is_file()
    or step_curves.stat().st_mtime < (workdir / records.METRICS_FILE).stat().st_mtime
  ):
    records.plot_curves(metrics, "step", step_curves)
  records.plot_curves(metrics, "seconds_so_far", assets / "curves_time.png")
  return [
    markup.image(records.CURVES_FILE, "curves against step"),
    markup.image(f"{ASSETS}/curves_time.png", "curves against wall time"),
  ]


def analysis_sections(
  config: ml_collections.ConfigDict,
  predictions: saved_predictions.Predictions | None,
  problem: str | None,
  names: list[str],
  assets: pathlib.Path,
) -> dict[str, list[str]]:
  """The per-class error, confusion matrix and most-confidently-wrong sections, from the saved
  predictions of the single-crop protocol."""
  if predictions is None or "single" not in predictions.protocols:
    missing = problem or (
      f"No saved predictions ({saved_predictions.FILE}): run `eval.py --workdir=DIR` to evaluate "
      "the newest checkpoint and save them."
    )
    return {key: [markup.paragraph(missing)] for key in ("classes", "confusion", "wrong")}
  labels, protocol = predictions.labels, predictions.protocols["single"]
  if max(labels.max(initial=0), protocol.classes.max(initial=0)) >= len(names):
    names = [str(i) for i in range(int(max(labels.max(), protocol.classes.max())) + 1)]
  matrix = saved_predictions.confusion_matrix(labels, protocol.predicted, len(names))
  errors = saved_predictions.per_class_error(matrix)
  overall = 100.0 * (1 - np.trace(matrix) / max(matrix.sum(), 1))
  source = markup.paragraph(
    f"From {saved_predictions.FILE}: the single-crop predictions of {len(labels):,} "
    f"{predictions.split!r} examples at step {predictions.step}.",
    "note",
  )
  return {
    "classes": [source, *per_class_body(matrix, errors, overall, names, assets)],
    "confusion": [confusion_body(matrix, names, assets)],
    "wrong": [source, *wrong_body(config, predictions, names, assets)],
  }


def per_class_body(
  matrix: np.ndarray,
  errors: np.ndarray,
  overall: float,
  names: list[str],
  assets: pathlib.Path,
) -> list[str]:
  figures.per_class_errors(errors, names, overall, assets / "per_class.png")
  off_diagonal = matrix - np.diag(np.diag(matrix))
  examples = matrix.sum(axis=1)
  order = np.argsort(-np.nan_to_num(errors, nan=-1.0), kind="stable")
  listed = order if len(names) <= CLASSES_LISTED else order[:CLASSES_LISTED]
  rows = []
  for c in listed:
    mistaken = int(np.argmax(off_diagonal[c]))
    count = int(off_diagonal[c, mistaken])
    rows.append(
      (
        names[c],
        int(examples[c]),
        round(float(errors[c]), 2) if examples[c] else "–",
        f"{names[mistaken]} ({count})" if count else "–",
      )
    )
  pairs = np.dstack(np.unravel_index(np.argsort(-off_diagonal, axis=None), matrix.shape))[0]
  confusions = [
    (names[t], names[p], int(matrix[t, p]), round(100.0 * matrix[t, p] / max(examples[t], 1), 2))
    for t, p in pairs[:CONFUSIONS_SHOWN]
    if off_diagonal[t, p]
  ]
  listing = "Every class" if len(listed) == len(names) else f"The {len(listed)} worst classes"
  return [
    markup.image(f"{ASSETS}/per_class.png", "top-1 error per class"),
    markup.paragraph(f"{listing}, worst first:"),
    markup.table(["class", "examples", "top-1 error (%)", "most often taken for"], rows),
    markup.paragraph("The most frequent confusions:" if confusions else "No confusions."),
    *(
      [markup.table(["true class", "predicted", "examples", "% of the true class"], confusions)]
      if confusions
      else []
    ),
  ]


def confusion_body(matrix: np.ndarray, names: list[str], assets: pathlib.Path) -> str:
  figures.confusion(matrix, names, assets / "confusion.png")
  return markup.image(f"{ASSETS}/confusion.png", "confusion matrix: counts and row-normalised")


def wrong_body(
  config: ml_collections.ConfigDict,
  predictions: saved_predictions.Predictions,
  names: list[str],
  assets: pathlib.Path,
) -> list[str]:
  """The most confidently wrong examples as pictures with their true class and top 3."""
  protocol = predictions.protocols["single"]
  chosen = saved_predictions.confidently_wrong(predictions.labels, protocol, WRONG_SHOWN)
  if not len(chosen):
    return [markup.paragraph("No example is misclassified.")]
  try:
    info = input_pipeline.check_dataset(config)
    images, labels = input_pipeline.open_split(config, predictions.split, info).read(chosen)
  except (ValueError, OSError) as error:
    images, labels = None, None
    problem = f"The images are not shown: the {predictions.split!r} split cannot be read ({error})"
  if labels is not None and not np.array_equal(labels, predictions.labels[chosen]):
    images, problem = None, "The images are not shown: the split's labels differ from the saved."
  cells = []
  for rank, index in enumerate(chosen):
    top = "<br>".join(
      f"{k + 1}. {markup.escape(names[c])} {p:.3f}"
      for k, (c, p) in enumerate(
        zip(protocol.classes[index, :3], protocol.probabilities[index, :3], strict=True)
      )
    )
    caption = (
      f"#{index}: true <b>{markup.escape(names[predictions.labels[index]])}</b> "
      f"(p {protocol.true_probability[index]:.3f})<br>{top}"
    )
    picture = ""
    if images is not None:
      name = f"wrong_{rank:02d}.png"
      figures.example_image(images[rank], assets / name)
      picture = markup.image(f"{ASSETS}/{name}", f"example {index}")
    cells.append(f"<figure>{picture}<figcaption>{caption}</figcaption></figure>")
  intro = markup.paragraph(
    f"The {len(chosen)} misclassified examples with the highest top-1 probability, most "
    "confident first: example index in the split, its true class and that class's probability, "
    "the network's top 3."
  )
  return [intro] + ([] if images is not None else [markup.paragraph(problem)]) + cells


def layers_section(
  summary: dict[str, Any], input_shape: tuple[int, ...], num_classes: int
) -> list[str]:
  rows = [
    (
      row["name"],
      "×".join(map(str, row["output_shape"])),
      row["params"],
      row["flops"],
      round(row["activation_bytes"] / 1e3, 1),
    )
    for row in summary["layers"]
  ]
  activations = sum(row["activation_bytes"] for row in summary["layers"]) / 1e3
  rows.append(("total", "", summary["total_params"], summary["total_flops"], round(activations, 1)))
  intro = markup.paragraph(
    f"For one {'×'.join(map(str, input_shape))} image and {num_classes} classes, as "
    "`summary.py` counts them (FLOPs are multiply-adds)."
  )
  header = ["layer", "output", "parameters", "FLOPs", "activations (kB, float32)"]
  return [intro, markup.table(header, rows)]


def visualizations_section(workdir: pathlib.Path) -> list[str]:
  if (workdir / VISUALIZATIONS).is_file():
    return [markup.paragraph(markup.link(VISUALIZATIONS, "the visualisations of this run"))]
  return [markup.paragraph("None yet: `visualize.py --workdir=DIR` makes them.")]


# ---------------------------------------------------------------------------------------------
# Small helpers.


def read_json(path: pathlib.Path) -> dict:
  """A JSON object from a file, or {} when it is missing or unreadable."""
  try:
    value = json.loads(path.read_text())
  except (OSError, ValueError):
    return {}
  return value if isinstance(value, dict) else {}


def dataset_name(config: ml_collections.ConfigDict) -> str:
  classes = config.dataset.classes
  return config.dataset.name + (f" (classes {classes})" if classes else "")


def percent(value: float | None) -> str:
  return "not defined" if value is None else f"{value:.2f} %"


def duration(seconds: float) -> str:
  return str(datetime.timedelta(seconds=round(seconds)))
