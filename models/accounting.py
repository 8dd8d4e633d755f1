"""Per-layer accounting of a network: output shape, parameters, FLOPs, activation memory.

Everything comes from the model itself: shapes are traced (`jax.eval_shape`, nothing is
computed), parameters are counted from its variables. FLOPs are multiply-adds for one image:
C_out·H'·W'·C_in·K·K per convolution (C_in per group), C_in·C_out per fully connected layer,
C_out·H'·W'·K·K per pooling; activations, LRN and batch norm are not counted. Activation memory
is each layer's output at 4 bytes per element. Blocks (inception modules, residual blocks,
auxiliary classifiers) are one row each, summing what is inside them. summary.py prints it;
studies use the totals.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from typing import Any

import jax

import models
from models.layers import AuxHead, layer_of_parameter
from models.network import ConvNet

BYTES_PER_ELEMENT = 4


@dataclasses.dataclass
class LayerRow:
  name: str
  output_shape: list[int]
  params: int
  flops: int
  activation_bytes: int


def kernel_flops(variables: Any, outputs: Any) -> dict[str, int]:
  """Multiply-adds of every Conv and Dense kernel, by the table layer that holds it."""
  flops: dict[str, int] = {}

  def visit(params: Any, captured: Any, top: str) -> None:
    for key, sub in params.items():
      if key == "kernel":
        output = captured["__call__"][0]
        spatial = math.prod(output.shape[1:-1])  # H'·W' for a conv, 1 for a dense layer
        flops[top] = flops.get(top, 0) + spatial * math.prod(sub.shape)
      elif isinstance(sub, dict):
        visit(sub, captured.get(key, {}), top)

  for key, sub in variables["params"].items():
    visit(sub, outputs.get(key, {}), layer_of_parameter(key))
  return flops


def summarize(model: ConvNet, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
  """{"total_params", "total_flops", "layers": [row, ...]} for one image of `input_shape`."""
  variables, intermediates = models.trace(model, input_shape, num_classes)
  _, state = jax.eval_shape(
    lambda v: models.for_shapes(model).apply(
      v, jax.numpy.zeros((1, *input_shape)), capture_intermediates=True, mutable=["intermediates"]
    ),
    variables,
  )
  flops = kernel_flops(variables, state["intermediates"])
  params: dict[str, int] = {}
  for key, sub in variables["params"].items():
    top = layer_of_parameter(key)
    params[top] = params.get(top, 0) + sum(x.size for x in jax.tree.leaves(sub))
  rows, in_shape = [], tuple(input_shape)
  for layer in model.layers:
    out_shape = tuple(intermediates[layer.name].shape[1:])
    rows.append(
      LayerRow(
        layer.name,
        list(out_shape),
        params.get(layer.name, 0),
        flops.get(layer.name, 0) + layer.pooling_flops(in_shape, out_shape),
        math.prod(out_shape) * BYTES_PER_ELEMENT,
      )
    )
    if not layer.branches_off:
      in_shape = out_shape
  auxiliary = [l.name for l in model.layers if isinstance(l, AuxHead)]
  return {
    "total_params": sum(r.params for r in rows),
    # Auxiliary classifiers (GoogLeNet's) count in the total; they are dropped at inference.
    "auxiliary_params": sum(r.params for r in rows if r.name in auxiliary),
    "total_flops": sum(r.flops for r in rows),
    "layers": [dataclasses.asdict(r) for r in rows],
  }


def format_table(summary: dict[str, Any], title: str) -> str:
  header = f"{'layer':<18} {'output':>16} {'params':>13} {'FLOPs (MACs)':>16} {'activations':>12}"
  lines = [title, header, "-" * len(header)]
  for row in summary["layers"]:
    shape = "×".join(map(str, row["output_shape"]))
    lines.append(
      f"{row['name']:<18} {shape:>16} {row['params']:>13,} {row['flops']:>16,} "
      f"{row['activation_bytes'] / 1e6:>10.2f}MB"
    )
  total_bytes = sum(r["activation_bytes"] for r in summary["layers"])
  lines += [
    "-" * len(header),
    f"{'total':<18} {'':>16} {summary['total_params']:>13,} {summary['total_flops']:>16,} "
    f"{total_bytes / 1e6:>10.2f}MB",
  ]
  if summary["auxiliary_params"]:
    lines.append(
      f"the total includes the auxiliary classifiers' {summary['auxiliary_params']:,} parameters "
      f"(training only): {summary['total_params'] - summary['auxiliary_params']:,} without them"
    )
  return "\n".join(lines)


def format_csv(summary: dict[str, Any]) -> str:
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["name", "output_shape", "params", "flops", "activation_bytes"])
  for row in summary["layers"]:
    writer.writerow(
      [
        row["name"],
        "x".join(map(str, row["output_shape"])),
        row["params"],
        row["flops"],
        row["activation_bytes"],
      ]
    )
  return out.getvalue()
