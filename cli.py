"""The command line shared by train.py and eval.py: --config, --workdir, quiet logs, clean errors."""

from __future__ import annotations

import sys
from typing import Any, Callable

from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

import parallel

FLAGS = flags.FLAGS
# Errors that mean bad input or a diverged run: printed as one line, exit status 1.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)
PREEMPTED_STATUS = 128 + 15  # as if killed by SIGTERM: the job did not finish


class Preempted(Exception):
  """Training stopped on SIGTERM after saving a checkpoint; rerunning resumes it."""


def define_flags() -> None:
  config_flags.DEFINE_config_file("config", None, "experiment config file (configs/*.py)",
                                  lock_config=True)
  flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and results")
  flags.mark_flags_as_required(["config", "workdir"])


def quiet_logs(level: int) -> None:
  """Raises absl's log threshold to `level` unless --verbosity was given."""
  if not FLAGS["verbosity"].present:
    absl_logging.set_verbosity(level)


def run(job: Callable[[Any, str], Any], report: Callable[[Any], str]) -> None:
  """Runs `job(config, workdir)` from the command line and prints `report(result)`."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    quiet_logs(absl_logging.WARNING)  # orbax logs every save at INFO
    try:
      parallel.configure_cpu_devices()
      result = job(FLAGS.config, FLAGS.workdir)
    except USER_ERRORS as error:
      sys.exit(f"error: {error}")
    except Preempted as stopped:
      print(stopped, flush=True)
      sys.exit(PREEMPTED_STATUS)
    if parallel.is_lead_process():
      print(report(result), flush=True)

  app.run(main, flags_parser=parse_flags)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing, with a one-line error for an unknown or badly typed config field."""
  try:
    return FLAGS(argv)
  except flags.Error as error:
    lines = [line for line in str(error).splitlines() if line.strip()]
    # A config file that raised comes wrapped with its traceback: its last line says why.
    message = lines[-1].strip() if "Traceback" in str(error) else str(error)
    sys.exit(f"error: {message}\nsee --helpfull for the flags")
  except (AttributeError, KeyError, TypeError, ValueError) as error:
    # ml_collections raises these while applying --config.FIELD=VALUE overrides.
    detail = " ".join(str(error).replace("\\n", " ").replace("\\'", "'").split())
    detail = detail.removeprefix("'").removesuffix("'")
    overrides = [arg for arg in argv[1:] if arg.startswith("--config.")]
    where = f"bad config override in {' '.join(overrides)}: " if overrides else ""
    sys.exit(f"error: {where}{detail}")
