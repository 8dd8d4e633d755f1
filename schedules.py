"""What changes with the step: the learning-rate schedules and the plateau rule.

A schedule is chosen by `schedule.name`: constant, cosine, step (multiply by `step_factor` at
`step_epochs`) or plateau (multiply by `step_factor` when the evaluation error stops
improving). All of them start with a linear warmup of `warmup_epochs`. The plateau rule is
decided on the host after each evaluation; its state (`Plateau`) travels in the train state
and its checkpoints, and scales every update.
"""

from __future__ import annotations

import math
from typing import Any

import ml_collections
import numpy as np
import optax
from flax import struct

import config_values

SCHEDULES = ("constant", "cosine", "step", "plateau")
MAX_WARMUP_FRACTION = 0.1  # warmup takes at most this share of a run's steps


def check(config: ml_collections.ConfigDict) -> None:
  """Raises a ValueError for an unknown schedule.name (its ranges are in config_rules)."""
  config_values.check_choice("schedule.name", config.schedule.name, SCHEDULES)


# ---------------------------------------------------------------------------------------------
# Training length and the learning rate against the step.


def steps_per_epoch(config: ml_collections.ConfigDict, num_train_examples: int) -> int:
  return num_train_examples // config.batch_size


def total_steps(config: ml_collections.ConfigDict, num_train_examples: int) -> int:
  if config.num_train_steps != -1:
    return config.num_train_steps
  return int(math.ceil(config.num_epochs * steps_per_epoch(config, num_train_examples)))


def create_learning_rate_fn(
  config: ml_collections.ConfigDict, num_train_examples: int
) -> optax.Schedule:
  """Linear warmup (at most MAX_WARMUP_FRACTION of the run), then the configured schedule
  (constant, cosine to zero, or step decay).

  "plateau" follows the constant schedule here; its divisions scale the updates (`Plateau`).
  """
  epoch = steps_per_epoch(config, num_train_examples)
  base, total = config.optimizer.learning_rate, total_steps(config, num_train_examples)
  # A short run (a study's variant, a fine-tune) would otherwise spend itself warming up: a
  # 150-step run with half an epoch of warmup ended at 0.84 of its peak rate, never decayed.
  warmup = min(int(config.schedule.warmup_epochs * epoch), int(MAX_WARMUP_FRACTION * total))
  if config.schedule.name == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, base, warmup, max(total, warmup + 1))
  if config.schedule.name == "step":
    boundaries = {
      int(e * epoch) - warmup: config.schedule.step_factor
      for e in config.schedule.step_epochs
      if int(e * epoch) > warmup
    }
    after_warmup = optax.piecewise_constant_schedule(base, boundaries)
  else:
    after_warmup = optax.constant_schedule(base)
  if warmup == 0:
    return after_warmup
  return optax.join_schedules([optax.linear_schedule(0.0, base, warmup), after_warmup], [warmup])


# ---------------------------------------------------------------------------------------------
# The divide-by-10-on-plateau rule (Krizhevsky et al. 2012 §5; Simonyan & Zisserman §3.1;
# He et al. 2016 §3.4), decided on the host after each evaluation.


@struct.dataclass
class Plateau:
  """The plateau rule's state (every run carries it; only "plateau" changes it)."""

  scale: Any  # float32: the product of the divisions so far, multiplying the learning rate
  best: Any  # float32: the best eval top-1 error so far (%)
  waited: Any  # int32: evaluations since `best` last improved

  @classmethod
  def create(cls) -> Plateau:
    return cls(np.asarray(1.0, np.float32), np.asarray(np.inf, np.float32), np.asarray(0, np.int32))


def update_plateau(
  plateau: Plateau, top1_error: float, schedule: ml_collections.ConfigDict
) -> tuple[Plateau, str | None]:
  """The rule's state after an evaluation, and a message when it divided the learning rate.

  An evaluation improves when its top-1 error is below the best so far by more than
  `plateau_threshold` points; after `plateau_patience` evaluations without improvement the
  learning rate is multiplied by `step_factor` and the count starts again.
  """
  best, waited, scale = float(plateau.best), int(plateau.waited), float(plateau.scale)
  if top1_error < best - schedule.plateau_threshold:
    return Plateau(
      np.asarray(scale, np.float32), np.asarray(top1_error, np.float32), np.asarray(0, np.int32)
    ), None
  waited += 1
  message = None
  if waited >= schedule.plateau_patience:
    new_scale = scale * schedule.step_factor
    message = (
      f"plateau: top-1 error {top1_error:.2f}% has not improved on {best:.2f}% by more "
      f"than {schedule.plateau_threshold:g} for {waited} evaluation(s); learning rate "
      f"× {schedule.step_factor:g} (now × {new_scale:.4g} of the schedule)"
    )
    scale, waited = new_scale, 0
  return Plateau(np.asarray(scale, np.float32), plateau.best, np.asarray(waited, np.int32)), message


def after_evaluation(
  plateau: Plateau, top1_error: float, schedule: ml_collections.ConfigDict
) -> tuple[Plateau, str | None, dict[str, float] | None]:
  """(new state, message if it divided, scalars to log), or (state, None, None) when the
  schedule is not "plateau"."""
  if schedule.name != "plateau":
    return plateau, None, None
  plateau, message = update_plateau(plateau, top1_error, schedule)
  return (
    plateau,
    message,
    {
      "learning_rate_scale": float(plateau.scale),
      "evaluations_without_improvement": int(plateau.waited),
    },
  )
