"""A PyTorch interpreter of Caffe nets with Caffe's semantics: the Caffe side of parity tests.

  .venv-torch/bin/python tests/torch_side/caffe_twin.py NET.json BLOBS.npz INPUT.npy OUT.npz
      [--float64]

Runs only under .venv-torch (torch and numpy, no protobuf), on a net written by
tests/caffe_nets.py's `dump_for_twin`: NET.json the layers (name, type, bottoms, tops, params as
`weights.caffemodel.CaffeLayer` has them), BLOBS.npz their blobs ("{layer index}_{blob index}").
INPUT.npy: float32 N×3×H×W, BGR, mean already subtracted. OUT.npz gets every top as Caffe's
`net.blobs` holds it after the forward pass (an in-place layer's result under its blob's name),
and every layer's own output under "layer:{name}" (conv1 before relu1 changed it); 4-d arrays
NHWC, 2-d (N, C). Layers run in file order, as Caffe's Net::Forward does, in float32 as Caffe
computes (`--float64`: in float64, for a reference closer to exact).

Semantics, from BVLC Caffe's src/caffe/layers/*.cpp:
  Convolution: cross-correlation, groups, pad, stride, dilation, bias.
  Pooling (pooling_layer.cpp): output ceil((H + 2p − k) / s) + 1 (FLOOR mode: floor), less one
    when padded and the last window would start in the padding; MAX over the window clipped to
    the input (padding never wins); AVE sums the window clipped to the input and divides by its
    size clipped to the padded input (H + p), so padding counts but the ceil overhang does not.
  LRN (lrn_layer.cpp): ACROSS_CHANNELS b = a · (k + α/n Σ a²)^−β over n channels centred on
    a's, zero beyond the ends; WITHIN_CHANNEL b = a · (1 + α · avgpool_n(a²))^−β.
  InnerProduct: the input flattened from `axis` (NCHW order), W (out, in), or (in, out) with
    `transpose`; a V1 weight's legacy (1, 1, out, in) is reshaped.
  BatchNorm (batch_norm_layer.cpp), global stats: mean and variance blobs times 1/f, f the third
    blob (0 when f is 0), then (x − mean) / sqrt(var + eps); use_global_stats false: the batch's.
  Scale: γ (and β) over the channel axis. Eltwise: SUM (with coeff), PROD, MAX. Concat: `axis`.
  ReLU (negative_slope), Dropout (identity at test), Softmax over `axis`, Input: the input.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def pooled_size(size: int, kernel: int, stride: int, pad: int, round_mode: str) -> int:
  """PoolingLayer::Reshape's output size."""
  rounding = math.ceil if round_mode == "ceil" else math.floor
  pooled = int(rounding((size + 2 * pad - kernel) / stride)) + 1
  if pad and (pooled - 1) * stride >= size + pad:
    pooled -= 1
  return pooled


def _pair(value: Any) -> tuple[int, int]:
  return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def pool(x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
  """Caffe's MAX and AVE pooling, windows and divisors as pooling_layer.cpp's forward loops."""
  h, w = x.shape[2:]
  if params.get("global_pooling"):
    (kh, kw), (sh, sw), (ph, pw) = (h, w), (1, 1), (0, 0)
  else:
    (kh, kw), (sh, sw), (ph, pw) = (_pair(params[k]) for k in ("kernel", "stride", "pad"))
  mode = params.get("round_mode", "ceil")
  oh, ow = pooled_size(h, kh, sh, ph, mode), pooled_size(w, kw, sw, pw, mode)
  # Pad so that every window lies inside: `p` before, and after as far as the last window
  # reaches (beyond the padded input in ceil mode), then cut the rest.
  extra_h = max(0, (oh - 1) * sh + kh - h - ph)
  extra_w = max(0, (ow - 1) * sw + kw - w - pw)
  kind = params["pool"]
  if kind == "max":
    # Outside the input never wins: -inf there. A window wholly outside (possible only unpadded,
    # kernel < stride) gives Caffe's initial -FLT_MAX.
    padded = F.pad(x, (pw, extra_w, ph, extra_h), value=-math.inf)
    out = F.max_pool2d(padded, (kh, kw), (sh, sw))[:, :, :oh, :ow]
    return out.clamp(min=torch.finfo(torch.float32).min)
  if kind == "ave":
    padded = F.pad(x, (pw, extra_w, ph, extra_h))
    sums = F.avg_pool2d(padded, (kh, kw), (sh, sw), divisor_override=1)[:, :, :oh, :ow]

    def sizes(n, k, s, p, size):
      starts = np.arange(n) * s - p
      return np.minimum(starts + k, size + p) - starts

    divisor = np.outer(sizes(oh, kh, sh, ph, h), sizes(ow, kw, sw, pw, w))
    return sums / torch.as_tensor(divisor, dtype=x.dtype)
  raise ValueError(f"pooling {kind!r} is not supported (Caffe: MAX, AVE; STOCHASTIC trains only)")


def lrn(x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
  """Caffe's LRN (lrn_layer.cpp CrossChannelForward_cpu / WithinChannelForward)."""
  n, alpha, beta, k = params["local_size"], params["alpha"], params["beta"], params["k"]
  if params.get("norm_region", "across_channels") == "across_channels":
    half = (n - 1) // 2
    squares = F.pad(x * x, (0, 0, 0, 0, half, half))  # zero channels beyond both ends
    channels = x.shape[1]
    sums = sum(squares[:, i : i + channels] for i in range(n))
    return x * (k + alpha / n * sums) ** -beta
  # WITHIN_CHANNEL: an AVE pool of the squares (pad (n-1)/2, every window n·n) feeds
  # Power(shift 1, scale alpha, power -beta); `k` is unused there.
  half = (n - 1) // 2
  averages = pool(x * x, {"pool": "ave", "kernel": n, "stride": 1, "pad": half})
  return x * (1 + alpha * averages) ** -beta


def forward(
  net: list[dict[str, Any]], blobs: dict[str, np.ndarray], image: np.ndarray, dtype: torch.dtype
) -> dict[str, np.ndarray]:
  """Runs `net` on `image`; returns every top's final value and every layer's output."""
  values: dict[str, torch.Tensor] = {"data": torch.as_tensor(image, dtype=dtype)}
  outputs: dict[str, np.ndarray] = {}
  for index, layer in enumerate(net):
    params, kind = layer["params"], layer["type"]
    weights = []
    while f"{index}_{len(weights)}" in blobs:
      weights.append(torch.as_tensor(blobs[f"{index}_{len(weights)}"], dtype=dtype))
    inputs = [values[b] for b in layer["bottoms"]]
    x = inputs[0] if inputs else None
    if kind == "Input":
      if len(layer["tops"]) != 1:
        raise ValueError(f"{layer['name']}: one input only")
      y = values["data"]
    elif kind in ("Convolution",):
      bias = weights[1].reshape(-1) if params["bias_term"] else None
      y = F.conv2d(
        x,
        weights[0],
        bias,
        _pair(params["stride"]),
        _pair(params["pad"]),
        _pair(params["dilation"]),
        params["group"],
      )
    elif kind == "Pooling":
      y = pool(x, params)
    elif kind == "LRN":
      y = lrn(x, params)
    elif kind == "InnerProduct":
      flat = x.flatten(params.get("axis", 1))
      w = weights[0]
      w = (
        w.reshape(-1, w.shape[-1])
        if params.get("transpose")
        else w.reshape(params["num_output"], -1)
      )
      y = flat @ w if params.get("transpose") else flat @ w.T
      if params["bias_term"]:
        y = y + weights[1].reshape(-1)
    elif kind == "ReLU":
      slope = params.get("negative_slope", 0.0)
      y = torch.where(x > 0, x, x * slope) if slope else torch.clamp(x, min=0)
    elif kind == "Dropout":
      y = x
    elif kind == "Concat":
      y = torch.cat(inputs, dim=params.get("axis", 1))
    elif kind == "BatchNorm":
      y = _batch_norm(x, weights, params)
    elif kind == "Scale":
      if len(inputs) != 1 or params.get("axis", 1) != 1 or params.get("num_axes", 1) != 1:
        raise ValueError(f"{layer['name']}: Scale supported over the channel axis, one bottom")
      shape = (1, -1) + (1,) * (x.dim() - 2)
      y = x * weights[0].reshape(shape)
      if params.get("bias_term"):
        y = y + weights[1].reshape(shape)
    elif kind == "Eltwise":
      operation = params.get("operation", "sum")
      if operation == "sum":
        coeff = params.get("coeff") or [1.0] * len(inputs)
        y = sum(c * t for c, t in zip(coeff, inputs, strict=True))
      elif operation == "prod":
        y = math.prod(inputs[1:], start=inputs[0])
      else:
        y = torch.stack(inputs).amax(0)
    elif kind == "Softmax":
      y = torch.softmax(x, dim=params.get("axis", 1))
    else:
      raise ValueError(f"layer {layer['name']!r}: type {kind!r} is not supported")
    if len(layer["tops"]) != 1:
      raise ValueError(f"layer {layer['name']!r}: one top expected, got {layer['tops']}")
    values[layer["tops"][0]] = y
    outputs[f"layer:{layer['name']}"] = _numpy(y)
  outputs.update({name: _numpy(v) for name, v in values.items()})
  return outputs


def _batch_norm(x: torch.Tensor, weights: list[torch.Tensor], params: dict[str, Any]):
  """BatchNormLayer::Forward_cpu, test phase (use_global_stats unset means global stats)."""
  shape = (1, -1) + (1,) * (x.dim() - 2)
  if params.get("use_global_stats") is False:
    axes = [0] + list(range(2, x.dim()))
    mean = x.mean(axes)
    variance = ((x - mean.reshape(shape)) ** 2).mean(axes)
  else:
    factor = float(weights[2].reshape(-1)[0])
    scale = 0.0 if factor == 0 else 1.0 / factor
    mean, variance = weights[0] * scale, weights[1] * scale
  return (x - mean.reshape(shape)) / torch.sqrt(variance.reshape(shape) + params["eps"])


def _numpy(t: torch.Tensor) -> np.ndarray:
  array = t.detach().numpy()
  return array.transpose(0, 2, 3, 1) if array.ndim == 4 else array


def main(argv: list[str]) -> None:
  """The command line: NET.json BLOBS.npz INPUT.npy OUT.npz [--float64]."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  for name in ("net", "blobs", "input", "out"):
    parser.add_argument(name, type=pathlib.Path)
  parser.add_argument("--float64", action="store_true", help="compute in float64")
  args = parser.parse_args(argv)
  net = json.loads(args.net.read_text())
  with np.load(args.blobs) as archive:
    blobs = {k: archive[k] for k in archive.files}
  image = np.load(args.input)
  with torch.no_grad():
    outputs = forward(net, blobs, image, torch.float64 if args.float64 else torch.float32)
  np.savez(args.out, **outputs)


if __name__ == "__main__":
  main(sys.argv[1:])
