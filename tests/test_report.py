"""The saved predictions (reporting/predictions.py) against hand counts and results.json, and
the run's page (reporting/run_page.py) for a trained, an interrupted, a stopped, a failed and
a resumed run, and as report.py writes it."""

import json
import signal

import ml_collections
import numpy as np
import pytest

import cli
import prediction
import records
import training
from reporting import predictions as saved_predictions
from reporting import run_page
from tests import pages
from tests.conftest import crash_after_checkpoint, run_script

RUN_SECTIONS = pages.RUN_SECTIONS


def test_saved_predictions_give_the_recorded_errors_and_a_hand_counted_confusion_matrix(
  trained_tiny_run,
):
  workdir = trained_tiny_run.workdir
  saved = saved_predictions.read(workdir)
  results = json.loads((workdir / "results.json").read_text())["single"]
  single = saved.protocols["single"]
  labels, count = saved.labels, results["num_examples"]
  assert (saved.step, saved.split, len(labels)) == (results["step"], "test", count)
  # The predictions are the evaluation's: its top-1 and top-5 errors, counted again.
  assert 100.0 * np.mean(single.predicted != labels) == pytest.approx(results["top1_error"])
  in_top5 = (single.classes == labels[:, None]).any(axis=1)
  assert 100.0 * np.mean(~in_top5) == pytest.approx(results["top5_error"])
  assert np.all(np.diff(single.probabilities, axis=1) <= 0)  # best first
  assert np.all(single.probabilities.sum(axis=1) <= 1 + 1e-5)
  at_label = single.classes == labels[:, None]
  np.testing.assert_allclose(single.probabilities[at_label], single.true_probability[in_top5])

  hand = np.zeros((10, 10), np.int64)
  for label, predicted in zip(labels, single.predicted, strict=True):
    hand[label, predicted] += 1
  matrix = saved_predictions.confusion_matrix(labels, single.predicted, 10)
  np.testing.assert_array_equal(matrix, hand)
  assert matrix.sum() == count
  errors = saved_predictions.per_class_error(matrix)
  for c in range(10):
    mine = labels == c
    if mine.any():
      assert errors[c] == pytest.approx(100.0 * np.mean(single.predicted[mine] != c))
    else:
      assert np.isnan(errors[c])
  np.testing.assert_allclose(saved_predictions.row_normalised(hand).sum(axis=1)[hand.any(1)], 1.0)


def test_the_most_confidently_wrong_are_wrong_and_in_order_of_confidence():
  made = saved_predictions.ProtocolPredictions(
    classes=np.array([[1, 0], [0, 1], [1, 0], [1, 0], [0, 1]]),
    probabilities=np.array([[0.6, 0.4], [0.9, 0.1], [0.9, 0.1], [0.99, 0.01], [0.6, 0.4]]),
    true_probability=np.array([0.4, 0.9, 0.1, 0.99, 0.4]),
  )
  labels = np.array([0, 0, 0, 1, 1])  # examples 0, 2 and 4 are wrong
  np.testing.assert_array_equal(saved_predictions.confidently_wrong(labels, made, 5), [2, 0, 4])
  np.testing.assert_array_equal(saved_predictions.confidently_wrong(labels, made, 1), [2])

  rng = np.random.default_rng(0)
  probabilities = rng.dirichlet(np.ones(10), 1000)
  classes = np.argsort(-probabilities, axis=1)[:, :5]
  labels = rng.integers(0, 10, 1000)
  drawn = saved_predictions.ProtocolPredictions(
    classes, np.take_along_axis(probabilities, classes, 1), probabilities[np.arange(1000), labels]
  )
  chosen = saved_predictions.confidently_wrong(labels, drawn, 1000)
  assert len(chosen) == np.sum(classes[:, 0] != labels) > 800
  assert np.all(classes[chosen, 0] != labels[chosen])
  assert np.all(np.diff(drawn.probabilities[chosen, 0]) <= 0)


def test_damaged_or_foreign_predictions_are_one_error_naming_the_file(tmp_path):
  (tmp_path / saved_predictions.FILE).write_bytes(b"not a zip file")
  with pytest.raises(ValueError, match="predictions.npz cannot be read as saved predictions"):
    saved_predictions.read(tmp_path)
  np.savez(tmp_path / "other.npz", labels=np.zeros(3, np.int32))
  (tmp_path / "other.npz").replace(tmp_path / saved_predictions.FILE)
  with pytest.raises(ValueError, match="cannot be read as saved predictions"):
    saved_predictions.read(tmp_path)
  assert saved_predictions.read(tmp_path / "elsewhere") is None


def test_a_trained_run_s_page_holds_every_section_with_its_pictures(trained_tiny_run):
  workdir = trained_tiny_run.workdir
  page = pages.read(workdir / run_page.PAGE, RUN_SECTIONS)  # written by the end of training
  saved = saved_predictions.read(workdir)
  wrong = int(np.sum(saved.protocols["single"].predicted != saved.labels))
  shown = [image for image in page.images if image.startswith("report/wrong_")]
  assert len(shown) == min(wrong, run_page.WRONG_SHOWN)
  assert "Finished." in page.text
  assert "run.json" not in page.text  # the run recorded how it ended
  assert {"curves.png", "report/curves_time.png"} <= set(page.images)
  assert {"report/confusion.png", "report/per_class.png"} <= set(page.images)
  config = json.loads((workdir / "config.json").read_text())
  for name in prediction.class_names(ml_collections.ConfigDict(config), 10):
    assert name in page.text  # the classes table names every class
  assert "batch_size 128 32" in page.text  # the config's differences from the defaults
  assert "40 of 40" in page.text  # steps
  assert "None yet" in page.text  # no visualisations
  assert wrong == 0 and "No example is misclassified." in page.text


def test_the_page_shows_the_most_confidently_wrong_images_with_their_classes(
  trained_tiny_run, tmp_path
):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  saved = saved_predictions.read(workdir)
  single = saved.protocols["single"]
  classes, probabilities = single.classes.copy(), single.probabilities.copy()
  for index, confidence in ((3, 0.7), (7, 0.9), (11, 0.8)):  # three made wrong
    classes[index, :2] = (saved.labels[index] + 1) % 10, saved.labels[index]
    probabilities[index, :2] = confidence, 1 - confidence
  saved_predictions.write(
    workdir,
    saved.step,
    saved.split,
    {
      "single": {
        "classes": classes,
        "probabilities": probabilities,
        "true_probability": single.true_probability,
        "label": saved.labels,
      }
    },
  )
  page = pages.read(run_page.write(workdir), RUN_SECTIONS)
  assert [image for image in page.images if "wrong" in image] == [
    f"report/wrong_{rank:02d}.png" for rank in range(3)
  ]
  names = prediction.class_names(ml_collections.ConfigDict(cli.saved_config(str(workdir))), 10)
  captions = [
    f"#{i}: true {names[saved.labels[i]]} (p {single.true_probability[i]:.3f}) 1. "
    f"{names[(saved.labels[i] + 1) % 10]} {p:.3f} 2. {names[saved.labels[i]]} {1 - p:.3f}"
    for i, p in ((7, 0.9), (11, 0.8), (3, 0.7))
  ]
  positions = [page.text.index(caption) for caption in captions]
  assert positions == sorted(positions)  # most confident first


def test_report_py_writes_the_page_of_a_workdir_and_refuses_other_folders(
  trained_tiny_run, tmp_path
):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  (workdir / run_page.PAGE).unlink()
  result = run_script("report.py", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == f"written {workdir / run_page.PAGE}"
  pages.read(workdir / run_page.PAGE, RUN_SECTIONS)
  neither = run_script("report.py", f"--workdir={tmp_path}")
  assert neither.returncode == 1
  assert neither.stderr.startswith(f"error: --workdir={tmp_path} is neither a run's folder")


@pytest.mark.slow
def test_stopped_interrupted_failed_and_resumed_runs_each_get_a_page_that_says_so(
  tiny_config, tmp_path, monkeypatch
):
  config = tiny_config()
  page_text = lambda: pages.read(tmp_path / run_page.PAGE, RUN_SECTIONS).text

  def stop_at_10(self, step):  # as if SIGTERM arrived at step 10
    if step == 10:
      self.received = signal.SIGTERM
    return self.signalled

  with monkeypatch.context() as patch:
    patch.setattr(training.Preemption, "requested", stop_at_10)
    with pytest.raises(cli.Preempted):
      training.train_and_evaluate(config, tmp_path)
  text = page_text()
  assert "Stopped: stopped by SIGTERM at step 10/40" in text
  assert "No saved predictions" in text  # no evaluation before step 20

  crash_after_checkpoint(monkeypatch, 20, config, tmp_path)  # resumes at 10, killed after 20
  text = page_text()
  assert "Interrupted: killed after the checkpoint of step 20" in text
  assert "single-crop predictions of 300 'test' examples at step 20" in text

  failing = tiny_config(optimizer__learning_rate=1e7, schedule__warmup_epochs=0.0)
  with pytest.raises(FloatingPointError):
    training.train_and_evaluate(failing, tmp_path / "diverges")
  failed = pages.read(tmp_path / "diverges" / run_page.PAGE, RUN_SECTIONS).text
  assert "Failed: FloatingPointError: training loss became" in failed

  training.train_and_evaluate(config, tmp_path)  # resumes at 20 and finishes
  text = page_text()
  assert "Finished." in text and "40 of 40" in text
  assert "predictions of 300 'test' examples at step 40" in text
  run = json.loads((tmp_path / "run.json").read_text())
  assert run["status"] == "finished" and run["total_steps"] == 40


def test_class_names_are_those_of_the_classes_a_run_kept(tiny_config):
  # Pages and predict.py name a subset run's classes (dataset.classes), not all the dataset's.
  assert prediction.class_names(tiny_config(dataset__classes="5,7,9"), 3) == [
    "Sandal",
    "Sneaker",
    "Ankle boot",
  ]
  assert prediction.class_names(tiny_config(), 10)[:2] == ["T-shirt/top", "Trouser"]


def test_a_killed_run_s_page_says_no_end_was_recorded(trained_tiny_run, tmp_path):
  # SIGKILL leaves run.json at "running": report.py's page says so and shows what there is.
  workdir = trained_tiny_run.copy(tmp_path / "run")
  records.record_run(workdir, status="running")
  text = pages.read(run_page.write(workdir), RUN_SECTIONS).text
  assert "No end recorded: still training, or killed" in text and "step 40" in text
  (workdir / records.RUN_FILE).unlink()  # a run from before run.json existed
  text = pages.read(run_page.write(workdir), RUN_SECTIONS).text
  assert "How this run ended is not recorded (no run.json" in text
