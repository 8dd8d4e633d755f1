"""Every registry model: parameters and FLOPs at its native input, and CPU train-step speed.

  .venv/bin/python benchmarks/zoo.py [--batch=8] [--steps=3] [--models=alexnet,resnet50]
                                     [--out=benchmarks/results/zoo.md]

For each model: total parameters and multiply-adds (models/accounting.py) at the native
input, then images/s of a jitted forward+backward pass (gradients of the cross-entropy, batch
norm in training mode, dropout on) at `--batch`, after one compile-and-warm-up step. Prints a
Markdown table and, with --out, writes it.
"""

from __future__ import annotations

import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import models  # noqa: E402
from models import accounting  # noqa: E402

flags.DEFINE_integer("batch", 8, "images per forward+backward pass")
flags.DEFINE_integer("steps", 3, "timed passes per model")
flags.DEFINE_list("models", [], "registry names (default: all)")
flags.DEFINE_string("out", "", "also write the Markdown table here")


def forward_backward_speed(
  model, input_shape: tuple[int, ...], num_classes: int, batch: int, steps: int
) -> float:
  """Images/s of a jitted gradient step (loss, backward) on random images."""
  images = jax.random.normal(jax.random.key(0), (batch, *input_shape))
  labels = jnp.arange(batch) % num_classes
  variables = jax.jit(model.init)(jax.random.key(1), images)

  @jax.jit
  def grad_step(variables):
    def loss(params):
      logits, _, batch_stats = models.apply_for_training(
        model.apply, {**variables, "params": params}, images, jax.random.key(2)
      )
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), batch_stats

    return jax.grad(loss, has_aux=True)(variables["params"])

  jax.block_until_ready(grad_step(variables))
  start = time.perf_counter()
  for _ in range(steps):
    jax.block_until_ready(grad_step(variables))
  return steps * batch / (time.perf_counter() - start)


def main(argv):
  del argv
  args = flags.FLAGS
  names = args.models or list(models.REGISTRY)
  lines = [
    f"| model | input | parameters | GFLOPs (multiply-adds) | fwd+bwd img/s (batch {args.batch}) |",
    "|---|---|---:|---:|---:|",
  ]
  print("\n".join(lines), flush=True)
  for name in names:
    entry = models.entry(name)
    model = models.create_model(ml_collections.ConfigDict({"name": name}), entry.num_classes)
    shape = entry.input_shape
    totals = accounting.summarize(model, shape, entry.num_classes)
    speed = forward_backward_speed(model, shape, entry.num_classes, args.batch, args.steps)
    line = (
      f"| {name} | {'×'.join(map(str, shape))} | {totals['total_params']:,} | "
      f"{totals['total_flops'] / 1e9:.4g} | {speed:,.1f} |"
    )
    lines.append(line)
    print(line, flush=True)
  print(f"\n{jax.device_count()} {jax.default_backend()} device(s): {jax.devices()[0].device_kind}")
  if args.out:
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
  app.run(main)
