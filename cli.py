"""The one command-line runner of every convzoo program (train, eval, ablate, summary, color_pca).

A program defines its flags under `if __name__ == "__main__":` and hands `run` a function
that does the work and returns what to print. `run` parses the flags (a bad flag or config
override is one line), quiets absl's logs, splits the host CPU into devices, turns bad input
into one `error: …` line (exit 1) and a SIGTERM stop into its own status (143).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

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


def define_config_flag(name: str, help_text: str, required: bool = True) -> None:
  """--NAME=FILE.py[:ARGUMENT], with --NAME.FIELD=VALUE overrides."""
  config_flags.DEFINE_config_file(name, None, help_text, lock_config=True)
  if required:
    flags.mark_flags_as_required([name])


def define_config_and_workdir() -> None:
  """The flags of train.py and eval.py."""
  define_config_flag("config", "experiment config file (configs/*.py)")
  flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and results")
  flags.mark_flags_as_required(["workdir"])


def run(main: Callable[[], str | None], log_level: int = absl_logging.WARNING) -> None:
  """Runs `main()` as the program and prints what it returns (on the lead process)."""

  def absl_main(argv: list[str]) -> None:
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:  # orbax logs every save at INFO, TFDS warns a lot
      absl_logging.set_verbosity(log_level)
    try:
      parallel.configure_cpu_devices()
      text = main()
    except USER_ERRORS as error:
      sys.exit(f"error: {error}")
    except Preempted as stopped:
      print(stopped, flush=True)
      sys.exit(PREEMPTED_STATUS)
    if text:
      parallel.announce(text)

  app.run(absl_main, flags_parser=parse_flags)


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
    overrides = [arg for arg in argv[1:] if arg.startswith("--") and "." in arg.split("=")[0]]
    where = f"bad config override in {' '.join(overrides)}: " if overrides else ""
    sys.exit(f"error: {where}{detail}")
