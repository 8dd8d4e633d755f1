"""The published Caffe deploy nets as `CaffeLayer` lists with seeded random blobs (numpy only).

For parity tests: each builder follows its release's prototxt layer by layer (names, blob names,
kernel, stride, pad, group, LRN constants, pool kinds), with random blobs of the released shapes
(He-like scales, below). Every layer's `params` is complete, in the form
`weights.caffemodel.read_net` returns, so a net written and read back compares equal.

  bvlc_alexnet, caffenet  BVLC/caffe models/bvlc_alexnet/deploy.prototxt,
                          models/bvlc_reference_caffenet/deploy.prototxt (input 227)
  bvlc_googlenet          models/bvlc_googlenet/train_val.prototxt: the deploy net, plus with
                          `aux` the two auxiliary heads (loss1/*, loss2/* up to their classifiers;
                          the released caffemodel holds them, deploy.prototxt does not)
  resnet(50|101|152)      KaimingHe/deep-residual-networks prototxt/ResNet-*-deploy.prototxt
  vgg(16|19)              the VGG team's VGG_ILSVRC_{16,19}_layers_deploy.prototxt (gists
                          ksimonyan/211839e770f7b538e2d8 and 3785162f95cd2d5fee77; V1 form)

The input: an "Input" layer first, as the BVLC deploys have (name "data", shape 10×3×227×227 or
10×3×224×224); ResNet and VGG deploys give it in the net's `input`/`input_dim` fields, which
`read_net` returns as an Input layer named "input" (Caffe's upgrade), so their builders use that
(shapes 1×3×224×224 and 10×3×224×224). Every net ends in its Softmax "prob" layer.

Blobs are as Caffe stores them: convolution (out, in/group, kh, kw), InnerProduct (out, in) on
the NCHW-flattened input, biases (out,); BatchNorm mean·f, variance·f and the factor f (shape
(1,)), f drawn in [0.8, 1.25] so that a reader which forgets to divide by it is off by up to 20%;
Scale γ, β.

Scales are set for an input like mean-subtracted pixels (RMS about `PIXEL_RMS` = 50): He-scaled
weights keep activations near that size, as in the released nets, so LRN (α = 1e-4) changes
them by 10–30% and a wrong LRN shows; ResNet's bn_conv1 statistics bring them to O(1); the
classifiers are scaled down so logits are O(1–10) and the softmax is not saturated.

`dump_for_twin` writes a net for tests/torch_side/caffe_twin.py (which has no protobuf).
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from weights.caffemodel import CaffeLayer

PIXEL_RMS = 50.0  # the input the scales are set for: mean-subtracted BGR pixels
# A classifier's weight gain (He: 2) for logits of about 2 from PIXEL_RMS-sized features.
_LOGIT_GAIN = (2 / PIXEL_RMS) ** 2


class _Builder:
  """Appends layers, tracking each blob's (C, H, W), or (C,) after an InnerProduct."""

  def __init__(self, seed: int):
    self.rng = np.random.default_rng(seed)
    self.layers: list[CaffeLayer] = []
    self.shapes: dict[str, tuple[int, ...]] = {}

  def add(self, name, type_, bottoms, tops, params, blobs=()) -> None:
    blobs = [np.asarray(b, np.float32) for b in blobs]
    self.layers.append(CaffeLayer(name, type_, tuple(bottoms), tuple(tops), params, blobs))

  def normal(self, shape: Sequence[int], std: float) -> np.ndarray:
    values = self.rng.standard_normal(tuple(shape), dtype=np.float32)
    values *= np.float32(std)  # in place: VGG's fc6 alone is 411 MB
    return values

  def input(self, name: str, top: str, batch: int, size: int) -> None:
    self.add(name, "Input", (), (top,), {"shape": ((batch, 3, size, size),)})
    self.shapes[top] = (3, size, size)

  def conv(self, name, bottom, top, num_output, kernel, stride=1, pad=0, group=1, bias=True):
    c, h, w = self.shapes[bottom]
    fan_in = c // group * kernel * kernel
    blobs = [self.normal((num_output, c // group, kernel, kernel), math.sqrt(2 / fan_in))]
    if bias:
      blobs.append(self.normal((num_output,), 0.1))
    params = {
      "num_output": num_output,
      "bias_term": bias,
      "kernel": kernel,
      "stride": stride,
      "pad": pad,
      "dilation": 1,
      "group": group,
    }
    self.add(name, "Convolution", (bottom,), (top,), params, blobs)
    size = lambda n: (n + 2 * pad - kernel) // stride + 1
    self.shapes[top] = (num_output, size(h), size(w))

  def relu(self, name: str, blob: str) -> None:
    self.add(name, "ReLU", (blob,), (blob,), {"negative_slope": 0.0})

  def pool(self, name, bottom, top, pool, kernel, stride, pad=0):
    c, h, w = self.shapes[bottom]
    params = {
      "pool": pool,
      "kernel": kernel,
      "stride": stride,
      "pad": pad,
      "global_pooling": False,
      "round_mode": "ceil",
    }
    self.add(name, "Pooling", (bottom,), (top,), params)
    self.shapes[top] = (
      c,
      caffe_pooled_size(h, kernel, stride, pad),
      caffe_pooled_size(w, kernel, stride, pad),
    )

  def lrn(self, name, bottom, top, local_size=5, alpha=0.0001, beta=0.75):
    params = {
      "local_size": local_size,
      "alpha": alpha,
      "beta": beta,
      "k": 1.0,
      "norm_region": "across_channels",
    }
    self.add(name, "LRN", (bottom,), (top,), params)
    self.shapes[top] = self.shapes[bottom]

  def fc(self, name, bottom, top, num_output, gain=2.0):
    fan_in = math.prod(self.shapes[bottom])
    blobs = [self.normal((num_output, fan_in), math.sqrt(gain / fan_in))]
    blobs.append(self.normal((num_output,), 0.1))
    params = {"num_output": num_output, "bias_term": True, "axis": 1, "transpose": False}
    self.add(name, "InnerProduct", (bottom,), (top,), params, blobs)
    self.shapes[top] = (num_output,)

  def dropout(self, name: str, blob: str, ratio: float) -> None:
    self.add(name, "Dropout", (blob,), (blob,), {"dropout_ratio": ratio})

  def concat(self, name: str, bottoms: Sequence[str], top: str) -> None:
    self.add(name, "Concat", bottoms, (top,), {"axis": 1})
    _, h, w = self.shapes[bottoms[0]]
    self.shapes[top] = (sum(self.shapes[b][0] for b in bottoms), h, w)

  def batch_norm(self, name: str, blob: str, rms: float = 1.0) -> None:
    """Statistics for inputs of about `rms`."""
    c = self.shapes[blob][0]
    factor = np.float32(self.rng.uniform(0.8, 1.25))
    mean = self.normal((c,), 0.1 * rms)
    variance = self.rng.uniform(0.5, 1.5, c).astype(np.float32) * np.float32(rms**2)
    params = {"use_global_stats": True, "moving_average_fraction": 0.999, "eps": 1e-05}
    blobs = [mean * factor, variance * factor, np.array([factor], np.float32)]
    self.add(name, "BatchNorm", (blob,), (blob,), params, blobs)

  def scale(self, name: str, blob: str, gamma: tuple[float, float] = (0.5, 1.5)) -> None:
    c = self.shapes[blob][0]
    blobs = [self.rng.uniform(*gamma, c), self.normal((c,), 0.1)]
    self.add(name, "Scale", (blob,), (blob,), {"bias_term": True, "axis": 1, "num_axes": 1}, blobs)

  def eltwise_sum(self, name: str, bottoms: Sequence[str], top: str) -> None:
    self.add(name, "Eltwise", bottoms, (top,), {"operation": "sum", "coeff": ()})
    self.shapes[top] = self.shapes[bottoms[0]]

  def softmax(self, name: str, bottom: str, top: str) -> None:
    self.add(name, "Softmax", (bottom,), (top,), {"axis": 1})
    self.shapes[top] = self.shapes[bottom]


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int) -> int:
  """Caffe's pooled size (PoolingLayer::Reshape, round_mode CEIL): ceil((size + 2·pad − kernel) /
  stride) + 1, less one when padded and the last window would start in the padding."""
  pooled = -(-(size + 2 * pad - kernel) // stride) + 1
  if pad and (pooled - 1) * stride >= size + pad:
    pooled -= 1
  return pooled


def _alexnet(seed: int, pool_before_norm: bool) -> tuple[list[CaffeLayer], int]:
  """AlexNet (LRN then pool) or CaffeNet (pool then LRN): otherwise the same deploy."""
  b = _Builder(seed)
  b.input("data", "data", 10, 227)
  bottom = "data"
  for i, (out, kernel, stride, pad, group) in enumerate(
    [(96, 11, 4, 0, 1), (256, 5, 1, 2, 2)], start=1
  ):
    b.conv(f"conv{i}", bottom, f"conv{i}", out, kernel, stride, pad, group)
    b.relu(f"relu{i}", f"conv{i}")
    if pool_before_norm:
      b.pool(f"pool{i}", f"conv{i}", f"pool{i}", "max", 3, 2)
      b.lrn(f"norm{i}", f"pool{i}", f"norm{i}")
      bottom = f"norm{i}"
    else:
      b.lrn(f"norm{i}", f"conv{i}", f"norm{i}")
      b.pool(f"pool{i}", f"norm{i}", f"pool{i}", "max", 3, 2)
      bottom = f"pool{i}"
  b.conv("conv3", bottom, "conv3", 384, 3, pad=1)
  b.relu("relu3", "conv3")
  b.conv("conv4", "conv3", "conv4", 384, 3, pad=1, group=2)
  b.relu("relu4", "conv4")
  b.conv("conv5", "conv4", "conv5", 256, 3, pad=1, group=2)
  b.relu("relu5", "conv5")
  b.pool("pool5", "conv5", "pool5", "max", 3, 2)
  _classifier(b, "pool5")
  return b.layers, 227


def _classifier(b: _Builder, bottom: str) -> None:
  """fc6, fc7 (4096, ReLU, dropout 0.5), fc8 (1000), prob: AlexNet's, CaffeNet's and VGG's."""
  for i in (6, 7):
    b.fc(f"fc{i}", bottom, f"fc{i}", 4096)
    b.relu(f"relu{i}", f"fc{i}")
    b.dropout(f"drop{i}", f"fc{i}", 0.5)
    bottom = f"fc{i}"
  b.fc("fc8", bottom, "fc8", 1000, gain=_LOGIT_GAIN)
  b.softmax("prob", "fc8", "prob")


def bvlc_alexnet(seed: int = 0) -> tuple[list[CaffeLayer], int]:
  """BVLC AlexNet deploy (conv1 → relu1 → norm1 → pool1; groups 2 in conv2, 4, 5); input 227."""
  return _alexnet(seed, pool_before_norm=False)


def caffenet(seed: int = 0) -> tuple[list[CaffeLayer], int]:
  """BVLC reference CaffeNet deploy (AlexNet with pool before norm); input 227."""
  return _alexnet(seed, pool_before_norm=True)


# GoogLeNet's inception modules: name → (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
_INCEPTIONS = {
  "3a": (64, 96, 128, 16, 32, 32),
  "3b": (128, 128, 192, 32, 96, 64),
  "4a": (192, 96, 208, 16, 48, 64),
  "4b": (160, 112, 224, 24, 64, 64),
  "4c": (128, 128, 256, 24, 64, 64),
  "4d": (112, 144, 288, 32, 64, 64),
  "4e": (256, 160, 320, 32, 128, 128),
  "5a": (256, 160, 320, 32, 128, 128),
  "5b": (384, 192, 384, 48, 128, 128),
}


def bvlc_googlenet(seed: int = 0, aux: bool = True) -> tuple[list[CaffeLayer], int]:
  """BVLC GoogLeNet, in train_val.prototxt's layer order; with `aux` the auxiliary heads after
  inception_4a and 4d (their loss and accuracy layers left out); input 224."""
  b = _Builder(seed)
  b.input("data", "data", 10, 224)
  b.conv("conv1/7x7_s2", "data", "conv1/7x7_s2", 64, 7, 2, 3)
  b.relu("conv1/relu_7x7", "conv1/7x7_s2")
  b.pool("pool1/3x3_s2", "conv1/7x7_s2", "pool1/3x3_s2", "max", 3, 2)
  b.lrn("pool1/norm1", "pool1/3x3_s2", "pool1/norm1")
  b.conv("conv2/3x3_reduce", "pool1/norm1", "conv2/3x3_reduce", 64, 1)
  b.relu("conv2/relu_3x3_reduce", "conv2/3x3_reduce")
  b.conv("conv2/3x3", "conv2/3x3_reduce", "conv2/3x3", 192, 3, pad=1)
  b.relu("conv2/relu_3x3", "conv2/3x3")
  b.lrn("conv2/norm2", "conv2/3x3", "conv2/norm2")
  b.pool("pool2/3x3_s2", "conv2/norm2", "pool2/3x3_s2", "max", 3, 2)
  bottom = "pool2/3x3_s2"
  for name, widths in _INCEPTIONS.items():
    bottom = _inception(b, f"inception_{name}", bottom, widths)
    if name in ("3b", "4e"):
      pool = f"pool{3 if name == '3b' else 4}/3x3_s2"
      b.pool(pool, bottom, pool, "max", 3, 2)
      bottom = pool
    if aux and name in ("4a", "4d"):
      _aux_head(b, "loss1" if name == "4a" else "loss2", bottom)
  b.pool("pool5/7x7_s1", bottom, "pool5/7x7_s1", "ave", 7, 1)
  b.dropout("pool5/drop_7x7_s1", "pool5/7x7_s1", 0.4)
  b.fc("loss3/classifier", "pool5/7x7_s1", "loss3/classifier", 1000, gain=_LOGIT_GAIN)
  b.softmax("prob", "loss3/classifier", "prob")
  return b.layers, 224


def _inception(b: _Builder, prefix: str, bottom: str, widths: tuple[int, ...]) -> str:
  n1, n3r, n3, n5r, n5, proj = widths
  tops = []
  for branch, reduce, width, kernel in (
    ("1x1", None, n1, 1),
    ("3x3", n3r, n3, 3),
    ("5x5", n5r, n5, 5),
  ):
    source = bottom
    if reduce is not None:
      b.conv(f"{prefix}/{branch}_reduce", bottom, f"{prefix}/{branch}_reduce", reduce, 1)
      b.relu(f"{prefix}/relu_{branch}_reduce", f"{prefix}/{branch}_reduce")
      source = f"{prefix}/{branch}_reduce"
    b.conv(f"{prefix}/{branch}", source, f"{prefix}/{branch}", width, kernel, pad=kernel // 2)
    b.relu(f"{prefix}/relu_{branch}", f"{prefix}/{branch}")
    tops.append(f"{prefix}/{branch}")
  b.pool(f"{prefix}/pool", bottom, f"{prefix}/pool", "max", 3, 1, pad=1)
  b.conv(f"{prefix}/pool_proj", f"{prefix}/pool", f"{prefix}/pool_proj", proj, 1)
  b.relu(f"{prefix}/relu_pool_proj", f"{prefix}/pool_proj")
  tops.append(f"{prefix}/pool_proj")
  b.concat(f"{prefix}/output", tops, f"{prefix}/output")
  return f"{prefix}/output"


def _aux_head(b: _Builder, prefix: str, bottom: str) -> None:
  """An auxiliary classifier: 5×5/3 average pool, 1×1 conv 128, fc 1024, dropout 0.7, fc 1000."""
  b.pool(f"{prefix}/ave_pool", bottom, f"{prefix}/ave_pool", "ave", 5, 3)
  b.conv(f"{prefix}/conv", f"{prefix}/ave_pool", f"{prefix}/conv", 128, 1)
  b.relu(f"{prefix}/relu_conv", f"{prefix}/conv")
  b.fc(f"{prefix}/fc", f"{prefix}/conv", f"{prefix}/fc", 1024)
  b.relu(f"{prefix}/relu_fc", f"{prefix}/fc")
  b.dropout(f"{prefix}/drop_fc", f"{prefix}/fc", 0.7)
  b.fc(f"{prefix}/classifier", f"{prefix}/fc", f"{prefix}/classifier", 1000, gain=_LOGIT_GAIN)


_RESNET_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


def resnet_block_names(depth: int) -> dict[int, list[str]]:
  """Stage (2–5) → its blocks' names: res2a, res2b, … in ResNet-50; from ResNet-101 on, stages 3
  and 4 name their blocks a, b1, b2, … (res4b1 … res4b22)."""
  names = {}
  for stage, count in zip((2, 3, 4, 5), _RESNET_BLOCKS[depth], strict=True):
    if depth == 50 or stage in (2, 5):
      suffixes = [chr(ord("a") + i) for i in range(count)]
    else:
      suffixes = ["a"] + [f"b{i}" for i in range(1, count)]
    names[stage] = [f"res{stage}{s}" for s in suffixes]
  return names


def resnet(depth: int, seed: int = 0) -> tuple[list[CaffeLayer], int]:
  """MSRA ResNet-50/101/152 deploy: bottleneck blocks, each convolution followed by BatchNorm
  (bn…) and Scale (scale…); the first block of a stage projects with res*a_branch1, and in
  stages 3–5 both branch1 and branch2a (the 1×1) have stride 2; input 224."""
  b = _Builder(seed)
  b.input("input", "data", 1, 224)
  # ResNet-50's conv1 has a bias (its prototxt leaves bias_term at true), 101's and 152's not.
  b.conv("conv1", "data", "conv1", 64, 7, 2, 3, bias=depth == 50)
  b.batch_norm("bn_conv1", "conv1", rms=PIXEL_RMS * math.sqrt(2))  # He: conv1 doubles E[x²]
  b.scale("scale_conv1", "conv1")
  b.relu("conv1_relu", "conv1")
  b.pool("pool1", "conv1", "pool1", "max", 3, 2)
  bottom = "pool1"
  for stage, names in resnet_block_names(depth).items():
    width = 64 * 2 ** (stage - 2)
    for i, name in enumerate(names):
      stride = 2 if i == 0 and stage > 2 else 1
      suffix = name[3:]  # "2a", "4b12"
      shortcut = bottom
      if i == 0:
        _conv_bn(b, f"{name}_branch1", bottom, 4 * width, 1, stride, 0, suffix, relu=False)
        shortcut = f"{name}_branch1"
      _conv_bn(b, f"{name}_branch2a", bottom, width, 1, stride, 0, suffix)
      _conv_bn(b, f"{name}_branch2b", f"{name}_branch2a", width, 3, 1, 1, suffix)
      _conv_bn(b, f"{name}_branch2c", f"{name}_branch2b", 4 * width, 1, 1, 0, suffix, relu=False)
      b.eltwise_sum(name, (shortcut, f"{name}_branch2c"), name)
      b.relu(f"{name}_relu", name)
      bottom = name
  b.pool("pool5", bottom, "pool5", "ave", 7, 1)
  b.fc("fc1000", "pool5", "fc1000", 1000, gain=1.0)
  b.softmax("prob", "fc1000", "prob")
  return b.layers, 224


def _conv_bn(b, name, bottom, width, kernel, stride, pad, block, relu=True) -> None:
  """res{block}_branchX → bn{block}_branchX → scale{block}_branchX (→ res…_relu), in place."""
  branch = name.split("_", 1)[1]
  b.conv(name, bottom, name, width, kernel, stride, pad, bias=False)
  b.batch_norm(f"bn{block}_{branch}", name)
  # The residual branch's last Scale is kept small so that sums over 50 blocks stay O(1).
  b.scale(f"scale{block}_{branch}", name, (0.5, 1.5) if relu or branch == "branch1" else (0.1, 0.3))
  if relu:
    b.relu(f"{name}_relu", name)


_VGG_STAGES = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def vgg(depth: int, seed: int = 0) -> tuple[list[CaffeLayer], int]:
  """The VGG team's VGG-16 / VGG-19 deploy (configurations D and E): 3×3 pad-1 convolutions,
  2×2/2 max pools, fc6–fc8 as AlexNet's; input 224."""
  b = _Builder(seed)
  b.input("input", "data", 10, 224)
  bottom = "data"
  for stage, count in enumerate(_VGG_STAGES[depth], start=1):
    width = min(64 * 2 ** (stage - 1), 512)
    for i in range(1, count + 1):
      b.conv(f"conv{stage}_{i}", bottom, f"conv{stage}_{i}", width, 3, pad=1)
      b.relu(f"relu{stage}_{i}", f"conv{stage}_{i}")
      bottom = f"conv{stage}_{i}"
    b.pool(f"pool{stage}", bottom, f"pool{stage}", "max", 2, 2)
    bottom = f"pool{stage}"
  _classifier(b, bottom)
  return b.layers, 224


def dump_for_twin(
  layers: Sequence[CaffeLayer], json_path: str | pathlib.Path, npz_path: str | pathlib.Path
) -> None:
  """Writes a net for caffe_twin.py: the layers without blobs as JSON (a list of {name, type,
  bottoms, tops, params}), and the blobs as .npz entries "{layer index}_{blob index}"."""
  described = [
    {
      "name": l.name,
      "type": l.type,
      "bottoms": list(l.bottoms),
      "tops": list(l.tops),
      "params": _plain(l.params),
    }
    for l in layers
  ]
  pathlib.Path(json_path).write_text(json.dumps(described, indent=1))
  blobs = {f"{i}_{j}": np.asarray(b) for i, l in enumerate(layers) for j, b in enumerate(l.blobs)}
  np.savez(npz_path, **blobs)


def _plain(value: Any) -> Any:
  """Tuples as lists, for JSON."""
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, (tuple, list)):
    return [_plain(v) for v in value]
  return value
