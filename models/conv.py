"""The convolution every layer table builds: XLA's own, or on the CPU one whose forward pass,
input gradient and weight gradient each use the formulation measured fastest for its shape.

Why (measured on a 2-core x86 VM, jax 0.10.2; benchmarks/conv_routes.py prints the figures):
no one formulation of a convolution's three products wins on the CPU. XLA's convolution (run
by YNNPACK) does well on wide layers, but on few channels it is slow: LeNet-5's single-channel
c1 takes 2.86 ms forward where one matrix product per kernel tap, Σ_ij window(i, j)·W[i, j],
takes 0.40 ms, and c5's input gradient 2.84 ms where the taps take 0.65. On the CIFAR ResNets'
16-channel 3×3 layers it is the other way round (weight gradient: XLA 5.3 ms, taps 30 ms, as
the taps' skinny products run slowly). So each layer's three products are chosen by timing
the candidates once on this machine (on a batch cut to a bounded cost), and the choice is kept
in this machine's cache. The routes a run used are part of the run: they are recorded in its
workdir (conv_routes.json) and obeyed when it resumes and when it is evaluated, before the
machine's cache, which comes before measuring ("Measuring the candidates" below).

`model.conv_impl`: "auto" (the measured CPU route when JAX's backend is the CPU, XLA's
convolution elsewhere), "xla", "cpu", or "onednn" (oneDNN's for every product of every
convolution, on the CPU; for tests and comparisons).
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
from models import onednn

Array = jax.Array
Pads = tuple[tuple[int, int], tuple[int, int]]
IMPLEMENTATIONS = ("auto", "xla", "cpu", "onednn")
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


# oneDNN's (models/onednn.py, native/): PyTorch's CPU convolution library, called from inside
# the XLA program. On many of the zoo's layers it runs several times faster than XLA's own
# (AlexNet's grouped 5×5: 6×); on others XLA's stays ahead, so it is one more candidate,
# measured like the rest (benchmarks/conv_routes.py).
FORWARD = {"xla": forward_xla, "taps": forward_taps, "onednn": onednn.forward}
INPUT_GRAD = {"xla": input_grad_xla, "taps": input_grad_taps, "onednn": onednn.input_grad}
WEIGHT_GRAD = {
  "xla": weight_grad_xla, "taps": weight_grad_taps, "patches": weight_grad_patches,
  "onednn": onednn.weight_grad,
}  # fmt: skip


def candidates(direction: str, shape: ConvShape) -> dict[str, Callable]:
  """The formulations of `direction` that can compute `shape` on this machine."""
  table = {"forward": FORWARD, "input_grad": INPUT_GRAD, "weight_grad": WEIGHT_GRAD}[direction]
  unusable = set()
  if shape.groups > 1:  # im2col mixes the groups' channels
    unusable.add("patches")
  if not onednn.usable(direction, shape):  # not built, or only its reference kernel
    unusable.add("onednn")
  return {k: v for k, v in table.items() if k not in unusable}


# ---------------------------------------------------------------------------------------------
# Measuring the candidates, once per shape and machine; the routes a run used, kept with it.
#
# Where route() takes a shape's formulation from, first to last:
#   1. the run's own record, WORKDIR/conv_routes.json (ROUTES_FILE): every route the run used,
#      keyed like the machine's cache, written as the run first meets each shape (while its
#      steps are first traced, so before its first checkpoint) and obeyed when it resumes, when
#      eval.py evaluates it, and by visualize.py and predict.py. The run's arithmetic is part of
#      the run: deleting the machine's cache, or resuming on a machine that measured otherwise,
#      does not change which formulation computes which convolution.
#      A recorded formulation this machine cannot run (oneDNN not built) is reported in one
#      warning line and the shape is routed as if unrecorded; the record keeps the original.
#   2. this machine's cache, caches.root()/conv_routes-MACHINE.json;
#   3. a measurement (then kept in both), on the shape's batch cut to MEASURED_MACS.
# route() is called while JAX traces a step, deep inside Flax modules, where nothing can be
# passed to it: so the run's record is the one piece of process state here, `_book`, set only by
# `with RouteBook(...)` for the length of the block (training.train_and_evaluate, evaluation.
# evaluate_workdir, prediction and visualization around what they trace). Outside one, routes
# come from the cache or a measurement, as before.

ROUTES_FILE = "conv_routes.json"
MIN_MACS_ENV = "CONVZOO_MIN_MEASURED_MACS"  # tests lower MIN_MEASURED_MACS to route small shapes
# A shape is timed on its batch cut so that one product takes at most this many multiply-adds
# (tens of milliseconds here): what a formulation costs per example is what decides, and
# AlexNet's 10-crop evaluation batch (128 images of 227² per device) took minutes and gigabytes
# to time whole.
MEASURED_MACS = 1_000_000_000
# A candidate whose first run takes this many times the best so far cannot win: not timed further.
HOPELESS = 3.0
# A candidate whose temporaries exceed this many times its operands and result is not timed, nor
# chosen: its memory grows with the batch beyond any other's. The taps' forward sum keeps every
# tap's product (XLA schedules the products first): AlexNet's 11×11 conv1 needs 121 outputs'
# worth, 18 GB at its evaluation batch (128 per device), and timing it there took 81 s. The
# other formulations need at most 10 times (ResNet's 3×3 layers by im2col: 9).
MAX_TEMP_RATIO = 16

_book: RouteBook | None = None  # the run whose routes are used and recorded: `with RouteBook`


def min_measured_macs() -> int:
  """MIN_MEASURED_MACS, or $CONVZOO_MIN_MEASURED_MACS where set."""
  value = os.environ.get(MIN_MACS_ENV, "").strip()
  if not value:
    return MIN_MEASURED_MACS
  try:
    macs = int(value)
  except ValueError:
    macs = -1
  if macs < 0:
    raise ValueError(
      f"${MIN_MACS_ENV} must be a number of multiply-adds (0 or more), got {value!r}"
    )
  return macs


def cache_file() -> pathlib.Path:
  """This machine's measured routes. The candidates are part of the name: routes measured
  without oneDNN (not built, or CONVZOO_ONEDNN=off) never stand in for a measurement with it."""
  candidates = "-onednn" if onednn.available() else ""
  machine = f"{platform.machine()}-{os.cpu_count()}cpu-jax{jax.__version__}{candidates}"
  return caches.root() / f"conv_routes-{machine}.json"


def _read_routes(path: pathlib.Path) -> dict[str, str]:
  """A routes file's {key: formulation}; ValueError if it is not one, OSError if unreadable."""
  routes = json.loads(path.read_text())
  if not isinstance(routes, dict) or not all(
    isinstance(k, str) and isinstance(v, str) for k, v in routes.items()
  ):
    raise ValueError("not a JSON object of formulation names")
  return routes


@functools.cache
def _routes_on_disk() -> dict[str, str]:
  try:
    return _read_routes(cache_file())
  except (OSError, ValueError):
    return {}


def _remember(entries: dict[str, str]) -> None:
  routes = _routes_on_disk()
  routes.update(entries)
  path = cache_file()
  try:  # other runs may have added routes since this one read the file
    current = _read_routes(path) if path.exists() else {}
  except (OSError, ValueError):
    current = {}
  current.update(routes)
  text = json.dumps(current, indent=0, sort_keys=True).encode()
  caches.write_atomically(path, lambda f: f.write(text))


class RouteBook:
  """The routes one run uses, kept in its workdir's ROUTES_FILE (see above); a context manager:
  `with conv.RouteBook(workdir / conv.ROUTES_FILE, announce, write=lead):` around the tracing.

  `recorded`: what the file holds (obeyed first); `used`: every route this process took,
  recorded or not. With `write` (the run's lead process), a route taken for a key the file
  does not hold is added to it at once: a few small writes while the steps are first traced,
  so the file is complete before the first checkpoint is saved. Keys the file already holds are
  never changed, by this process or by another one writing the same file (eval.py beside a
  training run): each write merges into the file as it is then.
  """

  def __init__(
    self, path: str | pathlib.Path, announce: Callable[[str], None] = print, write: bool = True
  ):
    self.path = pathlib.Path(path)
    self.announce, self.write = announce, write
    self.used: dict[str, str] = {}
    self._warned: set[str] = set()
    self._stamp = None
    self.recorded: dict[str, str] = {}
    self._reload()
    self._previous: RouteBook | None = None

  def __enter__(self) -> RouteBook:
    """Routes every convolution traced inside the with-block by this record first."""
    global _book
    self._previous, _book = _book, self
    return self

  def __exit__(self, *exc_info) -> None:
    global _book
    _book = self._previous

  def _reload(self) -> None:
    """Reads the file again if it changed (another process may have added routes)."""
    try:
      stat = self.path.stat()
    except OSError:
      return
    stamp = (stat.st_mtime_ns, stat.st_size)
    if stamp == self._stamp:
      return
    self._stamp = stamp
    try:
      self.recorded = _read_routes(self.path)
    except (OSError, ValueError) as error:
      if "unreadable" not in self._warned:
        self._warned.add("unreadable")
        self.announce(
          f"warning: {self.path} cannot be read ({error}); its convolutions are routed as if "
          "unrecorded"
        )

  def recorded_route(self, key: str, options: dict[str, Callable]) -> str | None:
    """The recorded formulation of `key` when this machine has it among `options`, else None."""
    if key not in self.recorded:
      self._reload()
    known = self.recorded.get(key)
    if known is None or known in options:
      return known
    if key not in self._warned:
      self._warned.add(key)
      self.announce(
        f"warning: {self.path} routes convolution {key} by {known!r}, which this machine "
        f"cannot run (it has {', '.join(options)}); routing it by this machine's choice instead"
      )
    return None

  def took(self, key: str, formulation: str) -> None:
    """Notes that `key` is computed by `formulation`; adds it to the file if it is new there."""
    self.used[key] = formulation
    if not self.write or key in self.recorded:
      return
    try:
      current = _read_routes(self.path) if self.path.exists() else {}
    except (OSError, ValueError):
      current = {}  # unreadable: replaced by what this process knows
    self.recorded = {**self.recorded, key: formulation, **current}
    text = json.dumps(self.recorded, indent=0, sort_keys=True).encode()
    if not caches.write_atomically(self.path, lambda f: f.write(text)):
      if "unwritable" not in self._warned:
        self._warned.add("unwritable")
        self.announce(f"warning: cannot write {self.path}; a resume may route convolutions anew")
      return
    stat = self.path.stat()
    self._stamp = (stat.st_mtime_ns, stat.st_size)


def _operands(direction: str, shape: ConvShape) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(0)
  dtype = np.dtype(shape.dtype) if shape.dtype != "bfloat16" else jnp.bfloat16
  first, second = {
    "forward": (shape.input, shape.kernel),
    "input_grad": (shape.output, shape.kernel),
    "weight_grad": (shape.input, shape.output),
  }[direction]
  return (
    rng.standard_normal(first, np.float32).astype(dtype),
    rng.standard_normal(second, np.float32).astype(dtype),
  )


def timed_shape(shape: ConvShape) -> ConvShape:
  """`shape` with its batch cut so that one product takes at most MEASURED_MACS."""
  batch = shape.input[0]
  per_example = max(1, shape.multiply_adds // batch)
  return dataclasses.replace(
    shape, input=(max(1, min(batch, MEASURED_MACS // per_example)), *shape.input[1:])
  )


def _seconds(
  function: Callable, operands: tuple, budget: float = 0.2, cutoff: float = float("inf")
) -> float:
  """Median seconds of `function(*operands)` over repeats filling about `budget` seconds; the
  first run's alone when that exceeds `cutoff` (it cannot win)."""
  start = time.perf_counter()
  jax.block_until_ready(function(*operands))  # compiles, if `function` is not compiled yet
  first = time.perf_counter() - start
  if first > cutoff:
    return first
  start = time.perf_counter()
  jax.block_until_ready(function(*operands))
  once = time.perf_counter() - start
  times = []
  for _ in range(max(2, min(10, int(budget / max(once, 1e-6))))):
    start = time.perf_counter()
    jax.block_until_ready(function(*operands))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _too_big(compiled: jax.stages.Compiled) -> bool:
  """Whether `compiled` needs more than MAX_TEMP_RATIO times its operands and result besides."""
  try:
    memory = compiled.memory_analysis()
    needed = memory.argument_size_in_bytes + memory.output_size_in_bytes
    return memory.temp_size_in_bytes > MAX_TEMP_RATIO * needed
  except (AttributeError, NotImplementedError, TypeError):  # a backend without the figures
    return False


def _fastest(direction: str, shape: ConvShape, options: dict[str, Callable]) -> str:
  """The fastest of `options` on `shape`. One candidate's executable at a time: each is
  compiled, timed and deleted before the next (a traced step holds nothing of them); one
  whose memory is out of proportion (MAX_TEMP_RATIO) is not run, and one whose first run takes
  HOPELESS× the best so far is not timed further."""
  with jax.ensure_compile_time_eval():
    device = jax.local_devices(backend="cpu")[0]
    operands = tuple(jax.device_put(o, device) for o in _operands(direction, shape))
    best, best_seconds = "xla", float("inf")
    try:
      for name, f in options.items():  # XLA's first: the yardstick the others must beat
        compiled = jax.jit(functools.partial(f, shape=shape)).lower(*operands).compile()
        if name == "xla" or not _too_big(compiled):
          seconds = _seconds(compiled, operands, cutoff=HOPELESS * best_seconds)
          if seconds < best_seconds:
            best, best_seconds = name, seconds
        del compiled  # its code and buffers go before the next candidate's are made
    finally:
      for operand in operands:
        operand.delete()
  return best


def _machine_route(direction: str, shape: ConvShape, options: dict[str, Callable]) -> str:
  """This machine's choice for `shape`: XLA's below min_measured_macs(), else the cached one,
  else measured now on timed_shape(shape) and cached under both shapes' keys."""
  if shape.multiply_adds < min_measured_macs():
    return "xla"
  key = f"{direction}:{shape.key()}"
  timed = timed_shape(shape)
  timed_key = f"{direction}:{timed.key()}"
  for known in (_routes_on_disk().get(key), _routes_on_disk().get(timed_key)):
    if known in options:
      if key not in _routes_on_disk():
        _remember({key: known})
      return known
  best = _fastest(direction, timed, options)
  _remember({key: best, timed_key: best})
  return best


def route(direction: str, shape: ConvShape) -> str:
  """The formulation of `direction` for `shape`: the run's record's (`with RouteBook`), else this
  machine's (cached or measured now); noted in the run's record either way."""
  options = candidates(direction, shape)
  key = f"{direction}:{shape.key()}"
  book = _book
  chosen = book.recorded_route(key, options) if book is not None else None
  if chosen is None:
    chosen = _machine_route(direction, shape, options)
  if book is not None:
    book.took(key, chosen)
  return chosen


# ---------------------------------------------------------------------------------------------
# The convolution itself.


def _cpu_conv(
  x: Array, w: Array, shape: ConvShape, choose: Callable[[str, ConvShape], str] | None = None
) -> Array:
  """The convolution as a custom-VJP op whose three products are `choose(direction, shape)`'s
  formulations: the measured route (by default), or one formulation for all
  (model.conv_impl=onednn)."""
  choose = choose or route

  @jax.custom_vjp
  def conv(x, w):
    return FORWARD[choose("forward", shape)](x, w, shape)

  def forward(x, w):
    return conv(x, w), (x, w)

  def backward(residuals, g_out):
    x, w = residuals
    dx = INPUT_GRAD[choose("input_grad", shape)](g_out, w, shape)
    dw = WEIGHT_GRAD[choose("weight_grad", shape)](x, g_out, shape)
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
  if implementation == "onednn":
    check_onednn(shape)
    return _cpu_conv(x, kernel, shape, lambda direction, shape: "onednn")
  return _cpu_conv(x, kernel, shape)


def check_onednn(shape: ConvShape | None = None) -> None:
  """Raises one line unless oneDNN is built (and, given a shape, has kernels for all three of
  its products): what model.conv_impl=onednn needs."""
  if not onednn.available():
    raise ValueError(
      f"model.conv_impl=onednn needs the oneDNN extension ({onednn.LIBRARY.name}; `make setup` "
      "builds it); use model.conv_impl=auto"
    )
  if shape is not None:
    for direction in ("forward", "input_grad", "weight_grad"):
      if not onednn.implementation(direction, shape):
        raise ValueError(
          f"oneDNN has no {direction} kernel for convolution {shape.key()} on this processor "
          f"({onednn.isa()}); use model.conv_impl=auto"
        )


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
