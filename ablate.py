"""Runs an ablation study: a base config and named variants, one table of results.

  .venv/bin/python ablate.py --study=configs/studies/NAME.py --workdir=DIR [--study.base.FIELD=VALUE ...]

The baseline (the base config) and every variant train with the same seed and data, one after
the other, each in DIR/<variant>. A second invocation skips finished variants and resumes an
interrupted one from its checkpoint; a variant that fails is reported in the table and the
others still run. Overrides for every variant go on the base (`--study.base.num_train_steps=300`).
Writes DIR/study.csv, DIR/study.md and DIR/study.png (top-1 error against parameters).
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import pathlib
import sys
import time
import traceback
from typing import Any

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
from absl import app, flags  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

import cli  # noqa: E402
import input_pipeline  # noqa: E402
import models  # noqa: E402
import parallel  # noqa: E402
import reporting  # noqa: E402
import summary  # noqa: E402
import train  # noqa: E402

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

def apply_overrides(base: ml_collections.ConfigDict, overrides: dict[str, Any]
                    ) -> ml_collections.ConfigDict:
  """A copy of `base` with dotted-name fields replaced; unknown fields and bad types are errors."""
  config = copy.deepcopy(base)
  for dotted, value in overrides.items():
    *parents, leaf = dotted.split(".")
    node = config
    for position, parent in enumerate(parents):
      if not isinstance(node, ml_collections.ConfigDict) or parent not in node:
        raise ValueError(f"unknown config field {'.'.join(parents[:position + 1])!r}")
      node = node[parent]
    if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
      raise ValueError(f"unknown config field {dotted!r}")
    try:
      node[leaf] = value
    except TypeError as error:
      raise ValueError(f"bad value {value!r} for {dotted!r}: {error}") from error
  return config


def read_study(study: ml_collections.ConfigDict) -> list[Variant]:
  """The baseline and the study's variants, each checked as train.py would check it."""
  entries = [(BASELINE, {})] + [tuple(entry) for entry in study.variants]
  seen: set[str] = set()
  devices = parallel.DataParallel(study.base.num_devices)
  variants = []
  for name, overrides in entries:
    if not name or not name.replace("_", "").replace("-", "").isalnum():
      raise ValueError(f"variant name {name!r}: use letters, digits, - and _ (it names a folder)")
    if name in seen:
      raise ValueError(f"duplicate variant name {name!r}" +
                       (f" ({BASELINE!r} is the base config itself)" if name == BASELINE else ""))
    seen.add(name)
    try:
      config = apply_overrides(study.base, dict(overrides))
      info = train.check_config(config, devices)
    except ValueError as error:
      raise ValueError(f"variant {name!r}: {error}") from error
    model = models.create_model(config.model, info.num_classes)
    counts = summary.summarize(model, input_pipeline.input_shape(config, info), info.num_classes)
    variants.append(Variant(name, dict(overrides), config, counts["total_params"],
                            counts["total_flops"]))
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
  except cli.Preempted:
    raise  # the whole study stops; rerunning resumes this variant
  except Exception as error:  # one variant's failure must not stop the others
    traceback.print_exc()
    return f"failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
  seconds = time.perf_counter() - start
  (workdir / DONE_FILE).write_text(json.dumps({"wall_seconds": seconds}) + "\n")
  return "ran"


def run_study(study: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> list[dict[str, Any]]:
  """Runs every variant of `study` in `workdir`/<variant>; returns the table's rows."""
  workdir = pathlib.Path(workdir).resolve()
  variants = read_study(study)
  workdir.mkdir(parents=True, exist_ok=True)
  statuses = {}
  for number, variant in enumerate(variants, 1):
    print(f"=== variant {number}/{len(variants)}: {variant.name} "
          f"{json.dumps(variant.overrides) if variant.overrides else '(the base config)'}", flush=True)
    statuses[variant.name] = run_variant(variant, workdir / variant.name)
  rows = table_rows(variants, statuses, workdir)
  write_tables(rows, workdir)
  return rows


# ---------------------------------------------------------------------------------------------
# The table.

def table_rows(variants: list[Variant], statuses: dict[str, str], workdir: pathlib.Path
               ) -> list[dict[str, Any]]:
  """One row per variant: sizes, errors (single and ten-crop), deltas to the baseline, time."""
  rows = []
  for variant in variants:
    folder = workdir / variant.name
    results_file = folder / reporting.RESULTS_FILE
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    train_rows = reporting.read_metrics(folder).get("train", [])
    done = folder / DONE_FILE
    row = {"variant": variant.name, "params": variant.params, "flops": variant.flops,
           "train_top1_error": train_rows[-1]["top1_error"] if train_rows else None}
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
  plot_errors(rows, workdir / "study.png")


def plot_errors(rows: list[dict[str, Any]], path: pathlib.Path) -> None:
  """Top-1 test error against parameters, one labelled point per finished variant."""
  figure, axis = plt.subplots(figsize=(7, 4.5))
  for row in rows:
    if row.get("top1_error") is None:
      continue
    axis.scatter(row["params"], row["top1_error"], color="C3" if row["variant"] == BASELINE else "C0")
    axis.annotate(row["variant"], (row["params"], row["top1_error"]), textcoords="offset points",
                  xytext=(4, 4), fontsize=8)
  axis.set(xscale="log", xlabel="parameters", ylabel="top-1 test error (%)",
           title="error against parameters")
  axis.grid(alpha=0.3)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


# ---------------------------------------------------------------------------------------------
# Command line.

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.quiet_logs(absl_logging.WARNING)
  try:
    parallel.configure_cpu_devices()
    rows = run_study(flags.FLAGS.study, flags.FLAGS.workdir)
  except cli.USER_ERRORS as error:
    sys.exit(f"error: {error}")
  except cli.Preempted as stopped:
    print(f"{stopped}; the study resumes from this variant", flush=True)
    sys.exit(cli.PREEMPTED_STATUS)
  print("\n" + markdown_table(rows))
  print(f"\nwritten to {pathlib.Path(flags.FLAGS.workdir) / 'study.md'} (and study.csv, study.png)")


if __name__ == "__main__":
  config_flags.DEFINE_config_file("study", None, "study file (configs/studies/*.py)",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "directory for the variants' workdirs and the tables")
  flags.mark_flags_as_required(["study", "workdir"])
  app.run(main, flags_parser=cli.parse_flags)
