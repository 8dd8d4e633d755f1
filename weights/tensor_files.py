"""Files of named tensors read as numpy arrays, without torch and without running anything in them.

Two formats, told apart by their first bytes, never by the file's suffix:

- PyTorch's zip (`torch.save` since 1.6): `<archive>/data.pkl` pickles the state_dict, whose
  tensors point at raw storages `<archive>/data/<key>`. Unpickling can call any importable
  function, so data.pkl is read by an unpickler that knows only the few globals a state_dict
  needs, each resolved to this module's own code; any other global is refused when the pickle
  names it, before anything could call it, and nothing the pickle names is ever imported.
- safetensors: 8 bytes (the header's length, little-endian), a JSON header of names, dtypes,
  shapes and byte ranges, then the raw little-endian data.

Half and bfloat16 tensors come back as float32 (numpy has no bfloat16), every other dtype as
stored. Whatever is wrong with a file raises `WeightFileError`, one line naming the file.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import pathlib
import pickle
import re
import struct
import sys
import zipfile
import zlib
from typing import Any

import numpy as np

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry; an empty zip's end record
# A legacy torch.save (before 1.6, or with _use_new_zipfile_serialization=False) is a bare pickle
# stream that starts with this magic number, pickled with protocol 2.
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[:-1]
_CHUNK = 1 << 24  # storages are read in 16 MiB pieces, so a large one is never held twice
_MAX_INFLATION = 100  # how far a compressed zip entry may expand (torch.save never compresses)
_MAX_HEADER = 100_000_000  # the safetensors reference implementation's limit on its header
_STORAGE_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")  # torch.save names its storages 0, 1, 2, ...

# Element types: numpy's code for the stored bytes, "bf16" for bfloat16 (stored as uint16).
_TORCH_STORAGES = {
  "FloatStorage": "f4",
  "DoubleStorage": "f8",
  "HalfStorage": "f2",
  "BFloat16Storage": "bf16",
  "LongStorage": "i8",
  "IntStorage": "i4",
  "ShortStorage": "i2",
  "CharStorage": "i1",
  "ByteStorage": "u1",
  "BoolStorage": "b1",
}
_SAFETENSORS_DTYPES = {
  "F64": "f8",
  "F32": "f4",
  "F16": "f2",
  "BF16": "bf16",
  "I64": "i8",
  "I32": "i4",
  "I16": "i2",
  "I8": "i1",
  "U64": "u8",
  "U32": "u4",
  "U16": "u2",
  "U8": "u1",
  "BOOL": "b1",
}


class WeightFileError(ValueError):
  """A weight file that cannot be read; the message is one line naming the file and why."""

  def __init__(self, path: str | os.PathLike, reason: str) -> None:
    self.path, self.reason = os.fspath(path), reason
    message = f"{self.path}: {reason}"
    # One line whatever the file is called or its data holds: control characters are escaped.
    super().__init__("".join(c if c.isprintable() else ascii(c)[1:-1] for c in message))

  def __reduce__(self) -> tuple[Any, ...]:
    return type(self), (self.path, self.reason)


class _Invalid(Exception):
  """Why a file cannot be read, raised where that is found; read_tensors adds the file's path."""


# Errors of corrupt or truncated input, from the libraries that parse it (json's and unicode's
# are ValueErrors); read_tensors turns each into a one-line WeightFileError.
_PARSE_ERRORS = (
  OSError,
  EOFError,
  ValueError,
  TypeError,
  KeyError,
  IndexError,
  AttributeError,
  OverflowError,
  MemoryError,
  RuntimeError,  # zipfile's for an encrypted entry; RecursionError, NotImplementedError
  pickle.UnpicklingError,
  zipfile.BadZipFile,
  zipfile.LargeZipFile,
  zlib.error,
  struct.error,
)


def read_tensors(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """{name: array} from a PyTorch zip (.pth, .pt) or safetensors file, told apart by its bytes."""
  try:
    with open(path, "rb") as file:
      size = os.fstat(file.fileno()).st_size
      head = file.read(16)
  except OSError as error:
    raise WeightFileError(path, f"cannot be opened: {error.strerror or error}") from None
  if head.startswith(_ZIP_MAGICS):
    kind, read = "a PyTorch zip file", _read_torch_zip
  elif len(head) > 8 and head[8:9] == b"{":  # a header length, then the JSON header's "{"
    kind, read = "a safetensors file", _read_safetensors
  else:
    raise WeightFileError(path, _unknown_format(head, size))
  try:
    arrays = read(path, size)
  except _Invalid as error:
    raise WeightFileError(path, str(error)) from None
  except _PARSE_ERRORS as error:
    reason = f"cannot be read as {kind} (truncated or corrupt?): {type(error).__name__}: {error}"
    raise WeightFileError(path, reason) from error
  if not arrays:
    raise WeightFileError(path, f"is {kind} that holds no tensors")
  return arrays


def _unknown_format(head: bytes, size: int) -> str:
  if size == 0:
    return "is empty"
  convert = (
    "which cannot be read without running it; convert it in PyTorch: "
    "torch.save(torch.load(old, weights_only=True), new) writes the zip format (or save the "
    "state_dict as safetensors)"
  )
  if head.startswith(_LEGACY_MAGIC):
    return (
      "is in PyTorch's legacy format (torch.save before 1.6, or with "
      f"_use_new_zipfile_serialization=False), a bare pickle, {convert}"
    )
  if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocols 2 to 5
    return f"is a bare pickle (like PyTorch's legacy format, torch.save before 1.6), {convert}"
  return "is neither a PyTorch zip file (torch.save since 1.6) nor a safetensors file"


def _decode(raw: np.ndarray, code: str, byteorder: str) -> np.ndarray:
  """The elements in the bytes `raw` (a fresh uint8 array) as a native array; half → float32."""
  if code == "b1":
    return raw != 0  # torch and safetensors store a bool as one byte, 0 or 1
  values = raw.view("u2" if code == "bf16" else code)
  if values.itemsize > 1 and byteorder != sys.byteorder:
    values.byteswap(inplace=True)
  if code == "f2":
    return values.astype(np.float32)
  if code == "bf16":
    # A bfloat16 is the upper half of a float32, so widening it by a shift is exact (NaNs too).
    widened = values.astype(np.uint32)
    widened <<= 16
    return widened.view(np.float32)
  return values


def _is_int(value: Any) -> bool:
  return type(value) is int  # not bool, and nothing with a __index__ of its own


def _sizes(value: Any, what: str) -> tuple[int, ...]:
  if not isinstance(value, tuple | list) or not all(_is_int(v) and v >= 0 for v in value):
    raise _Invalid(
      f"its data.pkl gives a tensor {what} that is not a tuple of sizes: {_short(value)}"
    )
  return tuple(value)


def _short(value: Any) -> str:
  text = ascii(value)
  return text if len(text) <= 80 else text[:77] + "..."


# ---- PyTorch's zip format -----------------------------------------------------------------------


class _Sealed:
  """What data.pkl is given: objects that pickle's BUILD cannot alter (no __dict__, no state)."""

  __slots__ = ()

  def __setstate__(self, state: Any) -> None:
    raise _Invalid(f"its data.pkl tries to set the state of {self!r}, which no state_dict does")


class _Global(_Sealed):
  """An allowed global: a name from data.pkl bound to this module's own function."""

  __slots__ = ("_name", "_function")

  def __init__(self, name: str, function: Any) -> None:
    self._name, self._function = name, function

  def __call__(self, *args: Any) -> Any:
    return self._function(*args)

  def __repr__(self) -> str:
    return self._name


class _StorageType(_Sealed):
  """A typed storage class of torch's (torch.FloatStorage, ...), as named in storage ids."""

  __slots__ = ("name", "code")

  def __init__(self, name: str, code: str) -> None:
    self.name, self.code = name, code

  def __repr__(self) -> str:
    return f"torch.{self.name}"


class _Storage(_Sealed):
  """A storage's elements, read once from `<archive>/data/<key>` however many tensors share it."""

  __slots__ = ("kind", "key", "count", "array")

  def __init__(self, kind: _StorageType, key: str, count: int, array: np.ndarray) -> None:
    self.kind, self.key, self.count, self.array = kind, key, count, array

  def __repr__(self) -> str:
    return f"storage {self.key} ({self.kind!r}, {self.count:,} elements)"


class _Tensor(_Sealed):
  """A rebuilt tensor; unwrapped to its array once data.pkl is fully loaded."""

  __slots__ = ("array",)

  def __init__(self, array: np.ndarray) -> None:
    self.array = array

  def __repr__(self) -> str:
    return f"a tensor of shape {self.array.shape}"


def _rebuild_parameter(data: Any, requires_grad: Any, hooks: Any, state: Any = None) -> _Tensor:
  """torch._utils._rebuild_parameter(_with_state): a Parameter is its tensor."""
  if not isinstance(data, _Tensor):
    raise _Invalid(f"its data.pkl makes a parameter of {_short(data)}, not of a tensor")
  return data


def _torch_size(values: Any) -> tuple[int, ...]:
  """torch.Size: a tuple of sizes."""
  return _sizes(values, "size")


def _c_contiguous(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
  expected = 1
  for size, stride in reversed(list(zip(shape, strides, strict=True))):
    if size != 1 and stride != expected:
      return False
    expected *= size
  return True


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, file_size: int) -> np.ndarray:
  """A zip entry's bytes, in a fresh writable uint8 array, after checking it cannot balloon."""
  if info.compress_type == zipfile.ZIP_STORED:
    if info.compress_size != info.file_size or info.header_offset + info.file_size > file_size:
      raise _Invalid(f"its entry {info.filename} claims more bytes than the file has (truncated?)")
  elif info.file_size > max(_MAX_INFLATION * info.compress_size, 1 << 20):
    raise _Invalid(
      f"its entry {info.filename} would inflate {info.compress_size:,} bytes to {info.file_size:,}"
    )
  buffer = np.empty(info.file_size, np.uint8)
  view, filled = memoryview(buffer), 0
  with archive.open(info) as entry:  # checks the entry's CRC once it is read to its end
    while filled < info.file_size:
      chunk = entry.read(min(_CHUNK, info.file_size - filled))
      if not chunk:
        raise _Invalid(f"its entry {info.filename} ends early (truncated?)")
      view[filled : filled + len(chunk)] = chunk
      filled += len(chunk)
  return buffer


# pickle's Python unpickler, not its C one: the C one trusts the lengths and indices in the
# stream, so a few corrupt bytes (a memo index of 2**31, say) make it allocate and clear
# gigabytes before it fails, enough to have the process killed. The Python one keeps its memo in
# a dict and reads no more than the stream holds; data.pkl is small (its tensors' data lies in
# the zip), so its speed does not matter.
class _StateDictUnpickler(pickle._Unpickler):
  """data.pkl's unpickler: the globals of a state_dict only, each this module's own code, and
  storages read from the zip."""

  # BYTEARRAY8 sizes its bytearray from the stream before reading it; out-of-band buffers are
  # never in a file. None of the three is in a state_dict's pickle (torch.save uses protocol 2).
  dispatch = {
    **pickle._Unpickler.dispatch,
    **{
      getattr(pickle, name)[0]: lambda self, name=name: self._refuse_opcode(name)
      for name in ("BYTEARRAY8", "NEXT_BUFFER", "READONLY_BUFFER")
    },
  }

  def __init__(
    self, data: bytes, archive: zipfile.ZipFile, prefix: str, byteorder: str, file_size: int
  ) -> None:
    super().__init__(io.BytesIO(data))
    self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
    self._file_size = file_size
    self._storages: dict[str, _Storage] = {}
    # Copies of non-contiguous tensors may add this much to the storages; far more than any
    # state_dict needs, and a bound on files whose zero strides would expand a storage hugely.
    self._copy_budget = 2 * file_size + (64 << 20)
    # The real OrderedDict: a built-in type, so BUILD and setattr cannot change its behaviour
    # (state_dict pickles BUILD their `_metadata` attribute onto an instance; that is harmless).
    self._globals: dict[tuple[str, str], Any] = {
      ("collections", "OrderedDict"): collections.OrderedDict
    }
    for name, function in (
      ("torch._utils._rebuild_tensor_v2", self._rebuild_tensor),
      ("torch._utils._rebuild_parameter", _rebuild_parameter),
      ("torch._utils._rebuild_parameter_with_state", _rebuild_parameter),
      ("torch.Size", _torch_size),
    ):
      self._globals[tuple(name.rsplit(".", 1))] = _Global(name, function)
    for name, code in _TORCH_STORAGES.items():
      self._globals["torch", name] = _StorageType(name, code)

  def _refuse_opcode(self, name: str) -> None:
    raise _Invalid(f"its data.pkl uses the pickle opcode {name}, which no state_dict needs")

  def find_class(self, module: str, name: str) -> Any:
    """The allowed global `module.name`, or a refusal naming it: nothing is ever imported."""
    found = self._globals.get((module, name))
    if found is not None:
      return found
    named = _global_name(module, name)
    if module == "torch._utils" or (
      module == "torch" and (name.endswith("Storage") or name.islower())
    ):
      # torch's own, for tensors this reader does not rebuild: sparse, quantized, uint16/32/64
      # and float8 (_rebuild_tensor_v3 with a dtype), or typed storages of other types.
      raise _Invalid(
        f"its data.pkl names {named}, for a kind of tensor not read here (only dense float, "
        "half, bfloat16, signed integer, uint8 and bool tensors are): refused, nothing was run"
      )
    raise _Invalid(
      f"its data.pkl names the global {named}, which a state_dict of tensors never needs: "
      "refused, nothing was run (only a state_dict, or a checkpoint dict holding one, can be "
      "read; save model.state_dict(), not the model)"
    )

  def persistent_load(self, pid: Any) -> _Storage:
    """The storage of a ('storage', type, key, location, numel) id, read from the zip once."""
    if not (type(pid) is tuple and len(pid) == 5 and pid[0] == "storage"):
      raise _Invalid(f"its data.pkl refers to {_short(pid)}, which is not a storage")
    _, kind, key, _, count = pid
    if not isinstance(kind, _StorageType) or not _is_int(count) or count < 0:
      raise _Invalid(f"its data.pkl refers to a storage as {_short(pid)}")
    if not isinstance(key, str) or not _STORAGE_KEY.fullmatch(key):
      raise _Invalid(f"its data.pkl names a storage {_short(key)}, not a storage key")
    storage = self._storages.get(key)
    if storage is None:
      storage = self._storages[key] = self._read_storage(kind, key, count)
    elif storage.kind is not kind or storage.count != count:
      raise _Invalid(f"its data.pkl gives storage {key} as both {storage!r} and {kind!r}")
    return storage

  def _read_storage(self, kind: _StorageType, key: str, count: int) -> _Storage:
    name = f"{self._prefix}/data/{key}"
    nbytes = count * (2 if kind.code == "bf16" else np.dtype(kind.code).itemsize)
    try:
      info = self._archive.getinfo(name)
    except KeyError:
      raise _Invalid(f"its storage {name} is missing (truncated or incomplete?)") from None
    if info.file_size != nbytes:
      raise _Invalid(
        f"its storage {name} holds {info.file_size:,} bytes, but data.pkl gives it {count:,} "
        f"elements of torch.{kind.name} ({nbytes:,} bytes)"
      )
    raw = _read_entry(self._archive, info, self._file_size)
    return _Storage(kind, key, count, _decode(raw, kind.code, self._byteorder))

  def _rebuild_tensor(
    self,
    storage: Any,
    offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    hooks: Any = None,
    metadata: Any = None,
  ) -> _Tensor:
    """torch._utils._rebuild_tensor_v2: a strided view of a storage, as a C-contiguous array."""
    if not isinstance(storage, _Storage):
      raise _Invalid(f"its data.pkl rebuilds a tensor from {_short(storage)}, not from a storage")
    shape, strides = _sizes(size, "shape"), _sizes(stride, "stride")
    if not _is_int(offset) or offset < 0 or len(shape) != len(strides):
      raise _Invalid(
        f"its data.pkl gives a tensor the shape {shape}, strides {strides} and offset "
        f"{_short(offset)}, which do not fit together"
      )
    array, count = storage.array, math.prod(shape)
    if count == 0:
      return _Tensor(np.zeros(shape, array.dtype))
    end = offset + sum((n - 1) * s for n, s in zip(shape, strides, strict=True)) + 1
    if end > array.size:
      raise _Invalid(
        f"its data.pkl gives a tensor of shape {shape} (strides {strides}, offset {offset}) "
        f"that reaches element {end:,} of {storage!r}"
      )
    if _c_contiguous(shape, strides):  # the usual case: a view, no copy
      return _Tensor(array[offset : offset + count].reshape(shape))
    self._copy_budget -= count * array.itemsize
    if self._copy_budget < 0:
      raise _Invalid(
        f"its data.pkl gives a tensor of shape {shape} (strides {strides}) that expands "
        f"{storage!r} beyond what any state_dict needs"
      )
    byte_strides = [s * array.itemsize for s in strides]
    view = np.lib.stride_tricks.as_strided(array[offset:], shape, byte_strides, writeable=False)
    return _Tensor(np.ascontiguousarray(view))


def _global_name(module: str, name: str) -> str:
  text = f"{module}.{name}"
  return text if re.fullmatch(r"[\w.]+", text, re.ASCII) else _short((module, name))


def _read_torch_zip(path: str | os.PathLike, file_size: int) -> dict[str, np.ndarray]:
  with zipfile.ZipFile(path) as archive:
    names = set(archive.namelist())
    pickles = sorted(n for n in names if n.endswith("/data.pkl") and n.count("/") == 1)
    if len(pickles) != 1:
      found = "no <archive>/data.pkl" if not pickles else f"{len(pickles)} data.pkl files"
      raise _Invalid(f"is a zip file with {found}, so not one torch.save wrote")
    prefix = pickles[0].removesuffix("/data.pkl")
    byteorder = "little"  # torch.save before 1.10 wrote no byteorder record, and little-endian
    if f"{prefix}/byteorder" in names:
      info = archive.getinfo(f"{prefix}/byteorder")
      if info.file_size > 16:
        raise _Invalid(f"its {info.filename} record is {info.file_size:,} bytes long")
      byteorder = _read_entry(archive, info, file_size).tobytes().decode("ascii", "replace")
      if byteorder not in ("little", "big"):
        raise _Invalid(f"its byteorder record says {byteorder!r}, not 'little' or 'big'")
    data = _read_entry(archive, archive.getinfo(pickles[0]), file_size).tobytes()
    top = _StateDictUnpickler(data, archive, prefix, byteorder, file_size).load()
  state = top
  if isinstance(top, dict):
    for key in ("state_dict", "model"):  # a training checkpoint holding the state_dict
      if isinstance(top.get(key), dict):
        state = top[key]
        break
  if not isinstance(state, dict):
    what = repr(state) if isinstance(state, _Sealed) else f"a {type(state).__name__}"
    raise _Invalid(f"its data.pkl holds {what}, not a state_dict (a dict of named tensors)")
  # A state_dict's other entries (extra state, counters that are not tensors) are skipped.
  return {k: v.array for k, v in state.items() if isinstance(k, str) and isinstance(v, _Tensor)}


# ---- safetensors --------------------------------------------------------------------------------

# Parsed here rather than with the `safetensors` package, which the tests use to write reference
# files: the format is a length, JSON and raw bytes, so this is short and plain Python; the
# package's numpy side cannot return bfloat16, which published weights often are; every byte
# range is checked against the file's size before any is read, and each tensor is read into a
# fresh writable array, not left on a memory map that a file changed later would turn into a
# crash (SIGBUS).


def _read_safetensors(path: str | os.PathLike, file_size: int) -> dict[str, np.ndarray]:
  with open(path, "rb") as file:
    (length,) = struct.unpack("<Q", file.read(8))
    if length > _MAX_HEADER:
      raise _Invalid(f"its safetensors header claims {length:,} bytes, over the format's limit")
    if length > file_size - 8:
      raise _Invalid(
        f"its safetensors header claims {length:,} bytes, but only {file_size - 8:,} follow "
        "(truncated?)"
      )
    header = json.loads(file.read(length).decode("utf-8"))
    if not isinstance(header, dict):
      raise _Invalid("its safetensors header is not a JSON object")
    start = 8 + length
    entries = [
      (name, *_safetensors_entry(name, entry, file_size - start))
      for name, entry in header.items()
      if name != "__metadata__"
    ]
    arrays = {}
    for name, code, shape, begin, end in entries:
      file.seek(start + begin)
      arrays[name] = _decode(_read_exactly(file, end - begin), code, "little").reshape(shape)
  return arrays


def _safetensors_entry(
  name: str, entry: Any, available: int
) -> tuple[str, tuple[int, ...], int, int]:
  """(dtype code, shape, begin, end) of a header entry, checked against the data's length."""
  if not isinstance(entry, dict):
    raise _Invalid(f"its safetensors header gives tensor {name!r} as {_short(entry)}")
  dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
  code = _SAFETENSORS_DTYPES.get(dtype) if isinstance(dtype, str) else None
  if code is None:
    raise _Invalid(f"its tensor {name!r} has dtype {_short(dtype)}, which is not supported")
  if not isinstance(shape, list) or not all(_is_int(n) and n >= 0 for n in shape):
    raise _Invalid(f"its tensor {name!r} has shape {_short(shape)}")
  if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))):
    raise _Invalid(f"its tensor {name!r} has data_offsets {_short(offsets)}")
  begin, end = offsets
  if not 0 <= begin <= end:
    raise _Invalid(f"its tensor {name!r} has data_offsets {offsets}")
  if end > available:
    raise _Invalid(
      f"its tensor {name!r} lies at bytes {begin:,}-{end:,} of the data, but the file holds "
      f"{available:,} (truncated?)"
    )
  itemsize = 2 if code == "bf16" else np.dtype(code).itemsize
  if end - begin != math.prod(shape) * itemsize:
    raise _Invalid(
      f"its tensor {name!r} has shape {shape} of {dtype} but {end - begin:,} bytes of data"
    )
  return code, tuple(shape), begin, end


def _read_exactly(file: io.BufferedReader, count: int) -> np.ndarray:
  buffer = np.empty(count, np.uint8)
  view, filled = memoryview(buffer), 0
  while filled < count:
    read = file.readinto(view[filled:])
    if not read:
      raise _Invalid("its data ends early (truncated?)")
    filled += read
  return buffer
