"""When the training loop logs, evaluates and saves a checkpoint.

Each falls every N steps (`log_every_steps`, `eval_every_steps`, `checkpoint_every_steps`) and
at the last step; a stop (SIGTERM, Ctrl-C) logs and checkpoints at once.
"""

from __future__ import annotations

import dataclasses

import ml_collections

LOG, EVALUATE, CHECKPOINT = "log", "evaluate", "checkpoint"


@dataclasses.dataclass(frozen=True)
class LoopEvents:
  """Logging, evaluation and checkpoints fall every N steps and at the last step; a stop
  (SIGTERM) logs and checkpoints at once."""

  last_step: int
  every: dict[str, int]

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, last_step: int) -> LoopEvents:
    return cls(
      last_step,
      {
        LOG: config.log_every_steps,
        EVALUATE: config.eval_every_steps,
        CHECKPOINT: config.checkpoint_every_steps,
      },
    )

  def due(self, step: int, stopping: bool = False) -> frozenset[str]:
    """The actions that fall on `step`."""
    due = {
      action for action, every in self.every.items() if step % every == 0 or step == self.last_step
    }
    return frozenset(due | {LOG, CHECKPOINT} if stopping else due)
