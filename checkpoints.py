"""Orbax checkpoints in `DIR/checkpoints`, and the guard that keeps one workdir to one run.

Every process takes part in every save and restore (orbax synchronises them and writes each
array once); the state is passed as host numpy, one copy, whatever the number of devices.
This is the one module that knows where checkpoints live and how they are laid out: others
list, read and write them through it.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

import schedules

CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"
UNRESTORABLE = "unrestorable_checkpoints"  # where checkpoints that fail to restore are moved
# Config fields that decide the shapes of the saved state: evaluation needs these to match.
SHAPE_FIELDS = (
  "model",
  "dataset.name",
  "dataset.classes",
  "dataset.pad",
  "dataset.resize",
  "dataset.center_crop",
  "dataset.crop_size",
)
# A resumed run must also share what a step means (the data stream and the random draws) and
# the optimizer state's form, or it would not continue the same run.
RESUME_FIELDS = SHAPE_FIELDS + (
  "dataset.train_split",
  "batch_size",
  "seed",
  "optimizer.momentum",
  "optimizer.nesterov",
  "optimizer.frozen",
  "optimizer.lr_multipliers",
  "optimizer.linear_probe",
  *schedules.RESUME_FIELDS,
)
# Fields renamed since a workdir's config.json may have been written: old name → new name.
RENAMED_FIELDS = {"dataset.image_size": "dataset.crop_size"}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}{key}.").items()}
  return {prefix.rstrip("."): tree}


def select_fields(
  config: ml_collections.ConfigDict | dict, fields: tuple[str, ...]
) -> dict[str, Any]:
  """The given fields (and their sub-fields) of a config, flattened to dotted names (lists as
  lists, as in JSON); fields saved under an old name are reported under the new one."""
  values = flatten(json.loads(config.to_json()) if hasattr(config, "to_json") else config)
  values = {RENAMED_FIELDS.get(k, k): v for k, v in values.items()}
  return {k: v for k, v in values.items() if any(k == f or k.startswith(f + ".") for f in fields)}


def check_workdir(
  config: ml_collections.ConfigDict, workdir: pathlib.Path, fields: tuple[str, ...] = RESUME_FIELDS
) -> None:
  """Refuses a workdir whose checkpoints belong to another model, dataset or incompatible run."""
  saved_config = workdir / CONFIG_FILE
  if not saved_config.exists() or not latest_step(workdir):
    return
  saved = select_fields(json.loads(saved_config.read_text()), fields)
  current = select_fields(config, fields)
  differences = [
    f"{k}: {saved.get(k)!r} in the workdir, {current.get(k)!r} now"
    for k in sorted(set(saved) | set(current))
    if saved.get(k) != current.get(k)
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
  """
  options = ocp.CheckpointManagerOptions(
    max_to_keep=keep, enable_async_checkpointing=jax.process_count() == 1
  )
  return ocp.CheckpointManager(workdir / CHECKPOINTS, options=options)


def latest_step(workdir: str | pathlib.Path) -> int | None:
  """The step of the newest checkpoint in `workdir`, or None."""
  folder = pathlib.Path(workdir) / CHECKPOINTS
  if not folder.is_dir():
    return None
  return max((int(p.name) for p in folder.iterdir() if p.name.isdigit()), default=None)


def step_folder(workdir: str | pathlib.Path, step: int) -> pathlib.Path:
  return pathlib.Path(workdir).resolve() / CHECKPOINTS / str(step)


def read(workdir: str | pathlib.Path, step: int) -> Any:
  """Checkpoint `step` of `workdir` as saved (nested dicts of numpy arrays), no target needed."""
  # A manager that saves nothing and creates nothing (orbax's read_only option does the same
  # but logs three warnings per read).
  options = ocp.CheckpointManagerOptions(create=False)
  with ocp.CheckpointManager(
    pathlib.Path(workdir).resolve() / CHECKPOINTS, options=options
  ) as manager:
    return manager.restore(step, args=ocp.args.StandardRestore())


def read_newest(workdir: str | pathlib.Path, purpose: str) -> tuple[int, Any]:
  """(step, state as saved) of the newest checkpoint; a ValueError names `purpose` if none."""
  step = latest_step(workdir)
  if step is None:
    raise ValueError(f"{purpose}: no checkpoint in {pathlib.Path(workdir).resolve() / CHECKPOINTS}")
  return step, read(workdir, step)


def restore(
  manager: ocp.CheckpointManager, target: Any, report: Callable[[str], None] = print
) -> Any | None:
  """The newest checkpoint that restores into the structure of `target` (None if there is none).

  Newer ones that fail to restore (corrupt, half-written) are reported and moved to
  `DIR/unrestorable_checkpoints`, never deleted; if none restores, a ValueError says why.
  """
  failures = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return manager.restore(step, args=ocp.args.StandardRestore(target))
    except Exception as error:  # the reader's errors for damaged files are of many types
      reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
      failures.append(f"step {step}: {reason}")
      moved = set_aside(pathlib.Path(manager.directory), step)
      manager.reload()
      report(
        f"warning: checkpoint of step {step} cannot be restored ({reason}); "
        f"moved to {moved} and skipped"
      )
  if failures:
    raise ValueError(
      f"no checkpoint in {manager.directory} can be restored ("
      + "; ".join(failures)
      + "); they were moved to "
      f"{pathlib.Path(manager.directory).parent / UNRESTORABLE}"
    )
  return None


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
  """Starts an asynchronous save of `state` (host numpy) as checkpoint `step` (all processes)."""
  manager.save(step, args=ocp.args.StandardSave(state), force=True)
