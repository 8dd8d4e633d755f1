"""Train-loop throughput against a bare jitted step, and the input pipeline's own speed.

  make bench            (or: .venv/bin/python benchmarks/train_loop.py [--steps=N])

Prints, measured in one run on this machine:
  * loading:   reading the Fashion-MNIST splits from ArrayRecord into memory and normalising them;
  * pipeline:  one epoch of shuffled training batches, host side only;
  * bare step: the same data-parallel train step on one batch already on the devices, nothing else;
  * loop:      training.train_and_evaluate (input pipeline, metrics, logging, checkpoints),
               excluding its first log interval (compile) and the final evaluation;
and the ratio loop / bare step (bare measured before and after the loop, averaged).
"""

from __future__ import annotations

import pathlib
import sys
import tempfile
import time

import jax
from absl import app, flags
from absl import logging as absl_logging

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import experiment  # noqa: E402
import input_pipeline  # noqa: E402
import parallel  # noqa: E402
import records  # noqa: E402
import schedules  # noqa: E402
import training  # noqa: E402
from benchmarks import stepping  # noqa: E402
from configs import default  # noqa: E402

flags.DEFINE_integer(
  "steps", 2000, "training steps for the loop and the bare step", lower_bound=300
)


def time_loading(config) -> tuple[input_pipeline.Data, float]:
  start = time.perf_counter()
  data = input_pipeline.load_data(config)
  return data, time.perf_counter() - start


def time_pipeline_epoch(config, data) -> float:
  """Images/s of the host-side training batches over one epoch."""
  steps = schedules.steps_per_epoch(config, len(data.train))
  batches = input_pipeline.train_batches(data.train, config.batch_size, config.seed)
  start = time.perf_counter()
  for _ in range(steps):
    next(batches)
  return steps * config.batch_size / (time.perf_counter() - start)


def time_bare_step(config, data, steps: int) -> float:
  """Images/s of the data-parallel train step alone, on one device-resident batch."""
  data_parallel = parallel.DataParallel(config.num_devices)
  model, learning_rate_fn, state = experiment.create_for_loaded_data(config, data)
  state = data_parallel.replicate(state)
  batch = data_parallel.shard(
    next(input_pipeline.train_batches(data.train, config.batch_size, config.seed))
  )
  step = training.create_train_step(config, model, learning_rate_fn, data.stats, data_parallel)
  _, seconds = stepping.seconds_per_step(step, state, batch, steps, warmup=20)
  return config.batch_size / seconds


def time_loop(config, steps: int) -> float:
  """Images/s of the whole training loop, from its logged intervals after the first."""
  config.num_train_steps = steps
  config.eval_every_steps = steps
  config.log_every_steps = 100
  config.checkpoint_every_steps = 500
  with tempfile.TemporaryDirectory() as workdir:
    training.train_and_evaluate(config, workdir)
    rows = records.read_metrics(pathlib.Path(workdir))["train"][1:]
  previous = [100] + [r["step"] for r in rows[:-1]]
  images = [(r["step"] - p) * config.batch_size for r, p in zip(rows, previous, strict=True)]
  seconds = sum(n / r["images_per_second"] for n, r in zip(images, rows, strict=True))
  return sum(images) / seconds


def main(argv):
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)
  parallel.configure_cpu_devices()
  steps = flags.FLAGS.steps
  config = default.get_config()
  data, load_seconds = time_loading(config)
  pipeline = time_pipeline_epoch(config, data)
  bare_before = time_bare_step(config, data, steps)
  loop = time_loop(config, steps)
  bare_after = time_bare_step(config, data, steps)
  bare = (bare_before + bare_after) / 2
  print(
    f"\n{config.model.name} on {config.dataset.name}, batch {config.batch_size}, "
    f"{jax.device_count()} {jax.default_backend()} device(s), {steps} steps"
  )
  print(
    f"loading (ArrayRecord → memory, with colour statistics): {load_seconds:.1f} s for "
    f"{len(data.train) + len(data.eval)} images"
  )
  print(
    f"input pipeline, host only: {pipeline:,.0f} img/s "
    f"({len(data.train) / pipeline:.2f} s per epoch)"
  )
  print(f"bare step:  {bare:,.0f} img/s (before {bare_before:,.0f}, after {bare_after:,.0f})")
  print(f"train loop:       {loop:,.0f} img/s")
  print(f"loop / bare step: {loop / bare:.3f}")


if __name__ == "__main__":
  app.run(main)
