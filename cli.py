"""The one command-line runner of every convzoo program (train, eval, ablate, summary, color_pca).

A program defines its flags under `if __name__ == "__main__":` and hands `run` a function
that does the work and returns what to print. `run` parses the flags, quiets absl's logs,
splits the host CPU into devices, and is the one place where a failure becomes what the user
sees: one `error: …` line and exit status 1 (the whole traceback and the libraries' own error
logs only with `--verbose` or CONVZOO_DEBUG=1), a signal stop its own status (130 for Ctrl-C,
143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import logging
import os
import pathlib
import re
import sys
import traceback
import types
from collections.abc import Callable

import ml_collections
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

import checkpoints
import config_rules
import parallel
from configs import base

FLAGS = flags.FLAGS
DEBUG_ENV = "CONVZOO_DEBUG"  # =1: the same as --verbose
# Errors that mean bad input, a damaged file or a diverged run: their message is the line.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)
ERROR_STATUS = 1
INTERRUPTED_STATUS = 128 + 2  # as if killed by SIGINT (the shell's convention)
PREEMPTED_STATUS = 128 + 15  # as if killed by SIGTERM: the job did not finish
# What ml_collections raises for a --config.FIELD=VALUE it cannot apply.
OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)
VERBOSE_HINT = f"rerun with --verbose or {DEBUG_ENV}=1 for the traceback"


class Preempted(Exception):
  """Training stopped on a signal after saving a checkpoint; rerunning resumes it."""

  def __init__(self, message: str, status: int = PREEMPTED_STATUS):
    super().__init__(message)
    self.status = status


def define_config_flag(name: str, help_text: str, required: bool = True) -> None:
  """--NAME=FILE.py[:ARGUMENT], with --NAME.FIELD=VALUE overrides."""
  config_flags.DEFINE_config_file(name, None, help_text, lock_config=True)
  if required:
    flags.mark_flags_as_required([name])


def define_config_and_workdir() -> None:
  """The flags of train.py: a config file and the workdir."""
  define_config_flag("config", "experiment config file (configs/*.py)")
  flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and results")
  flags.mark_flags_as_required(["workdir"])


def define_workdir_and_its_config(help_text: str) -> None:
  """--workdir=DIR (required) and --config: the run's own config (`saved_config`), whose fields
  --config.FIELD=VALUE overrides (`check_overrides` says which may change). Without a readable
  DIR/config.json, --config is the base config and the program's `saved_config` says why."""
  config = base.get_config()
  with contextlib.suppress(ValueError):  # main() calls saved_config again to say why
    config = ml_collections.ConfigDict(saved_config(_value_of("workdir", sys.argv)))
  if _value_of("config", sys.argv):
    sys.exit(
      f"error: --config={_value_of('config', sys.argv)}: this program uses the run's own config "
      "(DIR/config.json); change a field with --config.FIELD=VALUE"
    )
  try:  # ml_collections applies --config.FIELD=VALUE from sys.argv here, at definition
    config_flags.DEFINE_config_dict("config", config, "the run's config, overridable")
  except OVERRIDE_ERRORS as error:
    sys.exit(f"error: {override_problem(error, sys.argv)}")
  flags.DEFINE_string("workdir", None, help_text)
  flags.mark_flags_as_required(["workdir"])


def saved_config(workdir: str) -> dict:
  """The config a run saved in DIR/config.json, fields added to configs/base.py since then at
  their defaults; a ValueError naming the file if there is none or it cannot be read."""
  path = pathlib.Path(workdir, checkpoints.CONFIG_FILE)
  if not workdir or not path.is_file():
    raise ValueError(f"{path} not found; --workdir must be a training run's folder")
  try:
    saved = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
    raise ValueError(
      f"{path} cannot be read as a config ({error}); it records the config its run trained "
      "with, which this program needs"
    ) from None
  return _merged(base.get_config().to_dict(), saved)


def check_overrides(
  config: ml_collections.ConfigDict, workdir: str, allowed: tuple[str, ...]
) -> None:
  """Raises a ValueError for a field `config` changes from the run's own outside `allowed`
  (field names, or prefixes ending in ".")."""
  changes = checkpoints.config_differences(saved_config(workdir), config)
  for field, (saved, now) in changes.items():
    prefixes = [name for name in allowed if name.endswith(".")]
    if field not in allowed and not any(field.startswith(prefix) for prefix in prefixes):
      raise ValueError(
        f"--config.{field}={now}: the run's {field} is {saved!r}, and this program keeps it; "
        f"what may change: {', '.join(allowed)}"
      )


def _value_of(name: str, argv: list[str]) -> str:
  """The value of --NAME=VALUE or --NAME VALUE in `argv` ("" if absent), before absl parses."""
  for arg, following in zip(argv, [*argv[1:], ""], strict=True):
    if arg == f"--{name}":
      return following
    if arg.startswith(f"--{name}="):
      return arg.split("=", 1)[1]
  return ""


def _merged(defaults: dict, saved: dict) -> dict:
  """`saved` with every field of `defaults` it lacks (recursively)."""
  merged = dict(saved)
  for key, value in defaults.items():
    if key not in merged:
      merged[key] = value
    elif isinstance(value, dict) and isinstance(merged[key], dict):
      merged[key] = _merged(value, merged[key])
  return merged


def verbose() -> bool:
  """Whether errors show their traceback and the libraries their error logs."""
  return os.environ.get(DEBUG_ENV, "") not in ("", "0") or (
    "verbose" in FLAGS and FLAGS["verbose"].present and FLAGS.verbose
  )


def run(
  main: Callable[..., str | None],
  log_level: int = absl_logging.WARNING,
  bare_shows_usage: bool = False,
  takes_arguments: bool = False,
) -> None:
  """Runs `main()` as the program and prints what it returns (on the lead process).

  Without arguments a program prints its usage when a flag it requires is missing, or always
  with `bare_shows_usage`. A program that `takes_arguments` (file names after the flags) gets
  them as `main(arguments)`; others refuse any.
  """
  if "verbose" not in FLAGS:
    flags.DEFINE_bool("verbose", False, f"tracebacks and library error logs (or ${DEBUG_ENV}=1)")

  def absl_main(argv: list[str]) -> None:
    if len(argv) > 1 and not takes_arguments:
      raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS["verbosity"].present:  # orbax logs every save at INFO, TFDS warns a lot
      absl_logging.set_verbosity(log_level)
    if not verbose():
      quiet_library_failures()
    try:
      parallel.configure_cpu_devices()
      text = main(argv[1:]) if takes_arguments else main()
    except Preempted as stopped:
      print(stopped, flush=True)
      sys.exit(stopped.status)
    except (Exception, KeyboardInterrupt) as error:
      fail(error)
    if text:
      parallel.announce(text)

  for name in ("config", "study", "workdir", "verbose"):  # --help lists them with the program's
    if name in FLAGS:
      FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])
  app.run(absl_main, flags_parser=functools.partial(parse_flags, bare_shows_usage=bare_shows_usage))


def describe(error: BaseException) -> str:
  """One line for `error`: what went wrong, naming the value or file, and what to do."""
  if isinstance(error, KeyboardInterrupt):
    return "interrupted (Ctrl-C); checkpoints and results written before it are kept"
  if isinstance(error, OSError) and error.strerror:
    where = f" {error.filename}" if error.filename else ""
    if error.errno == errno.ENOSPC:
      return f"no space left on the device of{where}; free space there and run the same command"
    return f"cannot use{where}: {error.strerror}"
  if isinstance(error, USER_ERRORS):
    message = str(error)
  else:
    message = f"{type(error).__name__}: {error} ({VERBOSE_HINT})"
  return " ".join(message.split())  # one line, whatever the library put in its message


def fail(error: BaseException) -> None:
  """Prints `error` as one line (with its traceback when verbose) and exits at once."""
  if verbose():
    traceback.print_exception(error)
  status = INTERRUPTED_STATUS if isinstance(error, KeyboardInterrupt) else ERROR_STATUS
  print(f"error: {describe(error)}", file=sys.stderr, flush=True)
  sys.stdout.flush()
  # Not sys.exit: orbax's signalling threads of a save that failed are not daemons and wait
  # for each other forever, so a normal interpreter exit would hang (seen with a workdir whose
  # checkpoints folder could not be created).
  os._exit(status)


class _DropLibraryErrors(logging.Filter):
  """Library error logs describe failures that reach the user as the one error line."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno < logging.ERROR


def quiet_library_failures() -> None:
  """Hides the libraries' error logs and orbax's noise after a failed restore (unless verbose).

  When orbax gives up reading a damaged checkpoint, tensorstore reads still in flight finish
  after orbax has closed its event loop; each then reports an unraisable
  `RuntimeError('Event loop is closed')` that means nothing to the user.
  """
  absl_logging.get_absl_handler().addFilter(_DropLibraryErrors())
  previous = sys.unraisablehook

  def hook(unraisable) -> None:
    value = unraisable.exc_value
    if not (isinstance(value, RuntimeError) and str(value) == "Event loop is closed"):
      previous(unraisable)

  sys.unraisablehook = hook


# ---------------------------------------------------------------------------------------------
# Flags.


def parse_flags(argv: list[str], bare_shows_usage: bool = False) -> list[str]:
  """absl's parsing, with one line for a bad config file, unknown or badly typed field.

  A bare invocation of a program that needs flags prints its usage (the program's docstring).
  """
  if len(argv) == 1:
    try:
      parsed = FLAGS(argv)
    except flags.Error:
      parsed = None
    if parsed is None or bare_shows_usage:
      usage = (sys.modules["__main__"].__doc__ or "").strip()
      sys.exit(f"{usage}\n\nrun with --help for every flag")
    return parsed
  is_config_file = config_flags.config_flags.is_config_flag
  for arg, following in zip(argv[1:], [*argv[2:], ""], strict=True):
    name, equals, value = arg.removeprefix("--").partition("=")
    if arg.startswith("--") and name in FLAGS and is_config_file(FLAGS[name]):
      value = value if equals else following  # --config=FILE or --config FILE
      problem = config_file_problem(value)
      if problem:
        sys.exit(f"error: --{name}={value}: {problem}")
    _, _, field = name.partition(".")
    if arg.startswith("--") and field in config_rules.RENAMED_FIELDS:
      sys.exit(f"error: {arg}: {field} is now {config_rules.RENAMED_FIELDS[field]}")
  try:
    return FLAGS(argv)
  except SystemExit as stop:  # absl exits 1 after --help: asking for help is no failure
    help_asked = {"--help", "-h", "-?", "--helpshort", "--helpfull", "--helpxml"} & set(argv)
    sys.exit(0 if help_asked and stop.code == 1 else stop.code)
  except flags.Error as error:
    lines = [line for line in str(error).splitlines() if line.strip()]
    # A config file that raised comes wrapped with its traceback: its last line says why.
    message = lines[-1].strip() if "Traceback" in str(error) else str(error)
    sys.exit(f"error: {message}\nsee --helpfull for the flags")
  except OVERRIDE_ERRORS as error:
    sys.exit(f"error: {override_problem(error, argv)}")


def override_problem(error: Exception, argv: list[str]) -> str:
  """One line for an error ml_collections raised applying --config.FIELD=VALUE overrides."""
  text = error.args[0] if error.args else error
  text = " ".join(str(text).replace("\\n", " ").replace("\\'", "'").split())
  if isinstance(error, (AttributeError, KeyError)):
    name, hint = re.search(r"'([^'\"]+)'", text), re.search(r'Did you mean "([^"]+)"', text)
    text = f"unknown field {name.group(1)!r}" if name else "unknown field"
    text += f"; did you mean {hint.group(1)!r}?" if hint else ""
  overrides = [arg for arg in argv[1:] if arg.startswith("--") and "." in arg.split("=")[0]]
  return f"bad config override in {' '.join(overrides)}: {text}" if overrides else text


def config_file_problem(spec: str) -> str | None:
  """Why config file `spec` (PATH[:ARGUMENT]) cannot give a config, or None if it can.

  It is loaded here once more than ml_collections will, so that a missing file, a syntax
  error, a get_config that raises or an argument it does not take is one line, not the
  traceback ml_collections wraps in its flag error.
  """
  path, *argument = spec.split(":", 1)
  file = pathlib.Path(path)
  if not path:
    return "no config file named; use e.g. --config=configs/default.py"
  if not file.is_file():
    folder = file.parent if file.parent.is_dir() else pathlib.Path("configs")
    known = sorted(str(p) for p in folder.glob("*.py") if not p.name.startswith("_"))
    listed = f"; the config files in {folder}/: {', '.join(known)}" if known else ""
    return "no such file" + listed
  try:
    code = compile(file.read_bytes(), str(file), "exec")
  except SyntaxError as error:
    return f"line {error.lineno}: {error.msg}"
  except OSError as error:
    return f"cannot be read: {error.strerror}"
  module = types.ModuleType(file.stem)
  module.__file__ = str(file)
  try:
    exec(code, module.__dict__)  # noqa: S102 - the user's own config file, as ml_collections
  except Exception as error:
    return f"loading it failed: {_located(error, file)}"
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    return "it defines no get_config() function"
  parameters = inspect.signature(get_config).parameters
  if argument and not parameters:
    return f"its get_config() takes no argument, got {argument[0]!r}; drop the ':{argument[0]}'"
  required = [p for p in parameters.values() if p.default is p.empty]
  if not argument and required:
    return f"its get_config() needs an argument: {path}:{required[0].name.upper()}"
  try:
    config = get_config(*argument)
  except Exception as error:
    return f"get_config({', '.join(map(repr, argument))}) failed: {_located(error, file)}"
  if config is None:
    return "its get_config() returned None (a missing return?)"
  return None


def _located(error: Exception, file: pathlib.Path) -> str:
  """`Type: message (line N)`, N the last line of `file` in the error's traceback."""
  lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == str(file)]
  where = f" (line {lines[-1]})" if lines else ""
  return f"{type(error).__name__}: {' '.join(str(error).split())}{where}"
