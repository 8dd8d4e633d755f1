"""The convolution every layer table builds: XLA's own, or on the CPU one whose forward pass,
input gradient and weight gradient each use the formulation measured fastest for its shape.

Why (measured on a 2-core x86 VM, jax 0.10.2; benchmarks/conv_routes.py prints the figures):
no one formulation of a convolution's three products wins on the CPU. XLA's convolution (run
by YNNPACK) does well on wide layers, but on few channels it is slow: LeNet-5's single-channel
c1 takes 2.86 ms forward where one matrix product per kernel tap, Σ_ij window(i, j)·W[i, j],
takes 0.40 ms, and c5's input gradient 2.84 ms where the taps take 0.65. On the CIFAR ResNets'
16-channel 3×3 layers it is the other way round (weight gradient: XLA 5.3 ms, taps 30 ms, as
the taps' skinny products run slowly). So each layer's three products are chosen by timing
the candidates once on this machine, and the choice is kept on disk so every later run (and
every resume) makes the same one.

`model.conv_impl`: "auto" (the measured CPU route when JAX's backend is the CPU, XLA's
convolution elsewhere), "xla", or "cpu".
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import caches

Array = jax.Array
Pads = tuple[tuple[int, int], tuple[int, int]]
IMPLEMENTATIONS = ("auto", "xla", "cpu")
DIMENSIONS = ("NHWC", "HWIO", "NHWC")
# Below this many multiply-adds a convolution takes microseconds by any formulation, and the
# measurement (a compile per candidate, ~0.1 s each) would cost more than a run could win back:
# such shapes (test-sized batches, mostly) use XLA's own without measuring.
MIN_MEASURED_MACS = 2_000_000


@dataclasses.dataclass(frozen=True)
class ConvShape:
  """One device's convolution: input [N, H, W, C], kernel [kh, kw, C/groups, F]."""

  input: tuple[int, int, int, int]
  kernel: tuple[int, int, int, int]
  stride: int
  pads: Pads
  groups: int
  dtype: str

  @property
  def output(self) -> tuple[int, int, int, int]:
    n, height, width, _ = self.input
    (top, bottom), (left, right) = self.pads
    kh, kw, _, features = self.kernel
    return (
      n,
      (height + top + bottom - kh) // self.stride + 1,
      (width + left + right - kw) // self.stride + 1,
      features,
    )

  @property
  def multiply_adds(self) -> int:
    n, out_h, out_w, features = self.output
    kh, kw, channels, _ = self.kernel
    return n * out_h * out_w * features * kh * kw * channels

  def key(self) -> str:
    return (
      f"x{'x'.join(map(str, self.input))}_k{'x'.join(map(str, self.kernel))}_s{self.stride}"
      f"_p{self.pads}_g{self.groups}_{self.dtype}".replace(" ", "")
    )


# ---------------------------------------------------------------------------------------------
# Formulations. Each computes one of the three products of a convolution; all agree to float
# rounding (tests/test_conv.py).


def forward_xla(x: Array, w: Array, shape: ConvShape) -> Array:
  return lax.conv_general_dilated(
    x, w, (shape.stride,) * 2, shape.pads, dimension_numbers=DIMENSIONS,
    feature_group_count=shape.groups,
  )  # fmt: skip


def window(x_padded: Array, i: int, j: int, shape: ConvShape) -> Array:
  """The input each output position sees through kernel tap (i, j): [N, H', W', C]."""
  n, out_h, out_w, _ = shape.output
  s = shape.stride
  end = (n, i + s * (out_h - 1) + 1, j + s * (out_w - 1) + 1, x_padded.shape[3])
  return lax.slice(x_padded, (0, i, j, 0), end, (1, s, s, 1))


def pad_input(x: Array, shape: ConvShape) -> Array:
  return jnp.pad(x, ((0, 0), *shape.pads, (0, 0)))


def grouped(t: Array, groups: int) -> Array:
  """[..., G·c] → [..., G, c]."""
  return t.reshape(*t.shape[:-1], groups, t.shape[-1] // groups)


def forward_taps(x: Array, w: Array, shape: ConvShape) -> Array:
  """Σ over taps of window(i, j) · w[i, j]: one matrix product per tap."""
  kh, kw, _, features = shape.kernel
  g = shape.groups
  x_padded = pad_input(x, shape)
  total = None
  for i in range(kh):
    for j in range(kw):
      # [N, H', W', G, c] · [G, c, f] → [N, H', W', G, f], the groups as a batch axis
      term = lax.dot_general(
        grouped(window(x_padded, i, j, shape), g),
        grouped(w[i, j], g).transpose(1, 0, 2),
        (((4,), (1,)), ((3,), (0,))),
      )  # [G, N, H', W', f]
      total = term if total is None else total + term
  return jnp.moveaxis(total, 0, 3).reshape(shape.output)


def transposed(linear: Callable, operand_shape: tuple[int, ...], g_out: Array) -> Array:
  """The transpose of `linear` (XLA's convolution, as a function of one operand) at `g_out`:
  what autodiff of XLA's convolution computes for that operand."""
  (result,) = jax.linear_transpose(linear, jax.ShapeDtypeStruct(operand_shape, g_out.dtype))(g_out)
  return result


def input_grad_xla(g_out: Array, w: Array, shape: ConvShape) -> Array:
  """XLA's transposed convolution."""
  return transposed(lambda x: forward_xla(x, w, shape), shape.input, g_out)


def input_grad_taps(g_out: Array, w: Array, shape: ConvShape) -> Array:
  """Each tap's g · w[i, j]ᵀ placed where its window lies (strided), summed, then unpadded."""
  kh, kw, _, _ = shape.kernel
  n, height, width, channels = shape.input
  (top, bottom), (left, right) = shape.pads
  padded_h, padded_w = height + top + bottom, width + left + right
  _, out_h, out_w, _ = shape.output
  s, groups = shape.stride, shape.groups
  total = None
  for i in range(kh):
    for j in range(kw):
      # [N, H', W', G, f] · [G, c, f] → [G, N, H', W', c]
      term = lax.dot_general(
        grouped(g_out, groups),
        grouped(w[i, j], groups).transpose(1, 0, 2),
        (((4,), (2,)), ((3,), (0,))),
      )
      term = jnp.moveaxis(term, 0, 3).reshape(n, out_h, out_w, channels)
      term = lax.pad(
        term,
        jnp.zeros((), term.dtype),
        (
          (0, 0, 0),
          (i, padded_h - i - s * (out_h - 1) - 1, s - 1),
          (j, padded_w - j - s * (out_w - 1) - 1, s - 1),
          (0, 0, 0),
        ),
      )
      total = term if total is None else total + term
  return total[:, top : top + height, left : left + width, :]


def weight_grad_xla(x: Array, g_out: Array, shape: ConvShape) -> Array:
  """XLA's backward-filter convolution."""
  return transposed(lambda w: forward_xla(x, w, shape), shape.kernel, g_out)


def weight_grad_taps(x: Array, g_out: Array, shape: ConvShape) -> Array:
  """dW[i, j] = window(i, j)ᵀ · g over batch and positions: one matrix product per tap."""
  kh, kw, c, features = shape.kernel
  groups = shape.groups
  x_padded = pad_input(x, shape)
  g = grouped(g_out, groups)
  taps = []
  for i in range(kh):
    for j in range(kw):
      # [N, H', W', G, c] · [N, H', W', G, f] → [G, c, f]
      tap = lax.dot_general(
        grouped(window(x_padded, i, j, shape), groups), g, (((0, 1, 2), (0, 1, 2)), ((3,), (3,)))
      )
      taps.append(tap.transpose(1, 0, 2).reshape(c, features))
  return jnp.stack(taps).reshape(shape.kernel)


def weight_grad_patches(x: Array, g_out: Array, shape: ConvShape) -> Array:
  """im2col: all taps' windows side by side ([N, H', W', C·kh·kw]), then one product."""
  kh, kw, c, features = shape.kernel
  patches = lax.conv_general_dilated_patches(
    x, (kh, kw), (shape.stride,) * 2, shape.pads, dimension_numbers=DIMENSIONS
  )  # features ordered (C, kh, kw)
  dw = lax.dot_general(patches, g_out, (((0, 1, 2), (0, 1, 2)), ((), ())))
  return dw.reshape(c, kh, kw, features).transpose(1, 2, 0, 3)


FORWARD = {"xla": forward_xla, "taps": forward_taps}
INPUT_GRAD = {"xla": input_grad_xla, "taps": input_grad_taps}
WEIGHT_GRAD = {"xla": weight_grad_xla, "taps": weight_grad_taps, "patches": weight_grad_patches}


def candidates(direction: str, shape: ConvShape) -> dict[str, Callable]:
  table = {"forward": FORWARD, "input_grad": INPUT_GRAD, "weight_grad": WEIGHT_GRAD}[direction]
  if shape.groups > 1:  # im2col mixes the groups' channels
    table = {k: v for k, v in table.items() if k != "patches"}
  return table


# ---------------------------------------------------------------------------------------------
# Measuring the candidates, once per shape and machine.


def cache_file() -> pathlib.Path:
  machine = f"{platform.machine()}-{os.cpu_count()}cpu-jax{jax.__version__}"
  return caches.root() / f"conv_routes-{machine}.json"


@functools.cache
def _routes_on_disk() -> dict[str, str]:
  try:
    return json.loads(cache_file().read_text())
  except (OSError, ValueError):
    return {}


def _remember(key: str, route: str) -> None:
  routes = _routes_on_disk()
  routes[key] = route
  path = cache_file()
  try:  # other runs may have added routes since this one read the file
    current = json.loads(path.read_text()) if path.exists() else {}
  except (OSError, ValueError):
    current = {}
  current.update(routes)
  text = json.dumps(current, indent=0, sort_keys=True).encode()
  caches.write_atomically(path, lambda f: f.write(text))


def _operands(direction: str, shape: ConvShape) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(0)
  dtype = np.dtype(shape.dtype) if shape.dtype != "bfloat16" else jnp.bfloat16
  first, second = {
    "forward": (shape.input, shape.kernel),
    "input_grad": (shape.output, shape.kernel),
    "weight_grad": (shape.input, shape.output),
  }[direction]
  return (
    rng.standard_normal(first).astype(dtype),
    rng.standard_normal(second).astype(dtype),
  )


def _seconds(function: Callable, operands: tuple, budget: float = 0.2) -> float:
  """Median seconds of `function(*operands)` over repeats filling about `budget` seconds."""
  jax.block_until_ready(function(*operands))  # compile
  start = time.perf_counter()
  jax.block_until_ready(function(*operands))
  once = time.perf_counter() - start
  times = []
  for _ in range(max(2, min(10, int(budget / max(once, 1e-6))))):
    start = time.perf_counter()
    jax.block_until_ready(function(*operands))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def route(direction: str, shape: ConvShape) -> str:
  """The formulation of `direction` measured fastest for `shape` on this machine."""
  options = candidates(direction, shape)
  if shape.multiply_adds < MIN_MEASURED_MACS:
    return "xla"
  key = f"{direction}:{shape.key()}"
  known = _routes_on_disk().get(key)
  if known in options:
    return known
  with jax.ensure_compile_time_eval():
    device = jax.local_devices(backend="cpu")[0]
    operands = tuple(jax.device_put(o, device) for o in _operands(direction, shape))
    timings = {
      name: _seconds(jax.jit(functools.partial(f, shape=shape)), operands)
      for name, f in options.items()
    }
  best = min(timings, key=timings.get)
  _remember(key, best)
  return best


# ---------------------------------------------------------------------------------------------
# The convolution itself.


def _cpu_conv(x: Array, w: Array, shape: ConvShape) -> Array:
  @jax.custom_vjp
  def conv(x, w):
    return FORWARD[route("forward", shape)](x, w, shape)

  def forward(x, w):
    return conv(x, w), (x, w)

  def backward(residuals, g_out):
    x, w = residuals
    dx = INPUT_GRAD[route("input_grad", shape)](g_out, w, shape)
    dw = WEIGHT_GRAD[route("weight_grad", shape)](x, g_out, shape)
    return dx, dw

  conv.defvjp(forward, backward)
  return conv(x, w)


def conv_shape(
  x: Array, kernel: Array, stride: int, padding: str | Pads, groups: int = 1
) -> ConvShape:
  """The ConvShape of a convolution of `x` by `kernel` ("SAME"/"VALID" made explicit)."""
  pads = (
    tuple(lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], (stride,) * 2, padding))
    if isinstance(padding, str)
    else tuple(tuple(p) for p in padding)
  )
  return ConvShape(
    tuple(x.shape), tuple(kernel.shape), stride, pads, groups, jnp.dtype(x.dtype).name
  )


def conv2d(
  x: Array,
  kernel: Array,
  stride: int,
  padding: str | Pads,
  groups: int = 1,
  implementation: str = "auto",
) -> Array:
  """NHWC input, HWIO kernel → NHWC output, by the implementation asked for."""
  if implementation == "auto":
    implementation = "cpu" if jax.default_backend() == "cpu" else "xla"
  shape = conv_shape(x, kernel, stride, padding, groups)
  if implementation == "xla":
    return forward_xla(x, kernel, shape)
  return _cpu_conv(x, kernel, shape)


def flax_conv(
  lhs: Array,
  rhs: Array,
  window_strides,
  padding,
  lhs_dilation=None,
  rhs_dilation=None,
  dimension_numbers=None,
  feature_group_count: int = 1,
  precision=None,
  *,
  implementation: str,
) -> Array:
  """`conv2d` with `lax.conv_general_dilated`'s signature, for `flax.linen.Conv` (NHWC, HWIO,
  square strides, no dilation: what the layer tables build)."""
  strides = set(window_strides)
  dilated = any(d != 1 for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
  if len(strides) != 1 or dilated or lhs.ndim != 4:
    raise ValueError(
      f"conv_impl {implementation!r} takes 2-D convolutions with square strides and no "
      f"dilation, got strides {tuple(window_strides)}; use model.conv_impl=xla"
    )
  return conv2d(lhs, rhs, strides.pop(), padding, feature_group_count, implementation)
