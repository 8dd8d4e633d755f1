"""Training, evaluation, resume, results files and bad input, end to end on small and real data."""

import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import caches
import checkpoints
import evaluation
import experiment
import input_pipeline
import loop_events
import models
import parallel
import records
import schedules
import training
from configs import default
from input_pipeline import augment
from models import conv
from tests import pages
from tests.conftest import TINY_TEST, TINY_TRAIN, crash_after_checkpoint, make_config, run_script

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_short_run_on_real_fashion_mnist_learns(real_data_dir, tmp_path):
  config = make_config(
    real_data_dir,
    num_train_steps=400,
    eval_every_steps=400,
    checkpoint_every_steps=400,
    log_every_steps=50,
  )
  metrics = training.train_and_evaluate(config, tmp_path)
  assert metrics["num_examples"] == 10_000
  assert metrics["top1_error"] < 20.0  # chance is 90 %
  assert metrics["top5_error"] < 2.0  # chance is 50 %
  train_rows = records.read_metrics(tmp_path)["train"]
  assert len(train_rows) == 8
  assert train_rows[-1]["loss"] < 0.5 * train_rows[0]["loss"]


@pytest.mark.slow
def test_eval_counts_all_10000_test_examples_for_any_batch_size(real_data_dir):
  config = make_config(real_data_dir)
  data = input_pipeline.load_data(config)
  model = models.create_model(config.model, 10)
  state = experiment.create_train_state(
    config, model, (32, 32, 1), experiment.create_optimizer(config, 0.1)
  )
  devices = parallel.DataParallel(num_devices=1)
  eval_step = evaluation.create_eval_steps(config, data.stats, devices)["single"]
  evaluate = lambda batch_size: evaluation.evaluate(
    devices.replicate(state), input_pipeline.eval_batches(data.eval, batch_size), eval_step, devices
  )
  reference, reference_predictions = evaluate(500)
  assert reference["num_examples"] == 10_000
  for batch_size in (10_000, 999, 4096, 12_345):
    metrics, predictions = evaluate(batch_size)
    assert metrics["num_examples"] == 10_000
    # Every example once, in the split's order, whatever the padding of the last batch.
    np.testing.assert_array_equal(predictions["label"], data.eval.read(np.arange(10_000))[1])
    np.testing.assert_array_equal(predictions["classes"], reference_predictions["classes"])
    assert metrics["top1_error"] == pytest.approx(reference["top1_error"], abs=1e-9)
    assert metrics["top5_error"] == pytest.approx(reference["top5_error"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(reference["loss"], rel=1e-5)


@pytest.mark.smoke
def test_one_lenet5_step_of_the_default_config_lowers_the_loss_on_its_batch():
  config = default.get_config()
  config.dataset.normalization = "none"  # no colour statistics needed
  config.num_devices = 1
  config.schedule.warmup_epochs = 0
  model, learning_rate_fn, state = experiment.create_model_and_state(config, 10, (32, 32, 1), 6400)
  data_parallel = parallel.DataParallel(1)
  stats = augment.ColorStats(*(np.zeros(1),) * 3, np.zeros(1), np.eye(1))
  step = training.create_train_step(config, model, learning_rate_fn, stats, data_parallel)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 32).astype(np.int32)
  images = np.zeros((32, 32, 32, 1), np.uint8)
  images[np.arange(32), 3 * labels, :, 0] = 255  # class c: a bright row at 3c
  batch = data_parallel.shard({"image": images, "label": labels})
  state = data_parallel.replicate(state)
  losses = []
  for _ in range(10):
    state, metrics = step(state, batch)
    losses.append(float(data_parallel.unreplicate(metrics)["loss"]))
  assert int(data_parallel.unreplicate(state.step)) == 10
  assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]


@pytest.mark.slow
def test_a_subset_of_three_classes_trains_and_reports_top1_alone(tiny_config, tmp_path):
  metrics = training.train_and_evaluate(tiny_config(dataset__classes="5,7,9"), tmp_path)
  assert metrics["top5_error"] is None and 0 <= metrics["top1_error"] < 100
  assert json.loads((tmp_path / "results.json").read_text())["single"]["top5_error"] is None
  assert "top-5 error not defined (fewer than 5 classes)" in training.results_line(metrics)
  counts = evaluation.classification_counts(
    jnp.asarray([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]]), jnp.asarray([2, 0]), jnp.ones(2)
  )
  assert "top5_errors" not in counts and float(counts["top1_errors"]) == 1


def test_topk_errors_on_hand_made_logits():
  logits = np.array(
    [[5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], [9, 9, 9, 9, 9, 0]], np.float32
  )
  labels = np.array([0, 0, 1, 5])
  mask = np.array([1, 1, 1, 0], np.float32)
  counts = jax.device_get(evaluation.classification_counts(logits, labels, mask))
  assert counts["top1_errors"] == 2  # rows 1 and 2 (row 3 is masked)
  assert counts["top5_errors"] == 1  # row 1: class 0 ranks last
  assert counts["count"] == 3
  expected_loss = -sum(jax.nn.log_softmax(logits[i])[labels[i]] for i in range(3))
  assert counts["loss"] == pytest.approx(float(expected_loss), rel=1e-6)


def test_run_writes_results_curves_and_logs(trained_tiny_run):
  tmp_path, metrics = trained_tiny_run.workdir, trained_tiny_run.metrics
  results = json.loads((tmp_path / "results.json").read_text())
  assert set(results) == {"single"}
  assert set(results["single"]) == {"top1_error", "top5_error", "loss", "num_examples", "step"}
  assert results["single"]["num_examples"] == TINY_TEST and results["single"]["step"] == 40
  assert results["single"]["top1_error"] == pytest.approx(metrics["top1_error"])
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert any(
    name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tensorboard")
  )
  rows = records.read_metrics(tmp_path)
  assert [r["step"] for r in rows["train"]] == [10, 20, 30, 40]
  assert [r["step"] for r in rows["eval"]] == [20, 40]
  assert all(r["images_per_second"] > 0 for r in rows["train"])
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["20", "40"]
  # Every convolution route the run took, small shapes (XLA's, unmeasured) included.
  routes = json.loads((tmp_path / conv.ROUTES_FILE).read_text())
  assert {key.split(":")[0] for key in routes} == {"forward", "input_grad", "weight_grad"}
  assert len(routes) == 3 * 3 + 3  # LeNet-5's three convolutions: training and evaluation


@pytest.mark.slow
def test_resume_continues_from_the_saved_step_and_matches_an_uninterrupted_run(
  tiny_config, tmp_path, capsys, monkeypatch
):
  straight = training.train_and_evaluate(tiny_config(num_train_steps=60), tmp_path / "straight")
  crash_after_checkpoint(monkeypatch, 40, tiny_config(num_train_steps=60), tmp_path / "resumed")
  capsys.readouterr()
  resumed = training.train_and_evaluate(tiny_config(num_train_steps=60), tmp_path / "resumed")
  assert "resuming at step 40" in capsys.readouterr().out
  assert resumed == straight  # same data order, same dropout keys: the same parameters
  rows = records.read_metrics(tmp_path / "resumed")["train"]
  assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
  seconds = [r["seconds_so_far"] for r in rows]  # the run's time goes on across the resume
  assert seconds == sorted(seconds) and seconds[4] > seconds[3] > 0
  # The uninterrupted run's step-40 checkpoint was written while later steps reused (donated)
  # the state's buffers; it must hold exactly what the crashed run's waited-for save holds.
  written_while_training = checkpoints.read(tmp_path / "straight", 40)
  written_then_crashed = checkpoints.read(tmp_path / "resumed", 40)
  jax.tree.map(np.testing.assert_array_equal, written_while_training, written_then_crashed)


def test_the_logged_learning_rate_is_the_one_the_logged_step_used(tiny_config, trained_tiny_run):
  learning_rate = schedules.create_learning_rate_fn(tiny_config(), TINY_TRAIN)
  rows = records.read_metrics(trained_tiny_run.workdir)["train"]
  logged = [row["learning_rate"] for row in rows]
  assert logged == pytest.approx([float(learning_rate(row["step"] - 1)) for row in rows])


@pytest.mark.slow
def test_eval_of_a_workdir_alone_repeats_what_training_reported(
  tiny_config, tmp_path, trained_tiny_run
):
  short = {"num_train_steps": 20, "eval_every_steps": 20, "checkpoint_every_steps": 20}
  fine_tuned = tiny_config(  # a new 3-class head, frozen and slowed layers
    **short,
    init_from=str(trained_tiny_run.workdir),
    dataset__classes="5,7,9",
    optimizer__frozen="c1",
    optimizer__lr_multipliers="f6=0.5",
  )
  training.train_and_evaluate(fine_tuned, tmp_path / "fine_tuned")
  training.train_and_evaluate(tiny_config(**short), tmp_path / "resumed")
  resumed = tiny_config(num_train_steps=30, eval_every_steps=30, checkpoint_every_steps=30)
  training.train_and_evaluate(resumed, tmp_path / "resumed")  # on from step 20
  runs = {
    "default": trained_tiny_run.copy(tmp_path / "default"),
    "fine_tuned": tmp_path / "fine_tuned",
    "resumed": tmp_path / "resumed",
  }
  for name, workdir in runs.items():
    trained = json.loads((workdir / "results.json").read_text())["single"]
    result = run_script("eval.py", f"--workdir={workdir}")
    assert result.returncode == 0, (name, result.stderr)
    evaluated = json.loads((workdir / "results.json").read_text())["single"]
    assert evaluated == trained, name
    assert f"report written to {workdir / 'report.html'}" in result.stdout  # rewritten
    pages.read(workdir / "report.html", pages.RUN_SECTIONS)
  # The fine-tuned run's page: its three classes, by name, and what it chose.
  page = pages.read(runs["fine_tuned"] / "report.html", pages.RUN_SECTIONS)
  assert "Sandal" in page.text and "Ankle boot" in page.text and "Coat" not in page.text
  assert f"init_from \"\" \"{trained_tiny_run.workdir}\"" in page.text
  assert trained["step"] == 30 and evaluated["top5_error"] is not None
  fine = json.loads((runs["fine_tuned"] / "results.json").read_text())["single"]
  assert fine["top5_error"] is None  # 3 classes: top-1 alone

  refused = run_script("eval.py", f"--workdir={runs['default']}", "--config.model.activation=tanh")
  assert refused.returncode == 1
  assert refused.stderr.startswith("error: --config.model.activation=tanh: the run's ")
  assert "what may change: eval_batch_size, eval." in refused.stderr


def test_eval_restores_the_newest_checkpoint(tiny_config, tmp_path, trained_tiny_run):
  trained = trained_tiny_run.metrics
  metrics = evaluation.evaluate_workdir(tiny_config(), trained_tiny_run.copy(tmp_path / "run"))[
    "single"
  ]
  assert metrics["step"] == 40
  for key in ("top1_error", "top5_error", "num_examples"):
    assert metrics[key] == trained[key]
  assert metrics["loss"] == pytest.approx(trained["loss"], rel=1e-6)


def test_eval_of_a_workdir_computes_by_the_run_s_recorded_routes(
  tiny_config, tmp_path, trained_tiny_run, monkeypatch
):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  monkeypatch.setenv(caches.CACHE_ENV, str(tmp_path / "cache"))
  monkeypatch.setenv(conv.MIN_MACS_ENV, "0")  # this machine would measure every shape
  conv._routes_on_disk.cache_clear()
  monkeypatch.setattr(conv, "_fastest", lambda direction, shape, options: "xla")
  taken, route = [], conv.route
  monkeypatch.setattr(conv, "route", lambda d, shape: taken.append(route(d, shape)) or taken[-1])
  record = workdir / conv.ROUTES_FILE
  routes = json.loads(record.read_text())
  routes = {k: "taps" if k.startswith("forward:") else v for k, v in routes.items()}
  record.write_text(json.dumps(routes))
  evaluation.evaluate_workdir(tiny_config(), workdir)
  assert taken and set(taken) == {"taps"}  # the record's, not the machine's
  assert json.loads(record.read_text()) == routes
  conv._routes_on_disk.cache_clear()


def test_eval_without_checkpoint_is_a_clear_error(tiny_config, tmp_path):
  with pytest.raises(ValueError, match="no checkpoint in .*train first"):
    evaluation.evaluate_workdir(tiny_config(), tmp_path)


def test_learning_rate_schedules(tiny_config):
  config = tiny_config(num_train_steps=-1, num_epochs=10, batch_size=64)  # 8 steps/epoch, 80 steps
  config.schedule.warmup_epochs = 1
  config.schedule.name = "step"
  config.schedule.step_epochs = (4, 8)
  lr = schedules.create_learning_rate_fn(config, 512)
  assert [float(lr(s)) for s in (0, 4, 8, 31, 32, 63, 64, 79)] == pytest.approx(
    [0.0, 0.025, 0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005]
  )
  config.schedule.name = "cosine"
  lr = schedules.create_learning_rate_fn(config, 512)
  assert float(lr(8)) == pytest.approx(0.05)
  assert float(lr(44)) == pytest.approx(0.025)
  assert float(lr(80)) == pytest.approx(0.0, abs=1e-9)


def test_a_short_run_warms_up_for_a_tenth_of_it_and_ends_decayed():
  config = default.get_config()  # warmup half an epoch: 234 steps of 128 on 60,000 images
  config.num_train_steps = 150
  lr = schedules.create_learning_rate_fn(config, 60_000)
  peak = config.optimizer.learning_rate
  assert float(lr(15)) == pytest.approx(peak)  # warmed up after 10 % of the run
  assert float(lr(7)) < peak and float(lr(149)) < 0.001 * peak
  config.num_train_steps = -1  # the default run: 5,616 steps, its warmup unchanged
  lr = schedules.create_learning_rate_fn(config, 60_000)
  assert float(lr(233)) < peak == pytest.approx(float(lr(234)))


def test_loop_events_fall_every_n_steps_and_at_the_end():
  config = make_config("", log_every_steps=10, eval_every_steps=25, checkpoint_every_steps=20)
  events = loop_events.LoopEvents.from_config(config, last_step=47)
  due = {step: events.due(step) for step in range(1, 48) if events.due(step)}
  log, evaluate, save = loop_events.LOG, loop_events.EVALUATE, loop_events.CHECKPOINT
  assert due == {
    10: {log},
    20: {log, save},
    25: {evaluate},
    30: {log},
    40: {log, save},
    47: {log, evaluate, save},
  }
  assert events.due(13, stopping=True) == {log, save}  # SIGTERM: log and save, no eval


def test_workdir_written_before_a_field_was_renamed_is_still_ours(tiny_config, tmp_path):
  config = tiny_config()
  saved = json.loads(config.to_json())
  saved["dataset"]["image_size"] = saved["dataset"].pop("crop_size")  # as before the rename
  (tmp_path / "checkpoints" / "20").mkdir(parents=True)
  (tmp_path / "config.json").write_text(json.dumps(saved))
  checkpoints.check_workdir(config, tmp_path)  # not refused
  saved["dataset"]["image_size"] = 24
  (tmp_path / "config.json").write_text(json.dumps(saved))
  with pytest.raises(ValueError, match="dataset.crop_size: 24 in the workdir, 0 now"):
    checkpoints.check_workdir(config, tmp_path)


BAD_CONFIGS = [
  ({"model__name": "lenet6"}, "unknown model 'lenet6'; known: alexnet, .*, lenet5, "),
  ({"dataset__name": "fashoin_mnist"}, "unknown dataset 'fashoin_mnist'"),
  ({"batch_size": 0}, "batch_size must be positive, got 0"),
  (
    {"optimizer__learning_rate": -0.1},
    "optimizer.learning_rate must be positive and finite, got -0.1",
  ),
  (
    {"optimizer__learning_rate": 0.0},
    "optimizer.learning_rate must be positive and finite, got 0.0",
  ),
  (
    {"optimizer__learning_rate": float("inf")},
    "learning_rate must be positive and finite, got inf",
  ),
  ({"optimizer__weight_decay": float("nan")}, "weight_decay must be finite and 0 or more, got nan"),
  ({"schedule__warmup_epochs": -1.0}, "warmup_epochs must be finite and 0 or more, got -1.0"),
  ({"model__activation": "gelu"}, "unknown model.activation 'gelu'"),
  ({"model__form": "cnn"}, "unknown LeNet-5 form 'cnn'"),
  ({"model__dtype": "float16"}, "unknown model.dtype 'float16'"),
  ({"schedule__name": "poly"}, "unknown schedule.name 'poly'"),
  ({"eval__ten_crop": True}, r"eval.ten_crop: the crop \(32×32\) is the whole stored image"),
  ({"dataset__pad": 0}, "model 'lenet5': input 28×28×1 is too small for this network .*32×32"),
  ({"model__remove": "f7"}, "cannot remove 'f7': no such layer; valid names: c1, s2, c3"),
  ({"model__remove": "output"}, "cannot remove 'output': it produces the class scores"),
  ({"model__widths": "f6=abc"}, "bad model.widths entry 'f6=abc'"),
  ({"model__norm": "lrn"}, "model 'lenet5' has no LRN layers"),
  ({"dataset__train_split": "training"}, "unknown split 'training'"),
  ({"augment__pca_lighting": float("nan")}, "augment.pca_lighting must be finite and 0 or more"),
  ({"schedule__plateau_threshold": float("inf")}, "plateau_threshold must be finite and 0 or more"),
  ({"seed": -1}, "seed must be finite and 0 or more, got -1"),
  ({"dataset__pad": -1}, "dataset.pad must be finite and 0 or more, got -1"),
  ({"dataset__cache_gb": float("nan")}, "dataset.cache_gb must be finite and 0 or more, got nan"),
  # Checked though this run does not use the synthetic dataset.
  ({"dataset__synthetic__num_classes": 0}, "dataset.synthetic.num_classes must be positive"),
  ({"batch_size": 1024}, r"batch_size 1024 is larger than the training split \(512 examples\)"),
  ({"distributed__coordinator_address": "host"}, "coordinator_address must be HOST:PORT"),
  ({"distributed__num_processes": -2}, "num_processes must be 0 .* or more, got -2"),
  ({"distributed__num_processes": 2, "distributed__process_id": 2}, "process_id must be -1"),
]


@pytest.mark.parametrize("overrides,message", BAD_CONFIGS)
def test_bad_config_is_refused_before_anything_is_written(
  tiny_config, tmp_path, overrides, message
):
  with pytest.raises(ValueError, match=message):
    training.train_and_evaluate(tiny_config(**overrides), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_unprepared_dataset_is_refused(tiny_config, tmp_path):
  config = tiny_config()
  config.dataset.data_dir = str(tmp_path / "empty")
  with pytest.raises(ValueError, match="not prepared in .*make data"):
    training.train_and_evaluate(config, tmp_path / "run")


def test_workdir_of_another_model_is_refused_and_kept(tiny_config, trained_tiny_run):
  tmp_path = trained_tiny_run.workdir
  before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
  with pytest.raises(ValueError, match="model.form: 'modern' in the workdir, 'classic' now"):
    training.train_and_evaluate(tiny_config(model__form="classic"), tmp_path)
  assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


@pytest.mark.slow
def test_command_line_overrides_reach_the_run(tiny_data_dir, tmp_path):
  # Run from another folder with a relative workdir, as a user would.
  result = run_script(
    str(REPO / "train.py"),
    f"--config={REPO}/configs/default.py",
    "--workdir=run",
    f"--config.dataset.data_dir={tiny_data_dir}",
    "--config.model.form=classic",
    "--config.batch_size=32",
    "--config.num_train_steps=16",
    "--config.eval_every_steps=16",
    "--config.log_every_steps=8",
    "--config.checkpoint_every_steps=8",
    cwd=tmp_path,
  )
  assert result.returncode == 0, result.stderr
  assert "step 16/16" in result.stdout and "test top-1 error" in result.stdout
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["16", "8"]
  saved = json.loads((tmp_path / "run" / "config.json").read_text())
  assert saved["model"]["form"] == "classic" and saved["batch_size"] == 32
  result = run_script(str(REPO / "eval.py"), "--workdir=run", cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert (
    "step 16, single: top-1 error" in result.stdout and f"({TINY_TEST} examples" in result.stdout
  )


@pytest.mark.parametrize(
  "flag,message",
  [
    ("--config.model.nmae=lenet5", "nmae"),
    ("--config.model.name=vgg17", "error: unknown model 'vgg17'; known: alexnet"),
    ("--config.batch_size=-8", "error: batch_size must be positive, got -8"),
  ],
)
def test_command_line_errors_exit_nonzero_with_one_line(tiny_data_dir, tmp_path, flag, message):
  result = run_script(
    "train.py",
    "--config=configs/default.py",
    f"--workdir={tmp_path / 'run'}",
    f"--config.dataset.data_dir={tiny_data_dir}",
    flag,
  )
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_batch_norm_network_trains_evaluates_and_resumes(tiny_config, tmp_path, monkeypatch):
  config = lambda: tiny_config(
    model__name="cifar_resnet20", num_train_steps=30, eval_every_steps=10, checkpoint_every_steps=10
  )
  straight = training.train_and_evaluate(config(), tmp_path / "straight")
  crash_after_checkpoint(monkeypatch, 20, config(), tmp_path / "resumed")
  assert training.train_and_evaluate(config(), tmp_path / "resumed") == straight
  restored = checkpoints.read(tmp_path / "straight", 30)
  stats = restored["batch_stats"]["conv1_bn"]
  assert float(np.abs(stats["mean"]).max()) > 0  # running statistics were updated and saved
  assert (
    evaluation.evaluate_workdir(config(), tmp_path / "straight")["single"]["top1_error"]
    == straight["top1_error"]
  )
