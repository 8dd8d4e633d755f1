"""Runs an ablation study: a base config and named variants, one table of results.

  .venv/bin/python ablate.py --study=configs/studies/NAME.py --workdir=DIR \
      [--study.base.FIELD=VALUE ...]

The baseline (the base config) and every variant train with the same seed and data, one after
the other, each in DIR/<variant>. A second invocation skips finished variants and resumes an
interrupted one from its checkpoint; a variant that fails is reported in the table and the
others still run. Overrides for every variant go on the base (`--study.base.num_train_steps=300`).
Writes DIR/study.csv, DIR/study.md and DIR/study.png (top-1 error against parameters).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import pathlib
import time
import traceback
from typing import Any

import ml_collections
from absl import flags

import cli
import config_values
import experiment
import input_pipeline
import models
import parallel
import reporting
import summary
import train

BASELINE = "baseline"
DONE_FILE = "study_run.json"  # written in a variant's workdir when it has finished


@dataclasses.dataclass
class Variant:
  name: str
  overrides: dict[str, Any]
  config: ml_collections.ConfigDict
  params: int = 0
  flops: int = 0


# ---------------------------------------------------------------------------------------------
# Reading a study: every variant is built and checked before anything runs.


def read_study(study: ml_collections.ConfigDict) -> list[Variant]:
  """The baseline and the study's variants, each checked as train.py would check it."""
  entries = [(BASELINE, {})] + [tuple(entry) for entry in study.variants]
  seen: set[str] = set()
  data_parallel = parallel.DataParallel(study.base.num_devices)
  variants = []
  for name, overrides in entries:
    if not name or not name.replace("_", "").replace("-", "").isalnum():
      raise ValueError(f"variant name {name!r}: use letters, digits, - and _ (it names a folder)")
    if name in seen:
      raise ValueError(
        f"duplicate variant name {name!r}"
        + (f" ({BASELINE!r} is the base config itself)" if name == BASELINE else "")
      )
    seen.add(name)
    try:
      config = config_values.with_overrides(study.base, dict(overrides))
      info = experiment.check_config(config, data_parallel)
    except ValueError as error:
      raise ValueError(f"variant {name!r}: {error}") from error
    model = models.create_model(config.model, info.num_classes)
    counts = summary.summarize(model, input_pipeline.input_shape(config, info), info.num_classes)
    variants.append(
      Variant(name, dict(overrides), config, counts["total_params"], counts["total_flops"])
    )
  return variants


# ---------------------------------------------------------------------------------------------
# Running.


def run_variant(variant: Variant, workdir: pathlib.Path) -> str:
  """Trains one variant unless it has finished; returns its status."""
  if (workdir / DONE_FILE).exists():
    return "done earlier"
  start = time.perf_counter()
  try:
    train.train_and_evaluate(variant.config, workdir)
  except cli.Preempted as stopped:  # the whole study stops; rerunning resumes this variant
    raise cli.Preempted(f"{stopped}; the study resumes from this variant") from None
  except Exception as error:  # one variant's failure must not stop the others
    traceback.print_exc()
    return f"failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
  seconds = time.perf_counter() - start
  (workdir / DONE_FILE).write_text(json.dumps({"wall_seconds": seconds}) + "\n")
  return "ran"


def run_study(
  study: ml_collections.ConfigDict, workdir: str | pathlib.Path
) -> list[dict[str, Any]]:
  """Runs every variant of `study` in `workdir`/<variant>; returns the table's rows."""
  workdir = pathlib.Path(workdir).resolve()
  variants = read_study(study)
  workdir.mkdir(parents=True, exist_ok=True)
  statuses = {}
  for number, variant in enumerate(variants, 1):
    print(
      f"=== variant {number}/{len(variants)}: {variant.name} "
      f"{json.dumps(variant.overrides) if variant.overrides else '(the base config)'}",
      flush=True,
    )
    statuses[variant.name] = run_variant(variant, workdir / variant.name)
  rows = table_rows(variants, statuses, workdir)
  write_tables(rows, workdir)
  return rows


# ---------------------------------------------------------------------------------------------
# The table.


def table_rows(
  variants: list[Variant], statuses: dict[str, str], workdir: pathlib.Path
) -> list[dict[str, Any]]:
  """One row per variant: sizes, errors (single and ten-crop), deltas to the baseline, time."""
  rows = []
  for variant in variants:
    folder = workdir / variant.name
    results_file = folder / reporting.RESULTS_FILE
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    train_rows = reporting.read_metrics(folder).get("train", [])
    done = folder / DONE_FILE
    row = {
      "variant": variant.name,
      "params": variant.params,
      "flops": variant.flops,
      "train_top1_error": train_rows[-1]["top1_error"] if train_rows else None,
    }
    for protocol, prefix in (("single", ""), ("ten_crop", "ten_crop_")):
      if protocol == "single" or variant.config.eval.ten_crop:
        metrics = results.get(protocol, {})
        row[f"{prefix}top1_error"] = metrics.get("top1_error")
        row[f"{prefix}top5_error"] = metrics.get("top5_error")
    row["wall_seconds"] = json.loads(done.read_text())["wall_seconds"] if done.exists() else None
    row["status"] = statuses[variant.name]
    rows.append(row)
  return add_deltas(rows)


def add_deltas(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """`<column>_delta` = the row's value minus the baseline's, for parameters and errors."""
  baseline = rows[0]
  measured = ["params"] + [k for k in baseline if k.endswith("_error")]
  with_deltas = []
  for row in rows:
    out = {}
    for key, value in row.items():
      out[key] = value
      if key in measured:
        both = value is not None and baseline.get(key) is not None
        out[f"{key}_delta"] = value - baseline[key] if both else None
    with_deltas.append(out)
  return with_deltas


def format_value(key: str, value: Any) -> str:
  if value is None:
    return "–"
  if key in ("params", "flops"):
    return f"{value:,}"
  if key == "params_delta":
    return f"{value:+,}"
  if key.endswith("_delta"):
    return f"{value:+.2f}"
  if isinstance(value, float):
    return f"{value:.2f}" if key != "wall_seconds" else f"{value:.0f}"
  return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
  columns = list(rows[0])
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(format_value(c, row.get(c)) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def write_tables(rows: list[dict[str, Any]], workdir: pathlib.Path) -> None:
  """DIR/study.csv, DIR/study.md and DIR/study.png."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
  writer.writeheader()
  writer.writerows(rows)
  (workdir / "study.csv").write_text(buffer.getvalue())
  (workdir / "study.md").write_text(markdown_table(rows) + "\n")
  reporting.plot_errors_against_params(rows, workdir / "study.png", BASELINE)


# ---------------------------------------------------------------------------------------------
# Command line.


def run_and_report(study: ml_collections.ConfigDict, workdir: str) -> str:
  rows = run_study(study, workdir)
  return (
    f"\n{markdown_table(rows)}\n\nwritten to {pathlib.Path(workdir) / 'study.md'} "
    "(and study.csv, study.png)"
  )


if __name__ == "__main__":
  cli.define_config_flag("study", "study file (configs/studies/*.py)")
  flags.DEFINE_string("workdir", None, "directory for the variants' workdirs and the tables")
  flags.mark_flags_as_required(["workdir"])
  cli.run(lambda: run_and_report(flags.FLAGS.study, flags.FLAGS.workdir))
