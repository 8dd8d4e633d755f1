"""Evaluates the newest checkpoint of a workdir on the config's eval split.

  .venv/bin/python eval.py --config=configs/default.py --workdir=DIR [--config.FIELD=VALUE ...]

Prints top-1 and top-5 error and writes them into DIR/results.json.
"""

from __future__ import annotations

import pathlib
from typing import Any

import ml_collections

import checkpoints
import cli
import input_pipeline
import parallel
import reporting
import train


def evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Restores the newest checkpoint in `workdir`, evaluates every protocol, records results.json."""
  workdir = pathlib.Path(workdir).resolve()  # orbax needs absolute paths
  parallel.initialize_distributed(config)
  devices = parallel.DataParallel(config.num_devices)
  train.check_config(config, devices)
  if checkpoints.latest_step(workdir) is None:
    raise ValueError(f"no checkpoint in {workdir / 'checkpoints'}; train first with "
                     f"`train.py --workdir={workdir}`")
  checkpoints.check_workdir(config, workdir, checkpoints.SHAPE_FIELDS)
  data = input_pipeline.load_data(config)
  _, _, state = train.create_model_and_state(config, data)  # the structure to restore into
  manager = checkpoints.create_manager(workdir, config.keep_checkpoints)
  try:
    state = checkpoints.restore(manager, state, train.announce)
  finally:
    manager.close()
  step = int(state.step)
  results = train.evaluate_protocols(devices.replicate(state), data, config,
                                     train.create_eval_steps(config, data.stats, devices), devices)
  for protocol, metrics in results.items():
    metrics["step"] = step
    if parallel.is_lead_process():
      reporting.write_results(workdir, protocol, metrics)
  return results


def report(results: dict[str, dict[str, Any]]) -> str:
  return "\n".join(
      f"step {m['step']}, {protocol}: top-1 error {m['top1_error']:.2f}% | top-5 error "
      f"{m['top5_error']:.2f}% | loss {m['loss']:.4f} ({m['num_examples']} examples)"
      for protocol, m in results.items())


if __name__ == "__main__":
  cli.define_flags()
  cli.run(evaluate, report)
