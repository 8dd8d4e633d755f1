"""Orbax checkpoints in `DIR/checkpoints`, and the guard that keeps one workdir to one model."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import ml_collections
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
# Config fields that decide the shapes of the saved parameters.
IDENTITY_FIELDS = ("model", "dataset.name", "dataset.pad", "dataset.resize", "dataset.center_crop",
                   "dataset.image_size")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  if isinstance(tree, dict):
    return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}{key}.").items()}
  return {prefix.rstrip("."): tree}


def identity(config: ml_collections.ConfigDict | dict) -> dict[str, Any]:
  """The identity fields of a config, flattened to dotted names (lists as lists, for JSON)."""
  values = flatten(json.loads(config.to_json()) if hasattr(config, "to_json") else config)
  return {k: v for k, v in values.items()
          if any(k == f or k.startswith(f + ".") for f in IDENTITY_FIELDS)}


def check_workdir(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  """Refuses a workdir whose checkpoints belong to another model or dataset."""
  saved_config = workdir / CONFIG_FILE
  if not saved_config.exists() or not latest_step(workdir):
    return
  saved, current = identity(json.loads(saved_config.read_text())), identity(config)
  differences = [f"{k}: {saved.get(k)!r} in the workdir, {current.get(k)!r} now"
                 for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
  if differences:
    raise ValueError(f"workdir {workdir} holds checkpoints of another model or dataset ("
                     + "; ".join(differences) + "); use another --workdir")


def write_config(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> None:
  (workdir / CONFIG_FILE).write_text(config.to_json(indent=2) + "\n")


def create_manager(workdir: pathlib.Path, keep: int) -> ocp.CheckpointManager:
  """Keeps the newest `keep` checkpoints; the caller decides when to save."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=True)
  return ocp.CheckpointManager(workdir / "checkpoints", options=options)


def latest_step(workdir: pathlib.Path) -> int | None:
  folder = workdir / "checkpoints"
  if not folder.exists():
    return None
  steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
  return max(steps, default=None)


def restore(manager: ocp.CheckpointManager, abstract_state: Any) -> Any | None:
  """The newest checkpoint restored into the structure of `abstract_state`, or None if there is none."""
  step = manager.latest_step()
  if step is None:
    return None
  try:
    return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
  except (ValueError, KeyError, TypeError) as error:
    raise ValueError(f"checkpoint {manager.directory / str(step)} does not fit this model "
                     f"({str(error).splitlines()[0]}); use another --workdir") from error


def save(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
  """Starts an asynchronous save of `state` as checkpoint `step`."""
  manager.save(step, args=ocp.args.StandardSave(state), force=True)
