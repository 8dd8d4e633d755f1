"""Caffe's published layers → convzoo's variables: BVLC AlexNet and CaffeNet, BVLC GoogLeNet,
He et al.'s ResNets, Simonyan & Zisserman's VGG.

A caffemodel holds its layer definitions, so before a single weight is copied each convolution's
kernel, stride, padding and groups, each pool's kind, window and stride and each LRN's
constants are checked against the convzoo variant the import builds (`check_geometry`).
Names follow the published prototxts: BVLC caffe/models/{bvlc_alexnet,bvlc_reference_caffenet,
bvlc_googlenet}, KaimingHe/deep-residual-networks prototxt/ResNet-{50,101,152}-deploy.prototxt,
and the VGG_ILSVRC_{16,19}_layers deploy files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from models.layers import LRN, AuxHead, Conv, GlobalAvgPool, Inception, Pool, Residual
from weights.caffemodel import CaffeLayer
from weights.conversions import Transfer, conv_kernel, dense_kernel

BN_SUFFIX = "_bn"


def blobs_by_name(layers: Sequence[CaffeLayer]) -> dict[str, np.ndarray]:
  """Every blob of the net as "layer/index" (what `Transfer` books)."""
  return {f"{layer.name}/{i}": blob for layer in layers for i, blob in enumerate(layer.blobs)}


def conv(t: Transfer, layer: str, target: tuple[str, ...], bias: bool = True) -> None:
  t.put(("params", *target, "kernel"), conv_kernel(t.take(f"{layer}/0")), f"{layer} weights")
  if bias:
    t.put(("params", *target, "bias"), t.take(f"{layer}/1").reshape(-1), f"{layer} bias")


def dense(t: Transfer, layer: str, target: tuple[str, ...], channels_first: tuple | None = None):
  weight = t.take(f"{layer}/0")
  weight = weight.reshape(weight.shape[-2:])  # V1 files store it as 1×1×out×in
  t.put(("params", *target, "kernel"), dense_kernel(weight, channels_first), f"{layer} weights")
  t.put(("params", *target, "bias"), t.take(f"{layer}/1").reshape(-1), f"{layer} bias")


def batch_norm(t: Transfer, bn: str, scale: str, target: tuple[str, ...], conv_bias: str = ""):
  """Caffe's BatchNorm (running sums of mean and variance and their scale factor: the
  statistics are blob/factor, caffe/src/caffe/layers/batch_norm_layer.cpp) followed by a
  Scale layer (γ, β) → convzoo's `target`_bn. A bias of the convolution before it (He et
  al.'s conv1 has one) is folded into the mean: convzoo's convolutions have none under batch
  norm, and BN(Wx + b) = γ(Wx − (μ − b))/σ + β."""
  *scope, layer = target
  path = (*scope, layer + BN_SUFFIX)
  factor = float(t.take(f"{bn}/2").reshape(-1)[0])
  factor = 0.0 if factor == 0 else 1.0 / factor
  mean = t.take(f"{bn}/0").reshape(-1) * factor
  if conv_bias and t.has(conv_bias):
    mean = mean - t.take(conv_bias).reshape(-1)
  t.put(("batch_stats", *path, "mean"), mean, f"{bn} mean")
  t.put(("batch_stats", *path, "var"), t.take(f"{bn}/1").reshape(-1) * factor, f"{bn} variance")
  t.put(("params", *path, "scale"), t.take(f"{scale}/0").reshape(-1), f"{scale} γ")
  t.put(("params", *path, "bias"), t.take(f"{scale}/1").reshape(-1), f"{scale} β")


# ---------------------------------------------------------------------------------------------
# The networks: each one's convolutions as {Caffe layer: convzoo path} (checked against the
# table's geometry before anything is copied), and the copy.

Convs = dict[str, tuple[str, ...]]


def alexnet_convs() -> Convs:
  """BVLC AlexNet and CaffeNet: conv1–5 are convzoo's names."""
  return {name: (name,) for name in ("conv1", "conv2", "conv3", "conv4", "conv5")}


def alexnet(t: Transfer) -> None:
  for layer, target in alexnet_convs().items():
    conv(t, layer, target)
  dense(t, "fc6", ("fc6",), (256, 6, 6))
  dense(t, "fc7", ("fc7",))
  dense(t, "fc8", ("fc8",))


INCEPTION_CONVS = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")
AUX_HEADS = (("loss1", "aux1"), ("loss2", "aux2"))  # BVLC GoogLeNet's names → convzoo's


def googlenet_convs(inceptions: Sequence[str], aux: bool) -> Convs:
  """BVLC GoogLeNet: convzoo's inception names are Caffe's; loss1/loss2 are aux1/aux2."""
  convs = {
    "conv1/7x7_s2": ("conv1",),
    "conv2/3x3_reduce": ("conv2_reduce",),
    "conv2/3x3": ("conv2",),
  }
  convs |= {f"{name}/{c}": (name, c) for name in inceptions for c in INCEPTION_CONVS}
  return convs | ({f"{loss}/conv": (head, "conv") for loss, head in AUX_HEADS} if aux else {})


def googlenet(t: Transfer, inceptions: Sequence[str], aux: bool) -> None:
  for layer, target in googlenet_convs(inceptions, aux).items():
    conv(t, layer, target)
  for loss, head in AUX_HEADS if aux else ():
    dense(t, f"{loss}/fc", (head, "fc"), (128, 4, 4))  # reads the 128×4×4 map
    dense(t, f"{loss}/classifier", (head, "linear"))
  dense(t, "loss3/classifier", ("linear",))


def resnet_block_name(depth: int, stage: int, block: int) -> str:
  """He et al.'s names: res2a, res2b, …; ResNet-101/152 number stages 3 and 4's later blocks
  (res4b1 … res4b22) instead of lettering them."""
  if block == 1:
    return f"res{stage + 1}a"
  if depth > 50 and stage in (2, 3):
    return f"res{stage + 1}b{block - 1}"
  return f"res{stage + 1}{chr(ord('a') + block - 1)}"


def resnet_convs(depth: int, blocks_per_stage: Sequence[int]) -> Convs:
  """He et al.'s ResNet-50/101/152: res{2a}_branch{2a,2b,2c} and the projection branch1."""
  convs = {"conv1": ("conv1",)}
  for stage, count in enumerate(blocks_per_stage, start=1):
    for block in range(1, count + 1):
      name, target = resnet_block_name(depth, stage, block), f"stage{stage}_block{block}"
      branches = {"2a": "conv1", "2b": "conv2", "2c": "conv3"} | (
        {"1": "projection"} if block == 1 else {}
      )
      convs |= {f"{name}_branch{branch}": (target, layer) for branch, layer in branches.items()}
  return convs


def resnet(t: Transfer, depth: int, blocks_per_stage: Sequence[int]) -> None:
  """Each convolution (no bias, but conv1's) with its BatchNorm bn… and Scale scale… layers."""
  for layer, target in resnet_convs(depth, blocks_per_stage).items():
    conv(t, layer, target, bias=False)
    suffix = "_conv1" if layer == "conv1" else layer.removeprefix("res")
    batch_norm(t, f"bn{suffix}", f"scale{suffix}", target, conv_bias=f"{layer}/1")
  dense(t, "fc1000", ("fc",))


def vgg_convs(conv_names: Sequence[str]) -> Convs:
  """Simonyan & Zisserman's release: conv1_1 … conv5_3 (or _4) are convzoo's names."""
  return {name: (name,) for name in conv_names}


def vgg(t: Transfer, conv_names: Sequence[str]) -> None:
  for layer, target in vgg_convs(conv_names).items():
    conv(t, layer, target)
  dense(t, "fc6", ("fc6",), (512, 7, 7))
  dense(t, "fc7", ("fc7",))
  dense(t, "fc8", ("fc8",))


# ---------------------------------------------------------------------------------------------
# Geometry: what convzoo's table says each convolution, pool and LRN is.


def conv_geometry(layers: Sequence) -> dict[tuple[str, ...], tuple[int, int, int, int]]:
  """{convzoo layer path: (kernel, stride, padding, groups)} for every convolution of a table."""
  found = {}
  for layer in layers:
    if isinstance(layer, Conv):
      found[(layer.name,)] = (layer.kernel, layer.stride, layer.padding, layer.groups)
    elif isinstance(layer, Inception):
      k5 = layer.c5_kernel
      for name, geometry in (
        ("1x1", (1, 1, 0, 1)),
        ("3x3_reduce", (1, 1, 0, 1)),
        ("3x3", (3, 1, 1, 1)),
        ("5x5_reduce", (1, 1, 0, 1)),
        ("5x5", (k5, 1, k5 // 2, 1)),
        ("pool_proj", (1, 1, 0, 1)),
      ):
        found[(layer.name, name)] = geometry
    elif isinstance(layer, AuxHead):
      found[(layer.name, "conv")] = (1, 1, 0, 1)
    elif isinstance(layer, Residual):
      s = layer.stride
      if layer.block == "basic":
        found[(layer.name, "conv1")] = (3, s, 1, 1)
        found[(layer.name, "conv2")] = (3, 1, 1, 1)
      else:
        first, middle = (s, 1) if layer.stride_at == "1x1" else (1, s)
        found[(layer.name, "conv1")] = (1, first, 0, 1)
        found[(layer.name, "conv2")] = (3, middle, 1, 1)
        found[(layer.name, "conv3")] = (1, 1, 0, 1)
      found[(layer.name, "projection")] = (1, s, 0, 1)
  return found


def pool_geometry(layers: Sequence) -> list[tuple]:
  """(kind, window, stride) of every pool of a table, "global" for a global average."""
  found = []
  for layer in layers:
    if isinstance(layer, Pool):
      found.append(("max" if layer.kind == "max" else "ave", layer.window, layer.stride))
    elif isinstance(layer, Inception):
      found.append(("max", layer.POOL, 1))
    elif isinstance(layer, AuxHead):
      found.append(("ave", layer.POOL, layer.POOL_STRIDE))
    elif isinstance(layer, GlobalAvgPool):
      found.append(("ave", "global", 1))
  return found


def check_geometry(
  caffe_layers: Sequence[CaffeLayer], table: Sequence, convs: Mapping[str, tuple[str, ...]]
) -> None:
  """A ValueError naming the first Caffe layer whose definition is not what the convzoo
  variant computes: convolutions by name, pools as a collection, LRNs in order."""
  by_name = {layer.name: layer for layer in caffe_layers}
  geometry = conv_geometry(table)
  for name, target in convs.items():
    if name not in by_name:
      raise ValueError(f"the file has no layer {name!r}, which this network needs")
    p = by_name[name].params
    have = (p.get("kernel"), p.get("stride"), p.get("pad"), p.get("group", 1))
    want = geometry.get(target)
    if want is not None and have != want:
      raise ValueError(
        f"layer {name!r} is kernel {have[0]}, stride {have[1]}, pad {have[2]}, group {have[3]}; "
        f"convzoo's {'/'.join(target)} is {want[0]}, {want[1]}, {want[2]}, {want[3]}: "
        "another network or variant"
      )
  pools = []
  for layer in caffe_layers:
    if layer.type == "Pooling":
      p = layer.params
      kind = "max" if p.get("pool") == "max" else "ave"
      is_global = p.get("global_pooling") or (kind == "ave" and p.get("stride") == 1)
      pools.append((kind, "global", 1) if is_global else (kind, p.get("kernel"), p.get("stride")))
  wanted = pool_geometry(table)
  if sorted(map(str, pools)) != sorted(map(str, wanted)):
    raise ValueError(
      f"the file's pools (kind, window, stride) {pools} are not the network's {wanted}"
    )
  caffe_lrns = [layer for layer in caffe_layers if layer.type == "LRN"]
  lrns = [layer for layer in table if isinstance(layer, LRN)]
  if len(caffe_lrns) != len(lrns):
    raise ValueError(f"the file has {len(caffe_lrns)} LRN layers; the network has {len(lrns)}")
  for caffe, ours in zip(caffe_lrns, lrns, strict=True):
    p = caffe.params
    size, alpha = p.get("local_size", 5), p.get("alpha", 1.0)
    same = (
      size == ours.n
      and math.isclose(alpha / size, ours.alpha, rel_tol=1e-6)
      and math.isclose(p.get("beta", 0.75), ours.beta, rel_tol=1e-6)
      and math.isclose(p.get("k", 1.0), ours.k, rel_tol=1e-6)
    )
    if not same:
      raise ValueError(
        f"LRN layer {caffe.name!r} (local_size {size}, alpha {alpha}, beta {p.get('beta')}, "
        f"k {p.get('k')}) is not convzoo's {ours.name} with Caffe's constants"
      )
