"""Every convolution formulation of models/conv.py timed on the layer shapes of zoo networks.

  .venv/bin/python benchmarks/conv_routes.py [--networks=cifar_resnet20,alexnet] [--batch=64]
                                             [--out=benchmarks/results/conv_routes.md]

For each distinct convolution of each network (one device's share of `--batch`: the batch over
the default CPU device count), the GFLOP/s of the forward pass, the input gradient and the
weight gradient by XLA's own convolution, by oneDNN's and by the fastest formulation, each
jitted alone, and the ratio of XLA's time to the fastest; and the machine's peak, a large
matrix product, to read them against.
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

flags.DEFINE_list(
  "networks", ["lenet5", "cifar_resnet20", "alexnet", "resnet50", "vgg16"], "registry names"
)
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
  peak = matmul_gflops()
  names = [f"{d} {f}" for d in DIRECTIONS for f in ("XLA", "oneDNN", "best")]
  lines = [
    "| network | input | kernel | stride | GFLOP | " + " | ".join(names)
    + " | XLA / best time (all three) |",
    "|---|---|---|---|---|" + "---|" * (len(names) + 1),
  ]  # fmt: skip
  print("\n".join(lines), flush=True)
  for name in args.networks:
    for shape in conv_shapes(name, per_device):
      cells, xla_total, best_total = [], 0.0, 0.0
      gflop = 2 * shape.multiply_adds / 1e9  # each direction does the same multiply-adds
      for direction in DIRECTIONS:
        operands = tuple(jax.device_put(o) for o in conv._operands(direction, shape))
        timings = {
          f: conv._seconds(jax.jit(functools.partial(fn, shape=shape)), operands)
          for f, fn in conv.candidates(direction, shape).items()
        }
        best = min(timings, key=timings.get)
        rate = lambda f, timings=timings, gflop=gflop: (
          f"{gflop / timings[f]:.0f}" if f in timings else "–"
        )  # fmt: skip
        cells += [rate("xla"), rate("onednn"), f"{rate(best)} ({best})"]
        xla_total, best_total = xla_total + timings["xla"], best_total + timings[best]
      n, h, w, c = shape.input
      kh, kw, ci, f = shape.kernel
      lines.append(
        f"| {name} | {n}×{h}×{w}×{c} | {kh}×{kw}×{ci}→{f}"
        f"{f' /{shape.groups} groups' if shape.groups > 1 else ''} | {shape.stride} | "
        f"{gflop:.3f} | " + " | ".join(cells) + f" | {xla_total / best_total:.2f} |"
      )
      print(lines[-1], flush=True)
  from models import onednn

  header = (
    f"GFLOP/s of each direction of each convolution, by XLA's own convolution, oneDNN's "
    f"(native/; {onednn.isa() or 'not built'}, {onednn.threads_per_device()} thread(s) a device) "
    f"and the fastest formulation (the route models/conv.py would choose), on one of "
    f"{jax.local_device_count()} CPU devices with its share of batch {args.batch}. This "
    f"machine's peak, a {PEAK_SIZE}² float32 matrix product on that device: **{peak:.0f} "
    f"GFLOP/s**. `benchmarks/conv_routes.py`, {time.strftime('%Y-%m-%d')}."
  )
  pathlib.Path(args.out).write_text(header + "\n\n" + "\n".join(lines) + "\n")
  print(f"\n{header}\nwritten to {args.out}")


PEAK_SIZE = 2048


def matmul_gflops() -> float:
  """GFLOP/s of a large float32 matrix product on the first device: the machine's usable peak."""
  import jax
  import jax.numpy as jnp

  from models import conv

  a = jax.random.normal(jax.random.key(0), (PEAK_SIZE, PEAK_SIZE), jnp.float32)
  seconds = conv._seconds(jax.jit(jnp.matmul), (a, a), budget=1.0)
  return 2 * PEAK_SIZE**3 / seconds / 1e9


if __name__ == "__main__":
  app.run(main)
