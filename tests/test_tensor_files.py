"""Reading weight files (weights/tensor_files.py) without torch: PyTorch zip files written here by a
small stand-in for torch.save, safetensors files written by the reference package, and files that
are corrupt, truncated, legacy or malicious."""

from __future__ import annotations

import collections
import io
import json
import pathlib
import pickle
import pickletools
import struct
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest
import safetensors.numpy

from weights.tensor_files import WeightFileError, read_tensors

# ---- a stand-in for torch.save: the same zip layout and pickle opcodes, with no torch ----------
#
# The pickle names torch's globals (torch._utils._rebuild_tensor_v2, torch.FloatStorage, ...) with
# GLOBAL opcodes written by a pickler of our own, so no module called torch ever exists.

STORAGE_KINDS = {
  np.dtype(np.float32): "FloatStorage",
  np.dtype(np.float64): "DoubleStorage",
  np.dtype(np.float16): "HalfStorage",
  np.dtype(np.int64): "LongStorage",
  np.dtype(np.int32): "IntStorage",
  np.dtype(np.int16): "ShortStorage",
  np.dtype(np.int8): "CharStorage",
  np.dtype(np.uint8): "ByteStorage",
  np.dtype(np.bool_): "BoolStorage",
}


class Ref:
  """A global as the pickle names it (`module.name`), whatever it is; nothing is imported."""

  def __init__(self, module: str, name: str) -> None:
    self.module, self.name = module, name

  def __call__(self, *args):  # pickle's save_reduce wants a callable; never called
    raise AssertionError("a stand-in global is never called")


class Call:
  """`module.name(*args)`, run by whoever unpickles it."""

  def __init__(self, module: str, name: str, *args) -> None:
    self.function, self.args = Ref(module, name), args

  def __reduce__(self):
    return self.function, self.args


class Storage:
  """A typed storage: a 1-D array and the torch class that names its type (bfloat16 as uint16)."""

  def __init__(self, data: np.ndarray, kind: str | None = None) -> None:
    self.data, self.kind = np.ascontiguousarray(data).reshape(-1), kind or STORAGE_KINDS[data.dtype]


class Tensor:
  """A strided view of a storage, pickled as torch pickles a tensor."""

  def __init__(self, storage: Storage, offset: int, shape, strides) -> None:
    self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

  def __reduce__(self):
    args = (self.storage, self.offset, self.shape, self.strides, False, collections.OrderedDict())
    return Ref("torch._utils", "_rebuild_tensor_v2"), args


def tensor(array: np.ndarray, kind: str | None = None) -> Tensor:
  """A contiguous tensor on a storage of its own."""
  array = np.array(array, order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
  strides = tuple(s // array.itemsize for s in array.strides)
  return Tensor(Storage(array, kind), 0, array.shape, strides)


class TorchPickler(pickle._Pickler):
  """Pickles as torch.save does: protocol 2, storages as persistent ids, stand-in globals."""

  dispatch = pickle._Pickler.dispatch.copy()

  def __init__(self, file) -> None:
    super().__init__(file, protocol=2)
    self.storages: dict[str, Storage] = {}
    self.keys: dict[int, str] = {}

  def persistent_id(self, obj):
    if not isinstance(obj, Storage):
      return None
    key = self.keys.setdefault(id(obj), str(len(self.keys)))
    self.storages[key] = obj
    return ("storage", Ref("torch", obj.kind), key, "cpu", obj.data.size)

  def save_ref(self, obj: Ref) -> None:
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    self.memoize(obj)

  dispatch[Ref] = save_ref


def torch_pickle(obj) -> tuple[bytes, dict[str, Storage]]:
  buffer = io.BytesIO()
  pickler = TorchPickler(buffer)
  pickler.dump(obj)
  return buffer.getvalue(), pickler.storages


def write_pth(path: pathlib.Path, obj, *, byteorder="little", drop=(), cut=None, data=None):
  """Writes `obj` as torch.save would; `drop` leaves storages out, `cut` shortens one {key: bytes};
  `data` replaces data.pkl."""
  pkl, storages = torch_pickle(obj)
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pkl if data is None else data)
    archive.writestr("archive/byteorder", byteorder)
    for key, storage in storages.items():
      if key in drop:
        continue
      raw = storage.data.astype(storage.data.dtype.newbyteorder(byteorder[0])).tobytes()
      archive.writestr(f"archive/data/{key}", raw[: (cut or {}).get(key)])
    archive.writestr("archive/version", "3\n")
  return path


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
  """The bfloat16s of float32s whose lower 16 bits are zero, as uint16."""
  bits = np.asarray(values, np.float32).view(np.uint32)
  assert not (bits & 0xFFFF).any()
  return (bits >> 16).astype(np.uint16)


def refusal(path: pathlib.Path) -> str:
  with pytest.raises(WeightFileError) as caught:
    read_tensors(path)
  message = str(caught.value)
  assert "\n" not in message and message.startswith(f"{path}: "), message
  return message


# ---- PyTorch zip files ---------------------------------------------------------------------------

BF16 = np.array([1.0, -2.5, 0.0, -0.0, np.inf, -np.inf, 3.0e38, 1.0e-40, 2.0**-133], np.float32)
BF16 = (BF16.view(np.uint32) & 0xFFFF0000).view(np.float32)  # exactly representable in bfloat16


@pytest.mark.smoke
def test_state_dict_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  weight = rng.normal(size=(2, 3)).astype(np.float32)
  shared = Storage(np.arange(10, dtype=np.float32))
  state = collections.OrderedDict(
    {
      "f32": tensor(rng.normal(size=(4, 3, 2, 2)).astype(np.float32)),
      "f64": tensor(rng.normal(size=5)),
      "f16": tensor(np.array([0.5, -1.25, 65504.0], np.float16)),
      "bf16": Tensor(Storage(bfloat16_bits(BF16), "BFloat16Storage"), 0, BF16.shape, (1,)),
      "i64": tensor(np.array([-(2**62), 3], np.int64)),
      "i32": tensor(np.array([-(2**31), 7], np.int32)),
      "i16": tensor(np.array([-300, 300], np.int16)),
      "i8": tensor(np.array([-128, 127], np.int8)),
      "u8": tensor(np.array([0, 255], np.uint8)),
      "bool": tensor(np.array([True, False, True])),
      "num_batches_tracked": Tensor(Storage(np.array([1875], np.int64)), 0, (), ()),
      "transposed": Tensor(Storage(weight), 0, (3, 2), (1, 3)),
      "shared_a": Tensor(shared, 2, (3,), (1,)),
      "shared_b": Tensor(shared, 4, (2, 3), (3, 1)),
      "shared_c": Tensor(shared, 1, (2, 2), (1, 4)),  # non-contiguous, on the same storage
      "expanded": Tensor(Storage(np.array([1, 2], np.int32)), 0, (3, 2), (0, 1)),
      "empty": Tensor(Storage(np.zeros(0, np.float32)), 0, (0, 3), (3, 1)),
      "size_object": Tensor(Storage(weight), 0, Call("torch", "Size", (2, 3)), (3, 1)),
      "parameter": Call("torch._utils", "_rebuild_parameter", tensor(weight), True, {}),
    }
  )
  arrays = read_tensors(write_pth(tmp_path / "model.pth", state))
  expected = {
    "f32": state["f32"].storage.data.reshape(4, 3, 2, 2),
    "f64": state["f64"].storage.data,
    "f16": np.array([0.5, -1.25, 65504.0], np.float32),
    "bf16": BF16,
    "i64": np.array([-(2**62), 3], np.int64),
    "i32": np.array([-(2**31), 7], np.int32),
    "i16": np.array([-300, 300], np.int16),
    "i8": np.array([-128, 127], np.int8),
    "u8": np.array([0, 255], np.uint8),
    "bool": np.array([True, False, True]),
    "num_batches_tracked": np.array(1875, np.int64),
    "transposed": weight.T,
    "shared_a": np.arange(2, 5, dtype=np.float32),
    "shared_b": np.arange(4, 10, dtype=np.float32).reshape(2, 3),
    "shared_c": np.array([[1, 5], [2, 6]], np.float32),
    "expanded": np.array([[1, 2]] * 3, np.int32),
    "empty": np.zeros((0, 3), np.float32),
    "size_object": weight,
    "parameter": weight,
  }
  assert list(arrays) == list(expected)
  for name, array in expected.items():
    got = arrays[name]
    assert got.dtype == array.dtype and got.shape == array.shape, name
    np.testing.assert_array_equal(got, array, err_msg=name, strict=True)
    assert got.flags.c_contiguous and got.flags.writeable, name
  assert np.shares_memory(arrays["shared_a"], arrays["shared_b"])  # one storage, read once
  assert "torch" not in sys.modules


def test_bfloat16_is_exact(tmp_path):
  bits = np.arange(0, 1 << 16, 7, dtype=np.uint16)  # every sign, exponent and many mantissas
  state = {"x": Tensor(Storage(bits, "BFloat16Storage"), 0, bits.shape, (1,))}
  got = read_tensors(write_pth(tmp_path / "bf16.pth", state))["x"]
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got.view(np.uint32), bits.astype(np.uint32) << 16)  # NaNs too


def test_big_endian_file(tmp_path):
  state = {
    "w": tensor(np.array([1.5, -2.0], np.float32)),
    "n": tensor(np.array([2**40 + 1], np.int64)),
    "h": tensor(np.array([0.25], np.float16)),
    "b": Tensor(Storage(bfloat16_bits(BF16), "BFloat16Storage"), 0, BF16.shape, (1,)),
  }
  arrays = read_tensors(write_pth(tmp_path / "big.pth", state, byteorder="big"))
  np.testing.assert_array_equal(arrays["w"], [1.5, -2.0])
  assert arrays["n"][0] == 2**40 + 1 and arrays["h"][0] == 0.25 and arrays["h"].dtype == np.float32
  np.testing.assert_array_equal(arrays["b"], BF16)


def test_metadata_is_built_onto_the_ordered_dict(tmp_path):
  # torch's state_dict() carries `_metadata` as an attribute, which pickle restores with BUILD.
  state = collections.OrderedDict(w=tensor(np.ones(2, np.float32)))
  state._metadata = collections.OrderedDict({"": {"version": 1}, "fc": {"version": 2}})
  pkl, _ = torch_pickle(state)
  assert "BUILD" in {op.name for op, _, _ in pickletools.genops(pkl)}
  arrays = read_tensors(write_pth(tmp_path / "meta.pth", state))
  assert list(arrays) == ["w"]


@pytest.mark.parametrize("key", ["state_dict", "model"])
def test_checkpoint_holding_a_state_dict(tmp_path, key):
  state = {"fc.weight": tensor(np.eye(2, dtype=np.float32)), "fc.step": 3, "fc.extra": None}
  checkpoint = {key: state, "epoch": 3, "best_acc1": tensor(np.array(76.1, np.float32))}
  arrays = read_tensors(write_pth(tmp_path / "checkpoint.pth.tar", checkpoint))
  assert list(arrays) == ["fc.weight"]
  np.testing.assert_array_equal(arrays["fc.weight"], np.eye(2))


def test_format_comes_from_the_bytes_not_the_suffix(tmp_path):
  zipped = write_pth(tmp_path / "looks.safetensors", {"a": tensor(np.ones(3, np.float32))})
  safetensors.numpy.save_file({"b": np.zeros(2, np.float32)}, tmp_path / "looks.pth")
  assert list(read_tensors(zipped)) == ["a"]
  assert list(read_tensors(str(tmp_path / "looks.pth"))) == ["b"]


def test_peak_memory_stays_under_three_times_the_file(tmp_path):
  big = np.arange(4 << 20, dtype=np.float32)  # 16 MiB, read as a view
  square = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024)  # 4 MiB, copied transposed
  state = {"big": tensor(big), "t": Tensor(Storage(square), 0, (1024, 1024), (1, 1024))}
  path = write_pth(tmp_path / "big.pth", state)
  tracemalloc.start()
  try:
    arrays = read_tensors(path)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < 3 * path.stat().st_size, (peak, path.stat().st_size)
  np.testing.assert_array_equal(arrays["t"], square.T)


# ---- what a weight file must never do: run code --------------------------------------------------

PAYLOADS = {
  "os.system": lambda pwned: Call("os", "system", f"touch {pwned}"),
  "posix.system": lambda pwned: Call("posix", "system", f"touch {pwned}"),
  "builtins.exec": lambda pwned: Call("builtins", "exec", f"open({str(pwned)!r}, 'w')"),
  "builtins.eval": lambda pwned: Call("builtins", "eval", f"open({str(pwned)!r}, 'w')"),
  "builtins.open": lambda pwned: Call("builtins", "open", str(pwned), "w"),
  "builtins.getattr": lambda pwned: Call("builtins", "getattr", Ref("os", "system"), "__call__"),
  "subprocess.call": lambda pwned: Call("subprocess", "call", ["touch", str(pwned)]),
}


@pytest.mark.smoke
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_a_file_that_would_run_code_is_refused(tmp_path, name):
  pwned = tmp_path / "pwned"
  state = {"a": tensor(np.ones(2, np.float32)), "b": PAYLOADS[name](pwned)}
  message = refusal(write_pth(tmp_path / "evil.pth", state))
  assert f"global {name}," in message and "refused" in message
  assert not pwned.exists()


@pytest.mark.parametrize(
  "call, words",
  [
    (Call("torch._utils", "_rebuild_sparse_tensor", 1), "_rebuild_sparse_tensor, for a kind of"),
    (Call("torch", "UntypedStorage", 2), "torch.UntypedStorage, for a kind of tensor"),
    (Call("torchvision.models.resnet", "ResNet"), "save model.state_dict(), not the model"),
  ],
)
def test_torch_objects_other_than_a_state_dict_are_refused(tmp_path, call, words):
  message = refusal(write_pth(tmp_path / "other.pth", {"w": call}))
  assert words in message and "nothing was run" in message


def test_the_payload_is_real(tmp_path):
  # The control: plain pickle does run the payload that read_tensors refuses.
  pwned = tmp_path / "pwned"
  pkl, _ = torch_pickle(Call("os", "system", f"touch {pwned}"))
  pickle.loads(pkl)
  assert pwned.exists()


def test_state_cannot_be_set_on_an_allowed_global(tmp_path):
  # BUILD onto the rebuild function itself (e.g. to swap its defaults for later files).
  data = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}b."
  message = refusal(write_pth(tmp_path / "build.pth", {}, data=data))
  assert "set the state of torch._utils._rebuild_tensor_v2" in message
  state = {"w": tensor(np.ones(2, np.float32))}
  assert list(read_tensors(write_pth(tmp_path / "after.pth", state))) == ["w"]


def test_corrupt_lengths_and_indices_allocate_nothing(tmp_path):
  # pickle's C unpickler would clear a 2 GiB memo for the first and its Python one allocate 1 GiB
  # for the second, before either finds the stream is short.
  huge_memo_index = b"\x80\x02}r" + struct.pack("<I", 2**27) + b"."
  huge_bytearray = b"\x80\x05\x96" + struct.pack("<Q", 2**30) + b"abc."
  tracemalloc.start()
  try:
    assert "holds no tensors" in refusal(write_pth(tmp_path / "a.pth", {}, data=huge_memo_index))
    message = refusal(write_pth(tmp_path / "b.pth", {}, data=huge_bytearray))
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert "opcode BYTEARRAY8" in message
  assert peak < 10 << 20


def test_a_storage_id_must_name_a_storage_of_the_archive(tmp_path):
  forged = ("storage", Ref("torch", "FloatStorage"), "../../etc/passwd", "cpu", 4)
  pkl = io.BytesIO()
  pickler = TorchPickler(pkl)
  pickler.persistent_id = lambda obj: forged if obj == "the storage" else None
  pickler.dump({"w": "the storage"})
  path = write_pth(tmp_path / "forged.pth", {}, data=pkl.getvalue())
  assert "not a storage key" in refusal(path)


# ---- broken files: one line each, naming the file ------------------------------------------------


def test_truncated_zip(tmp_path):
  path = write_pth(tmp_path / "cut.pth", {"w": tensor(np.ones(1000, np.float32))})
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  assert "truncated or corrupt" in refusal(path)


def test_zip_without_data_pkl(tmp_path):
  with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
    archive.writestr("archive/version", "3\n")
  assert "no <archive>/data.pkl" in refusal(tmp_path / "other.zip")


def test_missing_storage_entry(tmp_path):
  path = write_pth(tmp_path / "missing.pth", {"w": tensor(np.ones(4, np.float32))}, drop={"0"})
  assert "storage archive/data/0 is missing" in refusal(path)


def test_storage_entry_shorter_than_its_elements(tmp_path):
  path = write_pth(tmp_path / "short.pth", {"w": tensor(np.ones(4, np.float32))}, cut={"0": 10})
  assert "holds 10 bytes" in refusal(path)


@pytest.mark.parametrize(
  "offset, shape, strides", [(2, (3,), (1,)), (0, (2, 2), (1, 3)), (4, (5,), (0,))]
)
def test_tensor_beyond_its_storage(tmp_path, offset, shape, strides):
  state = {"w": Tensor(Storage(np.ones(4, np.float32)), offset, shape, strides)}
  message = refusal(write_pth(tmp_path / "over.pth", state))
  assert "reaches element 5 of storage 0 (torch.FloatStorage, 4 elements)" in message


def test_corrupt_storage_bytes_fail_the_crc(tmp_path):
  values = np.full(64, 1.5, np.float32)
  path = write_pth(tmp_path / "flipped.pth", {"w": tensor(values)})
  raw = bytearray(path.read_bytes())
  at = raw.find(values.tobytes())
  raw[at + 10] ^= 0xFF
  path.write_bytes(bytes(raw))
  assert "CRC" in refusal(path)


def test_corrupt_data_pkl(tmp_path):
  path = write_pth(tmp_path / "garbled.pth", {}, data=b"\x80\x02}q\x00(X\x01\x00")
  assert "truncated or corrupt" in refusal(path)


def test_a_bare_tensor_is_not_a_state_dict(tmp_path):
  path = write_pth(tmp_path / "tensor.pth", tensor(np.ones(2, np.float32)))
  assert "holds a tensor of shape (2,), not a state_dict" in refusal(path)


@pytest.mark.parametrize(
  "content, words",
  [
    (b"", "is empty"),
    (b"hello, these are not weights at all", "neither a PyTorch zip file"),
    (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + b"\x80\x02}q\x00.", "legacy format"),
    (pickle.dumps({"w": [1.0, 2.0]}, protocol=2), "bare pickle"),
  ],
)
def test_not_a_weight_file(tmp_path, content, words):
  path = tmp_path / "weights.pth"
  path.write_bytes(content)
  message = refusal(path)
  assert words in message
  if b"\x80\x02" in content:
    assert "torch.save(torch.load(old, weights_only=True), new)" in message


def test_missing_file(tmp_path):
  assert "cannot be opened: No such file" in refusal(tmp_path / "nowhere.pth")


def test_message_stays_one_line_whatever_the_name(tmp_path):
  path = tmp_path / "two\nlines.pth"
  path.write_bytes(b"")
  with pytest.raises(WeightFileError, match=r"two\\nlines\.pth: is empty") as caught:
    read_tensors(path)
  assert "\n" not in str(caught.value)


# ---- safetensors ---------------------------------------------------------------------------------


@pytest.mark.smoke
def test_safetensors_round_trip(tmp_path):
  arrays = {
    "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
    "f64": np.array([1e300]),
    "f16": np.array([0.5, 65504.0], np.float16),
    "i64": np.array([2**62], np.int64),
    "u8": np.arange(3, dtype=np.uint8),
    "bool": np.array([True, False]),
    "scalar": np.array(3, np.int32),
  }
  path = tmp_path / "model.safetensors"
  safetensors.numpy.save_file(arrays, path, metadata={"format": "np"})
  got = read_tensors(path)
  assert set(got) == set(arrays)
  for name, array in arrays.items():
    want = array.astype(np.float32) if array.dtype == np.float16 else array
    np.testing.assert_array_equal(got[name], want, err_msg=name, strict=True)
    assert got[name].flags.writeable


def write_safetensors(path: pathlib.Path, header: dict, data: bytes) -> pathlib.Path:
  text = json.dumps(header).encode()
  path.write_bytes(struct.pack("<Q", len(text)) + text + data)
  return path


def test_safetensors_bfloat16_is_exact(tmp_path):
  bits = bfloat16_bits(BF16)
  header = {"b": {"dtype": "BF16", "shape": [len(bits)], "data_offsets": [0, bits.nbytes]}}
  got = read_tensors(write_safetensors(tmp_path / "bf16.safetensors", header, bits.tobytes()))
  np.testing.assert_array_equal(got["b"], BF16, strict=True)


def test_truncated_safetensors(tmp_path):
  path = tmp_path / "cut.safetensors"
  safetensors.numpy.save_file({"w": np.ones(100, np.float32)}, path)
  whole = path.read_bytes()
  path.write_bytes(whole[:-8])
  assert "truncated" in refusal(path)
  path.write_bytes(whole[:20])  # inside the header
  assert "truncated" in refusal(path)


@pytest.mark.parametrize(
  "header, words",
  [
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}}, "bytes of data"),
    ({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}}, "not supported"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, "has shape"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, "data_offsets"),
    ({"w": [1, 2]}, "gives tensor"),
    ({"__metadata__": {"format": "pt"}}, "holds no tensors"),
  ],
)
def test_corrupt_safetensors_header(tmp_path, header, words):
  path = write_safetensors(tmp_path / "bad.safetensors", header, bytes(16))
  assert words in refusal(path)


def test_safetensors_header_that_is_not_json(tmp_path):
  path = tmp_path / "bad.safetensors"
  path.write_bytes(struct.pack("<Q", 6) + b"{oops}" + bytes(8))
  assert "JSONDecodeError" in refusal(path)


def test_read_tensors_never_imports_torch():
  source = pathlib.Path(__file__).resolve().parent.parent / "weights" / "tensor_files.py"
  assert "import torch" not in source.read_text()
