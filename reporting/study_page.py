"""`STUDY/report.html`: an ablation study on one page: its comparison table, the variants'
curves overlaid, error against parameters and against FLOPs, and a link to each variant's own
page (written here for a variant that has none). Read from `study.csv` and the variants'
folders alone; `studies.run_study` writes it at the end of a study, `report.py` at any time.
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any

import checkpoints
import cli
import records
import tables
from reporting import figures, markup, run_page

TABLE = "study.csv"  # studies.write_tables: one row per variant, the baseline first
PAGE = run_page.PAGE
ASSETS = run_page.ASSETS


def write(study: str | pathlib.Path) -> pathlib.Path:
  """Writes `study`/report.html (and the pages of variants that have none); returns its path."""
  study = pathlib.Path(study).resolve()
  rows = read_table(study / TABLE)
  if not rows:
    raise ValueError(f"{study / TABLE} holds no variant")
  assets = markup.emptied_assets(study / ASSETS)
  baseline = rows[0]["variant"]
  pages = {row["variant"]: variant_page(study / row["variant"]) for row in rows}
  runs = {row["variant"]: records.read_metrics(study / row["variant"]) for row in rows}
  head = [
    f"<h1>{markup.escape(f'Study: {study.name}')}</h1>",
    markup.paragraph(
      f"{len(rows)} variants, each trained with the same seed and data in its own folder; "
      f"deltas are against {baseline!r}."
    ),
  ]
  parts = [
    ("table", "Comparison", table_section(rows)),
    ("curves", "Curves", curves_section(runs, assets)),
    ("size", "Error per variant and against size", size_section(rows, baseline, assets)),
    ("variants", "Variants", variants_section(study, rows, pages)),
  ]
  title = f"Study: {study.name}"
  return markup.write_page(study / PAGE, title, head, parts, "report.py --workdir=STUDY")


def read_table(path: pathlib.Path) -> list[dict[str, Any]]:
  """study.csv's rows with numbers as numbers and empty cells as None."""
  with open(path, newline="") as file:
    return [{key: parsed(value) for key, value in row.items()} for row in csv.DictReader(file)]


def parsed(text: str) -> Any:
  if text == "":
    return None
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def variant_page(folder: pathlib.Path) -> pathlib.Path | None:
  """The variant's report.html, written now if it has none; None for a variant with no run."""
  if (folder / PAGE).is_file():
    return folder / PAGE
  if not (folder / checkpoints.CONFIG_FILE).is_file():
    return None
  return run_page.write(folder)


# The comparison's columns: (study.csv column, header); a value with a delta shows both.
COLUMNS = (
  ("params", "parameters"),
  ("flops", "FLOPs"),
  ("top1_error", "top-1 error (%)"),
  ("top5_error", "top-5 error (%)"),
  ("ten_crop_top1_error", "10-crop top-1 (%)"),
  ("ten_crop_top5_error", "10-crop top-5 (%)"),
  ("train_top1_error", "training top-1 (%)"),
  ("steps", "steps"),
  ("wall_seconds", "time (s)"),
  ("config", "config digest"),
)


def table_section(rows: list[dict[str, Any]]) -> list[str]:
  """The comparison: one row per variant; each value beside its delta against the baseline."""
  columns = [(key, header) for key, header in COLUMNS if key in rows[0]]
  cells = []
  for row in rows:
    line = [row["variant"]]
    for key, _ in columns:
      text = tables.format_value(key, row.get(key))
      delta = row.get(f"{key}_delta")
      if delta is not None and row is not rows[0]:
        text += f" ({tables.format_value(f'{key}_delta', delta)})"
      line.append(text)
    cells.append(line)
  return [
    markup.table(["variant", *(header for _, header in columns)], cells, numeric=False),
    markup.paragraph(
      "In brackets: the variant minus the baseline. Parameters and FLOPs (multiply-adds per "
      "image) count the network; errors are test errors, the training error that of the last "
      "log interval's batches; time is the variant's training, evaluation included. All "
      f"columns, unformatted: {TABLE}.",
      "note",
    ),
  ]


def curves_section(runs: dict[str, dict[str, list[dict]]], assets: pathlib.Path) -> list[str]:
  if figures.overlaid_curves(runs, assets / "curves.png") is None:
    return [markup.paragraph("No variant has recorded metrics yet.")]
  return [markup.image(f"{ASSETS}/curves.png", "the variants' curves overlaid")]


def size_section(rows: list[dict[str, Any]], baseline: str, assets: pathlib.Path) -> list[str]:
  """Error per variant, and against parameters and FLOPs where the variants' sizes differ."""
  if not any(row.get("top1_error") is not None for row in rows):
    return [markup.paragraph("No variant has been evaluated yet.")]
  figures.errors_by_variant(rows, baseline, assets / "errors.png")
  body = [markup.image(f"{ASSETS}/errors.png", "top-1 error per variant")]
  for size in ("params", "flops"):
    if len({row[size] for row in rows}) == 1:
      body.append(
        markup.paragraph(f"Every variant has {rows[0][size]:,} {records.SIZE_LABELS[size]}.")
      )
      continue
    records.plot_errors_against(rows, size, assets / f"error_{size}.png", baseline)
    body.append(markup.image(f"{ASSETS}/error_{size}.png", f"top-1 error against {size}"))
  return body


def variants_section(
  study: pathlib.Path, rows: list[dict[str, Any]], pages: dict[str, pathlib.Path | None]
) -> list[str]:
  """Each variant's status, how its config differs from the baseline's, and its page."""
  baseline = saved_config(study / rows[0]["variant"])
  cells = []
  for row in rows:
    name = row["variant"]
    config = saved_config(study / name)
    if config is None or baseline is None:
      changes = "config.json missing"
    else:
      differences = checkpoints.config_differences(baseline, config)
      changes = "; ".join(f"{f}: {json.dumps(v)}" for f, (_, v) in differences.items()) or "–"
    page = pages[name]
    link = markup.link(f"{name}/{PAGE}", f"{name}/{PAGE}") if page else "no run yet"
    cells.append((name, row.get("status") or "–", changes, link))
  return [markup.table(["variant", "status", "differs from the baseline in", "page"], cells)]


def saved_config(folder: pathlib.Path) -> dict | None:
  """The variant's config (`cli.saved_config`), or None when it has none that can be read."""
  try:
    return cli.saved_config(str(folder))
  except ValueError:
    return None
