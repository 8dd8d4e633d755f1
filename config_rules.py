"""Every config field's allowed values and the fields a resumed or evaluated run must share.

The one home of these rules: `experiment.check_config` (train, eval, studies), the
visualisation plan and the checkpoint checks all read them from here. Fields whose value is a
name from a table (a schedule, an activation, a network) are checked where that table lives,
through `config_values.check_choice`, because the table is what implements the choice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import ml_collections

import config_values


@dataclasses.dataclass(frozen=True)
class Interval:
  """The values a numeric field may take, and how its error says so."""

  low: float
  high: float = math.inf
  low_open: bool = False  # low itself is refused
  high_open: bool = True  # high itself is refused (inf always is)
  wording: str = ""  # the error's "must be …" text

  def contains(self, value: float) -> bool:
    above = value > self.low if self.low_open else value >= self.low
    below = value < self.high if self.high_open else value <= self.high
    return above and below  # NaN fails both


POSITIVE = Interval(0, low_open=True, wording="positive")
NON_NEGATIVE = Interval(0, wording="finite and 0 or more")  # 0 usually means "off" or "default"
POSITIVE_FINITE = Interval(0, low_open=True, wording="positive and finite")
FRACTION = Interval(0, 1, wording="in [0, 1)")
OPEN_FRACTION = Interval(0, 1, low_open=True, wording="in (0, 1)")

# What a training run (and its evaluation, and every variant of a study) checks first.
TRAINING = {
  "batch_size": POSITIVE,
  "eval_batch_size": POSITIVE,
  "log_every_steps": POSITIVE,
  "eval_every_steps": POSITIVE,
  "checkpoint_every_steps": POSITIVE,
  "keep_checkpoints": POSITIVE,
  # Checked whether or not dataset.name is synthetic: a typo waits for no one.
  "dataset.synthetic.image_size": POSITIVE,
  "dataset.synthetic.channels": POSITIVE,
  "dataset.synthetic.num_classes": POSITIVE,
  "dataset.synthetic.train_examples": POSITIVE,
  "dataset.synthetic.eval_examples": POSITIVE,
  "dataset.synthetic.seed": NON_NEGATIVE,
  "dataset.resize": NON_NEGATIVE,
  "dataset.center_crop": NON_NEGATIVE,
  "dataset.pad": NON_NEGATIVE,
  "dataset.crop_size": NON_NEGATIVE,
  "dataset.num_workers": NON_NEGATIVE,
  "dataset.cache_gb": NON_NEGATIVE,
  "augment.pca_lighting": NON_NEGATIVE,
  "optimizer.learning_rate": POSITIVE_FINITE,
  "optimizer.momentum": FRACTION,
  "optimizer.weight_decay": NON_NEGATIVE,
  "schedule.warmup_epochs": NON_NEGATIVE,
  "schedule.step_factor": OPEN_FRACTION,
  "schedule.plateau_threshold": NON_NEGATIVE,
  "schedule.plateau_patience": Interval(1, wording="at least 1 evaluation"),
  "seed": NON_NEGATIVE,
}

# visualize.py's settings (configs/base.py documents each).
VISUALIZE = {
  **{
    f"visualize.{name}": POSITIVE
    for name in (
      "images",
      "units",
      "top_k",
      "batch",
      "occlusion_patch",
      "occlusion_stride",
      "tsne_images",
      "class_model_steps",
      "invert_steps",
      "ig_steps",
      "smooth_grad_samples",
    )
  },
  **{
    f"visualize.{name}": NON_NEGATIVE
    for name in (
      "patch_images",
      "class_model_lr",
      "class_model_l2",
      "class_model_jitter",
      "class_model_blur_every",
      "invert_tv",
      "smooth_grad_noise",
      "seed",
    )
  },
}


def check_ranges(config: ml_collections.ConfigDict, rules: Mapping[str, Interval]) -> None:
  """Raises "FIELD must be …, got VALUE" for the first field outside its interval."""
  for field, interval in rules.items():
    value = config_values.get(config, field)
    if not interval.contains(value):
      raise ValueError(f"{field} must be {interval.wording}, got {value}")


def check_training(config: ml_collections.ConfigDict) -> None:
  """The TRAINING ranges and the run's length (num_train_steps, or num_epochs when it is -1)."""
  if config.num_train_steps == -1 and not config.num_epochs > 0:
    raise ValueError(f"num_epochs must be positive, got {config.num_epochs}")
  if config.num_train_steps != -1 and config.num_train_steps <= 0:
    raise ValueError(
      f"num_train_steps must be positive or -1 (from num_epochs), got {config.num_train_steps}"
    )
  check_ranges(config, TRAINING)


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
# A resumed run must also share what a step means (the data stream and the random draws), the
# optimizer state's form and the schedule's kind (the plateau state means nothing to another).
RESUME_FIELDS = SHAPE_FIELDS + (
  "dataset.train_split",
  "batch_size",
  "seed",
  "optimizer.momentum",
  "optimizer.nesterov",
  "optimizer.frozen",
  "optimizer.lr_multipliers",
  "optimizer.linear_probe",
  "schedule.name",
)
# What eval.py and visualize.py may change of the run they read: how and on what it is evaluated,
# never what was trained (the network, its data's shapes, the preprocessing).
EVALUATION_FIELDS = (
  "eval_batch_size",
  "eval.",
  "dataset.eval_split",
  "dataset.data_dir",
  "dataset.num_workers",
  "dataset.cache_gb",
  "num_devices",
  "distributed.",
  "model.conv_impl",
)
# Fields renamed since a workdir's config.json may have been written: old name → new name.
RENAMED_FIELDS = {"dataset.image_size": "dataset.crop_size"}
