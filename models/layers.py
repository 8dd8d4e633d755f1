"""The building blocks every network is declared with: a network is a table of named layers.

Each entry of a table is a small frozen dataclass (`Conv`, `Pool`, `LRN`, `Dense`, `Dropout`,
`GlobalAvgPool`, `Inception`, `Residual`, `AuxHead`, `PositionBias`) that knows how to apply
itself; `ConvNet` applies a table in order and records every entry's output under its name.
Ablations edit the table (`remove_layers`, `set_widths`) before the network is built, so the
layers that follow adapt to the new shapes by themselves.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

Array = jax.Array


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

INITIALIZERS: dict[str, Callable] = {
    # He et al. 2015 ("Xavier/2"): the default for ReLU networks.
    "he": nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"),
    "glorot": nn.initializers.glorot_uniform(),
    # Krizhevsky et al. 2012 §5: zero-mean Gaussian, standard deviation 0.01.
    "gaussian": nn.initializers.normal(stddev=0.01),
    # PyTorch's default for conv and linear layers (uniform, bound 1/sqrt(fan_in)).
    "lecun_uniform": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
}


def lookup(table: dict, kind: str, name: str):
  """Returns table[name], or raises a ValueError listing the known names."""
  if name not in table:
    raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
  return table[name]


@dataclasses.dataclass(frozen=True)
class Context:
  """Network-wide choices every layer reads."""
  activation: Callable[[Array], Array]
  kernel_init: Callable
  batch_norm: bool
  dtype: jnp.dtype
  train: bool
  axis_name: str | None = None  # the devices' batch axis: statistics and masks span the global batch

  def conv(self, x: Array, features: int, kernel: int, stride: int = 1, padding: int | str = 0,
           groups: int = 1, activation: bool = True, use_bias: bool = True,
           name: str = "conv") -> Array:
    """Convolution → batch norm (if the network uses it) → activation."""
    pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
    x = nn.Conv(features, (kernel, kernel), (stride, stride), padding=pad,
                feature_group_count=groups, use_bias=use_bias and not self.batch_norm,
                kernel_init=self.kernel_init, dtype=self.dtype, name=name)(x)
    if self.batch_norm:
      x = nn.BatchNorm(use_running_average=not self.train, momentum=0.9, epsilon=1e-5,
                       dtype=self.dtype, axis_name=self.axis_name if self.train else None,
                       use_fast_variance=False,
                       name=f"{name}_bn")(x)
    return self.activation(x) if activation else x

  def dense(self, x: Array, features: int, activation: bool = True, name: str = "dense") -> Array:
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(features, kernel_init=self.kernel_init, dtype=self.dtype, name=name)(x)
    return self.activation(x) if activation else x


def pool(x: Array, kind: str, window: int, stride: int, padding: int | str = 0) -> Array:
  pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
  if kind == "max":
    return nn.max_pool(x, (window, window), (stride, stride), pad)
  return nn.avg_pool(x, (window, window), (stride, stride), pad, count_include_pad=False)


def local_response_norm(x: Array, k: float = 2.0, n: int = 5, alpha: float = 1e-4,
                        beta: float = 0.75) -> Array:
  """b_i = a_i / (k + α Σ_{j=i−n/2}^{i+n/2} a_j²)^β over channels (Krizhevsky et al. 2012 §3.3)."""
  half = n // 2  # the sum runs from i − n/2 to i + n/2, clipped at the first and last channel
  squared = jnp.square(x.astype(jnp.float32))
  padded = jnp.pad(squared, [(0, 0)] * (x.ndim - 1) + [(half, half)])
  window_sum = jax.lax.reduce_window(padded, 0.0, jax.lax.add, (1,) * (x.ndim - 1) + (2 * half + 1,),
                                     (1,) * x.ndim, "VALID")
  return (x / (k + alpha * window_sum) ** beta).astype(x.dtype)


# ---------------------------------------------------------------------------------------------
# Table entries. `group` names the larger unit an entry belongs to (a stage, the FC layer a
# dropout serves), so removing the unit removes the entry too.

@dataclasses.dataclass(frozen=True)
class Conv:
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
    return ctx.conv(x, self.features, self.kernel, self.stride, self.padding, self.groups,
                    self.activation, self.use_bias, name=self.name)


@dataclasses.dataclass(frozen=True)
class Pool:
  """Max or average pooling; `activation=True` applies the activation after it (LeNet-5 1998)."""
  name: str
  window: int
  stride: int
  kind: str = "max"
  padding: int | str = 0
  activation: bool = False
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    x = pool(x, self.kind, self.window, self.stride, self.padding)
    return ctx.activation(x) if self.activation else x


@dataclasses.dataclass(frozen=True)
class LRN:
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
class Dense:
  """A fully connected layer on the flattened input; `activation=False` for class scores."""
  name: str
  features: int
  activation: bool = True
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return ctx.dense(x, self.features, self.activation, name=self.name)


@dataclasses.dataclass(frozen=True)
class Dropout:
  """Inverted dropout: scaled at training time, the identity at test time."""
  name: str
  rate: float
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return GlobalBatchDropout(self.rate, ctx.axis_name, name=self.name)(x, not ctx.train)


class GlobalBatchDropout(nn.Module):
  """Inverted dropout whose mask is drawn for the whole global batch and sliced per device, so
  training draws the same masks on one device or many (the mask is small: FC layers)."""
  rate: float
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: Array, deterministic: bool) -> Array:
    if deterministic or self.rate == 0:
      return x
    key = self.make_rng("dropout")
    if self.axis_name is None:
      keep = jax.random.bernoulli(key, 1.0 - self.rate, x.shape)
    else:
      devices = jax.lax.psum(1, self.axis_name)
      keep = jax.random.bernoulli(key, 1.0 - self.rate, (devices * x.shape[0], *x.shape[1:]))
      start = jax.lax.axis_index(self.axis_name) * x.shape[0]
      keep = jax.lax.dynamic_slice_in_dim(keep, start, x.shape[0])
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool:
  name: str
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return jnp.mean(x, axis=(1, 2))


@dataclasses.dataclass(frozen=True)
class Inception:
  """Four parallel branches concatenated on channels (Szegedy et al. 2014, Table 1)."""
  name: str
  c1: int          # #1×1
  c3_reduce: int   # #3×3 reduce
  c3: int          # #3×3
  c5_reduce: int   # #5×5 reduce
  c5: int          # #5×5
  pool_proj: int   # pool proj
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return InceptionModule(self, ctx, name=self.name)(x)


class InceptionModule(nn.Module):
  spec: Inception
  ctx: Context

  @nn.compact
  def __call__(self, x: Array) -> Array:
    s, ctx = self.spec, self.ctx
    branch1 = ctx.conv(x, s.c1, 1, name="1x1")
    branch3 = ctx.conv(ctx.conv(x, s.c3_reduce, 1, name="3x3_reduce"), s.c3, 3, padding=1, name="3x3")
    branch5 = ctx.conv(ctx.conv(x, s.c5_reduce, 1, name="5x5_reduce"), s.c5, 5, padding=2, name="5x5")
    branch_pool = ctx.conv(pool(x, "max", 3, 1, 1), s.pool_proj, 1, name="pool_proj")
    return jnp.concatenate([branch1, branch3, branch5, branch_pool], axis=-1)


@dataclasses.dataclass(frozen=True)
class Residual:
  """A residual block (He et al. 2015): `block` "basic" (two 3×3) or "bottleneck" (1×1, 3×3, 1×1 ×4).

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

  def __call__(self, x: Array, ctx: Context) -> Array:
    return ResidualBlock(self, ctx, name=self.name)(x)


BOTTLENECK_EXPANSION = 4


class ResidualBlock(nn.Module):
  spec: Residual
  ctx: Context

  @nn.compact
  def __call__(self, x: Array) -> Array:
    s, ctx = self.spec, self.ctx
    if s.block == "basic":
      out_features = s.features
      y = ctx.conv(x, s.features, 3, s.stride, 1, name="conv1")
      y = ctx.conv(y, s.features, 3, 1, 1, activation=False, name="conv2")
    else:
      out_features = s.features * BOTTLENECK_EXPANSION
      # The stride sits on the first 1×1 convolution, as in the paper's released models.
      y = ctx.conv(x, s.features, 1, s.stride, name="conv1")
      y = ctx.conv(y, s.features, 3, 1, 1, name="conv2")
      y = ctx.conv(y, out_features, 1, activation=False, name="conv3")
    if s.residual:
      y = y + self.shortcut(x, out_features)
    return ctx.activation(y)

  def shortcut(self, x: Array, out_features: int) -> Array:
    s, ctx = self.spec, self.ctx
    changes_shape = s.stride != 1 or x.shape[-1] != out_features
    if s.shortcut == "C" or (s.shortcut == "B" and changes_shape):
      return ctx.conv(x, out_features, 1, s.stride, activation=False, name="projection")
    if not changes_shape:
      return x
    if x.shape[-1] > out_features:
      raise ValueError(f"block {s.name!r}: a zero-padded identity shortcut (option A) cannot go "
                       f"from {x.shape[-1]} to {out_features} channels")
    x = x[:, ::s.stride, ::s.stride, :]
    return jnp.pad(x, [(0, 0)] * 3 + [(0, out_features - x.shape[-1])])


@dataclasses.dataclass(frozen=True)
class AuxHead:
  """GoogLeNet's auxiliary classifier: avg pool 5×5/3, 1×1 conv 128, FC 1024, dropout 0.7, linear.

  Its class scores are recorded under its name and weighted into the training loss; the main
  path passes through unchanged.
  """
  name: str
  num_classes: int
  loss_weight: float = 0.3
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    return AuxClassifier(self, ctx, name=self.name)(x)


class AuxClassifier(nn.Module):
  spec: AuxHead
  ctx: Context

  @nn.compact
  def __call__(self, x: Array) -> Array:
    ctx = self.ctx
    y = ctx.conv(pool(x, "avg", 5, 3), 128, 1, name="conv")
    y = ctx.dense(y, 1024, name="fc")
    y = GlobalBatchDropout(0.7, ctx.axis_name)(y, not ctx.train)
    return ctx.dense(y, self.spec.num_classes, activation=False, name="linear")


@dataclasses.dataclass(frozen=True)
class PositionBias:
  """A separate learned bias for every board position, then flattening (AlphaGo policy net)."""
  name: str
  group: str | None = None

  def __call__(self, x: Array, ctx: Context) -> Array:
    bias = PositionBiasParam(x.shape[1:], name=self.name)().astype(x.dtype)
    return (x + bias).reshape((x.shape[0], -1))


class PositionBiasParam(nn.Module):
  shape: tuple[int, ...]

  @nn.compact
  def __call__(self) -> Array:
    return self.param("bias", nn.initializers.zeros, self.shape)


Layer = Conv | Pool | LRN | Dense | Dropout | GlobalAvgPool | Inception | Residual | AuxHead | PositionBias


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

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    ctx = Context(lookup(ACTIVATIONS, "activation", self.activation),
                  lookup(INITIALIZERS, "initializer", self.kernel_init),
                  self.batch_norm, self.dtype, train, self.axis_name)
    x = x.astype(self.dtype)
    intermediates = {}
    for layer in self.layers:
      output = layer(x, ctx)
      intermediates[layer.name] = output
      if not isinstance(layer, AuxHead):
        x = output
    return x.astype(jnp.float32), intermediates

  def aux_loss_weights(self) -> dict[str, float]:
    """Auxiliary classifiers whose scores join the training loss, with their weights."""
    return {l.name: l.loss_weight for l in self.layers if isinstance(l, AuxHead)}


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
    raise ValueError(f"cannot remove {head.name!r}: it produces the class scores; "
                     f"valid names: {', '.join(n for n in known if n != head.name)}")
  return kept


def set_widths(layers: Sequence[Layer], widths: dict[str, int]) -> tuple[Layer, ...]:
  """The table with the named layers' widths (filters, units, block channels) replaced."""
  resizable = {l.name for l in layers[:-1] if isinstance(l, (Conv, Dense, Residual))}
  for name, width in widths.items():
    if name not in resizable:
      raise ValueError(f"cannot set the width of {name!r}; layers with a width: "
                       f"{', '.join(l.name for l in layers if l.name in resizable)}")
    if width <= 0:
      raise ValueError(f"width of {name!r} must be positive, got {width}")
  return tuple(dataclasses.replace(l, features=widths[l.name]) if l.name in widths else l
               for l in layers)
