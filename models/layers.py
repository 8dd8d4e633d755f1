"""The layer kinds a network table is written with: a network is a table of named layers.

Each layer of a table is a small frozen dataclass (`Conv`, `Pool`, `LRN`, `Dense`, `Dropout`,
`GlobalAvgPool`, `Inception`, `Residual`, `AuxHead`, `PositionBias`) that knows how to apply
itself with the network's `LayerSettings`; layers with parameters or random draws of their own
(`Block`s) run in a Flax scope named after them (`BlockScope`). models/network.py applies a
table; models/edits.py edits one for ablations.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

import config_values
from models import conv as convolution
from models.geometry import Span, window_output, window_span
from models.ops import local_response_norm, pool

Array = jax.Array
BATCH_NORM_SUFFIX = "_bn"  # a convolution's batch norm is named after it: conv1 → conv1_bn


@dataclasses.dataclass(frozen=True)
class LayerSettings:
  """The network-wide settings every layer is built with, and the convolution and dense layers
  built with them."""

  activation: Callable[[Array], Array]
  kernel_init: Callable
  batch_norm: bool
  dtype: jnp.dtype
  train: bool
  axis_name: str | None = (
    None  # the devices' batch axis: statistics and masks span the global batch
  )
  conv_impl: str = "auto"  # models/conv.py: auto, xla, cpu or onednn
  backward: str = "gradient"  # BACKWARD_RULES: how max pools pass cotangents back
  # Flax's conventions: running = momentum·running + (1 − momentum)·batch (PyTorch's 0.1 is
  # 0.9 here); published weights bring their own epsilon (torchvision's GoogLeNet: 1e-3).
  batch_norm_epsilon: float = 1e-5
  batch_norm_momentum: float = 0.9

  def conv(
    self,
    x: Array,
    features: int,
    kernel: int,
    stride: int = 1,
    padding: int | str = 0,
    groups: int = 1,
    activation: bool = True,
    use_bias: bool = True,
    name: str = "conv",
  ) -> Array:
    """Convolution → batch norm (if the network uses it) → activation."""
    pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
    x = nn.Conv(
      features,
      (kernel, kernel),
      (stride, stride),
      padding=pad,
      feature_group_count=groups,
      use_bias=use_bias and not self.batch_norm,
      kernel_init=self.kernel_init,
      dtype=self.dtype,
      conv_general_dilated=functools.partial(convolution.flax_conv, implementation=self.conv_impl),
      name=name,
    )(x)
    if self.batch_norm:
      x = nn.BatchNorm(
        use_running_average=not self.train,
        momentum=self.batch_norm_momentum,
        epsilon=self.batch_norm_epsilon,
        dtype=self.dtype,
        axis_name=self.axis_name if self.train else None,
        # Var = E[x²] − E[x]²: both means cross the devices in one all-reduce instead of two
        # in sequence (the second waits on the first). Each is a rendezvous of every device,
        # two per layer per pass; one fewer made a 2-device ResNet-20 step 19 % faster.
        use_fast_variance=True,
        name=name + BATCH_NORM_SUFFIX,
      )(x)
    return self.activation(x) if activation else x

  def dense(self, x: Array, features: int, activation: bool = True, name: str = "dense") -> Array:
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(features, kernel_init=self.kernel_init, dtype=self.dtype, name=name)(x)
    return self.activation(x) if activation else x


def layer_of_parameter(key: str) -> str:
  """The layer a top-level parameter collection belongs to (`conv1_bn` → `conv1`)."""
  return key.removesuffix(BATCH_NORM_SUFFIX)


# ---------------------------------------------------------------------------------------------
# The layers. `group` names the larger unit a layer belongs to (a stage, the FC layer a dropout
# serves), so removing the unit removes the layer too. Every layer also says what the per-layer
# accounting (models/accounting.py) needs beyond its kernels: the multiply-adds of its pooling,
# and whether its output branches off the main path (an auxiliary classifier) instead of
# feeding the next layer.


class Layer:
  """What every layer of a table has besides the fields of its kind."""

  name: str  # its outputs and parameters are recorded under it
  group: str | None
  branches_off = False  # True: recorded under its name, but the next layer sees its input

  def __call__(self, x: Array, settings: LayerSettings) -> Array:
    raise NotImplementedError

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the layer's pooling for one image (kernels are counted from variables)."""
    return 0

  def span(self, size: int) -> Span | None:
    """What each output position reads of an input `size` wide; None: all of it."""
    return Span()


class Block(Layer):
  """A layer that owns parameters or random draws: its `body` runs in a Flax scope named
  after it, so what it creates is named `layer/...` (`inception_3a/1x1/kernel`)."""

  def __call__(self, x: Array, settings: LayerSettings) -> Array:
    return BlockScope(self, settings, name=self.name)(x)

  def body(self, scope: nn.Module, x: Array, settings: LayerSettings) -> Array:
    raise NotImplementedError


class BlockScope(nn.Module):
  """The Flax scope one `Block` runs in (always given the block's name, so the class name
  appears in no parameter path)."""

  block: Block
  settings: LayerSettings

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return self.block.body(self, x, self.settings)


@dataclasses.dataclass(frozen=True)
class Conv(Layer):
  name: str
  features: int
  kernel: int
  stride: int = 1
  padding: int | str = 0
  groups: int = 1
  activation: bool = True
  use_bias: bool = True
  group: str | None = None

  def __call__(self, x: Array, settings: LayerSettings) -> Array:
    return settings.conv(
      x,
      self.features,
      self.kernel,
      self.stride,
      self.padding,
      self.groups,
      self.activation,
      self.use_bias,
      name=self.name,
    )

  def span(self, size: int) -> Span:
    return window_span(self.kernel, self.stride, self.padding, size)


@dataclasses.dataclass(frozen=True)
class Pool(Layer):
  """Max or average pooling; `activation=True` applies the activation after it (LeNet-5 1998)."""

  name: str
  window: int
  stride: int
  kind: str = "max"
  padding: int | str = 0
  activation: bool = False
  group: str | None = None

  def __call__(self, x: Array, settings: LayerSettings) -> Array:
    x = pool(x, self.kind, self.window, self.stride, self.padding, settings.backward)
    return settings.activation(x) if self.activation else x

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    return math.prod(out_shape) * self.window**2  # C_out·H'·W'·K·K

  def span(self, size: int) -> Span:
    return window_span(self.window, self.stride, self.padding, size)


# Local response normalisation constants: the paper's (Krizhevsky et al. 2012 §3.3: k = 2,
# n = 5, α = 1e-4, β = 0.75) and Caffe's, whose layer divides α by n and whose published
# AlexNet, CaffeNet and GoogLeNet use k = 1 (caffe/src/caffe/layers/lrn_layer.cpp).
LRN_CONSTANTS = {
  "paper": {"k": 2.0, "n": 5, "alpha": 1e-4, "beta": 0.75},
  "caffe": {"k": 1.0, "n": 5, "alpha": 1e-4 / 5, "beta": 0.75},
}


@dataclasses.dataclass(frozen=True)
class LRN(Layer):
  """Local response normalisation across channels, paper constants by default."""

  name: str
  k: float = 2.0
  n: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  group: str | None = None

  def __call__(self, x: Array, settings: LayerSettings) -> Array:
    return local_response_norm(x, self.k, self.n, self.alpha, self.beta)

  @classmethod
  def of(cls, name: str, constants: str, group: str | None = None) -> LRN:
    """An LRN layer with the named constants (LRN_CONSTANTS: paper or caffe)."""
    return cls(name, **config_values.choose("LRN constants", constants, LRN_CONSTANTS), group=group)


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
  """A fully connected layer on the flattened input; `activation=False` for class scores."""

  name: str
  features: int
  activation: bool = True
  group: str | None = None

  def __call__(self, x: Array, settings: LayerSettings) -> Array:
    return settings.dense(x, self.features, self.activation, name=self.name)

  def span(self, size: int) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class Dropout(Block):
  """Inverted dropout: scaled at training time, the identity at test time.

  The mask is drawn for the whole global batch and sliced per device, so training draws the
  same masks on one device or many (the mask is small: FC layers).
  """

  name: str
  rate: float
  group: str | None = None

  def body(self, scope: nn.Module, x: Array, settings: LayerSettings) -> Array:
    if not settings.train or self.rate == 0:
      return x
    key = scope.make_rng("dropout")
    if settings.axis_name is None:
      keep = jax.random.bernoulli(key, 1.0 - self.rate, x.shape)
    else:
      devices = jax.lax.psum(1, settings.axis_name)
      keep = jax.random.bernoulli(key, 1.0 - self.rate, (devices * x.shape[0], *x.shape[1:]))
      start = jax.lax.axis_index(settings.axis_name) * x.shape[0]
      keep = jax.lax.dynamic_slice_in_dim(keep, start, x.shape[0])
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(Layer):
  name: str
  group: str | None = None

  def __call__(self, x: Array, settings: LayerSettings) -> Array:
    return jnp.mean(x, axis=(1, 2))

  def span(self, size: int) -> None:
    return None

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    return math.prod(in_shape)


@dataclasses.dataclass(frozen=True)
class Inception(Block):
  """Four parallel branches concatenated on channels (Szegedy et al. 2014, Table 1)."""

  name: str
  c1: int  # #1×1
  c3_reduce: int  # #3×3 reduce
  c3: int  # #3×3
  c5_reduce: int  # #5×5 reduce
  c5: int  # #5×5
  pool_proj: int  # pool proj
  group: str | None = None
  c5_kernel: int = 5  # torchvision's GoogLeNet has 3 here (its "5x5" branch is a 3×3)
  POOL = 3  # the pool-projection branch's 3×3/1 max pool, padded to keep the size

  def body(self, scope: nn.Module, x: Array, settings: LayerSettings) -> Array:
    branch1 = settings.conv(x, self.c1, 1, name="1x1")
    branch3 = settings.conv(
      settings.conv(x, self.c3_reduce, 1, name="3x3_reduce"), self.c3, 3, padding=1, name="3x3"
    )
    branch5 = settings.conv(
      settings.conv(x, self.c5_reduce, 1, name="5x5_reduce"),
      self.c5,
      self.c5_kernel,
      padding=self.c5_kernel // 2,
      name="5x5",
    )
    pooled = pool(x, "max", self.POOL, 1, self.POOL // 2, settings.backward)
    branch_pool = settings.conv(pooled, self.pool_proj, 1, name="pool_proj")
    return jnp.concatenate([branch1, branch3, branch5, branch_pool], axis=-1)

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    return math.prod(in_shape) * self.POOL**2

  def span(self, size: int) -> Span:
    branches = [(1, 0), (3, 1), (self.c5_kernel, self.c5_kernel // 2), (self.POOL, self.POOL // 2)]
    spans = [window_span(kernel, 1, padding, size) for kernel, padding in branches]
    return functools.reduce(Span.union, spans)


BOTTLENECK_EXPANSION = 4


@dataclasses.dataclass(frozen=True)
class Residual(Block):
  """A residual block (He et al. 2015): `block` "basic" (two 3×3) or "bottleneck"
  (1×1, 3×3, 1×1 ×4).

  `residual=False` drops the shortcut (the paper's plain nets). Where the shape changes, the
  shortcut is a zero-padded identity (option "A") or a 1×1 projection ("B"); "C" projects always.
  """

  name: str
  block: str
  features: int
  stride: int = 1
  residual: bool = True
  shortcut: str = "B"
  group: str | None = None
  # Where a downsampling bottleneck strides: "1x1", its first convolution, as in He et al.'s
  # released Caffe models; "3x3" in torchvision's (and timm's) "ResNet v1.5".
  stride_at: str = "1x1"

  def body(self, scope: nn.Module, x: Array, settings: LayerSettings) -> Array:
    if self.block == "basic":
      out_features = self.features
      y = settings.conv(x, self.features, 3, self.stride, 1, name="conv1")
      y = settings.conv(y, self.features, 3, 1, 1, activation=False, name="conv2")
    else:
      out_features = self.features * BOTTLENECK_EXPANSION
      first, middle = (self.stride, 1) if self.stride_at == "1x1" else (1, self.stride)
      y = settings.conv(x, self.features, 1, first, name="conv1")
      y = settings.conv(y, self.features, 3, middle, 1, name="conv2")
      y = settings.conv(y, out_features, 1, activation=False, name="conv3")
    if self.residual:
      y = y + self.shortcut_path(x, out_features, settings)
      # The residual stream is a chain of elementwise ops (add, ReLU, batch norm's scale and
      # shift) from one block to the next, and XLA's fusion, which may duplicate elementwise
      # producers into consumers, recomputed the whole chain back to the stage's start inside
      # every fusion that reads a block's output (the activation transposes of the weight
      # gradients): work quadratic in depth, read in scattered order. A ResNet-56 step took
      # twice a plain-56's. The barrier makes each block's output a value that is stored once
      # and read back (XLA:CPU keeps it only with parallel.CPU_COMPILER_OPTIONS).
      return jax.lax.optimization_barrier(settings.activation(y))
    return settings.activation(y)

  def span(self, size: int) -> Span:
    if self.block == "basic":
      main = window_span(3, self.stride, 1, size)
      main = main.then(window_span(3, 1, 1, window_output(3, self.stride, 1, size)))
    elif self.stride_at == "1x1":  # 1×1 with the stride, 3×3, 1×1
      main = Span(self.stride).then(window_span(3, 1, 1, window_output(1, self.stride, 0, size)))
    else:  # 1×1, 3×3 with the stride, 1×1
      main = window_span(3, self.stride, 1, size)
    return main.union(Span(self.stride)) if self.residual else main  # every shortcut: i·stride

  def shortcut_path(self, x: Array, out_features: int, settings: LayerSettings) -> Array:
    changes_shape = self.stride != 1 or x.shape[-1] != out_features
    if self.shortcut == "C" or (self.shortcut == "B" and changes_shape):
      return settings.conv(x, out_features, 1, self.stride, activation=False, name="projection")
    if not changes_shape:
      return x
    if x.shape[-1] > out_features:
      raise ValueError(
        f"block {self.name!r}: a zero-padded identity shortcut (option A) cannot "
        f"go from {x.shape[-1]} to {out_features} channels"
      )
    x = x[:, :: self.stride, :: self.stride, :]
    return jnp.pad(x, [(0, 0)] * 3 + [(0, out_features - x.shape[-1])])


@dataclasses.dataclass(frozen=True)
class AuxHead(Block):
  """GoogLeNet's auxiliary classifier: avg pool 5×5/3, 1×1 conv 128, FC 1024, dropout 0.7, linear.

  Its class scores are recorded under its name and weighted into the training loss; the main
  path passes through unchanged.
  """

  name: str
  num_classes: int
  loss_weight: float = 0.3
  group: str | None = None
  POOL, POOL_STRIDE = 5, 3
  branches_off = True

  def body(self, scope: nn.Module, x: Array, settings: LayerSettings) -> Array:
    y = settings.conv(pool(x, "avg", self.POOL, self.POOL_STRIDE), 128, 1, name="conv")
    y = settings.dense(y, 1024, name="fc")
    y = Dropout("dropout", 0.7)(y, settings)
    return settings.dense(y, self.num_classes, activation=False, name="linear")

  def span(self, size: int) -> None:
    return None  # class scores

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    height, width, channels = in_shape
    pooled = [(size - self.POOL) // self.POOL_STRIDE + 1 for size in (height, width)]
    return math.prod(pooled) * channels * self.POOL**2


@dataclasses.dataclass(frozen=True)
class PositionBias(Block):
  """A separate learned bias for every board position, then flattening (AlphaGo policy net)."""

  name: str
  group: str | None = None

  def body(self, scope: nn.Module, x: Array, settings: LayerSettings) -> Array:
    bias = scope.param("bias", nn.initializers.zeros, x.shape[1:]).astype(x.dtype)
    return (x + bias).reshape((x.shape[0], -1))

  def span(self, size: int) -> None:
    return None  # flattened: no spatial map after it
