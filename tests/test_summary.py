"""Per-layer accounting (summary.py) against hand computation, and its command line."""

import csv
import io
import json
import pathlib
import subprocess
import sys

import jax
import ml_collections
import pytest

import models
from models import accounting

REPO = pathlib.Path(__file__).resolve().parent.parent


def summarize(name, num_classes=1000, **fields):
  model = models.create_model(ml_collections.ConfigDict({"name": name, **fields}), num_classes)
  return accounting.summarize(model, models.entry(name).input_shape, num_classes)


def rows(result):
  return {row["name"]: row for row in result["layers"]}


def test_lenet5_accounting_by_hand():
  r = rows(summarize("lenet5", 10))
  assert r["c1"]["flops"] == 6 * 28 * 28 * 1 * 5 * 5  # C_out·H'·W'·C_in·K·K
  assert r["s2"]["flops"] == 6 * 14 * 14 * 2 * 2  # C_out·H'·W'·K·K
  assert r["c3"]["flops"] == 16 * 10 * 10 * 6 * 5 * 5
  assert r["f6"]["flops"] == 120 * 84  # C_in·C_out
  assert r["c1"]["output_shape"] == [28, 28, 6]
  assert r["c1"]["activation_bytes"] == 28 * 28 * 6 * 4
  assert r["c1"]["params"] == 156 and r["s2"]["params"] == 0
  result = summarize("lenet5", 10)
  assert result["total_flops"] == 422_824 == sum(row["flops"] for row in result["layers"])
  assert result["total_params"] == 61_706


def test_alexnet_accounting_by_hand():
  result = summarize("alexnet")
  r = rows(result)
  assert r["conv1"]["flops"] == 96 * 55 * 55 * 3 * 11 * 11
  assert r["conv2"]["flops"] == 256 * 27 * 27 * 96 * 5 * 5
  assert r["pool1"]["flops"] == 96 * 27 * 27 * 3 * 3
  assert r["fc6"]["flops"] == 9216 * 4096
  assert r["conv1"]["activation_bytes"] == 55 * 55 * 96 * 4
  assert result["total_params"] == 62_378_344
  conv_flops = sum(row["flops"] for row in result["layers"] if row["name"].startswith("conv"))
  assert conv_flops > 0.9 * result["total_flops"]  # most FLOPs in the convs
  early = sum(r[k]["activation_bytes"] for k in ("conv1", "norm1", "pool1", "conv2", "norm2"))
  assert early > 0.7 * sum(row["activation_bytes"] for row in result["layers"])


def test_grouped_convolution_halves_flops():
  single, grouped = rows(summarize("alexnet")), rows(summarize("alexnet", groups=2))
  assert grouped["conv2"]["flops"] * 2 == single["conv2"]["flops"]
  assert grouped["conv3"]["flops"] == single["conv3"]["flops"]


def test_blocks_sum_what_is_inside_them():
  r = rows(summarize("googlenet"))
  inside = 28 * 28 * (192 * 64 + 192 * 96 + 96 * 9 * 128 + 192 * 16 + 16 * 25 * 32 + 192 * 32)
  assert r["inception_3a"]["flops"] == inside + 28 * 28 * 192 * 9  # + its 3×3 max pool
  assert r["inception_3a"]["params"] == 163_696
  r = rows(summarize("resnet18"))
  block = 56 * 56 * 64 * 64 * 9 * 2
  assert r["stage1_block1"]["flops"] == block
  assert r["stage1_block1"]["params"] == 2 * (64 * 64 * 9 + 2 * 64)  # convs + batch norm γ, β


def test_param_totals_equal_the_model_variables():
  for name in ("vgg_c", "nin", "cifar_plain44", "alphago_policy"):
    entry = models.REGISTRY[name]
    model = models.create_model(ml_collections.ConfigDict({"name": name}), entry.num_classes)
    variables, _ = models.trace(model, models.entry(name).input_shape, entry.num_classes)
    result = accounting.summarize(model, models.entry(name).input_shape, entry.num_classes)
    assert result["total_params"] == sum(x.size for x in jax.tree.leaves(variables["params"]))


def test_removal_deltas_match_the_summaries():
  base, removed = summarize("alexnet"), summarize("alexnet", remove="fc7")
  assert base["total_params"] - removed["total_params"] == rows(base)["fc7"]["params"]
  assert [r["name"] for r in removed["layers"]] == [
    r["name"] for r in base["layers"] if r["name"] not in ("fc7", "drop7")
  ]


def run_summary(*args):
  return subprocess.run(
    [sys.executable, "summary.py", *args], cwd=REPO, capture_output=True, text=True, timeout=120
  )


@pytest.mark.slow
def test_command_line_json_and_csv():
  result = run_summary("--model=lenet5", "--format=json")
  assert result.returncode == 0, result.stderr
  data = json.loads(result.stdout)
  assert set(data) == {"total_params", "total_flops", "auxiliary_params", "layers"}
  assert data["auxiliary_params"] == 0
  assert data["total_params"] == 61_706 and data["total_flops"] == 422_824
  assert set(data["layers"][0]) == {"name", "output_shape", "params", "flops", "activation_bytes"}
  result = run_summary("--config=configs/alexnet.py", "--config.model.remove=fc7", "--format=csv")
  assert result.returncode == 0, result.stderr
  table = list(csv.DictReader(io.StringIO(result.stdout)))
  assert [r["name"] for r in table][-3:] == ["fc6", "drop6", "fc8"]
  assert table[0] == {
    "name": "conv1",
    "output_shape": "55x55x96",
    "params": "34944",
    "flops": "105415200",
    "activation_bytes": "1161600",
  }


@pytest.mark.slow
def test_command_line_table_and_errors():
  result = run_summary("--model=resnet50")
  assert result.returncode == 0, result.stderr
  assert "resnet50: input 224×224×3, 1000 classes" in result.stdout
  assert "25,557,032" in result.stdout.splitlines()[-1]
  result = run_summary("--model=googlenet")  # the total says it holds the auxiliary heads
  assert "auxiliary classifiers' 6,379,728 parameters (training only): 6,998,552" in result.stdout
  result = run_summary("--model=vgg17")
  assert result.returncode != 0 and "error: unknown model 'vgg17'" in result.stderr
  result = run_summary("--model=alexnet", "--input_size=32")
  assert result.returncode != 0 and "input 32×32×3 is too small" in result.stderr
  assert "the smallest it takes is 67×67" in result.stderr
