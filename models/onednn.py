"""oneDNN's CPU convolutions inside XLA programs: the native extension in native/ (built by
`make setup`), registered as JAX FFI targets, and the three products of a convolution as JAX
functions of models/conv.py's ConvShape.

Where the extension is not built (no compiler, another processor) or is switched off with
CONVZOO_ONEDNN=off, `available()` says so in one line and is False: models/conv.py then routes
every convolution as it did before oneDNN, through XLA's own and pure-JAX formulations.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import pathlib
from typing import TYPE_CHECKING

import jax
import numpy as np

if TYPE_CHECKING:
  from models.conv import ConvShape

LIBRARY = pathlib.Path(__file__).resolve().parents[1] / "native" / "build" / "libconvzoo_onednn.so"
SWITCH_ENV = "CONVZOO_ONEDNN"  # "off" keeps oneDNN out of every route
TARGETS = {
  "forward": "ConvzooOnednnForward",
  "input_grad": "ConvzooOnednnBackwardData",
  "weight_grad": "ConvzooOnednnBackwardWeights",
}
# dnnl_cpu_isa_t values (oneapi/dnnl/dnnl_types.h, oneDNN 3.2): the instruction sets with
# bfloat16 dot products, where oneDNN's bfloat16 convolutions run natively.
ISA_NAMES = {
  0x1: "sse41", 0x3: "avx", 0x7: "avx2", 0x407: "avx2_vnni", 0xc07: "avx2_vnni_2",
  0x27: "avx512_core", 0x67: "avx512_core_vnni", 0xe7: "avx512_core_bf16",
  0x1e7: "avx512_core_fp16", 0x3e7: "avx512_core_amx", 0x7e7: "avx512_core_amx_fp16",
}  # fmt: skip
BFLOAT16_ISAS = {"avx2_vnni_2", "avx512_core_bf16", "avx512_core_fp16", "avx512_core_amx",
                 "avx512_core_amx_fp16"}  # fmt: skip

_log = logging.getLogger(__name__)


@functools.cache
def _library() -> ctypes.CDLL | None:
  """The extension, loaded and its targets registered with JAX once; None when unavailable."""
  if os.environ.get(SWITCH_ENV, "").lower() in ("off", "0", "false", "no"):
    _log.warning("oneDNN convolutions switched off (%s=off): using XLA's and JAX's", SWITCH_ENV)
    return None
  if not LIBRARY.exists():
    _log.warning(
      "oneDNN convolutions not built (%s missing; `make setup` builds it): using XLA's and JAX's",
      LIBRARY.relative_to(LIBRARY.parents[2]),
    )
    return None
  # OpenMP's idle threads spin after each parallel region by default, taking the cores from
  # XLA's own threads (the elementwise work between convolutions); passive waiting gives them
  # back. libgomp reads this once, when it is loaded with the extension.
  os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
  try:
    library = ctypes.CDLL(str(LIBRARY))
  except OSError as error:
    _log.warning("oneDNN convolutions unavailable (%s): using XLA's and JAX's", error)
    return None
  for target in TARGETS.values():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, target)), platform="cpu")
  library.convzoo_onednn_implementation.argtypes = [
    ctypes.c_int64, ctypes.POINTER(ctypes.c_int64), ctypes.c_int64, ctypes.c_char_p,
    ctypes.c_int64,
  ]  # fmt: skip
  library.convzoo_onednn_isa.restype = ctypes.c_int64
  return library


def available() -> bool:
  return _library() is not None


def isa() -> str:
  """The instruction set oneDNN runs on here ("avx2", "avx512_core_bf16", …), "" without it."""
  library = _library()
  if library is None:
    return ""
  value = library.convzoo_onednn_isa()
  return ISA_NAMES.get(value, hex(value))


def threads_per_device() -> int:
  """Each CPU device's share of the cores: the OpenMP team every call of a device runs."""
  cores = len(os.sched_getaffinity(0))
  return max(1, cores // len(jax.local_devices(backend="cpu")))


def _geometry(shape: ConvShape) -> list[int]:
  n, height, width, channels = shape.input
  kh, kw, _, features = shape.kernel
  _, out_h, out_w, _ = shape.output
  (top, bottom), (left, right) = shape.pads
  return [n, height, width, channels, kh, kw, features, out_h, out_w, shape.stride,
          top, bottom, left, right, shape.groups, int(shape.dtype == "bfloat16")]  # fmt: skip


@functools.cache
def implementation(direction: str, shape: ConvShape) -> str:
  """The kernel oneDNN picks for `direction` of `shape` ("brg:avx512_core", "jit:avx2",
  "gemm:jit", "ref:any", …); "" when oneDNN has none or the extension is absent."""
  library = _library()
  if library is None or shape.dtype not in ("float32", "bfloat16"):
    return ""
  geometry = (ctypes.c_int64 * 16)(*_geometry(shape))
  out = ctypes.create_string_buffer(128)
  direction_index = list(TARGETS).index(direction)
  if library.convzoo_onednn_implementation(
    direction_index, geometry, threads_per_device(), out, len(out)
  ):
    return ""
  return out.value.decode()


def usable(direction: str, shape: ConvShape) -> bool:
  """Whether oneDNN is worth measuring for `direction` of `shape`: built, and with an
  optimised kernel for it. Its reference kernels ("ref:") are plain loops, slower than any
  other candidate by orders of magnitude (bfloat16 without bfloat16 instructions, for one),
  so they are never candidates."""
  if not available():
    return False
  name = implementation(direction, shape)
  return bool(name) and not name.startswith("ref")


def _call(direction: str, first: jax.Array, second: jax.Array, shape: ConvShape) -> jax.Array:
  result = {"forward": shape.output, "input_grad": shape.input, "weight_grad": shape.kernel}
  (top, bottom), (left, right) = shape.pads
  return jax.ffi.ffi_call(
    TARGETS[direction], jax.ShapeDtypeStruct(result[direction], first.dtype)
  )(
    first, second,
    stride=np.int64(shape.stride), pad_top=np.int64(top), pad_bottom=np.int64(bottom),
    pad_left=np.int64(left), pad_right=np.int64(right), groups=np.int64(shape.groups),
    threads=np.int64(threads_per_device()),
  )  # fmt: skip


def forward(x: jax.Array, w: jax.Array, shape: ConvShape) -> jax.Array:
  return _call("forward", x, w, shape)


def input_grad(g_out: jax.Array, w: jax.Array, shape: ConvShape) -> jax.Array:
  return _call("input_grad", g_out, w, shape)


def weight_grad(x: jax.Array, g_out: jax.Array, shape: ConvShape) -> jax.Array:
  return _call("weight_grad", x, g_out, shape)
