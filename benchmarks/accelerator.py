"""convzoo's train step on an accelerator, float32 against bfloat16, one Markdown table.

  .venv/bin/python benchmarks/accelerator.py [--networks=resnet50,alexnet,vgg16] [--batch=0]
                                             [--steps=20] [--warmup=3] [--devices=1]
                                             [--out=benchmarks/results/accelerator.md]

For each network and each compute dtype (`model.dtype`: float32, then bfloat16; parameters,
optimizer state and loss stay float32), builds the real data-parallel train step train.py runs
(augmentation included) from the network's config, with one random uint8 batch of the
config's stored image size and random labels resident on the device
(benchmarks/stepping.py), runs `--warmup` steps (compilation included), then times `--steps`
steps one by one; images/s is the batch over the median step time. Runs on the first
`--devices` devices JAX sees (jax.devices()[0] first); where JAX sees only the CPU it still
runs, and the table says that no accelerator was found (keep --batch and --steps small there:
`--networks=alexnet --batch=8 --steps=3`). Writes the table, with the date, device kind and
JAX version on every row and the bfloat16 / float32 ratio, to --out.
"""

from __future__ import annotations

import pathlib
import statistics
import sys
import time

import jax
from absl import app, flags
from absl import logging as absl_logging

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import models  # noqa: E402
import parallel  # noqa: E402
from benchmarks import stepping  # noqa: E402

# network → its config: the three measured by default, then two small ones for smoke runs.
NETWORKS = {
  "resnet50": "configs/resnet.py:50",
  "alexnet": "configs/alexnet.py",
  "vgg16": "configs/vgg.py:d",
  "cifar_resnet20": "configs/cifar_resnet.py:20",
  "lenet5": "configs/default.py",
}
DEFAULT_NETWORKS = ("resnet50", "alexnet", "vgg16")
DTYPES = ("float32", "bfloat16")
HEADER = "| date | device | jax | network | dtype | batch | images/s | bf16 / f32 |"


def define_flags() -> None:
  """The command line (defined when run as a program, so that importing defines no flags)."""
  flags.DEFINE_list(
    "networks", list(DEFAULT_NETWORKS), f"networks to time, of: {', '.join(NETWORKS)}"
  )
  flags.DEFINE_integer("batch", 0, "global batch per step; 0: each config's own", lower_bound=0)
  flags.DEFINE_integer("steps", 20, "timed steps per network and dtype", lower_bound=1)
  flags.DEFINE_integer("warmup", 3, "untimed steps first (compilation included)", lower_bound=1)
  flags.DEFINE_integer("devices", 1, "devices the step is mapped over; 0: every local one")
  flags.DEFINE_string("out", str(ROOT / "benchmarks" / "results" / "accelerator.md"), "table file")


def check_networks(names: list[str]) -> None:
  """Raises a ValueError naming the allowed values for an unknown network (or none at all)."""
  unknown = [n for n in names if n not in NETWORKS]
  if unknown or not names:
    given = f"unknown network {unknown[0]!r}" if unknown else "no network given"
    raise ValueError(f"{given}; --networks takes some of: {', '.join(NETWORKS)}")


def measure(name: str, dtype: str, batch: int, steps: int, warmup: int, devices: int) -> dict:
  """Images/s of network `name`'s train step in compute dtype `dtype` (median step time)."""
  config = stepping.load_config(NETWORKS[name])
  config.model.dtype = dtype
  config.num_devices = devices
  batch = batch or config.batch_size
  run = stepping.synthetic_train_step(config, batch, models.entry(config.model.name).num_classes)
  state, times = run.state, []
  for i in range(warmup + steps):
    state, seconds = stepping.seconds_per_step(run.step, state, run.batch, 1, 0)
    if i >= warmup:
      times.append(seconds)
  return {
    "network": name,
    "dtype": dtype,
    "batch": batch,
    "images_per_second": batch / statistics.median(times),
  }


def rows(results: list[dict], date: str) -> list[str]:
  """Table rows of `results`, the bfloat16 ones with their ratio to the same network's float32."""
  device = jax.devices()[0].device_kind
  float32 = {r["network"]: r["images_per_second"] for r in results if r["dtype"] == "float32"}
  lines = []
  for r in results:
    base = float32.get(r["network"]) if r["dtype"] != "float32" else None
    ratio = f"**{r['images_per_second'] / base:.2f}**" if base else ""
    lines.append(
      f"| {date} | {device} | {jax.__version__} | {r['network']} | {r['dtype']} | {r['batch']} "
      f"| {r['images_per_second']:,.1f} | {ratio} |"
    )
  return lines


def no_accelerator_note() -> str:
  """A line saying JAX found no accelerator ('' when it did)."""
  if jax.default_backend() != "cpu":
    return ""
  return (
    "No accelerator found: JAX sees only the CPU, so these are CPU figures (install JAX's CUDA "
    "build for a GPU; docs/performance.md#on-an-accelerator)."
  )


def run(
  networks: list[str], batch: int, steps: int, warmup: int, devices: int, out: pathlib.Path
) -> str:
  """Times every network in both dtypes, printing each row; writes the table to `out` and
  returns what it wrote."""
  check_networks(networks)
  date = time.strftime("%Y-%m-%d")
  used = devices or jax.local_device_count()
  note = no_accelerator_note()
  header = (
    f"convzoo's train step (`benchmarks/accelerator.py`) on {used} "
    f"{jax.default_backend().upper()} device{'s' * (used > 1)}: median of {steps} timed steps "
    f"after {warmup} warm-up steps, one random batch resident on the device."
  ) + (f"\n\n{note}" if note else "")
  print(header + "\n", flush=True)
  lines = [HEADER, "|---|---|---|---|---|---:|---:|---:|"]
  print("\n".join(lines), flush=True)
  results = []
  for name in networks:
    for dtype in DTYPES:
      results.append(measure(name, dtype, batch, steps, warmup, devices))
      print(rows(results, date)[-1], flush=True)
  text = header + "\n\n" + "\n".join(lines + rows(results, date)) + "\n"
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(text)
  print(f"\nwritten to {out}")
  return text


def main(argv) -> None:
  del argv
  absl_logging.set_verbosity(absl_logging.WARNING)
  args = flags.FLAGS
  try:
    check_networks(args.networks)
    parallel.DataParallel(args.devices)  # a device count this process has
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  run(args.networks, args.batch, args.steps, args.warmup, args.devices, pathlib.Path(args.out))


if __name__ == "__main__":
  define_flags()
  app.run(main)
