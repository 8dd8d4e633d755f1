"""Training a convzoo model: the pure train step, the loop and `train_and_evaluate`.

Trains data-parallel on every local device (on CPU, the host is split into $CONVZOO_CPU_DEVICES
devices, one per core up to 8 by default), or on every device of every host with
`--config.distributed.enabled`. Resumes from the newest restorable checkpoint in the workdir;
on SIGTERM or Ctrl-C saves and raises `cli.Preempted`. Writes TensorBoard events,
metrics.jsonl, curves.png, results.json and conv_routes.json (the convolution routes the run
uses, obeyed when it resumes) there. `train.py` is its command line.
"""

from __future__ import annotations

import contextlib
import functools
import math
import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

import checkpoints
import cli
import evaluation
import experiment
import finetune
import input_pipeline
import loop_events
import models
import parallel
import records
import schedules
import workdirs
from evaluation import cross_entropy_loss
from experiment import TOP_K, TrainState
from input_pipeline import augment
from models import conv
from reporting import run_page

# Averaged over the steps since the last log and printed; the learning rate is the one the logged
# step used. The top-5 error (more than 5 classes) is written to the logs only.
TRAIN_METRICS = ("loss", "top1_error")


# ---------------------------------------------------------------------------------------------
# The step: a pure function of (state, batch).


def train_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  learning_rate_fn: optax.Schedule,
  preprocess: Callable,
  aux_loss_weights: tuple[tuple[str, float], ...] = (),
) -> tuple[TrainState, dict]:
  """One SGD step on this device's share of a global uint8 batch, run on every device at once.

  Gradients, metrics and (in the model) batch statistics are averaged over the global batch.
  Augmentation and dropout keys are folded from the state's key with the step and each
  example's place in the global batch, so a resumed run replays them exactly and any number of
  devices draws the same. Auxiliary classifiers (GoogLeNet) add their weighted losses.
  """
  local_batch = batch["label"].shape[0]
  step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  augment_key, dropout_key = jax.random.split(step_key)
  example_keys = augment.example_keys(
    augment_key, parallel.example_offset(local_batch), local_batch
  )
  images = preprocess(batch["image"], example_keys)

  def loss_fn(params):
    logits, intermediates, batch_stats = models.apply_for_training(
      state.apply_fn, {"params": params, "batch_stats": state.batch_stats}, images, dropout_key
    )
    loss = cross_entropy_loss(logits, batch["label"]).mean()
    for name, weight in aux_loss_weights:
      loss += weight * cross_entropy_loss(intermediates[name], batch["label"]).mean()
    return loss, (logits, batch_stats)

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_scaled_gradients(
    parallel.mean(grads), state.plateau.scale, batch_stats=batch_stats
  )
  metrics = {"loss": loss, "top1_error": 100.0 * jnp.mean(jnp.argmax(logits, -1) != batch["label"])}
  if logits.shape[-1] > TOP_K:  # with 5 classes or fewer every label is in the top 5
    top5 = jax.lax.top_k(logits, TOP_K)[1]
    metrics["top5_error"] = 100.0 * jnp.mean(~jnp.any(top5 == batch["label"][:, None], axis=1))
  metrics = parallel.mean(metrics)
  metrics["learning_rate"] = learning_rate_fn(state.step) * state.plateau.scale
  return new_state, metrics


# ---------------------------------------------------------------------------------------------
# The training loop.


class Preemption:
  """Notes a SIGTERM (a preemption) or SIGINT (Ctrl-C) while training; every process agrees on
  when to stop, and the loop saves that step and exits.

  One host checks its flag at every step; several hosts compare flags at log steps (a
  collective), so that all of them save the same step. A second Ctrl-C interrupts at once.
  """

  SIGNALS = {signal.SIGTERM: cli.PREEMPTED_STATUS, signal.SIGINT: cli.INTERRUPTED_STATUS}

  def __init__(self, every: int):
    self.every, self.received, self._previous = every, None, {}

  @property
  def signalled(self) -> bool:
    return self.received is not None

  def __enter__(self) -> Preemption:
    if threading.current_thread() is threading.main_thread():
      self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
    return self

  def __exit__(self, *exc_info) -> None:
    for number, previous in self._previous.items():
      signal.signal(number, previous)

  def _handle(self, signum, frame) -> None:
    self.received = signal.Signals(signum)
    if signum == signal.SIGINT:  # the next Ctrl-C is Python's KeyboardInterrupt again
      signal.signal(signal.SIGINT, self._previous[signal.SIGINT])

  def requested(self, step: int) -> bool:
    if jax.process_count() > 1 and step % self.every:
      return False
    return parallel.any_process(self.signalled)

  def stopped(self, step: int, num_steps: int, workdir: pathlib.Path) -> cli.Preempted:
    """What the loop raises after saving `step` because of the signal."""
    name = self.received.name if self.received is not None else "a signal on another host"
    status = self.SIGNALS.get(self.received, cli.PREEMPTED_STATUS)
    return cli.Preempted(
      f"stopped by {name} at step {step}/{num_steps}; checkpoint saved in {workdir}; run the "
      "same command to resume",
      status,
    )


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path
) -> dict[str, Any]:
  """Trains (resuming from `workdir` if it holds a checkpoint); returns the final eval metrics.

  Everything that can refuse the run (the config, the workdir, its checkpoints) does so
  before anything is written; a second run on the same workdir is refused while this one lives.
  """
  started = time.perf_counter()  # metrics rows say how long the run has taken: seconds_so_far
  workdir = workdirs.check_usable(workdir)  # absolute, as orbax needs
  parallel.initialize_distributed(config)
  data_parallel = parallel.DataParallel(config.num_devices)
  info = experiment.check_config(config, data_parallel)
  checkpoints.check_workdir(config, workdir)
  data = input_pipeline.load_data(config)
  num_train = len(data.train)
  model, learning_rate_fn, state = experiment.create_for_loaded_data(config, data)
  lead = parallel.is_lead_process()
  recorded = False  # whether run.json says this run began: then it also says how it ended
  try:
    with (
      workdirs.hold(workdir) if lead else contextlib.nullcontext(),
      # The convolution routes the run uses (models/conv.py): those its workdir records are
      # obeyed (a resume computes as the run began), new ones added as its steps are first traced.
      conv.RouteBook(workdir / conv.ROUTES_FILE, parallel.announce, write=lead),
    ):
      start_step, restored = checkpoints.restore(workdir, state, parallel.announce)
      if restored is None and config.init_from:
        state = state.replace(
          **finetune.initialize_from(
            config.init_from,
            {"params": state.params, "batch_stats": state.batch_stats},
            parallel.announce,
            config.init_reset,
          )
        )
      num_steps = schedules.total_steps(config, num_train)
      if lead:
        checkpoints.write_config(config, workdir)
        records.record_run(
          workdir, status="running", devices=data_parallel.describe(), total_steps=num_steps
        )
        recorded = True
      state = data_parallel.replicate(state if restored is None else restored)
      parallel.announce(
        f"{config.model.name} on {info.name}: {num_train} training examples, "
        f"{schedules.steps_per_epoch(config, num_train)} steps/epoch, {num_steps} steps, batch "
        f"{config.batch_size} over {data_parallel.describe()}"
        + (f", resuming at step {start_step}" if start_step else "")
      )
      train_step = create_train_step(config, model, learning_rate_fn, data.stats, data_parallel)
      manager = checkpoints.create_manager(workdir, config.keep_checkpoints)
      try:
        with Preemption(config.log_every_steps) as preemption:
          final_metrics = train_loop(
            config, state, data, workdir, manager, train_step, data_parallel, preemption, started
          )
      finally:
        checkpoints.finish(manager)  # a save in flight completes even when the loop fails
  except BaseException as error:
    if recorded:  # the page of a run that did not finish says so, and shows what it has
      with contextlib.suppress(OSError):  # the error that stopped the run is the one to raise
        record_end(workdir, error)
    raise
  if lead:
    curves = workdir / records.CURVES_FILE
    records.plot_curves(records.read_metrics(workdir), "step", curves)
    parallel.announce(f"curves written to {curves}")
    record_end(workdir, None)
  return final_metrics


def record_end(workdir: pathlib.Path, error: BaseException | None) -> None:
  """Says in run.json how the run ended (`error`: what stopped it), then writes its page."""
  if error is None:
    records.record_run(workdir, status="finished", message="")
  else:
    status = {cli.Preempted: "stopped", KeyboardInterrupt: "interrupted"}.get(type(error), "failed")
    message = failure(error) if status == "failed" else first_line(error)
    records.record_run(workdir, status=status, message=message)
  run_page.write_or_say(workdir, parallel.announce)


def first_line(error: BaseException) -> str:
  return str(error).splitlines()[0] if str(error) else ""


def failure(error: BaseException) -> str:
  """ "Type: the first line of its message": how a failed run's page and its study row say why."""
  return f"{type(error).__name__}: {first_line(error)}"


def create_train_step(
  config: ml_collections.ConfigDict,
  model: models.ConvNet,
  learning_rate_fn: optax.Schedule,
  stats: input_pipeline.ColorStats,
  data_parallel: parallel.DataParallel,
) -> Callable:
  """The data-parallel train step for `model`; it consumes (donates) the state it is given."""
  step = functools.partial(
    train_step,
    learning_rate_fn=learning_rate_fn,
    preprocess=augment.make_train_preprocess(config, stats),
    aux_loss_weights=tuple(model.aux_loss_weights().items()),
  )
  return data_parallel.map(step, donate=(0,))


def device_batches(
  config: ml_collections.ConfigDict,
  data: input_pipeline.Data,
  start_step: int,
  data_parallel: parallel.DataParallel,
) -> Iterator[dict[str, jax.Array]]:
  """This process's share of each training batch, on its devices one step ahead."""
  host_batches = input_pipeline.train_batches(
    data.train, config.batch_size, config.seed, start_step, data_parallel.process_part()
  )
  ahead = data_parallel.shard(next(host_batches))
  for batch in host_batches:
    current, ahead = ahead, data_parallel.shard(batch)
    yield current


def train_loop(
  config: ml_collections.ConfigDict,
  state: TrainState,
  data: input_pipeline.Data,
  workdir: pathlib.Path,
  manager,
  mapped_train_step: Callable,
  data_parallel: parallel.DataParallel,
  preemption: Preemption,
  started: float | None = None,
) -> dict[str, Any]:
  """Steps from the state's step to the last, logging, evaluating and checkpointing on schedule.

  Raises cli.Preempted after saving when SIGTERM or SIGINT arrives, and FloatingPointError
  (before any further save) when the loss stops being finite.
  """
  start_step = int(data_parallel.unreplicate(state.step))
  num_steps = schedules.total_steps(config, len(data.train))
  events = loop_events.LoopEvents.from_config(config, num_steps)
  eval_steps = evaluation.create_eval_steps(config, data.stats, data_parallel)
  batches = device_batches(config, data, start_step, data_parallel)
  lead = parallel.is_lead_process()
  writer = records.MetricsWriter(workdir, start_step, started) if lead else records.NullWriter()
  progress = records.Progress(start_step, num_steps, config.batch_size)
  pending: list[tuple[int, dict[str, jax.Array]]] = []
  final_metrics = None
  if start_step < num_steps:  # the first step compiles: seconds for LeNet-5, minutes for VGG
    parallel.announce(f"compiling the train step of {config.model.name} …")
  try:
    for step in range(start_step + 1, num_steps + 1):
      state, metrics = mapped_train_step(state, next(batches))
      pending.append((step, metrics))
      stop = preemption.requested(step)
      due = events.due(step, stopping=stop)
      if loop_events.LOG in due:
        log_train_metrics(pending, progress, writer, data_parallel)
        pending = []
      elif loop_events.CHECKPOINT in due:
        check_finite(pending, data_parallel)  # never save a diverged state
      if loop_events.EVALUATE in due:
        jax.block_until_ready(state)  # the pending train steps count as training time
        eval_start = time.perf_counter()
        final_metrics = evaluation.evaluate_and_record(
          state, data, config, writer, workdir, eval_steps, data_parallel
        )
        state = apply_plateau(
          state, final_metrics["top1_error"], config, writer, step, data_parallel
        )
        progress.pause(time.perf_counter() - eval_start)
      if loop_events.CHECKPOINT in due:
        checkpoints.save(manager, step, data_parallel.unreplicate(state))
      if stop and step != num_steps:
        raise preemption.stopped(step, num_steps, workdir)
    if final_metrics is None:  # nothing left to train: evaluate the restored state
      final_metrics = evaluation.evaluate_and_record(
        state, data, config, writer, workdir, eval_steps, data_parallel
      )
  finally:
    writer.close()
  return final_metrics


def apply_plateau(
  state: TrainState,
  top1_error: float,
  config: ml_collections.ConfigDict,
  writer,
  step: int,
  data_parallel: parallel.DataParallel,
) -> TrainState:
  """Feeds an evaluation to the plateau rule; logs and applies a division."""
  plateau, message, scalars = schedules.after_evaluation(
    data_parallel.unreplicate(state.plateau), top1_error, config.schedule
  )
  if scalars is None:
    return state
  if message:
    parallel.announce(f"step {step}: {message}")
  writer.write(step, "schedule", scalars)
  return state.replace(plateau=data_parallel.replicate(plateau))


def log_train_metrics(
  pending: list[tuple[int, dict[str, jax.Array]]],
  progress: records.Progress,
  writer: records.MetricsWriter,
  data_parallel: parallel.DataParallel,
) -> None:
  """Averages the metrics of the steps since the last log, prints progress, writes them."""
  values = check_finite(pending, data_parallel)
  summary = {name: float(np.mean([v[name] for v in values])) for name in TRAIN_METRICS}
  summary["learning_rate"] = float(values[-1]["learning_rate"])
  parallel.announce(progress.line(pending[-1][0], summary))
  logged = {"images_per_second": progress.images_per_second}
  if "top5_error" in values[0]:
    logged["top5_error"] = float(np.mean([v["top5_error"] for v in values]))
  writer.write(pending[-1][0], "train", {**summary, **logged})


def check_finite(
  pending: list[tuple[int, dict[str, jax.Array]]], data_parallel: parallel.DataParallel
) -> list[dict[str, float]]:
  """The pending steps' metrics on the host; a FloatingPointError names the first bad step."""
  values = [data_parallel.unreplicate(metrics) for _, metrics in pending]
  for (step, _), value in zip(pending, values, strict=True):
    if not math.isfinite(float(value["loss"])):
      raise FloatingPointError(
        f"training loss became {float(value['loss'])} at step {step}; "
        "stopping (the checkpoints saved before it are kept)"
      )
  return values


def results_line(metrics: dict[str, Any]) -> str:
  """The final evaluation as the one line train.py prints."""
  return f"test {evaluation.errors_text(metrics, ' | ')} ({metrics['num_examples']} examples)"
