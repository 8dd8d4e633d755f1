"""Hostile inputs and faults: each ends in one line naming the bad value or file and what to do,
and every checkpoint and result that was there before is still there.

In-process tests check the errors and what is left on disk; a few real processes check what a
user sees on the console (one `error:` line, no traceback, the exit status).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

import checkpoints
import cli
import parallel
import records
import training
import workdirs
from input_pipeline import datasets
from tests.conftest import run_script, snapshot

REPO = pathlib.Path(__file__).resolve().parent.parent


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
  """The process failed with exactly one `error:` line on stderr holding every fragment."""
  assert result.returncode not in (0, None), result.stdout
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
  assert "Traceback" not in result.stdout + result.stderr
  for fragment in fragments:
    assert fragment in lines[0], lines[0]
  return lines[0]


# ---------------------------------------------------------------------------------------------
# Config files and the command line.


@pytest.mark.parametrize(
  "source,argument,message",
  [
    (None, "", "no such file"),
    ("def get_config(:\n", "", "line 1: invalid syntax"),
    ("import no_such_module\n", "", "ModuleNotFoundError: No module named 'no_such_module'"),
    ("def get_config():\n  raise RuntimeError('boom')\n", "", "RuntimeError: boom (line 2)"),
    ("def get_config():\n  return {}\n", ":xyz", "takes no argument, got 'xyz'; drop the ':xyz'"),
    ("def get_config(size):\n  return {}\n", "", "needs an argument: "),
    ("def get_config():\n  pass\n", "", "returned None"),
    ("CONFIG = 1\n", "", "defines no get_config() function"),
  ],
)
def test_config_file_problems_are_one_line(tmp_path, source, argument, message):
  path = tmp_path / "experiment.py"
  if source is not None:
    path.write_text(source)
  assert message in cli.config_file_problem(f"{path}{argument}")


def test_a_good_config_file_has_no_problem():
  assert cli.config_file_problem("configs/default.py") is None
  assert cli.config_file_problem("configs/vgg.py:d") is None
  assert "the config files in configs/: " in cli.config_file_problem("configs/nope.py")


def test_bad_config_file_on_the_command_line_is_one_line_before_anything_runs(tmp_path):
  (tmp_path / "broken.py").write_text("def get_config(:\n")
  result = run_script("train.py", f"--config={tmp_path / 'broken.py'}", f"--workdir={tmp_path}/r")
  assert_one_error_line(result, "broken.py: line 1: invalid syntax")
  result = run_script("train.py", "--config", "configs/default.py:xyz", f"--workdir={tmp_path}/r")
  assert_one_error_line(result, "configs/default.py:xyz: its get_config() takes no argument")
  assert not (tmp_path / "r").exists()


def test_empty_workdir_is_refused_and_nothing_is_written(tiny_config, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ValueError, match="--workdir is empty"):
    training.train_and_evaluate(tiny_config(), "")
  assert list(tmp_path.iterdir()) == []


def test_bad_cpu_device_count_names_the_variable(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "")  # else the tests' explicit device count wins
  monkeypatch.setenv(parallel.CPU_DEVICES_ENV, "abc")
  with pytest.raises(ValueError, match=r"CONVZOO_CPU_DEVICES must be a positive .*, got 'abc'"):
    parallel.configure_cpu_devices()


# ---------------------------------------------------------------------------------------------
# Workdirs.


@pytest.mark.parametrize(
  "make,workdir,message",
  [
    (lambda d: (d / "run").write_text("x"), "run", "run is a file, not a folder"),
    (lambda d: (d / "file").write_text("x"), "file/run", "file is a file, not a folder"),
    (
      lambda d: ((d / "run").mkdir(), (d / "run" / "checkpoints").write_text("x")),
      "run",
      "checkpoints is a file, where the run keeps its checkpoints folder",
    ),
    (
      lambda d: (d / "run" / "metrics.jsonl").mkdir(parents=True),
      "run",
      "metrics.jsonl is a folder, where the run writes its metrics.jsonl",
    ),
  ],
)
def test_unusable_workdir_is_refused_before_anything_is_written(
  tiny_config, tmp_path, make, workdir, message
):
  make(tmp_path)
  before = snapshot(tmp_path)
  with pytest.raises(ValueError, match=message):
    training.train_and_evaluate(tiny_config(), tmp_path / workdir)
  assert snapshot(tmp_path) == before


def test_read_only_workdir_is_refused(tiny_config, tmp_path, monkeypatch):
  # Root may write anywhere, so a read-only place is simulated where the check asks.
  access = os.access
  monkeypatch.setattr(
    os, "access", lambda path, mode: False if str(path) == str(tmp_path) else access(path, mode)
  )
  with pytest.raises(ValueError, match=f"{tmp_path} is not writable"):
    training.train_and_evaluate(tiny_config(), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_garbage_config_json_is_named_and_kept(tiny_config, tmp_path, trained_tiny_run):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  (workdir / "config.json").write_text("{not json")
  before = snapshot(workdir)
  with pytest.raises(ValueError, match=r"config.json cannot be read as a config \(Expecting"):
    training.train_and_evaluate(tiny_config(), workdir)
  assert snapshot(workdir) == before


def test_a_second_run_on_a_workdir_in_use_is_refused(tiny_config, tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  with workdirs.Lock(workdir), pytest.raises(ValueError, match="is in use by another run"):
    training.train_and_evaluate(tiny_config(), workdir)
  assert list(workdir.iterdir()) == []
  with workdirs.Lock(workdir):  # released: it can be taken again
    pass


def test_the_lock_of_a_killed_run_is_released(tmp_path):
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      "import sys, time, pathlib, workdirs\n"
      f"with workdirs.Lock(pathlib.Path({str(tmp_path)!r})):\n"
      "  print('held', flush=True); time.sleep(60)",
    ],
    cwd=REPO,
    stdout=subprocess.PIPE,
    text=True,
  )
  assert holder.stdout.readline().strip() == "held"
  with pytest.raises(ValueError, match="in use"), workdirs.Lock(tmp_path):
    pass
  holder.kill()
  holder.wait()
  with workdirs.Lock(tmp_path):
    pass


# ---------------------------------------------------------------------------------------------
# Checkpoints: each judged on its own.


def test_an_empty_step_folder_costs_only_itself(tiny_config, tmp_path, trained_tiny_run, capsys):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  (workdir / "checkpoints" / "50").mkdir()  # a crash while a save was being set up
  # Keyed by the step folder itself: a data file's hashed name may begin with "50" as well.
  damaged = workdir / "checkpoints" / "50"
  healthy = {p: s for p, s in snapshot(workdir / "checkpoints").items() if p != damaged}
  step, state = checkpoints.restore(workdir, None, print)
  assert step == 40 and int(state["step"]) == 40
  assert "warning: checkpoint of step 50 cannot be restored" in capsys.readouterr().out
  assert os.listdir(workdir / "unrestorable_checkpoints") == ["50"]
  assert snapshot(workdir / "checkpoints") == healthy  # 20 and 40 untouched


def test_checkpoints_of_another_network_without_config_json_are_refused_and_untouched(
  tiny_config, tmp_path, trained_tiny_run
):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  (workdir / "config.json").unlink()
  before = snapshot(workdir)
  with pytest.raises(
    ValueError,
    match=r"holds another network .*params.f6.bias: \(84,\) in the checkpoint, \(100,\) now",
  ):
    training.train_and_evaluate(tiny_config(model__widths="f6=100"), workdir)
  assert snapshot(workdir) == before


def damage(checkpoint: pathlib.Path) -> None:
  for path in (checkpoint / "default").rglob("d/*"):
    if path.is_file():
      path.write_bytes(path.read_bytes()[:10])  # truncated, as a full disk or a kill leaves it


def test_a_failed_start_leaves_no_folder_behind(tiny_config, tmp_path, trained_tiny_run):
  source = trained_tiny_run.copy(tmp_path / "source")
  for step in ("20", "40"):
    damage(source / "checkpoints" / step)
  before = snapshot(source)
  with pytest.raises(ValueError, match="no checkpoint in .* can be restored"):
    training.train_and_evaluate(tiny_config(init_from=str(source)), tmp_path / "new" / "run")
  assert not (tmp_path / "new").exists()
  assert snapshot(source) == before  # another run's checkpoints are read, never moved


@pytest.mark.slow
def test_console_shows_one_line_for_damaged_checkpoints(tiny_data_dir, tmp_path, trained_tiny_run):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  args = (
    "train.py",
    "--config=configs/default.py",
    f"--workdir={workdir}",
    f"--config.dataset.data_dir={tiny_data_dir}",
    "--config.batch_size=32",
    "--config.eval_batch_size=64",
    "--config.eval_every_steps=20",
    "--config.checkpoint_every_steps=20",
    "--config.log_every_steps=10",
  )
  damage(workdir / "checkpoints" / "40")
  resumed = run_script(*args, "--config.num_train_steps=60")
  assert resumed.returncode == 0, resumed.stderr
  assert "resuming at step 20" in resumed.stdout
  assert "warning: checkpoint of step 40 cannot be restored" in resumed.stdout
  assert resumed.stderr.strip() == "", resumed.stderr  # no traceback, no orbax noise
  for step in ("20", "40", "60"):
    damage(workdir / "checkpoints" / step)
  failed = run_script(*args, "--config.num_train_steps=80")
  assert_one_error_line(failed, "no checkpoint in", "can be restored", "they were moved to")
  assert "Event loop is closed" not in failed.stdout + failed.stderr
  assert sorted(os.listdir(workdir / "unrestorable_checkpoints")) == ["20", "40", "40.1", "60"]


def test_a_failed_save_removes_its_partial_folder_and_says_what_to_free(tmp_path):
  folder = tmp_path / "checkpoints"
  (folder / "20").mkdir(parents=True)
  (folder / f"40{checkpoints.TMP_SUFFIX}" / "default").mkdir(parents=True)
  error = checkpoints.save_failed(
    folder, ValueError("RESOURCE_EXHAUSTED: ... No space left on device [os_error_code='28']")
  )
  assert str(error) == (
    f"could not save the checkpoint of step 40 in {folder}: no space left on the device; its "
    "partial folder was removed and the earlier checkpoints are intact; free space on the disk "
    f"of {folder} and run the same command to resume from step 20"
  )
  assert os.listdir(folder) == ["20"]


@pytest.mark.slow
def test_disk_full_while_saving_keeps_earlier_checkpoints(tiny_data_dir, tmp_path):
  small = tmp_path / "small"
  small.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(small)])
  if mounted.returncode != 0:
    pytest.skip("a small tmpfs cannot be mounted here (needs root)")
  try:
    result = run_script(
      "train.py",
      "--config=configs/default.py",
      f"--workdir={small / 'run'}",
      f"--config.dataset.data_dir={tiny_data_dir}",
      "--config.batch_size=32",
      "--config.eval_batch_size=64",
      "--config.num_train_steps=40",
      "--config.checkpoint_every_steps=5",
      "--config.keep_checkpoints=10",
    )
    line = assert_one_error_line(result, "no space left on the device", "resume from step")
    newest = int(line.split("resume from step ")[1])
    assert checkpoints.steps(small / "run") == list(range(5, newest + 1, 5))
    assert not list((small / "run" / "checkpoints").glob(f"*{checkpoints.TMP_SUFFIX}*"))
    step, state = checkpoints.restore(small / "run", None, print)
    assert step == newest == int(state["step"])
  finally:
    subprocess.run(["umount", str(small)])


# ---------------------------------------------------------------------------------------------
# Signals.


def test_first_ctrl_c_asks_to_stop_and_a_second_interrupts():
  before = signal.getsignal(signal.SIGINT)
  # raise_signal delivers to this thread, so the handler has run when it returns. os.kill with
  # a sleep was flaky: the kernel may hand the signal to any of the process's threads (JAX's), and
  # the handler then ran only after the 0.1 s sleep (twice in CI, 2026-12-01).
  with training.Preemption(every=1) as preemption:
    signal.raise_signal(signal.SIGINT)
    assert preemption.requested(step=1)
    stopped = preemption.stopped(3, 10, pathlib.Path("/w"))
    assert stopped.status == cli.INTERRUPTED_STATUS
    assert str(stopped).startswith("stopped by SIGINT at step 3/10; checkpoint saved in /w")
    with pytest.raises(KeyboardInterrupt):
      signal.raise_signal(signal.SIGINT)
  assert signal.getsignal(signal.SIGINT) is before


# ---------------------------------------------------------------------------------------------
# Data.


def damaged_copy(tiny_data_dir: str, tmp_path: pathlib.Path, how) -> str:
  copy = tmp_path / "tfds"
  shutil.copytree(tiny_data_dir, copy)
  (version,) = (copy / "fashion_mnist").iterdir()
  how(version)
  return str(copy)


def train_file(version: pathlib.Path) -> pathlib.Path:
  return next(version.glob("fashion_mnist-train.array_record-*"))


@pytest.mark.parametrize(
  "how,message",
  [
    (lambda v: train_file(v).unlink(), "is damaged: missing .*fashion_mnist-train.array_record"),
    (
      lambda v: os.truncate(train_file(v), train_file(v).stat().st_size // 2),
      "is damaged: reading .*fashion_mnist-train.array_record.* failed",
    ),
    (
      lambda v: train_file(v).write_bytes(b"\x00garbage" * 1000),
      "is damaged: reading .*fashion_mnist-train.array_record.* failed",
    ),
    (
      lambda v: (v / "dataset_info.json").write_text("{garbage"),
      r"is damaged: its metadata \(fashion_mnist/\*/dataset_info.json\) cannot be read",
    ),
    (
      lambda v: v.rename(v.parent / "0.9.0"),
      r"not prepared in .* \(found version 0.9.0, prepared by another TFDS",
    ),
  ],
)
def test_damaged_dataset_names_the_file_and_how_to_prepare_it_again(
  tiny_config, tiny_data_dir, tmp_path, monkeypatch, how, message
):
  monkeypatch.setenv("CONVZOO_CACHE_DIR", str(tmp_path / "cache"))  # no decoded copy to hide it
  config = tiny_config()
  config.dataset.data_dir = damaged_copy(tiny_data_dir, tmp_path, how)
  with pytest.raises(ValueError, match=message) as error:
    training.train_and_evaluate(config, tmp_path / "run")
  assert "make data" in str(error.value)
  assert not (tmp_path / "run").exists()


def test_damaged_dataset_error_is_a_value_error_with_the_fix():
  error = datasets.DatasetDamaged("mnist", "/data", "missing /data/mnist/x", OSError("gone"))
  assert isinstance(error, ValueError)
  assert "delete /data/mnist and prepare it offline with TFDS" in str(error)


# ---------------------------------------------------------------------------------------------
# Files a run reads back.


def test_cut_metrics_row_and_garbage_results_do_not_fail_a_run(tmp_path):
  (tmp_path / records.METRICS_FILE).write_text(
    '{"split": "train", "step": 1, "loss": 2.0}\n{"split": "tr'
  )
  assert records.read_metrics(tmp_path) == {"train": [{"split": "train", "step": 1, "loss": 2.0}]}
  (tmp_path / records.RESULTS_FILE).write_text("garbage")
  assert records.write_results(tmp_path, "single", {"top1_error": 9.0}) == {
    "single": {"top1_error": 9.0}
  }
  assert (tmp_path / "results.json.unreadable").read_text() == "garbage"


# ---------------------------------------------------------------------------------------------
# The one place errors are printed.


@pytest.mark.slow
def test_errors_are_one_line_unless_verbose(tmp_path, trained_tiny_run, tiny_data_dir):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  (workdir / "config.json").write_text("{not json")
  args = ("eval.py", f"--workdir={workdir}")
  args += (f"--config.dataset.data_dir={tiny_data_dir}",)
  assert_one_error_line(run_script(*args), f"{workdir}/config.json cannot be read as a config")
  for verbose in (run_script(*args, "--verbose"), run_script(*args, env={cli.DEBUG_ENV: "1"})):
    assert "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.rstrip().splitlines()[-1].startswith("error: ")


def test_unexpected_errors_and_disk_errors_read_as_one_line():
  assert cli.describe(RuntimeError("boom\nsecond line")) == (
    f"RuntimeError: boom second line ({cli.VERBOSE_HINT})"
  )
  full = OSError(28, "No space left on device", "/w/metrics.jsonl")
  assert cli.describe(full).startswith("no space left on the device of /w/metrics.jsonl; free")
  assert cli.describe(PermissionError(13, "Permission denied", "/w")) == (
    "cannot use /w: Permission denied"
  )
  assert cli.describe(KeyboardInterrupt()).startswith("interrupted (Ctrl-C)")
