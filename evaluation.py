"""Evaluation: the eval step, whole-split top-1/top-5 error under each crop protocol, and the
newest checkpoint of a workdir evaluated on the config's eval split (what eval.py runs).

Every example counts exactly once, whatever the batch size or number of devices: batches are
padded and masked (input_pipeline.eval_batches) and the counts summed over the devices.
"""

from __future__ import annotations

import functools
import pathlib
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

import checkpoints
import config_rules
import experiment
import input_pipeline
import parallel
import records
import workdirs
from experiment import TOP_K, TrainState
from input_pipeline import augment
from models import conv
from reporting import predictions as saved_predictions

PROTOCOLS = ("single", "ten_crop")  # the centre crop; the four corners, the centre and mirrors


def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy: [B, classes], [B] → [B]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def classification_counts(
  logits: jax.Array, labels: jax.Array, mask: jax.Array
) -> dict[str, jax.Array]:
  """Summed loss, top-1 and top-5 errors and example count over the unmasked examples; no
  top-5 count for fewer than 5 classes, where every class is in the top 5."""
  top_k = jax.lax.top_k(logits, min(TOP_K, logits.shape[-1]))[1]
  in_top_k = top_k == labels[:, None]
  counts = {
    "loss": jnp.sum(cross_entropy_loss(logits, labels) * mask),
    "top1_errors": jnp.sum((~in_top_k[:, 0]) * mask),
    "count": jnp.sum(mask),
  }
  if top_k.shape[1] == TOP_K:
    counts["top5_errors"] = jnp.sum((~in_top_k.any(axis=1)) * mask)
  return counts


def eval_step(
  state: TrainState, batch: dict[str, jax.Array], preprocess: Callable
) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """Counts over the global batch, and this device's per-example predictions
  (`example_predictions`); several crops of an image average their softmax outputs."""
  crops = preprocess(batch["image"])  # [crops, B, H, W, C]
  apply = lambda images: state.apply_fn(
    {"params": state.params, "batch_stats": state.batch_stats}, images, train=False
  )[0]
  logits = jax.lax.map(apply, crops)
  if crops.shape[0] == 1:
    scores = logits[0]
  else:
    scores = jnp.log(jnp.mean(jax.nn.softmax(logits), axis=0))
  counts = parallel.total(classification_counts(scores, batch["label"], batch["mask"]))
  return counts, example_predictions(scores, batch["label"], batch["mask"])


def example_predictions(
  scores: jax.Array, labels: jax.Array, mask: jax.Array
) -> dict[str, jax.Array]:
  """Per example: the top-5 classes (ranked as `classification_counts` ranks them), their
  probabilities, the true class's probability, the label and the mask."""
  probabilities = jax.nn.softmax(scores)
  top_classes = jax.lax.top_k(scores, min(TOP_K, scores.shape[-1]))[1]
  return {
    "classes": top_classes.astype(jnp.int32),
    "probabilities": jnp.take_along_axis(probabilities, top_classes, axis=-1),
    "true_probability": jnp.take_along_axis(probabilities, labels[:, None], axis=-1)[:, 0],
    "label": labels,
    "mask": mask,
  }


# ---------------------------------------------------------------------------------------------
# Evaluation over a whole split.


def evaluate(
  state: TrainState,
  batches: Iterator[dict[str, np.ndarray]],
  mapped_eval_step: Callable,
  data_parallel: parallel.DataParallel,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Top-1/top-5 error (%), mean loss and example count over every batch, each example once
  (top-5 error None for fewer than 5 classes); and the per-example predictions of the whole
  split, in its order (`classes`, `probabilities`, `true_probability`, `label`)."""
  totals, per_batch = None, []
  for batch in batches:
    counts, predictions = mapped_eval_step(state, data_parallel.shard(batch))
    totals = counts if totals is None else jax.tree.map(jnp.add, totals, counts)
    per_batch.append(predictions)  # kept on the devices: no wait for each batch here
  totals = data_parallel.unreplicate(totals)
  count = float(totals["count"])
  metrics = {
    "top1_error": 100.0 * float(totals["top1_errors"]) / count,
    "top5_error": 100.0 * float(totals["top5_errors"]) / count if "top5_errors" in totals else None,
    "loss": float(totals["loss"]) / count,
    "num_examples": int(round(count)),
  }
  gathered = [data_parallel.gather(predictions) for predictions in per_batch]
  real = np.concatenate([batch.pop("mask") for batch in gathered]) > 0
  predictions = {
    name: np.concatenate([batch[name] for batch in gathered])[real] for name in gathered[0]
  }
  return metrics, predictions


def eval_protocols(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  return PROTOCOLS if config.eval.ten_crop else PROTOCOLS[:1]


def create_eval_steps(
  config: ml_collections.ConfigDict,
  stats: input_pipeline.ColorStats,
  data_parallel: parallel.DataParallel,
) -> dict[str, Callable]:
  """A data-parallel eval step per protocol the config asks for."""
  return {
    protocol: data_parallel.map(
      functools.partial(eval_step, preprocess=augment.make_eval_preprocess(config, stats, protocol))
    )
    for protocol in eval_protocols(config)
  }


def evaluate_protocols(
  state: TrainState,
  data: input_pipeline.Data,
  config,
  eval_steps: dict[str, Callable],
  data_parallel: parallel.DataParallel,
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, np.ndarray]]]:
  """Metrics and per-example predictions of every protocol over the whole eval split
  (replicated `state`)."""
  if "ten_crop" in eval_steps:  # ten times the work of the single crop: say so before it
    parallel.announce(f"evaluating {len(data.eval)} images × 10 crops …")
  results, predictions = {}, {}
  for protocol, mapped_eval_step in eval_steps.items():
    results[protocol], predictions[protocol] = evaluate(
      state,
      input_pipeline.eval_batches(data.eval, config.eval_batch_size, data_parallel.process_part()),
      mapped_eval_step,
      data_parallel,
    )
  return results, predictions


def evaluate_and_record(
  state: TrainState,
  data: input_pipeline.Data,
  config,
  writer,
  workdir: pathlib.Path,
  eval_steps: dict[str, Callable],
  data_parallel: parallel.DataParallel,
) -> dict[str, float]:
  """Evaluates every protocol, logs and records each (results.json, predictions.npz); returns
  the single-crop metrics."""
  step = int(data_parallel.unreplicate(state.step))
  results, predictions = evaluate_protocols(state, data, config, eval_steps, data_parallel)
  if parallel.is_lead_process():
    saved_predictions.write(workdir, step, config.dataset.eval_split, predictions)
  for protocol, metrics in results.items():
    split = "eval" if protocol == "single" else f"eval_{protocol}"
    scalars = {k: metrics[k] for k in ("loss", "top1_error", "top5_error")}
    writer.write(step, split, {k: v for k, v in scalars.items() if v is not None})
    if parallel.is_lead_process():
      records.write_results(workdir, protocol, {**metrics, "step": step})
    parallel.announce(
      f"eval ({protocol}) at step {step}: {errors_text(metrics, ' | ')} | "
      f"loss {metrics['loss']:.4f} | {metrics['num_examples']} examples"
    )
  return {**results["single"], "protocols": results}


def evaluate_workdir(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path
) -> dict[str, dict[str, Any]]:
  """Restores the newest checkpoint in `workdir`, evaluates every protocol, records results.json
  and predictions.npz."""
  workdir = workdirs.check_usable(workdir)  # absolute, as orbax needs
  parallel.initialize_distributed(config)
  data_parallel = parallel.DataParallel(config.num_devices)
  experiment.check_config(config, data_parallel)
  if checkpoints.latest_step(workdir) is None:
    raise ValueError(
      f"no checkpoint in {workdir / checkpoints.CHECKPOINTS}; train first with "
      f"`train.py --workdir={workdir}`"
    )
  checkpoints.check_workdir(config, workdir, config_rules.SHAPE_FIELDS)
  data = input_pipeline.load_data(config)
  _, _, state = experiment.create_for_loaded_data(config, data)  # the structure to restore into
  # Damaged checkpoints are skipped, not moved: a run may be training in this workdir.
  step, state = checkpoints.restore(workdir, state, parallel.announce, set_aside_damaged=False)
  # The run's convolution routes (models/conv.py): the evaluation computes as the run did, and
  # the routes of shapes the run never met (another batch, ten crops) are added to its record.
  lead = parallel.is_lead_process()
  with conv.RouteBook(workdir / conv.ROUTES_FILE, parallel.announce, write=lead):
    results, predictions = evaluate_protocols(
      data_parallel.replicate(state),
      data,
      config,
      create_eval_steps(config, data.stats, data_parallel),
      data_parallel,
    )
  if lead:
    saved_predictions.write(workdir, step, config.dataset.eval_split, predictions)
  for protocol, metrics in results.items():
    metrics["step"] = step
    if lead:
      records.write_results(workdir, protocol, metrics)
  return results


def errors_text(metrics: dict[str, Any], separator: str) -> str:
  """ "top-1 error 9.38%<separator>top-5 error 0.11%" (top-5: "not defined" under 5 classes)."""
  top5 = metrics["top5_error"]
  top5 = f"{top5:.2f}%" if top5 is not None else f"not defined (fewer than {TOP_K} classes)"
  return f"top-1 error {metrics['top1_error']:.2f}%{separator}top-5 error {top5}"


def results_lines(results: dict[str, dict[str, Any]]) -> str:
  """One line per crop protocol: what eval.py prints."""
  return "\n".join(
    f"step {m['step']}, {protocol}: {errors_text(m, ' | ')} | loss {m['loss']:.4f} "
    f"({m['num_examples']} examples)"
    for protocol, m in results.items()
  )
