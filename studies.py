"""Ablation studies: a base config and named variants, trained one after the other, compared in
one table.

The baseline (the base config) and every variant train with the same seed and data, each in
DIR/<variant>. Running a study again skips finished variants and resumes an interrupted one from
its checkpoint; a variant that fails is reported in the table and the others still run. A
variant's folder that holds a run of another config (the study or its overrides changed) is
refused, naming the fields, or with `changed="rerun"` moved aside to DIR/<variant>.<its config
digest> and trained afresh: a table row is always the config asked for now. Writes
DIR/study.csv, DIR/study.md and DIR/study.png (top-1 error against parameters). ablate.py is its
command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import time
import traceback
from typing import Any

import ml_collections

import checkpoints
import cli
import config_values
import experiment
import input_pipeline
import models
import parallel
import records
import tables
import training
from models import accounting
from reporting import run_page, study_page

BASELINE = "baseline"
DONE_FILE = "study_run.json"  # written in a variant's workdir when it has finished
CHANGED = ("refuse", "rerun")  # what to do with a variant folder that ran another config


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
    counts = accounting.summarize(model, input_pipeline.input_shape(config, info), info.num_classes)
    variants.append(
      Variant(name, dict(overrides), config, counts["total_params"], counts["total_flops"])
    )
  return variants


def config_digest(config: ml_collections.ConfigDict | dict) -> str:
  """8 hex digits that change with any field of `config` (the table's `config` column)."""
  fields = json.loads(config.to_json()) if hasattr(config, "to_json") else config
  return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


def config_changes(variant: Variant, folder: pathlib.Path) -> list[str]:
  """The fields in which the run recorded in `folder` differs from `variant`'s config."""
  saved_file = folder / checkpoints.CONFIG_FILE
  if not saved_file.is_file():
    return []
  try:
    saved = json.loads(saved_file.read_text())
  except ValueError:
    return [f"{saved_file} cannot be read"]
  return [
    f"{field}: {before!r} there, {now!r} now"
    for field, (before, now) in checkpoints.config_differences(saved, variant.config).items()
  ]


def set_aside(folder: pathlib.Path) -> pathlib.Path:
  """Moves a variant folder of another config to <folder>.<its digest>[-N]; never overwrites."""
  digest = config_digest(json.loads((folder / checkpoints.CONFIG_FILE).read_text()))
  target = folder.with_name(f"{folder.name}.{digest}")
  number = 1
  while target.exists():
    number += 1
    target = folder.with_name(f"{folder.name}.{digest}-{number}")
  folder.rename(target)
  return target


def check_recorded_configs(
  variants: list[Variant], workdir: pathlib.Path, changed: str
) -> dict[str, list[str]]:
  """The variants whose folder ran another config, with the differences; refused unless
  `changed` is "rerun"."""
  config_values.check_choice("changed", changed, CHANGED)
  stale = {v.name: config_changes(v, workdir / v.name) for v in variants}
  stale = {name: changes for name, changes in stale.items() if changes}
  if stale and changed == "refuse":
    name, changes = next(iter(stale.items()))
    shown = "; ".join(changes[:4]) + (f"; and {len(changes) - 4} more" if len(changes) > 4 else "")
    raise ValueError(
      f"{workdir / name} holds a run of another config than variant {name!r} asks for now "
      f"({shown}){f' (and {len(stale) - 1} more variants)' if len(stale) > 1 else ''}; "
      "run with --changed=rerun to keep those results aside and train the variants afresh, or "
      "use another --workdir"
    )
  return stale


# ---------------------------------------------------------------------------------------------
# Running.


def run_variant(variant: Variant, workdir: pathlib.Path) -> str:
  """Trains one variant unless it has finished; returns its status."""
  if (workdir / DONE_FILE).exists():
    return "done earlier"
  start = time.perf_counter()
  try:
    training.train_and_evaluate(variant.config, workdir)
  except cli.Preempted as stopped:  # the whole study stops; rerunning resumes this variant
    raise cli.Preempted(f"{stopped}; the study resumes from this variant") from None
  except Exception as error:  # one variant's failure must not stop the others
    traceback.print_exc()
    return f"failed: {training.failure(error)}"
  seconds = time.perf_counter() - start
  (workdir / DONE_FILE).write_text(json.dumps({"wall_seconds": seconds}) + "\n")
  return "ran"


def run_study(
  study: ml_collections.ConfigDict, workdir: str | pathlib.Path, changed: str = "refuse"
) -> list[dict[str, Any]]:
  """Runs every variant of `study` in `workdir`/<variant>; returns the table's rows.

  `changed` says what to do with a variant folder that ran another config (CHANGED).
  """
  workdir = pathlib.Path(workdir).resolve()
  variants = read_study(study)
  stale = check_recorded_configs(variants, workdir, changed)
  workdir.mkdir(parents=True, exist_ok=True)
  for name in stale:
    print(f"{name}: ran another config; its folder is kept as {set_aside(workdir / name)}")
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
  run_page.write_or_say(workdir, print, study_page.write)
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
    results_file = folder / records.RESULTS_FILE
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    train_rows = records.read_metrics(folder).get("train", [])
    done = folder / DONE_FILE
    row = {
      "variant": variant.name,
      "steps": results.get("single", {}).get("step"),
      "config": config_digest(variant.config),
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


def write_tables(rows: list[dict[str, Any]], workdir: pathlib.Path) -> None:
  """DIR/study.csv, DIR/study.md and DIR/study.png."""
  (workdir / "study.csv").write_text(tables.csv_table(rows))
  (workdir / "study.md").write_text(tables.markdown_table(rows) + "\n")
  records.plot_errors_against(rows, "params", workdir / "study.png", BASELINE)
