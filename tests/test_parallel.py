"""Data-parallel training on 8 host devices: the same run on any number of devices or hosts,
kills and preemption, damaged checkpoints, incompatible configs, divergence, the plateau rule."""

import functools
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import caches
import checkpoints
import cli
import experiment
import input_pipeline
import parallel
import records
import schedules
import training
from input_pipeline import augment, color_pca
from models import conv
from models.layers import Conv, Dense, Dropout
from models.network import ConvNet
from reporting import predictions as saved_predictions
from tests.conftest import crash_after_checkpoint, make_config

REPO = pathlib.Path(__file__).resolve().parent.parent


def saved_state(workdir: pathlib.Path, step: int) -> dict:
  return checkpoints.read(workdir, step)


def assert_trees_close(expected, actual, rtol: float) -> None:
  """Every leaf equal up to `rtol` of the leaf's largest magnitude."""

  def check(path, a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0)), 1e-12)
    with np.errstate(invalid="ignore"):  # equal infinities are equal
      difference = np.where(a == b, 0.0, np.abs(a - b))
    assert float(np.max(difference)) <= rtol * scale, jax.tree_util.keystr(path)

  jax.tree_util.tree_map_with_path(check, expected, actual)


@pytest.mark.slow
def test_one_and_eight_devices_train_to_the_same_state(tiny_config, tmp_path, capsys):
  # Batch norm (synchronised over the global batch) and random flips (drawn per example).
  config = lambda devices: tiny_config(
    num_devices=devices,
    num_train_steps=12,
    model__norm="batch",
    augment__flip=True,
    eval_every_steps=12,
    checkpoint_every_steps=12,
  )
  one = training.train_and_evaluate(config(1), tmp_path / "one")
  assert "over 1 CPU devices" in capsys.readouterr().out
  eight = training.train_and_evaluate(config(8), tmp_path / "eight")
  assert "over 8 CPU devices" in capsys.readouterr().out
  assert_trees_close(saved_state(tmp_path / "one", 12), saved_state(tmp_path / "eight", 12), 1e-5)
  assert eight["top1_error"] == one["top1_error"]
  assert eight["loss"] == pytest.approx(one["loss"], rel=1e-5)


def train_tiny_net(num_devices: int, axis_name: str | None, steps: int = 3) -> dict:
  """Parameters after `steps` of a conv → dropout → dense net with random crops and flips."""
  model = ConvNet(
    (Conv("conv", 4, 3), Dropout("drop", 0.5), Dense("out", 10, activation=False)),
    axis_name=axis_name,
  )
  config = make_config(
    "",
    dataset__crop_size=12,
    dataset__normalization="none",
    augment__random_crop=True,
    augment__flip=True,
  )
  rng = np.random.default_rng(0)
  batch = {
    "image": rng.integers(0, 255, (32, 16, 16, 3), dtype=np.uint8),
    "label": rng.integers(0, 10, 32).astype(np.int32),
  }
  params = model.init(jax.random.key(0), jnp.zeros((1, 12, 12, 3)))["params"]
  state = experiment.TrainState.create(
    apply_fn=model.apply,
    params=params,
    tx=optax.sgd(0.1, 0.9),
    batch_stats={},
    rng=jax.random.key_data(jax.random.key(1)),
    plateau=schedules.Plateau.create(),
  )
  devices = parallel.DataParallel(num_devices)
  step = devices.map(
    functools.partial(
      training.train_step,
      learning_rate_fn=lambda step: 0.1,
      preprocess=augment.make_train_preprocess(config, color_pca.IMAGENET),
    ),
    donate=(0,),
  )
  state = devices.replicate(jax.device_get(state))
  for _ in range(steps):
    state, _ = step(state, devices.shard(batch))
  return devices.unreplicate(state.params)


@pytest.mark.slow
def test_dropout_and_augmentation_draw_the_same_on_one_device_or_eight():
  one = train_tiny_net(1, parallel.AXIS)
  assert_trees_close(one, train_tiny_net(8, parallel.AXIS), 1e-5)
  # Without the global batch axis, each device would draw its own masks: a different run.
  with pytest.raises(AssertionError):
    assert_trees_close(one, train_tiny_net(8, None), 1e-3)


@pytest.mark.parametrize(
  "overrides,message",
  [
    (
      {"batch_size": 36},
      "batch_size 36 does not split across 8 CPU devices: it gives a "
      "per-device batch of 4.5; use a multiple of 8",
    ),
    ({"batch_size": 4}, "per-device batch of 0.5"),
    ({"eval_batch_size": 60}, "eval_batch_size 60 does not split across 8 CPU devices"),
    ({"num_devices": 9}, "num_devices 9 is not available: this process has 8 CPU devices"),
    ({"schedule__plateau_patience": 0}, "schedule.plateau_patience must be at least 1"),
  ],
)
def test_impossible_device_splits_are_refused_before_anything_is_written(
  tiny_config, tmp_path, overrides, message
):
  with pytest.raises(ValueError, match=message):
    training.train_and_evaluate(tiny_config(**overrides), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_workdir_of_an_incompatible_config_is_refused_and_kept(tiny_config, trained_tiny_run):
  tmp_path = trained_tiny_run.workdir
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
  with pytest.raises(
    ValueError,
    match=r"incompatible config \(batch_size: 32 in the workdir, "
    r"64 now; seed: 0 in the workdir, 3 now\)",
  ):
    training.train_and_evaluate(tiny_config(batch_size=64, seed=3), tmp_path)
  assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


# ---------------------------------------------------------------------------------------------
# The plateau schedule.


def test_plateau_divides_after_patience_evaluations_without_improvement():
  schedule = make_config("", schedule__plateau_patience=2, schedule__plateau_threshold=0.1).schedule
  plateau, scales, messages = schedules.Plateau.create(), [], []
  for error in (50.0, 40.0, 39.95, 39.5, 39.6, 39.7, 39.8, 39.45, 39.3, 39.3):
    plateau, message = schedules.update_plateau(plateau, error, schedule)
    scales.append(float(plateau.scale))
    messages.append(message)
  # 39.95 is not 0.1 below 40; 39.6 and 39.7 miss 39.5 twice: divide; 39.8, 39.45 (not 0.1
  # below 39.5) twice more: divide; 39.3 improves.
  assert scales == pytest.approx([1, 1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01, 0.01])
  assert [i for i, m in enumerate(messages) if m] == [5, 7]
  assert "top-1 error 39.70% has not improved on 39.50%" in messages[5]
  assert float(plateau.best) == pytest.approx(39.3)


@pytest.mark.slow
def test_plateau_schedule_trains_logs_its_decisions_and_resumes_exactly(
  tiny_config, tmp_path, capsys, monkeypatch
):
  # A threshold no evaluation can beat: every evaluation after the first divides.
  config = lambda: tiny_config(
    schedule__name="plateau",
    schedule__plateau_patience=1,
    schedule__plateau_threshold=100.0,
    schedule__warmup_epochs=0,
    eval_every_steps=10,
    checkpoint_every_steps=10,
  )
  straight = training.train_and_evaluate(config(), tmp_path / "straight")
  out = capsys.readouterr().out
  assert [line.split(":")[0] for line in out.splitlines() if "plateau:" in line] == [
    "step 20",
    "step 30",
    "step 40",
  ]
  rows = records.read_metrics(tmp_path / "straight")
  assert [r["learning_rate_scale"] for r in rows["schedule"]] == pytest.approx(
    [1, 0.1, 0.01, 0.001]
  )
  assert [r["learning_rate"] for r in rows["train"]] == pytest.approx([0.05, 0.05, 0.005, 0.0005])
  assert float(saved_state(tmp_path / "straight", 40)["plateau"]["scale"]) == pytest.approx(0.001)
  crash_after_checkpoint(monkeypatch, 20, config(), tmp_path / "resumed")
  assert training.train_and_evaluate(config(), tmp_path / "resumed") == straight
  jax.tree.map(
    np.testing.assert_array_equal,
    saved_state(tmp_path / "straight", 40),
    saved_state(tmp_path / "resumed", 40),
  )


# ---------------------------------------------------------------------------------------------
# Divergence and damaged checkpoints.


@pytest.mark.slow
def test_non_finite_loss_stops_naming_the_step_and_keeps_earlier_checkpoints(tiny_config, tmp_path):
  # Step 1 trains at learning rate 0 (warmup); the next ones at 1e6 blow up.
  config = tiny_config(
    optimizer__learning_rate=1e7,
    schedule__name="constant",
    schedule__warmup_epochs=1,
    checkpoint_every_steps=1,
    log_every_steps=100,
  )
  with pytest.raises(
    FloatingPointError, match=r"training loss became (nan|inf) at step (\d+)"
  ) as error:
    training.train_and_evaluate(config, tmp_path)
  bad_step = int(error.value.args[0].split("at step ")[1].split(";")[0])
  saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert saved and max(saved) < bad_step
  for step in saved:
    assert all(
      np.isfinite(leaf).all() for leaf in jax.tree.leaves(saved_state(tmp_path, step)["params"])
    )


def damage(checkpoint: pathlib.Path) -> None:
  """Overwrites every file of a checkpoint with garbage, as a failing disk might."""
  for path in checkpoint.rglob("*"):
    if path.is_file():
      path.write_bytes(b"\x00garbage" * 3)


@pytest.mark.slow
def test_damaged_newest_checkpoint_is_reported_set_aside_and_skipped(
  tiny_config, tmp_path, capsys, monkeypatch
):
  straight = training.train_and_evaluate(tiny_config(num_train_steps=60), tmp_path / "straight")
  workdir = tmp_path / "damaged"
  crash_after_checkpoint(monkeypatch, 40, tiny_config(num_train_steps=60), workdir)
  damage(workdir / "checkpoints" / "40")
  capsys.readouterr()
  resumed = training.train_and_evaluate(tiny_config(num_train_steps=60), workdir)
  out = capsys.readouterr().out
  assert "warning: checkpoint of step 40 cannot be restored" in out
  assert "resuming at step 20" in out
  assert resumed == straight
  assert (workdir / "unrestorable_checkpoints" / "40").is_dir()  # kept for a post-mortem
  assert sorted(os.listdir(workdir / "checkpoints")) == ["20", "40", "60"]


@pytest.mark.slow
def test_no_restorable_checkpoint_is_an_error_not_a_fresh_start(
  tiny_config, tmp_path, trained_tiny_run
):
  tmp_path = trained_tiny_run.copy(tmp_path / "run")
  for step in ("20", "40"):
    damage(tmp_path / "checkpoints" / step)
  with pytest.raises(
    ValueError, match=r"no checkpoint in .* can be restored \(step 40: .*; step 20: "
  ):
    training.train_and_evaluate(tiny_config(), tmp_path)
  assert sorted(os.listdir(tmp_path / "unrestorable_checkpoints")) == ["20", "40"]


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_parameters_and_learns(tiny_config, tmp_path):
  metrics = training.train_and_evaluate(tiny_config(model__dtype="bfloat16"), tmp_path)
  params = saved_state(tmp_path, 40)["params"]
  assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {np.dtype("float32")}
  assert metrics["top1_error"] < 30.0  # chance is 90 %


# ---------------------------------------------------------------------------------------------
# Real processes: killed, preempted, and two hosts.

STEPS, EVERY = 600, 50


def command(data_dir: str, workdir: pathlib.Path, *extra: str) -> list[str]:
  return [
    sys.executable,
    str(REPO / "train.py"),
    f"--config={REPO}/configs/default.py",
    f"--workdir={workdir}",
    f"--config.dataset.data_dir={data_dir}",
    "--config.batch_size=32",
    "--config.eval_batch_size=64",
    f"--config.num_train_steps={STEPS}",
    f"--config.eval_every_steps={STEPS}",
    f"--config.checkpoint_every_steps={EVERY}",
    f"--config.log_every_steps={EVERY}",
    "--config.augment.flip=True",
    *extra,
  ]


def run_until_checkpoint_then(
  signal_number: int, data_dir: str, workdir: pathlib.Path, env: dict | None = None
) -> subprocess.CompletedProcess:
  """Starts a training process, sends it `signal_number` once a checkpoint is committed."""
  process = subprocess.Popen(
    command(data_dir, workdir),
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, **(env or {})},
  )
  deadline = time.monotonic() + 240
  while time.monotonic() < deadline and process.poll() is None:
    folder = workdir / "checkpoints"
    if folder.exists() and any(p.name.isdigit() for p in folder.iterdir()):
      process.send_signal(signal_number)
      break
    time.sleep(0.01)
  out, err = process.communicate(timeout=240)
  return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_dir, tmp_path_factory) -> dict:
  workdir = tmp_path_factory.mktemp("uninterrupted")
  train_to_the_end(tiny_data_dir, workdir)
  return saved_state(workdir, STEPS)


def train_to_the_end(data_dir: str, workdir: pathlib.Path, env: dict | None = None) -> str:
  """Runs (or resumes) the training process to its last step; its stdout."""
  result = subprocess.run(
    command(data_dir, workdir),
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, **(env or {})},
  )
  assert result.returncode == 0, result.stderr
  return result.stdout


def finish_and_compare(
  data_dir: str, workdir: pathlib.Path, expected: dict, env: dict | None = None
) -> str:
  out = train_to_the_end(data_dir, workdir, env)
  jax.tree.map(np.testing.assert_array_equal, expected, saved_state(workdir, STEPS))
  return out


@pytest.mark.slow
def test_run_killed_mid_training_resumes_bit_identical(tiny_data_dir, tmp_path, uninterrupted):
  killed = run_until_checkpoint_then(signal.SIGKILL, tiny_data_dir, tmp_path)
  assert killed.returncode == -signal.SIGKILL
  assert not (tmp_path / "checkpoints" / str(STEPS)).exists()  # it really died mid-run
  out = finish_and_compare(tiny_data_dir, tmp_path, uninterrupted)
  assert "resuming at step" in out


@pytest.mark.slow
def test_a_killed_run_resumes_by_its_recorded_routes_whatever_the_machine_cache_says(
  tiny_data_dir, tmp_path
):
  """The convolution routes are part of the run: a run killed mid-training and resumed where
  the machine's route cache holds a different formulation for every shape it recorded (another
  machine, or this one's cache deleted and measured anew) ends bit-identical to an
  uninterrupted run."""
  cache = tmp_path / "cache"
  # Every shape is measured (LeNet-5 at 4 images per device is below MIN_MEASURED_MACS).
  env = {caches.CACHE_ENV: str(cache), conv.MIN_MACS_ENV: "0"}
  whole, run = tmp_path / "whole", tmp_path / "run"
  train_to_the_end(tiny_data_dir, whole, env)
  (cache_file,) = cache.glob("conv_routes-*.json")
  measured = json.loads(cache_file.read_text())
  killed = run_until_checkpoint_then(signal.SIGKILL, tiny_data_dir, run, env)
  assert killed.returncode == -signal.SIGKILL
  assert not (run / "checkpoints" / str(STEPS)).exists()  # it really died mid-run
  recorded = json.loads((run / conv.ROUTES_FILE).read_text())
  # The train step's routes, all three products of LeNet-5's three convolutions, as measured.
  assert len(recorded) >= 9
  assert {key.split(":")[0] for key in recorded} == {"forward", "input_grad", "weight_grad"}
  assert recorded == {key: measured[key] for key in recorded}
  # The cache as another machine might have it: every shape by another formulation.
  shutil.rmtree(cache)
  cache.mkdir()
  other = {key: "taps" if route == "xla" else "xla" for key, route in measured.items()}
  (cache / cache_file.name).write_text(json.dumps(other))
  out = finish_and_compare(tiny_data_dir, run, saved_state(whole, STEPS), env)
  assert "resuming at step" in out
  assert json.loads((run / conv.ROUTES_FILE).read_text()).items() >= recorded.items()


@pytest.mark.slow
@pytest.mark.parametrize(
  "signal_number,status",
  [(signal.SIGTERM, cli.PREEMPTED_STATUS), (signal.SIGINT, cli.INTERRUPTED_STATUS)],
)
def test_sigterm_or_ctrl_c_saves_a_restorable_checkpoint_and_exits(
  tiny_data_dir, tmp_path, uninterrupted, signal_number, status
):
  stopped = run_until_checkpoint_then(signal_number, tiny_data_dir, tmp_path)
  assert stopped.returncode == status, stopped.stderr
  assert "Traceback" not in stopped.stderr and "KeyboardInterrupt" not in stopped.stderr
  name = signal.Signals(signal_number).name
  step = int(stopped.stdout.split(f"stopped by {name} at step ")[1].split("/")[0])
  assert 0 < step < STEPS
  assert int(saved_state(tmp_path, step)["step"]) == step
  out = finish_and_compare(tiny_data_dir, tmp_path, uninterrupted)
  assert f"resuming at step {step}" in out


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_hosts_of_four_devices_train_like_one_host_of_eight(
  tiny_data_dir, tmp_path, uninterrupted
):
  port = free_port()
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
  hosts = [
    subprocess.Popen(
      command(
        tiny_data_dir,
        tmp_path,
        "--config.distributed.enabled=True",
        f"--config.distributed.coordinator_address=localhost:{port}",
        "--config.distributed.num_processes=2",
        f"--config.distributed.process_id={i}",
      ),
      cwd=REPO,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  try:
    outputs = [host.communicate(timeout=300) for host in hosts]
  finally:
    for host in hosts:  # JAX's distributed runtime takes SIGTERM for itself: SIGKILL a hung host
      host.kill()
  for host, (_, err) in zip(hosts, outputs, strict=True):
    assert host.returncode == 0, err
  assert "over 8 CPU devices on 2 hosts" in outputs[0][0]
  assert "test top-1 error" in outputs[0][0]
  # Only the lead process reports. Gloo, the collectives library, prints its own connection
  # messages from native code, which can interleave mid-line: remove them from the raw text.
  ours = re.sub(
    r"\[Gloo\] Rank |\d+ is connected to \d+ peer ranks\. Expected number of "
    r"connected peer ranks is : \d+",
    "",
    outputs[1][0],
  )
  assert ours.split() == []
  # 600 steps apart from the in-process reduction order: float tolerance, not bits.
  assert_trees_close(uninterrupted, saved_state(tmp_path, STEPS), 1e-3)
  train_rows = records.read_metrics(tmp_path)["train"]
  assert [r["step"] for r in train_rows] == list(range(EVERY, STEPS + 1, EVERY))
  with open(tmp_path / "metrics.jsonl") as lines:
    assert sum(1 for _ in lines) == len(train_rows) + 1  # written once, by process 0
  results = json.loads((tmp_path / "results.json").read_text())["single"]
  assert results["step"] == STEPS
  # The per-example predictions, gathered from both hosts: every example once, in order.
  saved = saved_predictions.read(tmp_path)
  split = input_pipeline.load_data(make_config(tiny_data_dir)).eval
  np.testing.assert_array_equal(saved.labels, split.read(np.arange(len(split)))[1])
  wrong = saved.protocols["single"].predicted != saved.labels
  assert 100.0 * np.mean(wrong) == pytest.approx(results["top1_error"])
