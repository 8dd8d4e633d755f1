"""Train-step images/s on 1, 2 and 8 XLA host devices, and what a checkpoint save costs.

  .venv/bin/python benchmarks/devices.py [--counts=1,2,8] [--models=lenet5,cifar_resnet20,alexnet]

Each (model, device count) runs in its own process (the host device count is fixed when JAX
starts), timing convzoo's data-parallel train step (augmentation included) on one
device-resident global batch. Speed-ups are ratios to 1 device measured in the same run. In
the process with the most devices, a checkpoint save is timed: the part that blocks the loop
(copy to host, start of the async write) and the whole write. Writes the table to
benchmarks/results/devices.md as well.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import stepping  # noqa: E402

flags.DEFINE_list("counts", ["1", "2", "8"], "host device counts to compare")
flags.DEFINE_list("models", ["lenet5", "cifar_resnet20", "alexnet"], "models to time")
flags.DEFINE_string("child", "", "internal: time one model in this process (JSON on stdout)")
flags.DEFINE_boolean("checkpoint", False, "internal: also time a checkpoint save")

# (config file, batch, timed steps): the configs' own batch except AlexNet (128 takes ~8 s a
# step on 2 cores; 32 keeps the run to minutes).
CASES = {
  "lenet5": ("configs/default.py", 128, 300),
  "cifar_resnet20": ("configs/cifar_resnet.py:20", 128, 30),
  "alexnet": ("configs/alexnet.py", 32, 4),
}


def time_child(name: str, with_checkpoint: bool) -> dict:
  """Images/s of the mapped train step in this process (and a checkpoint save's cost)."""
  import checkpoints
  import parallel

  spec, batch_size, steps = CASES[name]
  run = stepping.synthetic_train_step(
    stepping.load_config(spec), batch_size, 10 if name != "alexnet" else 1000
  )
  data_parallel = parallel.DataParallel()
  state, seconds = stepping.seconds_per_step(run.step, run.state, run.batch, steps, warmup=2)
  result = {
    "images_per_second": batch_size / seconds,
    "step_seconds": seconds,
    "batch": batch_size,
    "devices": data_parallel.num_devices,
  }
  if with_checkpoint:
    with tempfile.TemporaryDirectory() as workdir:
      manager = checkpoints.create_manager(pathlib.Path(workdir), 3)
      start = time.perf_counter()
      checkpoints.save(manager, 1, data_parallel.unreplicate(state))
      blocking = time.perf_counter() - start
      manager.wait_until_finished()
      result.update(
        save_blocking_seconds=blocking,
        save_seconds=time.perf_counter() - start,
        parameters=run.parameters,
      )
      manager.close()
  return result


def run_child(name: str, count: int, with_checkpoint: bool) -> dict:
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
  command = [sys.executable, __file__, f"--child={name}"] + (
    ["--checkpoint"] if with_checkpoint else []
  )
  result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
  if result.returncode != 0:
    raise RuntimeError(f"{name} on {count} devices failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  args = flags.FLAGS
  if args.child:
    print(json.dumps(time_child(args.child, args.checkpoint)))
    return
  counts = sorted(int(c) for c in args.counts)
  rows = [
    "| model | batch | "
    + " | ".join(f"{c} device{'s' * (c > 1)} (img/s)" for c in counts)
    + " | "
    + " | ".join(f"×{c} / ×{counts[0]}" for c in counts[1:])
    + " | save: blocks loop | save: total |",
    "|" + "---|" * (2 + 2 * len(counts) - 1 + 2),
  ]
  for name in args.models:
    results = {c: run_child(name, c, with_checkpoint=c == counts[-1]) for c in counts}
    base = results[counts[0]]["images_per_second"]
    last = results[counts[-1]]
    blocking_steps = last["save_blocking_seconds"] / last["step_seconds"]
    save = (
      f"{last['save_blocking_seconds']:.2f} s = {blocking_steps:.1f} steps",
      f"{last['save_seconds']:.2f} s ({last['parameters'] / 1e6:.2f} M params)",
    )
    rows.append(
      f"| {name} | {results[counts[0]]['batch']} | "
      + " | ".join(f"{results[c]['images_per_second']:,.1f}" for c in counts)
      + " | "
      + " | ".join(f"{results[c]['images_per_second'] / base:.2f}" for c in counts[1:])
      + f" | {save[0]} | {save[1]} |"
    )
    print(rows[-1], flush=True)
  table = "\n".join(rows)
  print("\n" + table)
  out = ROOT / "benchmarks" / "results" / "devices.md"
  out.write_text(
    f"Train step on {os.cpu_count()} CPU cores, XLA host devices; "
    f"`benchmarks/devices.py`, {time.strftime('%Y-%m-%d')}.\n\n{table}\n"
  )
  print(f"\nwritten to {out}")


if __name__ == "__main__":
  app.run(main)
