"""benchmarks/accelerator.py on the CPU: one row per (network, dtype), and its command line."""

import pytest

from benchmarks import accelerator
from tests.conftest import run_script


@pytest.mark.slow  # two LeNet-5 states built and compiled: 12–38 s on 2 cores
def test_the_table_has_one_row_per_network_and_dtype(tmp_path):
  out = tmp_path / "results" / "accelerator.md"
  text = accelerator.run(["lenet5"], batch=2, steps=1, warmup=1, devices=1, out=out)
  assert out.read_text() == text
  assert "No accelerator found" in text  # the tests run on host CPU devices
  table = [line for line in text.splitlines() if line.startswith("|")]
  assert table[0] == accelerator.HEADER
  rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
  assert [(r[3], r[4], r[5]) for r in rows] == [("lenet5", d, "2") for d in accelerator.DTYPES]
  assert all(float(r[6].replace(",", "")) > 0 for r in rows)
  assert rows[0][7] == "" and float(rows[1][7].strip("*")) > 0  # bf16 / f32 on the bf16 row


@pytest.mark.smoke
def test_an_unknown_network_names_the_allowed_ones():
  with pytest.raises(ValueError, match="'vgg19'; --networks takes some of: resnet50, alexnet"):
    accelerator.check_networks(["resnet50", "vgg19"])


def test_the_command_line_refuses_an_unknown_network_in_one_line(tmp_path):
  out = tmp_path / "table.md"
  result = run_script("benchmarks/accelerator.py", "--networks=vgg19", f"--out={out}")
  assert result.returncode == 1
  assert result.stderr.strip() == (
    "error: unknown network 'vgg19'; --networks takes some of: " + ", ".join(accelerator.NETWORKS)
  )
  assert not out.exists()
