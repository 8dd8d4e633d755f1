"""Trains a convzoo model from a config.

  .venv/bin/python train.py --config=configs/default.py --workdir=DIR [--config.FIELD=VALUE ...]

Trains data-parallel on every local device (on CPU, the host is split into $CONVZOO_CPU_DEVICES
devices, one per core up to 8 by default), or on every device of every host with
`--config.distributed.enabled`.
Resumes from the newest restorable checkpoint in DIR; on SIGTERM saves and exits (status 143).
Writes TensorBoard events, metrics.jsonl, curves.png and results.json there.
"""

from __future__ import annotations

import functools
import math
import pathlib
import signal
import threading
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct
from flax.training import train_state

import checkpoints
import cli
import finetune
import input_pipeline
from input_pipeline import augment
import models
import parallel
import reporting

SCHEDULES = ("constant", "cosine", "step", "plateau")
TRAIN_METRICS = ("loss", "top1_error", "learning_rate")  # in the order progress shows them
TOP_K = 5


@struct.dataclass
class Plateau:
  """The divide-on-plateau schedule's state (all schedules carry it; only "plateau" changes it)."""
  scale: Any   # float32: the product of the divisions so far, multiplying the learning rate
  best: Any    # float32: the best eval top-1 error so far (%)
  waited: Any  # int32: evaluations since `best` last improved

  @classmethod
  def create(cls) -> "Plateau":
    return cls(np.asarray(1.0, np.float32), np.asarray(np.inf, np.float32), np.asarray(0, np.int32))


class TrainState(train_state.TrainState):
  """Parameters, optimizer state, batch statistics, the PRNG key and the schedule's state:
  with the step (which also fixes the data-stream position) everything a resume needs."""
  batch_stats: Any  # batch-norm running statistics ({} for networks without batch norm)
  rng: Any          # uint32 key data; step keys are folded from it with the step
  plateau: Plateau

  def apply_scaled_gradients(self, grads: Any, scale: jax.Array, **changes) -> "TrainState":
    """An optimizer step whose updates are multiplied by `scale` (the plateau factor)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    updates = jax.tree.map(lambda update: scale * update, updates)
    return self.replace(step=self.step + 1, params=optax.apply_updates(self.params, updates),
                        opt_state=opt_state, **changes)


# ---------------------------------------------------------------------------------------------
# Config checks: every bad value is reported before data is read or anything is compiled.

def check_config(config: ml_collections.ConfigDict, devices: parallel.DataParallel | None = None
                 ) -> input_pipeline.datasets.DatasetInfo:
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
  if config.schedule.plateau_patience < 1:
    raise ValueError(f"schedule.plateau_patience must be at least 1 evaluation, "
                     f"got {config.schedule.plateau_patience}")
  if not 0 < config.schedule.step_factor < 1:
    raise ValueError(f"schedule.step_factor must be in (0, 1), got {config.schedule.step_factor}")
  if devices is not None:
    devices.check_batch_size("batch_size", config.batch_size)
    devices.check_batch_size("eval_batch_size", config.eval_batch_size)
  info = input_pipeline.check_dataset(config)
  if info.num_classes < TOP_K:
    raise ValueError(f"dataset {info.name!r} has {info.num_classes} classes; "
                     f"top-{TOP_K} error needs at least {TOP_K}")
  model = models.create_model(config.model, info.num_classes)
  try:
    variables, _ = models.trace(model, input_pipeline.input_shape(config, info), info.num_classes)
  except ValueError as error:
    raise ValueError(f"model {config.model.name!r}: {error}") from error
  finetune.check(config, variables["params"])
  if config.init_from and not (pathlib.Path(config.init_from) / "checkpoints").is_dir():
    raise ValueError(f"init_from {config.init_from}: no checkpoints folder there")
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


def create_optimizer(config: ml_collections.ConfigDict, learning_rate_fn: optax.Schedule,
                     head: str = "") -> optax.GradientTransformation:
  """SGD with momentum; weight decay joins the gradient before momentum (Krizhevsky et al. 2012 §5).

  Frozen layers and learning-rate multipliers (`finetune`) make groups; `head` is the layer a
  linear probe trains.
  """
  make = lambda: optax.chain(
      optax.add_decayed_weights(config.optimizer.weight_decay),
      optax.sgd(learning_rate_fn, config.optimizer.momentum or None, config.optimizer.nesterov))
  return finetune.grouped(config.optimizer, head, make)


def create_train_state(config: ml_collections.ConfigDict, model, image_shape: tuple[int, ...],
                       tx: optax.GradientTransformation) -> TrainState:
  """A fresh state on the host (numpy leaves), ready to be replicated or restored into."""
  seed_key = jax.random.key(config.seed)
  init_key, step_key = jax.random.fold_in(seed_key, 0), jax.random.fold_in(seed_key, 1)
  variables = jax.jit(model.init)(init_key, jnp.zeros((1, *image_shape), jnp.float32))
  state = TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx,
                            batch_stats=variables.get("batch_stats", {}),
                            rng=jax.random.key_data(step_key), plateau=Plateau.create())
  return jax.tree.map(np.asarray, jax.device_get(state))


def create_model_and_state(config: ml_collections.ConfigDict, data: input_pipeline.Data
                           ) -> tuple[models.ConvNet, optax.Schedule, TrainState]:
  """The network, its learning-rate schedule and a freshly initialised state for `data`."""
  learning_rate_fn = create_learning_rate_fn(config, len(data.train))
  # The batch axis is named so that batch norm and dropout span the global batch when training.
  model = models.create_model(config.model, data.info.num_classes).clone(axis_name=parallel.AXIS)
  state = create_train_state(config, model, input_pipeline.input_shape(config, data.info),
                             create_optimizer(config, learning_rate_fn, model.layers[-1].name))
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


def train_step(state: TrainState, batch: dict[str, jax.Array],
               learning_rate_fn: optax.Schedule, preprocess: Callable,
               aux_loss_weights: tuple[tuple[str, float], ...] = ()) -> tuple[TrainState, dict]:
  """One SGD step on this device's share of a global uint8 batch, run on every device at once.

  Gradients, metrics and (in the model) batch statistics are averaged over the global batch.
  Augmentation and dropout keys are folded from the state's key with the step and each
  example's place in the global batch, so a resumed run replays them exactly and any number of
  devices draws the same. Auxiliary classifiers (GoogLeNet) add their weighted losses.
  """
  local_batch = batch["label"].shape[0]
  step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  augment_key, dropout_key = jax.random.split(step_key)
  example_keys = augment.example_keys(augment_key, parallel.example_offset(local_batch),
                                      local_batch)
  images = preprocess(batch["image"], example_keys)

  def loss_fn(params):
    (logits, intermediates), updates = state.apply_fn(
        {"params": params, "batch_stats": state.batch_stats}, images, train=True,
        rngs={"dropout": dropout_key}, mutable=["batch_stats"])
    loss = cross_entropy_loss(logits, batch["label"]).mean()
    for name, weight in aux_loss_weights:
      loss += weight * cross_entropy_loss(intermediates[name], batch["label"]).mean()
    return loss, (logits, updates.get("batch_stats", state.batch_stats))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_scaled_gradients(parallel.mean(grads), state.plateau.scale,
                                           batch_stats=batch_stats)
  top1_error = 100.0 * jnp.mean(jnp.argmax(logits, -1) != batch["label"])
  metrics = parallel.mean({"loss": loss, "top1_error": top1_error})
  metrics["learning_rate"] = learning_rate_fn(state.step) * state.plateau.scale
  return new_state, metrics


def eval_step(state: TrainState, batch: dict[str, jax.Array],
              preprocess: Callable) -> dict[str, jax.Array]:
  """Counts over the global batch; with several crops per image, their softmax outputs are averaged."""
  crops = preprocess(batch["image"])  # [crops, B, H, W, C]
  apply = lambda images: state.apply_fn(
      {"params": state.params, "batch_stats": state.batch_stats}, images, train=False)[0]
  logits = jax.lax.map(apply, crops)
  if crops.shape[0] == 1:
    return parallel.total(classification_counts(logits[0], batch["label"], batch["mask"]))
  mean_probabilities = jnp.mean(jax.nn.softmax(logits), axis=0)
  return parallel.total(classification_counts(jnp.log(mean_probabilities), batch["label"],
                                              batch["mask"]))


# ---------------------------------------------------------------------------------------------
# Evaluation over a whole split.

def evaluate(state: TrainState, batches: Iterator[dict[str, np.ndarray]],
             mapped_eval_step: Callable, devices: parallel.DataParallel) -> dict[str, float]:
  """Top-1/top-5 error (%), mean loss and example count over every batch, each example once."""
  totals = None
  for batch in batches:
    counts = mapped_eval_step(state, devices.shard(batch))
    totals = counts if totals is None else jax.tree.map(jnp.add, totals, counts)
  totals = devices.unreplicate(totals)
  count = float(totals["count"])
  return {"top1_error": 100.0 * float(totals["top1_errors"]) / count,
          "top5_error": 100.0 * float(totals["top5_errors"]) / count,
          "loss": float(totals["loss"]) / count,
          "num_examples": int(round(count))}


def eval_protocols(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  return ("single", "ten_crop") if config.eval.ten_crop else ("single",)


def create_eval_steps(config: ml_collections.ConfigDict, stats: input_pipeline.ColorStats,
                      devices: parallel.DataParallel) -> dict[str, Callable]:
  """A data-parallel eval step per protocol the config asks for."""
  return {protocol: devices.map(functools.partial(
              eval_step, preprocess=augment.make_eval_preprocess(config, stats, protocol)))
          for protocol in eval_protocols(config)}


def evaluate_protocols(state: TrainState, data: input_pipeline.Data, config,
                       eval_steps: dict[str, Callable], devices: parallel.DataParallel
                       ) -> dict[str, dict[str, float]]:
  """Metrics of every protocol over the whole eval split (replicated `state`)."""
  return {protocol: evaluate(state, input_pipeline.eval_batches(
              data.eval, config.eval_batch_size, devices.process_part()), mapped_eval_step, devices)
          for protocol, mapped_eval_step in eval_steps.items()}


def evaluate_and_record(state: TrainState, data: input_pipeline.Data, config, writer,
                        workdir: pathlib.Path, eval_steps: dict[str, Callable],
                        devices: parallel.DataParallel) -> dict[str, float]:
  """Evaluates every protocol, logs and records each; returns the single-crop metrics."""
  step = int(devices.unreplicate(state.step))
  results = evaluate_protocols(state, data, config, eval_steps, devices)
  for protocol, metrics in results.items():
    split = "eval" if protocol == "single" else f"eval_{protocol}"
    writer.write(step, split, {k: metrics[k] for k in ("loss", "top1_error", "top5_error")})
    if parallel.is_lead_process():
      reporting.write_results(workdir, protocol, {**metrics, "step": step})
    announce(f"eval ({protocol}) at step {step}: top-1 error {metrics['top1_error']:.2f}% | "
             f"top-5 error {metrics['top5_error']:.2f}% | loss {metrics['loss']:.4f} | "
             f"{metrics['num_examples']} examples")
  return {**results["single"], "protocols": results}


def announce(message: str) -> None:
  """Prints on the lead process only."""
  if parallel.is_lead_process():
    print(message, flush=True)


# ---------------------------------------------------------------------------------------------
# The divide-by-10-on-plateau schedule (Krizhevsky et al. 2012 §5; Simonyan & Zisserman §3.1;
# He et al. 2016 §3.4), decided on the host after each evaluation.

def update_plateau(plateau: Plateau, top1_error: float, schedule: ml_collections.ConfigDict
                   ) -> tuple[Plateau, str | None]:
  """The schedule's state after an evaluation, and a message when it divided the learning rate.

  An evaluation improves when its top-1 error is below the best so far by more than
  `plateau_threshold` points; after `plateau_patience` evaluations without improvement the
  learning rate is multiplied by `step_factor` and the count starts again.
  """
  best, waited, scale = float(plateau.best), int(plateau.waited), float(plateau.scale)
  if top1_error < best - schedule.plateau_threshold:
    return Plateau(np.asarray(scale, np.float32), np.asarray(top1_error, np.float32),
                   np.asarray(0, np.int32)), None
  waited += 1
  message = None
  if waited >= schedule.plateau_patience:
    new_scale = scale * schedule.step_factor
    message = (f"plateau: top-1 error {top1_error:.2f}% has not improved on {best:.2f}% by more "
               f"than {schedule.plateau_threshold:g} for {waited} evaluation(s); learning rate "
               f"× {schedule.step_factor:g} (now × {new_scale:.4g} of the schedule)")
    scale, waited = new_scale, 0
  return Plateau(np.asarray(scale, np.float32), plateau.best, np.asarray(waited, np.int32)), message


# ---------------------------------------------------------------------------------------------
# The training loop.

class Preemption:
  """Notes a SIGTERM while training; every process agrees on when to stop.

  One host checks its flag at every step; several hosts compare flags at log steps (a
  collective), so that all of them save the same step.
  """

  def __init__(self, every: int):
    self.every, self.signalled, self._previous = every, False, None

  def __enter__(self) -> "Preemption":
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, signum, frame) -> None:
    self.signalled = True

  def requested(self, step: int) -> bool:
    if jax.process_count() > 1 and step % self.every:
      return False
    return parallel.any_process(self.signalled)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> dict[str, Any]:
  """Trains (resuming from `workdir` if it holds a checkpoint) and returns the final eval metrics."""
  workdir = pathlib.Path(workdir).resolve()  # orbax needs absolute paths
  parallel.initialize_distributed(config)
  devices = parallel.DataParallel(config.num_devices)
  info = check_config(config, devices)
  checkpoints.check_workdir(config, workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if parallel.is_lead_process():
    checkpoints.write_config(config, workdir)

  data = input_pipeline.load_data(config)
  num_train = len(data.train)
  model, learning_rate_fn, state = create_model_and_state(config, data)
  manager = checkpoints.create_manager(workdir, config.keep_checkpoints)
  try:
    restored = checkpoints.restore(manager, state, announce)
    if restored is None and config.init_from:
      state = state.replace(**finetune.initialize_from(
          config.init_from, {"params": state.params, "batch_stats": state.batch_stats}, announce,
          config.init_reset))
    state = devices.replicate(state if restored is None else restored)
    start_step = int(devices.unreplicate(state.step))
    announce(f"{config.model.name} on {info.name}: {num_train} training examples, "
             f"{steps_per_epoch(config, num_train)} steps/epoch, {total_steps(config, num_train)} "
             f"steps, batch {config.batch_size} over {devices.describe()}"
             + (f", resuming at step {start_step}" if start_step else ""))
    train_step = create_train_step(config, model, learning_rate_fn, data.stats, devices)
    with Preemption(config.log_every_steps) as preemption:
      final_metrics = train_loop(config, state, data, workdir, manager, train_step, devices,
                                 preemption)
  finally:
    manager.wait_until_finished()  # a save in flight completes even when the loop fails
    manager.close()
  if parallel.is_lead_process():
    announce(f"curves written to {reporting.plot_curves(workdir)}")
  return final_metrics


def create_train_step(config: ml_collections.ConfigDict, model: models.ConvNet,
                      learning_rate_fn: optax.Schedule, stats: input_pipeline.ColorStats,
                      devices: parallel.DataParallel) -> Callable:
  """The data-parallel train step for `model`; it consumes (donates) the state it is given."""
  step = functools.partial(train_step, learning_rate_fn=learning_rate_fn,
                           preprocess=augment.make_train_preprocess(config, stats),
                           aux_loss_weights=tuple(model.aux_loss_weights().items()))
  return devices.map(step, donate=(0,))


def device_batches(config: ml_collections.ConfigDict, data: input_pipeline.Data, start_step: int,
                   devices: parallel.DataParallel) -> Iterator[dict[str, jax.Array]]:
  """This process's share of each training batch, on its devices one step ahead."""
  host_batches = input_pipeline.train_batches(data.train, config.batch_size, config.seed,
                                              start_step, devices.process_part())
  ahead = devices.shard(next(host_batches))
  for batch in host_batches:
    current, ahead = ahead, devices.shard(batch)
    yield current


def train_loop(config: ml_collections.ConfigDict, state: TrainState, data: input_pipeline.Data,
               workdir: pathlib.Path, manager, mapped_train_step: Callable,
               devices: parallel.DataParallel, preemption: Preemption) -> dict[str, Any]:
  """Steps from the state's step to the last, logging, evaluating and checkpointing on schedule.

  Raises cli.Preempted after saving when SIGTERM arrives, and FloatingPointError (before any
  further save) when the loss stops being finite.
  """
  start_step = int(devices.unreplicate(state.step))
  num_steps = total_steps(config, len(data.train))
  eval_steps = create_eval_steps(config, data.stats, devices)
  batches = device_batches(config, data, start_step, devices)
  lead = parallel.is_lead_process()
  writer = reporting.MetricsWriter(workdir, start_step) if lead else reporting.NullWriter()
  progress = reporting.Progress(start_step, num_steps, config.batch_size)
  pending: list[tuple[int, dict[str, jax.Array]]] = []
  final_metrics = None
  try:
    for step in range(start_step + 1, num_steps + 1):
      state, metrics = mapped_train_step(state, next(batches))
      pending.append((step, metrics))
      stop = preemption.requested(step)
      last = step == num_steps
      if step % config.log_every_steps == 0 or last or stop:
        log_train_metrics(pending, progress, writer, devices)
        pending = []
      elif step % config.checkpoint_every_steps == 0:
        check_finite(pending, devices)  # never save a diverged state
      if step % config.eval_every_steps == 0 or last:
        jax.block_until_ready(state)  # the pending train steps count as training time
        eval_start = time.perf_counter()
        final_metrics = evaluate_and_record(state, data, config, writer, workdir, eval_steps,
                                            devices)
        state = apply_plateau(state, final_metrics["top1_error"], config, writer, step, devices)
        progress.pause(time.perf_counter() - eval_start)
      if step % config.checkpoint_every_steps == 0 or last or stop:
        checkpoints.save(manager, step, devices.unreplicate(state))
      if stop and not last:
        raise cli.Preempted(f"stopped by SIGTERM at step {step}/{num_steps}; checkpoint saved in "
                            f"{workdir}; run the same command to resume")
    if final_metrics is None:  # nothing left to train: evaluate the restored state
      final_metrics = evaluate_and_record(state, data, config, writer, workdir, eval_steps,
                                          devices)
  finally:
    writer.close()
  return final_metrics


def apply_plateau(state: TrainState, top1_error: float, config: ml_collections.ConfigDict,
                  writer, step: int, devices: parallel.DataParallel) -> TrainState:
  """Feeds an evaluation to the plateau schedule; logs and applies a division."""
  if config.schedule.name != "plateau":
    return state
  plateau, message = update_plateau(devices.unreplicate(state.plateau), top1_error, config.schedule)
  if message:
    announce(f"step {step}: {message}")
  writer.write(step, "schedule", {"learning_rate_scale": float(plateau.scale),
                                  "evaluations_without_improvement": int(plateau.waited)})
  return state.replace(plateau=devices.replicate(plateau))


def log_train_metrics(pending: list[tuple[int, dict[str, jax.Array]]], progress: reporting.Progress,
                      writer: reporting.MetricsWriter, devices: parallel.DataParallel) -> None:
  """Averages the metrics of the steps since the last log, prints progress, writes them."""
  values = check_finite(pending, devices)
  summary = {name: float(np.mean([v[name] for v in values])) for name in TRAIN_METRICS}
  announce(progress.line(pending[-1][0], summary))
  writer.write(pending[-1][0], "train", {**summary, "images_per_second": progress.images_per_second})


def check_finite(pending: list[tuple[int, dict[str, jax.Array]]], devices: parallel.DataParallel
                 ) -> list[dict[str, float]]:
  """The pending steps' metrics on the host; a FloatingPointError names the first bad step."""
  values = [devices.unreplicate(metrics) for _, metrics in pending]
  for (step, _), value in zip(pending, values):
    if not math.isfinite(float(value["loss"])):
      raise FloatingPointError(f"training loss became {float(value['loss'])} at step {step}; "
                               "stopping (the checkpoints saved before it are kept)")
  return values


# ---------------------------------------------------------------------------------------------
# Command line.

def report(metrics: dict[str, Any]) -> str:
  return (f"test top-1 error {metrics['top1_error']:.2f}% | top-5 error "
          f"{metrics['top5_error']:.2f}% ({metrics['num_examples']} examples)")


if __name__ == "__main__":
  cli.define_flags()
  cli.run(train_and_evaluate, report)
