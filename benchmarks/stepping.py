"""Timing convzoo's real train step on one device-resident batch, shared by the benchmarks."""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def load_config(spec: str):
  """`configs/NAME.py[:ARGUMENT]` → its get_config(ARGUMENT)."""
  path, _, argument = spec.partition(":")
  module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
  return module.get_config(argument) if argument else module.get_config()


def stored_shape(config) -> tuple[int, int, int]:
  """The host-preprocessed image shape a config's dataset feeds the step: Fashion-MNIST's 28×28
  padded by `dataset.pad`, CIFAR's 32×32 padded (He et al. §4.2), ImageNet's central square."""
  dataset = config.dataset
  if dataset.name == "fashion_mnist":
    return (28 + 2 * dataset.pad,) * 2 + (1,)
  if dataset.name.startswith("cifar"):
    return (32 + 2 * dataset.pad,) * 2 + (3,)
  return (dataset.center_crop,) * 2 + (3,)


@dataclasses.dataclass
class SyntheticStep:
  """The data-parallel train step train.py runs (augmentation included), its replicated state
  and one random uint8 batch already on the devices."""

  step: Callable
  state: Any
  batch: Any
  batch_size: int
  parameters: int


def synthetic_train_step(config, batch_size: int, num_classes: int) -> SyntheticStep:
  import experiment
  import parallel
  import training
  from input_pipeline import augment

  config.batch_size = batch_size
  data_parallel = parallel.DataParallel(config.num_devices)
  shape = stored_shape(config)
  size, channels = config.dataset.crop_size or shape[0], shape[2]
  stats = augment.ColorStats(
    np.full(channels, 0.5),
    np.full(channels, 0.25),
    np.full(shape, 0.5),
    np.full(channels, 0.01),
    np.eye(channels),
  )
  model, learning_rate_fn, state = experiment.create_model_and_state(
    config, num_classes, (size, size, channels), 100 * batch_size
  )
  rng = np.random.default_rng(0)
  batch = data_parallel.shard(
    {
      "image": rng.integers(0, 256, (batch_size, *shape), dtype=np.uint8),
      "label": rng.integers(0, num_classes, batch_size).astype(np.int32),
    }
  )
  step = training.create_train_step(config, model, learning_rate_fn, stats, data_parallel)
  parameters = sum(x.size for x in jax.tree.leaves(state.params))
  return SyntheticStep(step, data_parallel.replicate(state), batch, batch_size, parameters)


def seconds_per_step(
  step: Callable, state: Any, batch: Any, steps: int, warmup: int
) -> tuple[Any, float]:
  """(the state after, seconds per call) of `state, _ = step(state, batch)`, timed after
  `warmup` calls (compilation included there)."""
  for _ in range(warmup):
    state, _ = step(state, batch)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, _ = step(state, batch)
  jax.block_until_ready(state)
  return state, (time.perf_counter() - start) / steps


def images_per_second_for(run: SyntheticStep, seconds: float, min_steps: int = 2) -> float:
  """Steps `run` for at least `seconds` (and `min_steps`); its images/s. Keeps the new state."""
  steps, start = 0, time.perf_counter()
  while steps < min_steps or time.perf_counter() - start < seconds:
    run.state, _ = run.step(run.state, run.batch)
    jax.block_until_ready(run.state)
    steps += 1
  return steps * run.batch_size / (time.perf_counter() - start)
