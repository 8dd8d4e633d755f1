"""An experiment from its config: the checks, the network, its optimizer and a fresh train state.

Training (train.py), evaluation (evaluation.py), ablation studies and the benchmarks all build
through here, so a run and its evaluation agree on every shape and default.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

import checkpoints
import config_rules
import finetune
import input_pipeline
import models
import parallel
import schedules

TOP_K = 5  # top-5 error is reported beside top-1 (where there are 5 classes or more)


class TrainState(train_state.TrainState):
  """Parameters, optimizer state, batch statistics, the PRNG key and the plateau rule's state:
  with the step (which also fixes the data-stream position) everything a resume needs."""

  batch_stats: Any  # batch-norm running statistics ({} for networks without batch norm)
  rng: Any  # uint32 key data; step keys are folded from it with the step
  plateau: schedules.Plateau

  def apply_scaled_gradients(self, grads: Any, scale: jax.Array, **changes) -> TrainState:
    """An optimizer step whose updates are multiplied by `scale` (the plateau factor)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    updates = jax.tree.map(lambda update: scale * update, updates)
    return self.replace(
      step=self.step + 1,
      params=optax.apply_updates(self.params, updates),
      opt_state=opt_state,
      **changes,
    )


def check_config(
  config: ml_collections.ConfigDict, data_parallel: parallel.DataParallel | None = None
) -> input_pipeline.datasets.DatasetInfo:
  """Raises a ValueError naming the first bad config value; returns the dataset's info.

  Nothing is read but the dataset's metadata, and nothing is compiled: the network is traced.
  """
  models.entry(config.model.name)
  config_rules.check_training(config)
  schedules.check(config)
  if data_parallel is not None:
    data_parallel.check_batch_size("batch_size", config.batch_size)
    data_parallel.check_batch_size("eval_batch_size", config.eval_batch_size)
  info = input_pipeline.check_dataset(config)
  train_examples = input_pipeline.datasets.split_size(info, config.dataset.train_split)
  if train_examples and not info.classes and config.batch_size > train_examples:
    raise ValueError(
      f"batch_size {config.batch_size} is larger than the training split "
      f"({train_examples} examples)"
    )
  if info.num_classes < 2:
    raise ValueError(f"dataset {info.name!r} has {info.num_classes} class; classifying needs 2")
  model = models.create_model(config.model, info.num_classes)
  try:
    variables, _ = models.trace(model, input_pipeline.input_shape(config, info), info.num_classes)
  except ValueError as error:
    raise ValueError(f"model {config.model.name!r}: {error}") from error
  finetune.check(config, variables["params"])
  if config.init_from and not pathlib.Path(config.init_from, checkpoints.CHECKPOINTS).is_dir():
    raise ValueError(f"init_from {config.init_from}: no checkpoints folder there")
  return info


def create_optimizer(
  config: ml_collections.ConfigDict, learning_rate_fn: optax.Schedule, head: str = ""
) -> optax.GradientTransformation:
  """SGD with momentum; weight decay joins the gradient before momentum (Krizhevsky et al. 2012 §5).

  Frozen layers and learning-rate multipliers (`finetune`) make groups; `head` is the layer a
  linear probe trains.
  """
  make = lambda: optax.chain(
    optax.add_decayed_weights(config.optimizer.weight_decay),
    optax.sgd(learning_rate_fn, config.optimizer.momentum or None, config.optimizer.nesterov),
  )
  return finetune.grouped(config.optimizer, head, make)


def create_train_state(
  config: ml_collections.ConfigDict,
  model: models.ConvNet,
  image_shape: tuple[int, ...],
  tx: optax.GradientTransformation,
) -> TrainState:
  """A fresh state on the host (numpy leaves), ready to be replicated or restored into."""
  seed_key = jax.random.key(config.seed)
  init_key, step_key = jax.random.fold_in(seed_key, 0), jax.random.fold_in(seed_key, 1)
  # By XLA's convolutions: the parameters are the initializers' alone, and the CPU route would
  # measure every layer's shape at batch 1, a shape no step uses (AlexNet: 5 measurements).
  variables = jax.jit(models.for_shapes(model).init)(
    init_key, jnp.zeros((1, *image_shape), jnp.float32)
  )
  state = TrainState.create(
    apply_fn=model.apply,
    params=variables["params"],
    tx=tx,
    batch_stats=variables.get("batch_stats", {}),
    rng=jax.random.key_data(step_key),
    plateau=schedules.Plateau.create(),
  )
  return jax.tree.map(np.asarray, jax.device_get(state))


def create_model_and_state(
  config: ml_collections.ConfigDict,
  num_classes: int,
  image_shape: tuple[int, ...],
  num_train_examples: int,
) -> tuple[models.ConvNet, optax.Schedule, TrainState]:
  """The network, its learning-rate schedule and a freshly initialised state."""
  learning_rate_fn = schedules.create_learning_rate_fn(config, num_train_examples)
  # The batch axis is named so that batch norm and dropout span the global batch when training.
  model = models.create_model(config.model, num_classes).clone(axis_name=parallel.AXIS)
  state = create_train_state(
    config, model, image_shape, create_optimizer(config, learning_rate_fn, model.layers[-1].name)
  )
  return model, learning_rate_fn, state


def create_for_loaded_data(
  config: ml_collections.ConfigDict, data: input_pipeline.Data
) -> tuple[models.ConvNet, optax.Schedule, TrainState]:
  """`create_model_and_state` for the loaded dataset `data`."""
  return create_model_and_state(
    config, data.info.num_classes, input_pipeline.input_shape(config, data.info), len(data.train)
  )


def model_and_input(
  config: ml_collections.ConfigDict,
) -> tuple[models.ConvNet, tuple[int, int, int], int]:
  """The config's network, its input shape and class count: what training on the config's
  dataset would see, else (dataset not prepared here) the config's crop, or the network's
  native input, and the network's native classes."""
  entry = models.entry(config.model.name)
  shape, classes = entry.input_shape, entry.num_classes
  try:
    info = input_pipeline.check_dataset(config)
    shape, classes = input_pipeline.input_shape(config, info), info.num_classes
  except ValueError:
    size = config.dataset.crop_size or shape[0]
    shape = (size, size, shape[2])
  return models.create_model(config.model, classes), shape, classes
