"""Orbax checkpoints in `DIR/checkpoints`, and the guard that keeps one workdir to one run.

Every process takes part in every save and restore (orbax synchronises them and writes each
array once); the state is passed as host numpy, one copy, whatever the number of devices.
This is the one module that knows where checkpoints live and how they are laid out: others
list, read and write them through it.
"""

from __future__ import annotations

import errno
import json
import pathlib
import shutil
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

import config_rules

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
UNRESTORABLE = "unrestorable_checkpoints"  # where checkpoints that fail to restore are moved
ITEM = "default"  # the folder of the state inside a step's (a CheckpointManager's single item)
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # how orbax names a save in progress


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}{key}.").items()}
  return {prefix.rstrip("."): tree}


def select_fields(
  config: ml_collections.ConfigDict | dict, fields: tuple[str, ...] | None = None
) -> dict[str, Any]:
  """The given fields (and their sub-fields; None: all) of a config, flattened to dotted names
  (tuples as lists, as in JSON); fields saved under an old name are reported under the new one."""
  text = config.to_json() if hasattr(config, "to_json") else json.dumps(config)
  values = flatten(json.loads(text))
  values = {config_rules.RENAMED_FIELDS.get(k, k): v for k, v in values.items()}
  if fields is None:
    return values
  return {k: v for k, v in values.items() if any(k == f or k.startswith(f + ".") for f in fields)}


def config_differences(
  saved: ml_collections.ConfigDict | dict,
  current: ml_collections.ConfigDict | dict,
  fields: tuple[str, ...] | None = None,
) -> dict[str, tuple[Any, Any]]:
  """{dotted field: (saved value, current value)} wherever two configs differ (`select_fields`)."""
  before, now = select_fields(saved, fields), select_fields(current, fields)
  return {
    k: (before.get(k), now.get(k))
    for k in sorted(set(before) | set(now))
    if before.get(k) != now.get(k)
  }


def check_workdir(
  config: ml_collections.ConfigDict,
  workdir: pathlib.Path,
  fields: tuple[str, ...] = config_rules.RESUME_FIELDS,
) -> None:
  """Refuses a workdir whose checkpoints belong to another model, dataset or incompatible run."""
  saved_config = workdir / CONFIG_FILE
  if not saved_config.exists() or not latest_step(workdir):
    return
  try:
    saved = json.loads(saved_config.read_text())
  except (UnicodeDecodeError, json.JSONDecodeError) as error:
    raise ValueError(
      f"{saved_config} cannot be read as a config ({error}); it records the config of the run "
      "whose checkpoints are beside it: restore it, delete it (the checkpoints are still checked "
      "against the network), or use another --workdir"
    ) from None
  differences = [
    f"{field}: {before!r} in the workdir, {now!r} now"
    for field, (before, now) in config_differences(saved, config, fields).items()
  ]
  if differences:
    raise ValueError(
      f"workdir {workdir} holds checkpoints of another model, dataset or "
      "incompatible config (" + "; ".join(differences) + "); use another --workdir"
    )


def write_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  (workdir / CONFIG_FILE).write_text(config.to_json(indent=2) + "\n")


def create_manager(workdir: pathlib.Path, keep: int) -> ocp.CheckpointManager:
  """Keeps the newest `keep` checkpoints; the caller decides when to save.

  Saves are asynchronous on one host. Across hosts they are synchronous: orbax's background
  commit runs collectives of its own, which can interleave with the train step's in a
  different order on each host and deadlock them (measured here with 2 processes on CPU).
  The temporary folders of saves that never finished (a kill, a full disk) are removed.
  """
  options = ocp.CheckpointManagerOptions(
    max_to_keep=keep,
    enable_async_checkpointing=jax.process_count() == 1,
    cleanup_tmp_directories=True,
  )
  return ocp.CheckpointManager(workdir / CHECKPOINTS, options=options)


def steps(workdir: str | pathlib.Path) -> list[int]:
  """The steps of the checkpoints in `workdir`, oldest first (unfinished saves are not steps)."""
  folder = pathlib.Path(workdir) / CHECKPOINTS
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


def latest_step(workdir: str | pathlib.Path) -> int | None:
  """The step of the newest checkpoint in `workdir`, or None."""
  return max(steps(workdir), default=None)


def step_folder(workdir: str | pathlib.Path, step: int) -> pathlib.Path:
  return pathlib.Path(workdir).resolve() / CHECKPOINTS / str(step)


def read(workdir: str | pathlib.Path, step: int, target: Any = None) -> Any:
  """Checkpoint `step` of `workdir`, into the structure of `target` if given, else as saved
  (nested dicts of numpy arrays)."""
  checkpointer = ocp.StandardCheckpointer()
  try:
    return checkpointer.restore(step_folder(workdir, step) / ITEM, target)
  finally:
    checkpointer.close()


def read_newest(
  workdir: str | pathlib.Path, purpose: str, report: Callable[[str], None] = print
) -> tuple[int, Any]:
  """(step, state as saved) of the newest readable checkpoint; a ValueError names `purpose` if
  there is none. Damaged newer ones are reported and skipped, but not moved (not our run)."""
  step, state = restore(workdir, None, report, set_aside_damaged=False)
  if state is None:
    raise ValueError(f"{purpose}: no checkpoint in {pathlib.Path(workdir).resolve() / CHECKPOINTS}")
  return step, state


def restore(
  workdir: str | pathlib.Path,
  target: Any,
  report: Callable[[str], None] = print,
  set_aside_damaged: bool = True,
) -> tuple[int | None, Any]:
  """(step, state) of the newest checkpoint in `workdir`, restored into the structure of
  `target` (as saved when None); (None, None) if there is no checkpoint.

  Each checkpoint is judged on its own, newest first. One that is damaged or incomplete (a
  crash or a full disk during its save, a failing disk) is reported, moved to
  `DIR/unrestorable_checkpoints` (never deleted) and the next older one is tried; healthy
  ones are never moved. One that reads but holds another network or optimizer state (its
  arrays' names or shapes differ from `target`'s) is a ValueError naming the difference, and
  nothing is moved. If every checkpoint is damaged, a ValueError says so.
  """
  workdir = pathlib.Path(workdir).resolve()
  wanted = layout(target) if target is not None else None
  failures = []
  for step in reversed(steps(workdir)):
    try:
      saved = saved_layout(step_folder(workdir, step))
    except Exception as error:  # the reader's errors for damaged files are of many types
      failures.append(_damaged(workdir, step, error, report, set_aside_damaged))
      continue
    if wanted is not None:
      _check_layout(step_folder(workdir, step), saved, wanted)
    try:
      return step, read(workdir, step, target)
    except Exception as error:
      failures.append(_damaged(workdir, step, error, report, set_aside_damaged))
  if failures:
    where = f"; they were moved to {workdir / UNRESTORABLE}" if set_aside_damaged else ""
    raise ValueError(
      f"no checkpoint in {workdir / CHECKPOINTS} can be restored ("
      + "; ".join(failures)
      + ")"
      + where
    )
  return None, None


def _damaged(
  workdir: pathlib.Path,
  step: int,
  error: Exception,
  report: Callable[[str], None],
  set_aside_damaged: bool,
) -> str:
  """Reports checkpoint `step` as unrestorable (and moves it aside); returns why, in short."""
  reason = _short(error)
  where = f"moved to {set_aside(workdir / CHECKPOINTS, step)} and " if set_aside_damaged else ""
  report(f"warning: checkpoint of step {step} cannot be restored ({reason}); {where}skipped")
  return f"step {step}: {reason}"


def _short(error: Exception, limit: int = 300) -> str:
  """An error's message on one line, cut at `limit` characters (orbax's run to pages)."""
  text = " ".join(str(error).split()) or type(error).__name__
  return text if len(text) < limit else text[:limit] + "…"


def layout(tree: Any) -> dict[str, tuple[int, ...]]:
  """Every array of a state as `dotted.name → shape`, named as orbax names them on disk."""

  def name(key: Any) -> str:
    for attribute in ("key", "name", "idx"):  # dict keys, dataclass fields, sequence items
      if hasattr(key, attribute):
        return str(getattr(key, attribute))
    return str(key)

  return {
    ".".join(name(key) for key in path): tuple(np.shape(leaf))
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
  }


def saved_layout(folder: pathlib.Path) -> dict[str, tuple[int, ...]]:
  """The arrays' names and shapes recorded in a checkpoint (its metadata, no arrays read)."""
  if not (folder / ITEM / "_METADATA").is_file():
    raise ValueError(f"{folder} is incomplete: it has no {ITEM}/_METADATA (an unfinished save?)")
  # The handler reads the item's own metadata; StandardCheckpointer.metadata would look for
  # step metadata inside the item folder and warn that it is not there.
  return layout(ocp.StandardCheckpointHandler().metadata(folder / ITEM))


def _check_layout(
  folder: pathlib.Path, saved: dict[str, tuple[int, ...]], wanted: dict[str, tuple[int, ...]]
) -> None:
  """A ValueError naming how a checkpoint's arrays differ from the run's (another network)."""

  def network_first(names: set[str]) -> list[str]:  # parameters say more than optimizer slots
    return sorted(names, key=lambda name: (not name.startswith(("params.", "batch_stats.")), name))

  only_saved, only_wanted = set(saved) - set(wanted), set(wanted) - set(saved)
  differences = [f"{k} only in the checkpoint" for k in network_first(only_saved)]
  differences += [f"{k} missing from the checkpoint" for k in network_first(only_wanted)]
  differences += [
    f"{k}: {saved[k]} in the checkpoint, {wanted[k]} now"
    for k in network_first(set(saved) & set(wanted))
    if saved[k] != wanted[k]
  ]
  if differences:
    more = f"; {len(differences) - 4} more" if len(differences) > 4 else ""
    shown = "; ".join(differences[:4]) + more
    raise ValueError(
      f"checkpoint {folder} holds another network or optimizer than this config builds "
      f"({shown}); nothing was changed; use another --workdir, or the config of that run"
    )


def set_aside(folder: pathlib.Path, step: int) -> pathlib.Path:
  """Moves checkpoint `step` out of the manager's sight (the lead process moves, all wait)."""
  destination = folder.parent / UNRESTORABLE / str(step)
  if jax.process_index() == 0:
    destination.parent.mkdir(exist_ok=True)
    suffix = 1
    while destination.exists():  # an earlier failure of the same step stays too
      destination, suffix = folder.parent / UNRESTORABLE / f"{step}.{suffix}", suffix + 1
    (folder / str(step)).rename(destination)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
  return destination


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Starts an asynchronous save of `state` (host numpy) as checkpoint `step` (all processes).

  Waits for the previous save first; a save that failed becomes `save_failed`'s ValueError.
  """
  try:
    manager.save(step, args=ocp.args.StandardSave(state), force=True)
  except Exception as error:
    raise save_failed(pathlib.Path(manager.directory), error) from error


def finish(manager: ocp.CheckpointManager) -> None:
  """Waits for the save in flight and closes the manager; a failed save is a ValueError."""
  try:
    manager.wait_until_finished()
    manager.close()
  except Exception as error:
    raise save_failed(pathlib.Path(manager.directory), error) from error


def save_failed(folder: pathlib.Path, error: Exception) -> ValueError:
  """One line for a save that failed, after removing its partial folder (it only takes space;
  the older checkpoints stay restorable)."""
  partial = sorted(p for p in folder.glob(f"*{TMP_SUFFIX}*") if p.is_dir())
  failed = ", ".join(p.name.split(".")[0] for p in partial) or "?"
  for path in partial:
    shutil.rmtree(path, ignore_errors=True)
  if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or "No space left" in str(error):
    reason, fix = "no space left on the device", f"free space on the disk of {folder} and run"
  else:
    reason, fix = _short(error), "fix that and run"
  newest = latest_step(folder.parent)
  resume = f"resume from step {newest}" if newest is not None else "start afresh"
  return ValueError(
    f"could not save the checkpoint of step {failed} in {folder}: {reason}; its partial "
    f"folder was removed and the earlier checkpoints are intact; {fix} the same command to "
    f"{resume}"
  )
