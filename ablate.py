"""Runs an ablation study: a base config and named variants, one table of results.

  .venv/bin/python ablate.py --study=configs/studies/NAME.py --workdir=DIR \\
      [--study.base.FIELD=VALUE ...]

The baseline (the base config) and every variant train with the same seed and data, one after
the other, each in DIR/<variant>. A second invocation skips finished variants and resumes an
interrupted one from its checkpoint; a variant that fails is reported in the table and the
others still run. Overrides for every variant go on the base (`--study.base.num_train_steps=300`);
a variant whose folder ran another config is refused, naming the fields, unless --changed=rerun
keeps that run aside (DIR/<variant>.<digest>) and trains the variant afresh.
Writes DIR/study.csv, DIR/study.md and DIR/study.png (top-1 error against parameters). The work
is done by studies.run_study.
"""

import pathlib

from absl import flags

import cli
import studies
import tables


def run_and_show(study, workdir: str, changed: str) -> str:
  """Runs the study and returns its table, with where it was written."""
  rows = studies.run_study(study, workdir, changed)
  return (
    f"\n{tables.markdown_table(rows)}\n\nwritten to {pathlib.Path(workdir) / 'study.md'} "
    "(and study.csv, study.png)"
  )


if __name__ == "__main__":
  cli.define_config_flag("study", "study file (configs/studies/*.py)")
  flags.DEFINE_string("workdir", None, "directory for the variants' workdirs and the tables")
  flags.mark_flags_as_required(["workdir"])
  flags.DEFINE_enum(
    "changed",
    "refuse",
    studies.CHANGED,
    "a variant folder that ran another config: refuse (name the fields), or rerun (keep it as "
    "DIR/<variant>.<digest> and train afresh)",
  )
  cli.run(lambda: run_and_show(flags.FLAGS.study, flags.FLAGS.workdir, flags.FLAGS.changed))
