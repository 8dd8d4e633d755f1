"""Ablation studies: reading and checking a study, running it resumably, the results table."""

import csv
import importlib
import json
import pathlib
import subprocess
import sys

import ml_collections
import pytest

import config_values
import input_pipeline
import models
import studies
from models import accounting
from tests import pages
from tests.conftest import crash_after_checkpoint

REPO = pathlib.Path(__file__).resolve().parent.parent


def make_study(config, variants) -> ml_collections.ConfigDict:
  study = ml_collections.ConfigDict()
  study.base = config
  study.variants = tuple(variants)
  return study


@pytest.mark.parametrize(
  "variants,message",
  [
    ([("typo", {"model.nmae": "lenet5"})], "variant 'typo': unknown config field 'model.nmae'"),
    ([("typo", {"modle.name": "lenet5"})], "variant 'typo': unknown config field 'modle'"),
    ([("no_f7", {"model.remove": "f7"})], "variant 'no_f7': cannot remove 'f7': no such layer"),
    ([("a", {}), ("a", {"seed": 1})], "duplicate variant name 'a'"),
    ([("baseline", {"seed": 1})], "duplicate variant name 'baseline' .*the base config itself"),
    ([("a/b", {})], "variant name 'a/b': use letters, digits"),
    ([("bad_type", {"batch_size": "big"})], "variant 'bad_type': bad value 'big' for 'batch_size'"),
  ],
)
def test_bad_studies_are_refused_before_anything_runs(tiny_config, tmp_path, variants, message):
  with pytest.raises(ValueError, match=message):
    studies.run_study(make_study(tiny_config(), variants), tmp_path / "study")
  assert not (tmp_path / "study").exists()


@pytest.mark.slow
def test_study_runs_every_variant_reports_failures_and_resumes(tiny_config, tmp_path, capsys):
  config = tiny_config(num_train_steps=20, eval_every_steps=20, checkpoint_every_steps=20)
  variants = [
    ("no_f6", {"model.remove": "f6"}),
    ("wide_f6", {"model.widths": "f6=200"}),
    ("diverges", {"optimizer.learning_rate": 1e7, "schedule.warmup_epochs": 0.0}),
  ]
  rows = studies.run_study(make_study(config, variants), tmp_path)
  by_name = {row["variant"]: row for row in rows}
  assert list(by_name) == ["baseline", "no_f6", "wide_f6", "diverges"]
  assert [by_name[n]["status"] for n in ("baseline", "no_f6", "wide_f6")] == ["ran"] * 3
  assert by_name["diverges"]["status"].startswith(
    "failed: FloatingPointError: training loss became"
  )
  assert by_name["diverges"]["top1_error"] is None
  # Parameter counts and deltas are those of the variants' own summaries.
  for name, overrides in [("baseline", {})] + variants:
    variant_config = config_values.with_overrides(config, overrides)
    info = input_pipeline.check_dataset(variant_config)
    expected = accounting.summarize(
      models.create_model(variant_config.model, 10),
      input_pipeline.input_shape(variant_config, info),
      10,
    )
    assert by_name[name]["params"] == expected["total_params"]
    assert by_name[name]["flops"] == expected["total_flops"]
  assert (
    by_name["no_f6"]["params_delta"] == by_name["no_f6"]["params"] - by_name["baseline"]["params"]
  )
  assert by_name["no_f6"]["params_delta"] < 0 < by_name["wide_f6"]["params_delta"]
  for name in ("no_f6", "wide_f6"):
    assert by_name[name]["top1_error_delta"] == pytest.approx(
      by_name[name]["top1_error"] - by_name["baseline"]["top1_error"]
    )
    assert by_name[name]["wall_seconds"] > 0
  with open(tmp_path / "study.csv") as f:
    assert [r["variant"] for r in csv.DictReader(f)] == list(by_name)
  assert "| no_f6 | " in (tmp_path / "study.md").read_text()
  assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # The study's page: the table, the curves, error against size, each variant's own page.
  page = pages.read(tmp_path / "report.html", pages.STUDY_SECTIONS)
  assert [link for link in page.links if not link.startswith("#")] == [
    f"{name}/report.html" for name in by_name
  ]
  assert set(page.images) == {
    "report/curves.png",
    "report/errors.png",
    "report/error_params.png",  # the variants' sizes differ
    "report/error_flops.png",
  }
  assert 'no_f6 ran model.remove: "f6"' in page.text  # how a variant differs from the baseline
  assert "Failed: FloatingPointError" in (tmp_path / "diverges" / "report.html").read_text()

  # A second invocation trains nothing that finished; the failed variant is tried again.
  finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "no_f6").rglob("*")}
  capsys.readouterr()
  again = {row["variant"]: row for row in studies.run_study(make_study(config, variants), tmp_path)}
  assert [again[n]["status"] for n in ("baseline", "no_f6", "wide_f6")] == ["done earlier"] * 3
  assert again["diverges"]["status"].startswith("failed")
  assert {p: p.stat().st_mtime_ns for p in (tmp_path / "no_f6").rglob("*")} == finished
  assert again["no_f6"]["top1_error"] == by_name["no_f6"]["top1_error"]
  assert capsys.readouterr().out.count("step 20/20") == 0  # only the diverging one trained


@pytest.mark.slow
def test_a_changed_study_is_refused_or_rerun_never_reported_from_the_old_runs(
  tiny_config, tmp_path
):
  variants = [("no_f6", {"model.remove": "f6"})]
  short = tiny_config(num_train_steps=20, eval_every_steps=20, checkpoint_every_steps=20)
  first = studies.run_study(make_study(short, variants), tmp_path)
  assert [row["steps"] for row in first] == [20, 20]
  longer = tiny_config(num_train_steps=30, eval_every_steps=30, checkpoint_every_steps=30)
  before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
  with pytest.raises(ValueError, match=r"another config .*num_train_steps: 20 there, 30 now"):
    studies.run_study(make_study(longer, variants), tmp_path)
  assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before

  second = studies.run_study(make_study(longer, variants), tmp_path, changed="rerun")
  assert [row["status"] for row in second] == ["ran", "ran"]
  assert [row["steps"] for row in second] == [30, 30]
  for old, new in zip(first, second, strict=True):
    assert old["config"] != new["config"]
    kept = tmp_path / f"{old['variant']}.{old['config']}"  # the old run, kept and named
    assert json.loads((kept / "results.json").read_text())["single"]["step"] == 20
    assert (
      json.loads((tmp_path / old["variant"] / "results.json").read_text())["single"]["step"] == 30
    )


@pytest.mark.slow
def test_an_interrupted_variant_resumes_from_its_checkpoint(
  tiny_config, tmp_path, monkeypatch, capsys
):
  study = make_study(tiny_config(), [("no_f6", {"model.remove": "f6"})])
  variant = studies.read_study(study)[1]
  crash_after_checkpoint(monkeypatch, 20, variant.config, tmp_path / "no_f6")
  capsys.readouterr()
  rows = studies.run_study(study, tmp_path)
  assert "resuming at step 20" in capsys.readouterr().out
  assert [row["status"] for row in rows] == ["ran", "ran"]


@pytest.mark.parametrize(
  "name", ["zeiler_fergus", "depth_degradation", "activations", "augmentation"]
)
def test_shipped_studies_build_every_variant(name):
  study = importlib.import_module(f"configs.studies.{name}").get_config()
  names = [variant for variant, _ in study.variants]
  assert len(set(names)) == len(names) and studies.BASELINE not in names
  for _, overrides in study.variants:
    config = config_values.with_overrides(study.base, dict(overrides))
    entry = models.entry(config.model.name)
    size = config.dataset.crop_size or entry.input_size
    num_classes = entry.num_classes
    models.trace(
      models.create_model(config.model, num_classes), (size, size, entry.channels), num_classes
    )


def test_zeiler_fergus_removals_drop_the_published_parameter_counts():
  study = importlib.import_module("configs.studies.zeiler_fergus").get_config()
  params = {}
  for name, overrides in [("baseline", {})] + list(study.variants):
    config = config_values.with_overrides(study.base, dict(overrides))
    params[name] = accounting.summarize(
      models.create_model(config.model, 1000), (227, 227, 3), 1000
    )["total_params"]
  dropped = {name: (params["baseline"] - p) / 1e6 for name, p in params.items()}
  # fc8 and conv5 take the wider inputs left to them, as in a re-built network.
  assert dropped["no_fc7"] == pytest.approx(16.78, abs=0.01)  # Zeiler & Fergus §5.3: ≈16 M
  assert dropped["no_fc6_fc7"] == pytest.approx(49.41, abs=0.01)  # ≈50 M
  assert dropped["no_conv3_conv4"] == pytest.approx(2.51, abs=0.01)  # ≈1 M in their (ZF) net


def test_command_line_study_error_is_one_line_before_any_run(tiny_data_dir, tmp_path):
  result = subprocess.run(
    [
      sys.executable,
      "ablate.py",
      "--study=configs/studies/activations.py",
      f"--workdir={tmp_path / 'study'}",
      f"--study.base.dataset.data_dir={tiny_data_dir}",
      "--study.base.batch_size=-8",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 1
  assert "error: variant 'baseline': batch_size must be positive, got -8" in result.stderr
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "study").exists()
