"""Every convolution formulation of models/conv.py timed on the layer shapes of zoo networks.

  .venv/bin/python benchmarks/conv_routes.py [--networks=cifar_resnet20,alexnet] [--batch=64]
                                             [--out=benchmarks/results/conv_routes.md]

For each distinct convolution of each network (one device's share of `--batch`: the batch over
the default CPU device count), the milliseconds of the forward pass, the input gradient and the
weight gradient by each formulation, jitted alone, and the ratio of XLA's own to the fastest.
This is the measurement models/conv.py repeats (and keeps) for every shape a run meets.
"""

from __future__ import annotations

import functools
import pathlib
import sys
import time

from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

flags.DEFINE_list("networks", ["cifar_resnet20", "alexnet", "resnet50"], "registry names")
flags.DEFINE_integer("batch", 64, "global batch; each shape gets one device's share")
flags.DEFINE_string("out", str(ROOT / "benchmarks" / "results" / "conv_routes.md"), "table file")

DIRECTIONS = ("forward", "input_grad", "weight_grad")


def conv_shapes(name: str, batch: int) -> list:
  """The distinct ConvShapes of a network at one device's batch, in order."""
  import jax
  import jax.numpy as jnp

  import models
  from configs import base
  from models import conv

  config = models.set_model(base.get_config(), name)
  model = models.create_model(config.model, models.entry(name).num_classes)
  shapes, original = [], conv.conv2d

  def recording(x, kernel, stride, padding, groups=1, implementation="auto"):
    shape = conv.conv_shape(x, kernel, stride, padding, groups)
    if shape not in shapes:
      shapes.append(shape)
    return original(x, kernel, stride, padding, groups, "xla")

  conv.conv2d = recording
  try:
    jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((batch, *models.entry(name).input_shape)))
    )
  finally:
    conv.conv2d = original
  return shapes


def main(argv) -> None:
  del argv
  import jax

  import parallel

  parallel.configure_cpu_devices()
  from models import conv

  args = flags.FLAGS
  per_device = args.batch // jax.local_device_count()
  names = [f"{d} {f}" for d in DIRECTIONS for f in ("xla", "best")]
  lines = [
    "| network | input | kernel | stride | " + " | ".join(f"{n} ms" for n in names)
    + " | XLA / best (all three) |",
    "|---|---|---|---|" + "---|" * (len(names) + 1),
  ]  # fmt: skip
  print("\n".join(lines), flush=True)
  for name in args.networks:
    for shape in conv_shapes(name, per_device):
      cells, xla_total, best_total = [], 0.0, 0.0
      for direction in DIRECTIONS:
        operands = tuple(jax.device_put(o) for o in conv._operands(direction, shape))
        timings = {
          f: conv._seconds(jax.jit(functools.partial(fn, shape=shape)), operands)
          for f, fn in conv.candidates(direction, shape).items()
        }
        best = min(timings, key=timings.get)
        cells += [f"{1e3 * timings['xla']:.2f}", f"{1e3 * timings[best]:.2f} ({best})"]
        xla_total, best_total = xla_total + timings["xla"], best_total + timings[best]
      n, h, w, c = shape.input
      kh, kw, ci, f = shape.kernel
      lines.append(
        f"| {name} | {n}×{h}×{w}×{c} | {kh}×{kw}×{ci}→{f}"
        f"{f' /{shape.groups} groups' if shape.groups > 1 else ''} | {shape.stride} | "
        + " | ".join(cells)
        + f" | {xla_total / best_total:.2f} |"
      )
      print(lines[-1], flush=True)
  header = (
    f"Convolution formulations on {jax.local_device_count()} CPU devices' share of batch "
    f"{args.batch}; `benchmarks/conv_routes.py`, {time.strftime('%Y-%m-%d')}."
  )
  pathlib.Path(args.out).write_text(header + "\n\n" + "\n".join(lines) + "\n")
  print(f"\nwritten to {args.out}")


if __name__ == "__main__":
  app.run(main)
