"""Trains a convzoo model from a config.

  .venv/bin/python train.py --config=configs/default.py --workdir=DIR [--config.FIELD=VALUE ...]

Resumes from the newest checkpoint in DIR; writes TensorBoard events, metrics.jsonl,
curves.png and results.json there.
"""

from __future__ import annotations

import functools
import math
import pathlib
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state

import checkpoints
import cli
import input_pipeline
from input_pipeline import augment
import models
import reporting

SCHEDULES = ("constant", "cosine", "step")
TRAIN_METRICS = ("loss", "top1_error", "learning_rate")  # in the order progress shows them
TOP_K = 5


class TrainState(train_state.TrainState):
  batch_stats: Any  # batch-norm running statistics ({} for networks without batch norm)


# ---------------------------------------------------------------------------------------------
# Config checks: every bad value is reported before data is read or anything is compiled.

def check_config(config: ml_collections.ConfigDict) -> input_pipeline.datasets.DatasetInfo:
  """Raises a ValueError naming the first bad config value; returns the dataset's info."""
  models.check_model_name(config.model.name)
  for field in ("batch_size", "eval_batch_size", "log_every_steps", "eval_every_steps",
                "checkpoint_every_steps", "keep_checkpoints"):
    if config[field] <= 0:
      raise ValueError(f"{field} must be positive, got {config[field]}")
  if config.num_train_steps == -1 and config.num_epochs <= 0:
    raise ValueError(f"num_epochs must be positive, got {config.num_epochs}")
  if config.num_train_steps != -1 and config.num_train_steps <= 0:
    raise ValueError(f"num_train_steps must be positive or -1 (from num_epochs), got {config.num_train_steps}")
  if not config.optimizer.learning_rate > 0:
    raise ValueError(f"optimizer.learning_rate must be positive, got {config.optimizer.learning_rate}")
  if not 0 <= config.optimizer.momentum < 1:
    raise ValueError(f"optimizer.momentum must be in [0, 1), got {config.optimizer.momentum}")
  if config.schedule.name not in SCHEDULES:
    raise ValueError(f"unknown schedule.name {config.schedule.name!r}; known: {', '.join(SCHEDULES)}")
  info = input_pipeline.check_dataset(config)
  if info.num_classes < TOP_K:
    raise ValueError(f"dataset {info.name!r} has {info.num_classes} classes; "
                     f"top-{TOP_K} error needs at least {TOP_K}")
  model = models.create_model(config.model, info.num_classes)
  try:
    models.trace(model, input_pipeline.input_shape(config, info), info.num_classes)
  except ValueError as error:
    raise ValueError(f"model {config.model.name!r}: {error}") from error
  return info


# ---------------------------------------------------------------------------------------------
# Model, optimizer and state.

def steps_per_epoch(config: ml_collections.ConfigDict, num_train_examples: int) -> int:
  return num_train_examples // config.batch_size


def total_steps(config: ml_collections.ConfigDict, num_train_examples: int) -> int:
  if config.num_train_steps != -1:
    return config.num_train_steps
  return int(math.ceil(config.num_epochs * steps_per_epoch(config, num_train_examples)))


def create_learning_rate_fn(config: ml_collections.ConfigDict, num_train_examples: int) -> optax.Schedule:
  """Linear warmup, then the configured schedule (constant, cosine to zero, or step decay)."""
  epoch = steps_per_epoch(config, num_train_examples)
  base, total = config.optimizer.learning_rate, total_steps(config, num_train_examples)
  warmup = min(int(config.schedule.warmup_epochs * epoch), total - 1)
  if config.schedule.name == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, base, warmup, max(total, warmup + 1))
  if config.schedule.name == "step":
    boundaries = {int(e * epoch) - warmup: config.schedule.step_factor
                  for e in config.schedule.step_epochs if int(e * epoch) > warmup}
    after_warmup = optax.piecewise_constant_schedule(base, boundaries)
  else:
    after_warmup = optax.constant_schedule(base)
  if warmup == 0:
    return after_warmup
  return optax.join_schedules([optax.linear_schedule(0.0, base, warmup), after_warmup], [warmup])


def create_optimizer(config: ml_collections.ConfigDict,
                     learning_rate_fn: optax.Schedule) -> optax.GradientTransformation:
  """SGD with momentum; weight decay joins the gradient before momentum (Krizhevsky et al. 2012 §5)."""
  return optax.chain(
      optax.add_decayed_weights(config.optimizer.weight_decay),
      optax.sgd(learning_rate_fn, config.optimizer.momentum or None, config.optimizer.nesterov))


def create_train_state(config: ml_collections.ConfigDict, model, image_shape: tuple[int, ...],
                       tx: optax.GradientTransformation) -> TrainState:
  rng = jax.random.fold_in(jax.random.key(config.seed), 0)
  variables = jax.jit(model.init)(rng, jnp.zeros((1, *image_shape), jnp.float32))
  return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                           batch_stats=variables.get("batch_stats", {}))


def create_model_and_state(config: ml_collections.ConfigDict, data: input_pipeline.Data
                           ) -> tuple[models.ConvNet, optax.Schedule, TrainState]:
  """The network, its learning-rate schedule and a freshly initialised state for `data`."""
  learning_rate_fn = create_learning_rate_fn(config, len(data.train))
  model = models.create_model(config.model, data.info.num_classes)
  state = create_train_state(config, model, input_pipeline.input_shape(config, data.info),
                             create_optimizer(config, learning_rate_fn))
  return model, learning_rate_fn, state


# ---------------------------------------------------------------------------------------------
# Steps: pure functions of (state, batch).

def cross_entropy_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy: [B, classes], [B] → [B]."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def classification_counts(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  """Summed loss, top-1 and top-5 errors and example count over the unmasked examples."""
  top_k = jax.lax.top_k(logits, TOP_K)[1]
  in_top_k = top_k == labels[:, None]
  return {
      "loss": jnp.sum(cross_entropy_loss(logits, labels) * mask),
      "top1_errors": jnp.sum((~in_top_k[:, 0]) * mask),
      "top5_errors": jnp.sum((~in_top_k.any(axis=1)) * mask),
      "count": jnp.sum(mask),
  }


def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array,
               learning_rate_fn: optax.Schedule, preprocess: Callable,
               aux_loss_weights: tuple[tuple[str, float], ...] = ()) -> tuple[TrainState, dict]:
  """One SGD step on a uint8 batch, augmented on the device by `preprocess(images, key)`.

  The keys for augmentation and dropout are folded from `rng` with the step, so a resumed run
  replays them exactly. Auxiliary classifiers (GoogLeNet) add their weighted losses.
  """
  augment_key, dropout_key = jax.random.split(jax.random.fold_in(rng, state.step))
  images = preprocess(batch["image"], augment_key)

  def loss_fn(params):
    (logits, intermediates), updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, images, train=True,
        rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    loss = cross_entropy_loss(logits, batch["label"]).mean()
    for name, weight in aux_loss_weights:
      loss += weight * cross_entropy_loss(intermediates[name], batch["label"]).mean()
    return loss, (logits, updates.get("batch_stats", state.batch_stats))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  top1_error = 100.0 * jnp.mean(jnp.argmax(logits, -1) != batch["label"])
  metrics = {"loss": loss, "top1_error": top1_error,
             "learning_rate": learning_rate_fn(state.step)}
  return new_state, metrics


def eval_step(state: TrainState, batch: dict[str, jax.Array],
              preprocess: Callable) -> dict[str, jax.Array]:
  """Counts over a batch; with several crops per image, their softmax outputs are averaged."""
  crops = preprocess(batch["image"])  # [crops, B, H, W, C]
  apply = lambda images: state.apply_fn(
      {"params": state.params, "batch_stats": state.batch_stats}, images, train=False)[0]
  logits = jax.lax.map(apply, crops)
  if crops.shape[0] == 1:
    return classification_counts(logits[0], batch["label"], batch["mask"])
  mean_probabilities = jnp.mean(jax.nn.softmax(logits), axis=0)
  return classification_counts(jnp.log(mean_probabilities), batch["label"], batch["mask"])


# ---------------------------------------------------------------------------------------------
# Evaluation over a whole split.

def evaluate(state: TrainState, batches: Iterator[dict[str, np.ndarray]],
             jitted_eval_step: Callable) -> dict[str, float]:
  """Top-1/top-5 error (%), mean loss and example count over every batch, each example once."""
  totals = None
  for batch in batches:
    counts = jitted_eval_step(state, batch)
    totals = counts if totals is None else jax.tree.map(jnp.add, totals, counts)
  totals = jax.device_get(totals)
  count = float(totals["count"])
  return {"top1_error": 100.0 * float(totals["top1_errors"]) / count,
          "top5_error": 100.0 * float(totals["top5_errors"]) / count,
          "loss": float(totals["loss"]) / count,
          "num_examples": int(round(count))}


def eval_protocols(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  return ("single", "ten_crop") if config.eval.ten_crop else ("single",)


def create_eval_steps(config: ml_collections.ConfigDict,
                      stats: input_pipeline.ColorStats) -> dict[str, Callable]:
  """A jitted eval step per protocol the config asks for."""
  return {protocol: jax.jit(functools.partial(
              eval_step, preprocess=augment.make_eval_preprocess(config, stats, protocol)))
          for protocol in eval_protocols(config)}


def evaluate_protocols(state: TrainState, data: input_pipeline.Data, config,
                       eval_steps: dict[str, Callable]) -> dict[str, dict[str, float]]:
  """Metrics of every protocol over the whole eval split."""
  return {protocol: evaluate(state, input_pipeline.eval_batches(data.eval, config.eval_batch_size),
                             jitted_eval_step)
          for protocol, jitted_eval_step in eval_steps.items()}


def evaluate_and_record(state: TrainState, data: input_pipeline.Data, config, writer,
                        workdir: pathlib.Path, eval_steps: dict[str, Callable]) -> dict[str, float]:
  """Evaluates every protocol, logs and records each; returns the single-crop metrics."""
  step = int(jax.device_get(state.step))
  results = evaluate_protocols(state, data, config, eval_steps)
  for protocol, metrics in results.items():
    split = "eval" if protocol == "single" else f"eval_{protocol}"
    writer.write(step, split, {k: metrics[k] for k in ("loss", "top1_error", "top5_error")})
    reporting.write_results(workdir, protocol, {**metrics, "step": step})
    print(f"eval ({protocol}) at step {step}: top-1 error {metrics['top1_error']:.2f}% | "
          f"top-5 error {metrics['top5_error']:.2f}% | loss {metrics['loss']:.4f} | "
          f"{metrics['num_examples']} examples", flush=True)
  return {**results["single"], "protocols": results}


# ---------------------------------------------------------------------------------------------
# The training loop.

def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains (resuming from `workdir` if it holds a checkpoint) and returns the final eval metrics."""
  workdir = pathlib.Path(workdir).resolve()  # orbax needs absolute paths
  info = check_config(config)
  checkpoints.check_workdir(config, workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpoints.write_config(config, workdir)

  data = input_pipeline.load_data(config)
  num_train = len(data.train)
  model, learning_rate_fn, state = create_model_and_state(config, data)
  manager = checkpoints.create_manager(workdir, config.keep_checkpoints)
  try:
    restored = checkpoints.restore(manager, state)
    state = state if restored is None else restored
    start_step = int(jax.device_get(state.step))
    print(f"{config.model.name} on {info.name}: {num_train} training examples, "
          f"{steps_per_epoch(config, num_train)} steps/epoch, {total_steps(config, num_train)} steps"
          + (f", resuming at step {start_step}" if start_step else ""), flush=True)
    final_metrics = train_loop(config, state, data, workdir, manager,
                               create_train_step(config, model, learning_rate_fn, data.stats))
  finally:
    manager.wait_until_finished()  # a save in flight completes even when the loop fails
    manager.close()
  print(f"curves written to {reporting.plot_curves(workdir)}", flush=True)
  return final_metrics


def create_train_step(config: ml_collections.ConfigDict, model: models.ConvNet,
                      learning_rate_fn: optax.Schedule, stats: input_pipeline.ColorStats) -> Callable:
  """The jitted train step for `model`; it consumes (donates) the state it is given."""
  return jax.jit(functools.partial(train_step, learning_rate_fn=learning_rate_fn,
                                   preprocess=augment.make_train_preprocess(config, stats),
                                   aux_loss_weights=tuple(model.aux_loss_weights().items())),
                 donate_argnums=0)


def train_loop(config: ml_collections.ConfigDict, state: TrainState, data: input_pipeline.Data,
               workdir: pathlib.Path, manager, jitted_train_step: Callable) -> dict[str, Any]:
  """Steps from the state's step to the last, logging, evaluating and checkpointing on schedule."""
  start_step = int(jax.device_get(state.step))
  num_steps = total_steps(config, len(data.train))
  step_rng = jax.random.fold_in(jax.random.key(config.seed), 1)
  eval_steps = create_eval_steps(config, data.stats)
  batches = input_pipeline.train_batches(data.train, config.batch_size, config.seed, start_step)
  writer = reporting.MetricsWriter(workdir, start_step)
  progress = reporting.Progress(start_step, num_steps, config.batch_size)
  pending: list[dict[str, jax.Array]] = []
  final_metrics = None
  try:
    for step in range(start_step + 1, num_steps + 1):
      state, metrics = jitted_train_step(state, next(batches), step_rng)
      pending.append(metrics)
      if step % config.log_every_steps == 0 or step == num_steps:
        log_train_metrics(pending, step, progress, writer)
        pending = []
      if step % config.eval_every_steps == 0 or step == num_steps:
        jax.block_until_ready(state)  # the pending train steps count as training time
        eval_start = time.perf_counter()
        final_metrics = evaluate_and_record(state, data, config, writer, workdir, eval_steps)
        progress.pause(time.perf_counter() - eval_start)
      if step % config.checkpoint_every_steps == 0 or step == num_steps:
        checkpoints.save(manager, step, state)
    if final_metrics is None:  # nothing left to train: evaluate the restored state
      final_metrics = evaluate_and_record(state, data, config, writer, workdir, eval_steps)
  finally:
    writer.close()
  return final_metrics


def log_train_metrics(pending: list[dict[str, jax.Array]], step: int,
                      progress: reporting.Progress, writer: reporting.MetricsWriter) -> None:
  """Averages the metrics of the steps since the last log, prints progress, writes them."""
  stacked = jax.device_get(jax.tree.map(lambda *xs: jnp.stack(xs), *pending))
  summary = {name: float(np.mean(stacked[name])) for name in TRAIN_METRICS}
  check_finite(summary["loss"], step)
  print(progress.line(step, summary), flush=True)
  writer.write(step, "train", {**summary, "images_per_second": progress.images_per_second})


def check_finite(loss: float, step: int) -> None:
  if not math.isfinite(loss):
    raise FloatingPointError(f"training loss became {loss} by step {step}; stopping "
                             "(the last checkpoint is kept)")


# ---------------------------------------------------------------------------------------------
# Command line.

def report(metrics: dict[str, Any]) -> str:
  return (f"test top-1 error {metrics['top1_error']:.2f}% | top-5 error "
          f"{metrics['top5_error']:.2f}% ({metrics['num_examples']} examples)")


if __name__ == "__main__":
  cli.define_flags()
  cli.run(train_and_evaluate, report)
