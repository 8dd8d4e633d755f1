"""The building blocks every network is declared with: a network is a table of named layers.

Each entry of a table is a small frozen dataclass (`Conv`, `Pool`, `LRN`, `Dense`, `Dropout`,
`GlobalAvgPool`, `Inception`, `Residual`, `AuxHead`, `PositionBias`) that knows how to apply
itself; entries with parameters or random draws of their own (`Block`s) run in a Flax scope
named after them. `ConvNet` applies a table in order and records every entry's output under
its name.
Ablations edit the table (`remove_layers`, `set_widths`) before the network is built, so the
layers that follow adapt to the new shapes by themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

import config_values
from models import conv as convolution

Array = jax.Array
BATCH_NORM_SUFFIX = "_bn"  # a convolution's batch norm is named after it: conv1 → conv1_bn


def swish(x: Array) -> Array:
  """x·σ(x) (Ramachandran et al. 2017)."""
  return x * jax.nn.sigmoid(x)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
  "relu": nn.relu,
  "tanh": jnp.tanh,
  "sigmoid": jax.nn.sigmoid,
  "leaky_relu": lambda x: nn.leaky_relu(x, negative_slope=0.01),
  "swish": swish,
}

# How a backward pass goes through activations and max pools. "gradient": the true gradient.
# For visualisation (visualization/): "guided" and "deconvnet" change the ReLU's rule
# (Springenberg et al. 2015; Zeiler & Fergus 2014), other activations keep their gradient;
# "dependency" passes cotangents through every activation unchanged and spreads a max pool's
# over its whole window, so that the support of ∂unit/∂input is the unit's receptive field.
BACKWARD_RULES = ("gradient", "guided", "deconvnet", "dependency")


def with_backward_rule(activation: Callable[[Array], Array], rule: str, is_relu: bool) -> Callable:
  """`activation` whose backward pass follows `rule` (one of BACKWARD_RULES)."""
  if rule == "gradient" or (rule in ("guided", "deconvnet") and not is_relu):
    return activation

  @jax.custom_vjp
  def ruled(x: Array) -> Array:
    return activation(x)

  def forward(x: Array) -> tuple[Array, Callable]:
    return jax.vjp(activation, x)

  def backward(vjp: Callable, r: Array) -> tuple[Array]:
    positive = r * (r > 0)
    if rule == "guided":  # R_l = (f_l > 0)·(R_l+1 > 0)·R_l+1
      return vjp(positive)
    if rule == "deconvnet":  # R_l = (R_l+1 > 0)·R_l+1, whatever the forward input
      return (positive,)
    return (r,)

  ruled.defvjp(forward, backward)
  return ruled


def spread_max_pool(pool_fn: Callable, average_fn: Callable) -> Callable:
  """A max pool whose backward pass spreads each cotangent over the whole window (the
  "dependency" rule), through the equally shaped average pool's gradient."""

  @jax.custom_vjp
  def pooled(x: Array) -> Array:
    return pool_fn(x)

  def forward(x: Array) -> tuple[Array, Callable]:
    return pool_fn(x), jax.vjp(average_fn, x)[1]

  def backward(vjp: Callable, r: Array) -> tuple[Array]:
    return vjp(r)

  pooled.defvjp(forward, backward)
  return pooled


INITIALIZERS: dict[str, Callable] = {
  # He et al. 2015 ("Xavier/2"): the default for ReLU networks.
  "he": nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"),
  "glorot": nn.initializers.glorot_uniform(),
  # Krizhevsky et al. 2012 §5: zero-mean Gaussian, standard deviation 0.01.
  "gaussian": nn.initializers.normal(stddev=0.01),
  # PyTorch's default for conv and linear layers (uniform, bound 1/sqrt(fan_in)).
  "lecun_uniform": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
}


@dataclasses.dataclass(frozen=True)
class Context:
  """Network-wide choices every layer reads."""

  activation: Callable[[Array], Array]
  kernel_init: Callable
  batch_norm: bool
  dtype: jnp.dtype
  train: bool
  axis_name: str | None = (
    None  # the devices' batch axis: statistics and masks span the global batch
  )
  conv_impl: str = "auto"  # models/conv.py: auto, xla or cpu
  backward: str = "gradient"  # BACKWARD_RULES: how max pools pass cotangents back

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
        momentum=0.9,
        epsilon=1e-5,
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


def pool(
  x: Array,
  kind: str,
  window: int,
  stride: int,
  padding: int | str = 0,
  backward: str = "gradient",
) -> Array:
  if kind == "max" and backward == "dependency":
    return spread_max_pool(
      functools.partial(pool, kind="max", window=window, stride=stride, padding=padding),
      functools.partial(pool, kind="avg", window=window, stride=stride, padding=padding),
    )(x)
  if window == stride and padding in (0, "VALID"):
    return tiled_pool(x, kind, window)
  pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
  if kind == "max":
    return nn.max_pool(x, (window, window), (stride, stride), pad)
  return nn.avg_pool(x, (window, window), (stride, stride), pad, count_include_pad=False)


def tiled_pool(x: Array, kind: str, window: int) -> Array:
  """Non-overlapping pooling (LeNet-5's and VGG's 2×2/2) as a reshape and a reduction.

  Equal to `reduce_window` with VALID padding, but XLA:CPU runs it as one fused loop, and its
  gradient is elementwise instead of a select-and-scatter: the pools of a LeNet-5 step took
  a third of its compute time the other way (profiled). A max pool's gradient is shared among
  tied maxima instead of going to the first (after a ReLU, ties are windows of zeros, whose
  gradient the ReLU stops either way).
  """
  n, height, width, channels = x.shape
  rows, cols = height // window, width // window
  tiles = x[:, : rows * window, : cols * window].reshape(n, rows, window, cols, window, channels)
  return tiles.max(axis=(2, 4)) if kind == "max" else tiles.mean(axis=(2, 4))


def local_response_norm(
  x: Array, k: float = 2.0, n: int = 5, alpha: float = 1e-4, beta: float = 0.75
) -> Array:
  """b_i = a_i / (k + α Σ_{j=i−n/2}^{i+n/2} a_j²)^β over channels (Krizhevsky et al. 2012 §3.3)."""
  half = n // 2  # the sum runs from i − n/2 to i + n/2, clipped at the first and last channel
  squared = jnp.square(x.astype(jnp.float32))
  padded = jnp.pad(squared, [(0, 0)] * (x.ndim - 1) + [(half, half)])
  window_sum = jax.lax.reduce_window(
    padded, 0.0, jax.lax.add, (1,) * (x.ndim - 1) + (2 * half + 1,), (1,) * x.ndim, "VALID"
  )
  return (x / (k + alpha * window_sum) ** beta).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Table entries. `group` names the larger unit an entry belongs to (a stage, the FC layer a
# dropout serves), so removing the unit removes the entry too. Every entry also says what
# summary.py needs beyond its kernels: the multiply-adds of its pooling, and whether its output
# branches off the main path (an auxiliary classifier) instead of feeding the next entry.


@dataclasses.dataclass(frozen=True)
class Span:
  """Along one spatial axis, output position i reads input positions i·stride + first to
  i·stride + last (before clipping to the input): how receptive fields are computed."""

  stride: int = 1
  first: int = 0
  last: int = 0

  def then(self, after: Span) -> Span:
    """This span followed by `after` (the next entry's, on this one's output)."""
    return Span(
      self.stride * after.stride,
      after.first * self.stride + self.first,
      after.last * self.stride + self.last,
    )

  def union(self, other: Span) -> Span:
    """Parallel branches of one stride (inception, a residual block and its shortcut)."""
    assert self.stride == other.stride, (self, other)
    return Span(self.stride, min(self.first, other.first), max(self.last, other.last))


def window_span(kernel: int, stride: int, padding: int | str, size: int) -> Span:
  """The span of a sliding window (convolution or pool) over an input of `size`."""
  if padding == "VALID":
    before = 0
  elif padding == "SAME":  # XLA pads the odd pixel after: the earlier half before
    before = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0) // 2
  else:
    before = padding
  return Span(stride, -before, kernel - 1 - before)


def window_output(kernel: int, stride: int, padding: int | str, size: int) -> int:
  if padding == "SAME":
    return math.ceil(size / stride)
  pad = 0 if padding == "VALID" else padding
  return (size + 2 * pad - kernel) // stride + 1


class Entry:
  """What every table entry has besides its fields."""

  branches_off = False  # True: recorded under its name, but the next entry sees its input

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the entry's pooling for one image (kernels are counted from variables)."""
    return 0

  def span(self, size: int) -> Span | None:
    """What each output position reads of an input `size` wide; None: all of it."""
    return Span()


class Block(Entry):
  """An entry that owns parameters or random draws: its `body` runs in a Flax scope named
  after it, so what it creates is named `entry/...` (`inception_3a/1x1/kernel`)."""

  def __call__(self, x: Array, ctx: Context) -> Array:
    return Scoped(self, ctx, name=self.name)(x)

  def body(self, scope: nn.Module, x: Array, ctx: Context) -> Array:
    raise NotImplementedError


class Scoped(nn.Module):
  """The Flax scope of one `Block` entry."""

  block: Block
  ctx: Context

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return self.block.body(self, x, self.ctx)


@dataclasses.dataclass(frozen=True)
class Conv(Entry):
  name: str
  features: int
  kernel: int
  stride: int = 1
  padding: int | str = 0
  groups: int = 1
  activation: bool = True
  use_bias: bool = True
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return ctx.conv(
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
class Pool(Entry):
  """Max or average pooling; `activation=True` applies the activation after it (LeNet-5 1998)."""

  name: str
  window: int
  stride: int
  kind: str = "max"
  padding: int | str = 0
  activation: bool = False
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    x = pool(x, self.kind, self.window, self.stride, self.padding, ctx.backward)
    return ctx.activation(x) if self.activation else x

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    return math.prod(out_shape) * self.window**2  # C_out·H'·W'·K·K

  def span(self, size: int) -> Span:
    return window_span(self.window, self.stride, self.padding, size)


@dataclasses.dataclass(frozen=True)
class LRN(Entry):
  """Local response normalisation across channels, paper constants by default."""

  name: str
  k: float = 2.0
  n: int = 5
  alpha: float = 1e-4
  beta: float = 0.75
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return local_response_norm(x, self.k, self.n, self.alpha, self.beta)


@dataclasses.dataclass(frozen=True)
class Dense(Entry):
  """A fully connected layer on the flattened input; `activation=False` for class scores."""

  name: str
  features: int
  activation: bool = True
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return ctx.dense(x, self.features, self.activation, name=self.name)

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

  def body(self, scope: nn.Module, x: Array, ctx: Context) -> Array:
    if not ctx.train or self.rate == 0:
      return x
    key = scope.make_rng("dropout")
    if ctx.axis_name is None:
      keep = jax.random.bernoulli(key, 1.0 - self.rate, x.shape)
    else:
      devices = jax.lax.psum(1, ctx.axis_name)
      keep = jax.random.bernoulli(key, 1.0 - self.rate, (devices * x.shape[0], *x.shape[1:]))
      start = jax.lax.axis_index(ctx.axis_name) * x.shape[0]
      keep = jax.lax.dynamic_slice_in_dim(keep, start, x.shape[0])
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(Entry):
  name: str
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
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
  POOL = 3  # the pool-projection branch's 3×3/1 max pool, padded to keep the size

  def body(self, scope: nn.Module, x: Array, ctx: Context) -> Array:
    branch1 = ctx.conv(x, self.c1, 1, name="1x1")
    branch3 = ctx.conv(
      ctx.conv(x, self.c3_reduce, 1, name="3x3_reduce"), self.c3, 3, padding=1, name="3x3"
    )
    branch5 = ctx.conv(
      ctx.conv(x, self.c5_reduce, 1, name="5x5_reduce"), self.c5, 5, padding=2, name="5x5"
    )
    pooled = pool(x, "max", self.POOL, 1, self.POOL // 2, ctx.backward)
    branch_pool = ctx.conv(pooled, self.pool_proj, 1, name="pool_proj")
    return jnp.concatenate([branch1, branch3, branch5, branch_pool], axis=-1)

  def pooling_flops(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> int:
    return math.prod(in_shape) * self.POOL**2

  def span(self, size: int) -> Span:
    branches = [(1, 0), (3, 1), (5, 2), (self.POOL, self.POOL // 2)]  # after their 1×1s
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

  def body(self, scope: nn.Module, x: Array, ctx: Context) -> Array:
    if self.block == "basic":
      out_features = self.features
      y = ctx.conv(x, self.features, 3, self.stride, 1, name="conv1")
      y = ctx.conv(y, self.features, 3, 1, 1, activation=False, name="conv2")
    else:
      out_features = self.features * BOTTLENECK_EXPANSION
      # The stride sits on the first 1×1 convolution, as in the paper's released models.
      y = ctx.conv(x, self.features, 1, self.stride, name="conv1")
      y = ctx.conv(y, self.features, 3, 1, 1, name="conv2")
      y = ctx.conv(y, out_features, 1, activation=False, name="conv3")
    if self.residual:
      y = y + self.shortcut_path(x, out_features, ctx)
      # The residual stream is a chain of elementwise ops (add, ReLU, batch norm's scale and
      # shift) from one block to the next, and XLA's fusion, which may duplicate elementwise
      # producers into consumers, recomputed the whole chain back to the stage's start inside
      # every fusion that reads a block's output (the activation transposes of the weight
      # gradients): work quadratic in depth, read in scattered order. A ResNet-56 step took
      # twice a plain-56's. The barrier makes each block's output a value that is stored once
      # and read back (XLA:CPU keeps it only with parallel.CPU_COMPILER_OPTIONS).
      return jax.lax.optimization_barrier(ctx.activation(y))
    return ctx.activation(y)

  def span(self, size: int) -> Span:
    if self.block == "basic":
      main = window_span(3, self.stride, 1, size)
      main = main.then(window_span(3, 1, 1, window_output(3, self.stride, 1, size)))
    else:  # 1×1 with the stride, 3×3, 1×1
      main = Span(self.stride).then(window_span(3, 1, 1, window_output(1, self.stride, 0, size)))
    return main.union(Span(self.stride)) if self.residual else main  # every shortcut: i·stride

  def shortcut_path(self, x: Array, out_features: int, ctx: Context) -> Array:
    changes_shape = self.stride != 1 or x.shape[-1] != out_features
    if self.shortcut == "C" or (self.shortcut == "B" and changes_shape):
      return ctx.conv(x, out_features, 1, self.stride, activation=False, name="projection")
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

  def body(self, scope: nn.Module, x: Array, ctx: Context) -> Array:
    y = ctx.conv(pool(x, "avg", self.POOL, self.POOL_STRIDE), 128, 1, name="conv")
    y = ctx.dense(y, 1024, name="fc")
    y = Dropout("dropout", 0.7)(y, ctx)
    return ctx.dense(y, self.num_classes, activation=False, name="linear")

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

  def body(self, scope: nn.Module, x: Array, ctx: Context) -> Array:
    bias = scope.param("bias", nn.initializers.zeros, x.shape[1:]).astype(x.dtype)
    return (x + bias).reshape((x.shape[0], -1))

  def span(self, size: int) -> None:
    return None  # flattened: no spatial map after it


Layer = (
  Conv
  | Pool
  | LRN
  | Dense
  | Dropout
  | GlobalAvgPool
  | Inception
  | Residual
  | AuxHead
  | PositionBias
)


# ---------------------------------------------------------------------------------------------
# The network and the table edits that make ablations.


class ConvNet(nn.Module):
  """Applies a layer table in order; returns (logits, {layer name: output})."""

  layers: Sequence[Layer]
  activation: str = "relu"
  kernel_init: str = "he"
  batch_norm: bool = False
  dtype: jnp.dtype = jnp.float32
  axis_name: str | None = None  # set when training data-parallel (parallel.AXIS)
  conv_impl: str = "auto"  # models/conv.py: auto, xla or cpu
  backward: str = "gradient"  # BACKWARD_RULES; the others serve visualisation only

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    activation = config_values.choose("model.activation", self.activation, ACTIVATIONS)
    config_values.check_choice("backward rule", self.backward, BACKWARD_RULES)
    ctx = Context(
      with_backward_rule(activation, self.backward, is_relu=self.activation == "relu"),
      config_values.choose("model.kernel_init", self.kernel_init, INITIALIZERS),
      self.batch_norm,
      self.dtype,
      train,
      self.axis_name,
      self.conv_impl,
      self.backward,
    )
    x = x.astype(self.dtype)
    intermediates = {}
    for layer in self.layers:
      output = layer(x, ctx)
      intermediates[layer.name] = output
      if not layer.branches_off:
        x = output
    return x.astype(jnp.float32), intermediates

  def aux_loss_weights(self) -> dict[str, float]:
    """Auxiliary classifiers whose scores join the training loss, with their weights."""
    return {l.name: l.loss_weight for l in self.layers if isinstance(l, AuxHead)}


def layer_of_parameter(key: str) -> str:
  """The table entry a top-level parameter collection belongs to (`conv1_bn` → `conv1`)."""
  return key.removesuffix(BATCH_NORM_SUFFIX)


def layer_names(layers: Sequence[Layer]) -> list[str]:
  """Every name `remove_layers` accepts: the entries' own names and their groups, in order."""
  names = []
  for layer in layers:
    for name in (layer.group, layer.name):
      if name and name not in names:
        names.append(name)
  return names


def remove_layers(layers: Sequence[Layer], remove: Sequence[str]) -> tuple[Layer, ...]:
  """The table without the named entries (and the entries of named groups)."""
  known = layer_names(layers)
  for name in remove:
    if name not in known:
      raise ValueError(f"cannot remove {name!r}: no such layer; valid names: {', '.join(known)}")
  kept = tuple(l for l in layers if l.name not in remove and l.group not in remove)
  head = layers[-1]
  if not kept or kept[-1] != head:
    raise ValueError(
      f"cannot remove {head.name!r}: it produces the class scores; "
      f"valid names: {', '.join(n for n in known if n != head.name)}"
    )
  return kept


def set_widths(layers: Sequence[Layer], widths: dict[str, int]) -> tuple[Layer, ...]:
  """The table with the named layers' widths (filters, units, block channels) replaced."""
  resizable = {l.name for l in layers[:-1] if isinstance(l, (Conv, Dense, Residual))}
  for name, width in widths.items():
    if name not in resizable:
      raise ValueError(
        f"cannot set the width of {name!r}; layers with a width: "
        f"{', '.join(l.name for l in layers if l.name in resizable)}"
      )
    if width <= 0:
      raise ValueError(f"width of {name!r} must be positive, got {width}")
  return tuple(
    dataclasses.replace(l, features=widths[l.name]) if l.name in widths else l for l in layers
  )
