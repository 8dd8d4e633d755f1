"""Evaluates the newest checkpoint of a workdir on the config's eval split.

  .venv/bin/python eval.py --config=configs/default.py --workdir=DIR [--config.FIELD=VALUE ...]

Prints top-1 and top-5 error and writes them into DIR/results.json.
"""

from __future__ import annotations

import pathlib

import jax
import ml_collections

import checkpoints
import cli
import input_pipeline
import models
import reporting
import train


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, float]:
  """Restores the newest checkpoint in `workdir`, evaluates it and records results.json."""
  workdir = pathlib.Path(workdir).resolve()  # orbax needs absolute paths
  info = train.check_config(config)
  if checkpoints.latest_step(workdir) is None:
    raise ValueError(f"no checkpoint in {workdir / 'checkpoints'}; train first with "
                     f"`train.py --workdir={workdir}`")
  checkpoints.check_workdir(config, workdir)
  data = input_pipeline.load_data(config.dataset)
  model = models.create_model(config.model, info.num_classes)
  learning_rate_fn = train.create_learning_rate_fn(config, len(data.train_labels))
  state = train.create_train_state(config, model, data.train_images.shape[1:],
                                   train.create_optimizer(config, learning_rate_fn))
  manager = checkpoints.create_manager(workdir, config.keep_checkpoints)
  state = checkpoints.restore(manager, state)
  manager.close()
  step = int(jax.device_get(state.step))
  batches = input_pipeline.eval_batches(data.eval_images, data.eval_labels, config.eval_batch_size)
  metrics = train.evaluate(state, batches)
  reporting.write_results(workdir, "single", {**metrics, "step": step})
  return {**metrics, "step": step}


def report(metrics: dict[str, float]) -> str:
  return (f"step {metrics['step']}: top-1 error {metrics['top1_error']:.2f}% | top-5 error "
          f"{metrics['top5_error']:.2f}% | loss {metrics['loss']:.4f} "
          f"({metrics['num_examples']} examples, single crop)")


if __name__ == "__main__":
  cli.define_flags()
  cli.run(evaluate, report)
