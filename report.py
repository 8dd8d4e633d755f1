"""Writes the report page of a run or of a study.

  .venv/bin/python report.py --workdir=DIR

DIR is a run's folder (train.py, eval.py, import_weights.py: it holds config.json) or a study's
(ablate.py: it holds study.csv). Writes DIR/report.html and its pictures in DIR/report/, from
the files the run or study left (nothing is trained or evaluated); training, eval.py and
ablate.py write the same pages when they end. The work is done by reporting/.
"""

import pathlib

from absl import flags
from absl import logging as absl_logging

import checkpoints
import cli
from reporting import run_page, study_page


def main() -> str:
  workdir = pathlib.Path(FLAGS.workdir)
  if not workdir.is_dir():
    problem = "not a folder" if workdir.exists() else "no such folder"
    raise ValueError(f"--workdir={workdir}: {problem}")
  if (workdir / study_page.TABLE).is_file():
    return f"written {study_page.write(workdir)}"
  if (workdir / checkpoints.CONFIG_FILE).is_file():
    return f"written {run_page.write(workdir)}"
  inside = sorted(
    folder.name
    for folder in workdir.iterdir()
    if (folder / checkpoints.CONFIG_FILE).is_file() or (folder / study_page.TABLE).is_file()
  )
  raise ValueError(
    f"--workdir={workdir} is neither a run's folder (no {checkpoints.CONFIG_FILE}) nor a "
    f"study's (no {study_page.TABLE})"
    + (f"; the runs and studies in it: {', '.join(inside)}" if inside else "")
  )


if __name__ == "__main__":
  flags.DEFINE_string("workdir", None, "a run's folder or a study's")
  flags.mark_flags_as_required(["workdir"])
  FLAGS = flags.FLAGS
  cli.run(main, log_level=absl_logging.ERROR)
