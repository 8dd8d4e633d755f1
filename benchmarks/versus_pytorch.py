"""convzoo's train step against hand-written PyTorch eager twins, one table of ratios.

  make bench-pytorch     (or: .venv/bin/python benchmarks/versus_pytorch.py [--rounds=3]
                          [--seconds=6] [--networks=lenet5,cifar_resnet56] [--out=FILE])

For each network, two long-lived workers are started: convzoo's real data-parallel train step
(the one train.py runs, augmentation included, on its default devices: every core) on one
device-resident uint8 batch, and its PyTorch eager twin (benchmarks/pytorch_twins.py, run by
.venv-torch's Python, every core as a thread). Parameter counts must be equal. After both have
compiled and warmed up, the run alternates between them `--rounds` times, each timing at least
`--seconds` of steps while the other waits; the table shows medians and their ratio. With
`--without_onednn` (the default, where the extension is built) convzoo's worker is then replaced
by one with oneDNN switched off (CONVZOO_ONEDNN=off: its convolution routes before oneDNN),
alternated with the same PyTorch worker, so before and after are measured in one sitting
against one reference (PyTorch's median is over both halves). Both run
under jemalloc when it is installed (the Makefile target sets it up). Writes the table to
benchmarks/results/versus_pytorch.md (or --out).
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import stepping  # noqa: E402
from models import onednn  # noqa: E402

TORCH_PYTHON = ROOT / ".venv-torch" / "bin" / "python"

# network → (convzoo config, batch, classes): the batches (AlexNet's own 128 takes
# seconds a step on 2 cores).
NETWORKS = {
  "lenet5": ("configs/default.py", 128, 10),
  "cifar_resnet20": ("configs/cifar_resnet.py:20", 128, 10),
  "cifar_resnet56": ("configs/cifar_resnet.py:56", 128, 10),
  "alexnet": ("configs/alexnet.py", 32, 1000),
  "resnet18": ("configs/resnet.py:18", 32, 1000),
  "resnet50": ("configs/resnet.py:50", 16, 1000),
  "vgg16": ("configs/vgg.py:d", 8, 1000),
}

flags.DEFINE_list("networks", list(NETWORKS), f"networks to compare, of: {', '.join(NETWORKS)}")
flags.DEFINE_integer("rounds", 3, "alternations per network; medians are reported", lower_bound=1)
flags.DEFINE_float("seconds", 6.0, "least time of steps per measurement", lower_bound=0.1)
flags.DEFINE_string("out", str(ROOT / "benchmarks" / "results" / "versus_pytorch.md"), "table file")
flags.DEFINE_bool(
  "without_onednn", True, "also time convzoo with oneDNN switched off (its routes before it)"
)
flags.DEFINE_string("convzoo_worker", "", "internal: serve this network's convzoo step")


def serve_convzoo(name: str) -> None:
  """The convzoo worker: the same protocol as pytorch_twins.main."""
  import parallel

  parallel.configure_cpu_devices()
  spec, batch_size, classes = NETWORKS[name]
  run = stepping.synthetic_train_step(stepping.load_config(spec), batch_size, classes)
  start = time.perf_counter()
  stepping.images_per_second_for(run, 0.0)  # compile and warm up
  print(
    json.dumps({"parameters": run.parameters, "compile_seconds": time.perf_counter() - start}),
    flush=True,
  )
  for line in sys.stdin:
    rate = stepping.images_per_second_for(run, float(line))
    print(json.dumps({"images_per_second": rate}), flush=True)


class Worker:
  """A child process answering one JSON line per request line."""

  def __init__(self, command: list[str], label: str, env: dict[str, str] | None = None):
    self.label = label
    self.process = subprocess.Popen(
      command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
      env={**os.environ, **(env or {})},
    )  # fmt: skip
    self.ready = self._answer()

  def _answer(self) -> dict:
    line = self.process.stdout.readline()
    if not line:
      raise RuntimeError(f"{self.label} worker exited with status {self.process.wait()}")
    return json.loads(line)

  def images_per_second(self, seconds: float) -> float:
    self.process.stdin.write(f"{seconds}\n")
    self.process.stdin.flush()
    return self._answer()["images_per_second"]

  def close(self) -> None:
    self.process.stdin.close()
    self.process.wait()


def compare(name: str, rounds: int, seconds: float, baseline: bool) -> dict:
  """Medians of alternated measurements for one network: convzoo against its PyTorch twin and
  then, with `baseline`, convzoo with oneDNN switched off (its routes before oneDNN) against the
  same twin. Two workers at a time: three VGG-16 workers (11 GB each) exceed a 24 GB machine."""
  batch = NETWORKS[name][1]
  convzoo_command = [sys.executable, __file__, f"--convzoo_worker={name}"]
  torch_command = [str(TORCH_PYTHON), str(ROOT / "benchmarks" / "pytorch_twins.py"), name,
                   str(batch)]  # fmt: skip
  contenders = {"convzoo": {}, "without_onednn": {onednn.SWITCH_ENV: "off"}}
  if not baseline:
    del contenders["without_onednn"]
  rates = {label: [] for label in (*contenders, "pytorch")}
  torch = Worker(torch_command, f"PyTorch {name}")
  try:
    for label, env in contenders.items():
      convzoo = Worker(convzoo_command, f"{label} {name}", env)
      try:
        ours, theirs = convzoo.ready["parameters"], torch.ready["parameters"]
        if ours != theirs:
          raise AssertionError(f"{name}: convzoo has {ours:,}, its PyTorch twin {theirs:,}")
        if label == "convzoo":
          compile_seconds = convzoo.ready["compile_seconds"]
        for _ in range(rounds):
          rates[label].append(convzoo.images_per_second(seconds))
          rates["pytorch"].append(torch.images_per_second(seconds))
      finally:
        convzoo.close()
  finally:
    torch.close()
  medians = {label: statistics.median(r) for label, r in rates.items()}
  return {
    "network": name,
    "batch": batch,
    "parameters": ours,
    **medians,
    "ratio": medians["convzoo"] / medians["pytorch"],
    "ratio_without_onednn": (medians["without_onednn"] / medians["pytorch"] if baseline else None),
    "spread": {k: (min(v), max(v)) for k, v in rates.items()},
    "compile_seconds": compile_seconds,
  }


def row(result: dict) -> str:
  def rate(label: str) -> str:
    low, high = result["spread"][label]
    return f"{result[label]:,.1f} ({low:,.1f}–{high:,.1f})"

  cells = [f"{result['network']} ({result['batch']})", f"{result['parameters']:,}"]
  cells += [rate("convzoo"), rate("pytorch"), f"**{result['ratio']:.2f}**"]
  if result["ratio_without_onednn"] is not None:
    cells += [rate("without_onednn"), f"{result['ratio_without_onednn']:.2f}"]
  return "| " + " | ".join(cells) + " |"


def main(argv) -> None:
  del argv
  args = flags.FLAGS
  if args.convzoo_worker:
    serve_convzoo(args.convzoo_worker)
    return
  unknown = [n for n in args.networks if n not in NETWORKS]
  if unknown:
    raise SystemExit(f"error: unknown network {unknown[0]!r}; known: {', '.join(NETWORKS)}")
  if not TORCH_PYTHON.exists():
    raise SystemExit(
      f"error: {TORCH_PYTHON} not found; run 'make bench-pytorch', which creates it "
      "('make torch-env', from requirements-torch.txt)"
    )
  baseline = args.without_onednn and onednn.available()
  lines = [
    "| network (batch) | parameters | convzoo img/s (range) | PyTorch eager img/s (range) "
    "| convzoo / PyTorch |"
    + (" convzoo without oneDNN img/s (range) | without oneDNN / PyTorch |" if baseline else ""),
    "|---|---|---|---|---|" + ("---|---|" if baseline else ""),
  ]
  print("\n".join(lines), flush=True)
  for name in args.networks:
    lines.append(row(compare(name, args.rounds, args.seconds, baseline)))
    print(lines[-1], flush=True)
  jemalloc = "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "glibc malloc"
  header = (
    f"convzoo train step vs PyTorch eager on {os.cpu_count()} CPU cores ({jemalloc}), medians of "
    f"{args.rounds} alternated measurements of ≥ {args.seconds:g} s; "
    f"`benchmarks/versus_pytorch.py`, {time.strftime('%Y-%m-%d')}."
  )
  out = pathlib.Path(args.out)
  out.write_text(header + "\n\n" + "\n".join(lines) + "\n")
  print(f"\nwritten to {out}")


if __name__ == "__main__":
  app.run(main)
