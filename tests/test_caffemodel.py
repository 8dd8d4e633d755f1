"""weights/caffemodel.py against hand-encoded Caffe wire bytes; the published-net builders
(tests/caffe_nets.py) against the releases' facts; the PyTorch Caffe twin against numpy
transliterations of Caffe's C++ loops (run when .venv-torch has torch)."""

import json
import pathlib
import struct
import subprocess

import numpy as np
import pytest

from tests import caffe_nets
from weights import caffemodel
from weights.caffemodel import CaffeFormatError, CaffeLayer, read_net, write_net

REPO = pathlib.Path(__file__).resolve().parent.parent
TORCH_PYTHON = REPO / ".venv-torch" / "bin" / "python"
TWIN = REPO / "tests" / "torch_side" / "caffe_twin.py"

# ------------------------------------------------------------------------------------------------
# The protobuf wire format by hand, with field numbers copied from BVLC caffe.proto
# (src/caffe/proto/caffe.proto, master 9b89154): the golden side, independent of the module.

NET = {"name": 1, "layers": 2, "input": 3, "input_dim": 4, "layer": 100}
LAYER = {"name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7, "concat_param": 104}
LAYER |= {"convolution_param": 106, "dropout_param": 108, "eltwise_param": 110}
LAYER |= {"inner_product_param": 117, "lrn_param": 118, "pooling_param": 121}
LAYER |= {"batch_norm_param": 139, "scale_param": 142, "relu_param": 123}
V1_LAYER = {"bottom": 2, "top": 3, "name": 4, "type": 5, "blobs": 6, "concat_param": 9}
V1_LAYER |= {"convolution_param": 10, "dropout_param": 12, "inner_product_param": 17}
V1_LAYER |= {"lrn_param": 18, "pooling_param": 19, "eltwise_param": 24, "layer": 1}
V1_TYPE = {"ACCURACY": 1, "CONCAT": 3, "CONVOLUTION": 4, "DATA": 5, "DROPOUT": 6}
V1_TYPE |= {"INNER_PRODUCT": 14, "LRN": 15, "POOLING": 17, "RELU": 18, "SOFTMAX": 20}
V1_TYPE |= {"SOFTMAX_LOSS": 21, "SPLIT": 22, "ELTWISE": 25}
BLOB = {"num": 1, "channels": 2, "height": 3, "width": 4, "data": 5, "diff": 6, "shape": 7}
BLOB |= {"double_data": 8}
CONV = {"num_output": 1, "bias_term": 2, "pad": 3, "kernel_size": 4, "group": 5, "stride": 6}
CONV |= {"pad_h": 9, "pad_w": 10, "kernel_h": 11, "kernel_w": 12, "stride_h": 13, "stride_w": 14}
POOL = {"pool": 1, "kernel_size": 2, "stride": 3, "pad": 4, "global_pooling": 12, "round_mode": 13}
LRN = {"local_size": 1, "alpha": 2, "beta": 3, "norm_region": 4, "k": 5}
IP = {"num_output": 1, "bias_term": 2, "axis": 5, "transpose": 6}
BN = {"use_global_stats": 1, "moving_average_fraction": 2, "eps": 3}
SCALE = {"axis": 1, "num_axes": 2, "bias_term": 4}
ELTWISE = {"operation": 1, "coeff": 2}
CONCAT = {"concat_dim": 1, "axis": 2}


def varint(value: int) -> bytes:
  value &= (1 << 64) - 1  # negative int32/int64: ten bytes of two's complement
  out = bytearray()
  while value > 0x7F:
    out.append(value & 0x7F | 0x80)
    value >>= 7
  return bytes(out + bytes([value]))


def vi(number: int, value: int) -> bytes:
  return varint(number << 3) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
  payload = payload.encode() if isinstance(payload, str) else payload
  return varint(number << 3 | 2) + varint(len(payload)) + payload


def f32(number: int, value: float) -> bytes:
  return varint(number << 3 | 5) + struct.pack("<f", value)


def packed(number: int, values, dtype: str = "<f4") -> bytes:
  return ld(number, np.asarray(values, dtype).tobytes())


def shape(*dims: int) -> bytes:
  return ld(BLOB["shape"], ld(1, b"".join(varint(d) for d in dims)))  # BlobShape.dim, packed


def decode(buf: bytes) -> list[tuple[int, int, int | bytes]]:
  """A message's fields: (number, wire type, varint value or payload bytes)."""
  fields, i = [], 0

  def read_varint():
    nonlocal i
    value = shift = 0
    while True:
      byte = buf[i]
      i += 1
      value |= (byte & 0x7F) << shift
      shift += 7
      if byte < 0x80:
        return value

  while i < len(buf):
    key = read_varint()
    number, wire = key >> 3, key & 7
    if wire == 0:
      fields.append((number, wire, read_varint()))
    elif wire == 2:
      n = read_varint()
      fields.append((number, wire, buf[i : i + n]))
      i += n
    else:
      size = {1: 8, 5: 4}[wire]
      fields.append((number, wire, buf[i : i + size]))
      i += size
  return fields


def write(tmp_path: pathlib.Path, payload: bytes, name: str = "net.caffemodel") -> pathlib.Path:
  path = tmp_path / name
  path.write_bytes(payload)
  return path


# ------------------------------------------------------------------------------------------------
# Golden files.


@pytest.mark.smoke
def test_golden_v2_layer(tmp_path):
  conv = ld(
    LAYER["convolution_param"],
    vi(CONV["num_output"], 2)
    + vi(CONV["kernel_size"], 3)
    + vi(CONV["stride"], 2)
    + vi(CONV["pad_h"], 1)
    + vi(CONV["pad_w"], 2)
    + vi(CONV["group"], 1),
  )
  weights = ld(LAYER["blobs"], shape(2, 1, 1, 3) + packed(BLOB["data"], np.arange(6) - 2.5))
  bias = ld(LAYER["blobs"], shape(2) + packed(BLOB["data"], [0.25, -0.5]))
  layer = (
    ld(LAYER["name"], "conv1")
    + ld(LAYER["type"], "Convolution")
    + ld(LAYER["bottom"], "data")
    + ld(LAYER["top"], "conv1")
    + weights
    + bias
    + conv
  )
  pool = ld(
    LAYER["pooling_param"],
    vi(POOL["pool"], 1) + vi(POOL["kernel_size"], 3) + vi(POOL["stride"], 2),
  )
  pool_layer = ld(LAYER["name"], "pool1") + ld(LAYER["type"], "Pooling") + pool
  payload = (
    ld(NET["name"], "golden")
    + ld(NET["layer"], layer)
    + ld(NET["layer"], pool_layer)
    + ld(NET["input"], "data")  # the deprecated input fields: an Input layer comes first
    + b"".join(vi(NET["input_dim"], d) for d in (1, 1, 5, 5))
  )
  name, layers = read_net(write(tmp_path, payload))
  assert name == "golden"
  assert [(l.name, l.type, l.bottoms, l.tops) for l in layers] == [
    ("input", "Input", (), ("data",)),
    ("conv1", "Convolution", ("data",), ("conv1",)),
    ("pool1", "Pooling", (), ()),
  ]
  assert layers[0].params == {"shape": ((1, 1, 5, 5),)}
  assert layers[1].params == {
    "num_output": 2,
    "bias_term": True,
    "kernel": 3,
    "stride": 2,
    "pad": (1, 2),
    "dilation": 1,
    "group": 1,
  }
  assert layers[1].blobs[0].dtype == np.float32 and layers[1].blobs[0].shape == (2, 1, 1, 3)
  np.testing.assert_array_equal(layers[1].blobs[0].ravel(), np.arange(6) - 2.5)
  np.testing.assert_array_equal(layers[1].blobs[1], [0.25, -0.5])
  assert not layers[1].blobs[0].flags.writeable
  assert layers[2].params["pool"] == "ave" and layers[2].params["kernel"] == 3


def test_golden_v2_parameters(tmp_path):
  def layer(name, type_, field, body):
    return ld(NET["layer"], ld(LAYER["name"], name) + ld(LAYER["type"], type_) + ld(field, body))

  payload = b"".join(
    [
      layer(
        "norm",
        "LRN",
        LAYER["lrn_param"],
        vi(LRN["local_size"], 3)
        + f32(LRN["alpha"], 0.0001)
        + f32(LRN["beta"], 0.5)
        + f32(LRN["k"], 2.0)
        + vi(LRN["norm_region"], 1),
      ),
      layer(
        "fc",
        "InnerProduct",
        LAYER["inner_product_param"],
        vi(IP["num_output"], 10) + vi(IP["bias_term"], 0) + vi(IP["transpose"], 1),
      ),
      layer(
        "bn",
        "BatchNorm",
        LAYER["batch_norm_param"],
        vi(BN["use_global_stats"], 1) + f32(BN["eps"], 0.001),
      ),
      layer("scale", "Scale", LAYER["scale_param"], vi(SCALE["bias_term"], 1)),
      layer("drop", "Dropout", LAYER["dropout_param"], f32(1, 0.25)),
      layer(
        "sum",
        "Eltwise",
        LAYER["eltwise_param"],
        vi(ELTWISE["operation"], 2) + f32(ELTWISE["coeff"], 1.5) + f32(ELTWISE["coeff"], -1),
      ),
      layer("cat", "Concat", LAYER["concat_param"], vi(CONCAT["concat_dim"], 2)),
      layer("relu", "ReLU", LAYER["relu_param"], f32(1, 0.125)),
      layer(
        "gpool",
        "Pooling",
        LAYER["pooling_param"],
        vi(POOL["global_pooling"], 1) + vi(POOL["round_mode"], 1),
      ),
    ]
  )
  _, layers = read_net(write(tmp_path, payload))
  params = {l.name: l.params for l in layers}
  assert params["norm"] == {
    "local_size": 3,
    "alpha": 0.0001,  # the float32 read back as the decimal written
    "beta": 0.5,
    "k": 2.0,
    "norm_region": "within_channel",
  }
  assert params["fc"] == {"num_output": 10, "bias_term": False, "axis": 1, "transpose": True}
  assert params["bn"] == {"use_global_stats": True, "moving_average_fraction": 0.999, "eps": 0.001}
  assert params["scale"] == {"bias_term": True, "axis": 1, "num_axes": 1}
  assert params["drop"] == {"dropout_ratio": 0.25}
  assert params["sum"] == {"operation": "max", "coeff": (1.5, -1.0)}
  assert params["cat"] == {"axis": 2}  # the legacy concat_dim wins, as in ConcatLayer
  assert params["relu"] == {"negative_slope": 0.125}
  assert params["gpool"] == {
    "pool": "max",
    "kernel": None,
    "stride": 1,
    "pad": 0,
    "global_pooling": True,
    "round_mode": "floor",
  }


@pytest.mark.smoke
def test_golden_v1_layers(tmp_path):
  legacy = b"".join(
    vi(BLOB[k], d)
    for k, d in zip(("num", "channels", "height", "width"), (1, 1, 2, 3), strict=True)
  )
  fc = (
    ld(V1_LAYER["name"], "fc8")
    + vi(V1_LAYER["type"], V1_TYPE["INNER_PRODUCT"])
    + ld(V1_LAYER["bottom"], "fc7")
    + ld(V1_LAYER["top"], "fc8")
    + ld(V1_LAYER["blobs"], legacy + packed(BLOB["data"], np.arange(6)))
    + ld(V1_LAYER["inner_product_param"], vi(IP["num_output"], 2))
  )
  conv = (
    ld(V1_LAYER["name"], "conv1")
    + vi(V1_LAYER["type"], V1_TYPE["CONVOLUTION"])
    + ld(V1_LAYER["convolution_param"], vi(CONV["num_output"], 96) + vi(CONV["kernel_size"], 11))
  )
  others = [
    (name, vi(V1_LAYER["type"], V1_TYPE[name]))
    for name in ("DATA", "POOLING", "LRN", "RELU", "DROPOUT", "CONCAT", "SOFTMAX", "SPLIT")
  ] + [(name, vi(V1_LAYER["type"], V1_TYPE[name])) for name in ("SOFTMAX_LOSS", "ACCURACY")]
  payload = ld(NET["name"], "v1") + ld(NET["layers"], conv) + ld(NET["layers"], fc)
  payload += b"".join(ld(NET["layers"], ld(V1_LAYER["name"], n) + t) for n, t in others)
  payload += ld(
    NET["layers"],
    ld(V1_LAYER["name"], "pool2")
    + vi(V1_LAYER["type"], V1_TYPE["POOLING"])
    + ld(V1_LAYER["pooling_param"], vi(POOL["kernel_size"], 3) + vi(POOL["stride"], 2)),
  )
  name, layers = read_net(write(tmp_path, payload))
  assert name == "v1"
  assert [l.type for l in layers] == [
    "Convolution",
    "InnerProduct",
    "Data",
    "Pooling",
    "LRN",
    "ReLU",
    "Dropout",
    "Concat",
    "Softmax",
    "Split",
    "SoftmaxWithLoss",
    "Accuracy",
    "Pooling",
  ]
  assert layers[0].params["num_output"] == 96 and layers[0].params["kernel"] == 11
  fc8 = layers[1]
  assert (fc8.bottoms, fc8.tops, fc8.params["num_output"]) == (("fc7",), ("fc8",), 2)
  # V1 keeps the legacy 4-d dims: an InnerProduct weight (out, in) as (1, 1, out, in).
  assert fc8.blobs[0].shape == (1, 1, 2, 3)
  np.testing.assert_array_equal(fc8.blobs[0][0, 0], [[0, 1, 2], [3, 4, 5]])
  assert layers[-1].params["kernel"] == 3 and layers[-1].params["stride"] == 2


def test_blob_value_encodings(tmp_path):
  """Unpacked floats, packed doubles, packed runs split in two, a diff, no shape: all read as
  Caffe reads them."""
  values = [1.5, -2.0, 0.25]
  blobs = [
    shape(3) + b"".join(f32(BLOB["data"], v) for v in values),  # unpacked: one key per float
    shape(3) + packed(BLOB["double_data"], values, "<f8"),
    shape(3) + packed(BLOB["data"], values[:1]) + packed(BLOB["data"], values[1:]),
    shape(3) + packed(BLOB["data"], values) + packed(BLOB["diff"], [9.0, 9.0, 9.0]),
    packed(BLOB["data"], values),  # no shape at all: 1-d
  ]
  layer = ld(LAYER["name"], "x") + ld(LAYER["type"], "Scale")
  layer += b"".join(ld(LAYER["blobs"], b) for b in blobs)
  _, layers = read_net(write(tmp_path, ld(NET["layer"], layer)))
  for array in layers[0].blobs:
    assert array.dtype == np.float32 and array.shape == (3,)
    np.testing.assert_array_equal(array, values)


# ------------------------------------------------------------------------------------------------
# What the writer emits, and round trips.


def every_kind_of_layer(rng: np.random.Generator) -> list[CaffeLayer]:
  def blob(*dims):
    return rng.standard_normal(dims).astype(np.float32)

  return [
    CaffeLayer("data", "Input", (), ("data",), {"shape": ((2, 3, 9, 9),)}),
    CaffeLayer(
      "conv1",
      "Convolution",
      ("data",),
      ("conv1",),
      {
        "num_output": 4,
        "bias_term": True,
        "kernel": (3, 5),
        "stride": 2,
        "pad": (1, 2),
        "dilation": 2,
        "group": 1,
      },
      [blob(4, 3, 3, 5), blob(4)],
    ),
    CaffeLayer(
      "pool1",
      "Pooling",
      ("conv1",),
      ("pool1",),
      {
        "pool": "ave",
        "kernel": 3,
        "stride": (2, 1),
        "pad": 1,
        "global_pooling": False,
        "round_mode": "floor",
      },
    ),
    CaffeLayer(
      "norm1",
      "LRN",
      ("pool1",),
      ("norm1",),
      {"local_size": 3, "alpha": 0.0001, "beta": 0.75, "k": 2.0, "norm_region": "within_channel"},
    ),
    CaffeLayer(
      "fc",
      "InnerProduct",
      ("norm1",),
      ("fc",),
      {"num_output": 5, "bias_term": False, "axis": 1, "transpose": True},
      [blob(7, 5)],
    ),
    CaffeLayer(
      "bn",
      "BatchNorm",
      ("fc",),
      ("fc",),
      {"use_global_stats": False, "moving_average_fraction": 0.9, "eps": 0.001},
      [blob(5), blob(5), np.array([0.999], np.float32)],
    ),
    CaffeLayer(
      "scale",
      "Scale",
      ("fc",),
      ("fc",),
      {"bias_term": True, "axis": 1, "num_axes": 1},
      [blob(5), blob(5)],
    ),
    CaffeLayer("relu", "ReLU", ("fc",), ("fc",), {"negative_slope": 0.125}),
    CaffeLayer("drop", "Dropout", ("fc",), ("fc",), {"dropout_ratio": 0.25}),
    CaffeLayer("sum", "Eltwise", ("fc", "fc"), ("sum",), {"operation": "prod", "coeff": ()}),
    CaffeLayer("cat", "Concat", ("sum", "fc"), ("cat",), {"axis": 2}),
    CaffeLayer("prob", "Softmax", ("cat",), ("prob",), {"axis": 1}, [np.float32(3.5)]),
  ]


def assert_same_layers(got: list[CaffeLayer], want: list[CaffeLayer]) -> None:
  assert [(l.name, l.type, l.bottoms, l.tops, l.params) for l in got] == [
    (l.name, l.type, l.bottoms, l.tops, l.params) for l in want
  ]
  for g, w in zip(got, want, strict=True):
    assert len(g.blobs) == len(w.blobs), g.name
    for a, b in zip(g.blobs, w.blobs, strict=True):
      assert a.dtype == np.float32
      np.testing.assert_array_equal(a, b)
      assert a.shape == np.shape(b)


@pytest.mark.smoke
def test_round_trip_v2(tmp_path):
  layers = every_kind_of_layer(np.random.default_rng(0))
  path = tmp_path / "v2.caffemodel"
  write_net(path, "every kind", layers)
  name, got = read_net(path)
  assert name == "every kind"
  assert_same_layers(got, layers)
  top = decode(path.read_bytes())
  assert top[0] == (NET["name"], 2, b"every kind")
  assert {(n, w) for n, w, _ in top[1:]} == {(NET["layer"], 2)}
  conv = decode(top[2][2])
  weights = decode(next(v for n, _, v in conv if n == LAYER["blobs"]))
  assert (BLOB["shape"], 2) in [(n, w) for n, w, _ in weights]
  data = next(v for n, w, v in weights if n == BLOB["data"])  # one packed run of '<f4'
  np.testing.assert_array_equal(np.frombuffer(data, "<f4"), layers[1].blobs[0].ravel())


def test_round_trip_v1(tmp_path):
  """V1: enum types, legacy 4-d blob dims, the Input layer as the net's input fields."""
  layers = [
    l
    for l in every_kind_of_layer(np.random.default_rng(1))
    if l.type in caffemodel._V2_TO_V1 or l.type == "Input"
  ]
  assert [l.type for l in layers][:2] == ["Input", "Convolution"]
  path = tmp_path / "v1.caffemodel"
  write_net(path, "old", layers, v1=True)
  top = decode(path.read_bytes())
  assert [(n, v) for n, _, v in top if n in (NET["input"], NET["input_dim"])] == [
    (NET["input"], b"data"),
    *[(NET["input_dim"], d) for d in (2, 3, 9, 9)],
  ]
  v1_layers = [decode(v) for n, _, v in top if n == NET["layers"]]
  assert not [v for n, _, v in top if n == NET["layer"]]
  types = [next(v for n, w, v in f if n == V1_LAYER["type"] and w == 0) for f in v1_layers]
  names = {"Convolution": "CONVOLUTION", "Pooling": "POOLING", "LRN": "LRN", "ReLU": "RELU"}
  names |= {"InnerProduct": "INNER_PRODUCT", "Dropout": "DROPOUT", "Eltwise": "ELTWISE"}
  names |= {"Concat": "CONCAT", "Softmax": "SOFTMAX"}
  assert types == [V1_TYPE[names[l.type]] for l in layers[1:]]
  fc_blob = decode(next(v for n, _, v in v1_layers[3] if n == V1_LAYER["blobs"]))
  assert [(n, v) for n, _, v in fc_blob if n <= 4] == [(1, 1), (2, 1), (3, 7), (4, 5)]

  name, got = read_net(path)
  assert name == "old"
  assert got[0] == CaffeLayer("input", "Input", (), ("data",), {"shape": ((2, 3, 9, 9),)}, [])
  by_name = {l.name: l for l in got}
  assert by_name["fc"].blobs[0].shape == (1, 1, 7, 5)  # the legacy dims
  assert by_name["conv1"].blobs[1].shape == (1, 1, 1, 4)
  assert by_name["prob"].blobs[0].shape == (1, 1, 1, 1)
  for g, w in zip(got[1:], layers[1:], strict=True):
    assert (g.name, g.type, g.bottoms, g.tops, g.params) == (
      w.name,
      w.type,
      w.bottoms,
      w.tops,
      w.params,
    )
    for a, b in zip(g.blobs, w.blobs, strict=True):
      np.testing.assert_array_equal(a.reshape(np.shape(b)), b)


def test_defaults_are_caffe_protos(tmp_path):
  types = ["Convolution", "Pooling", "LRN", "InnerProduct", "BatchNorm", "Scale", "Dropout"]
  types += ["Eltwise", "Concat", "ReLU", "Softmax", "Data"]
  path = tmp_path / "defaults.caffemodel"
  write_net(path, "", [CaffeLayer(t.lower(), t) for t in types])
  got = {l.type: l.params for l in read_net(path)[1]}
  assert got == {
    "Convolution": {
      "num_output": 0,
      "bias_term": True,
      "kernel": None,
      "stride": 1,
      "pad": 0,
      "dilation": 1,
      "group": 1,
    },
    "Pooling": {
      "pool": "max",
      "kernel": None,
      "stride": 1,
      "pad": 0,
      "global_pooling": False,
      "round_mode": "ceil",
    },
    "LRN": {
      "local_size": 5,
      "alpha": 1.0,
      "beta": 0.75,
      "k": 1.0,
      "norm_region": "across_channels",
    },
    "InnerProduct": {"num_output": 0, "bias_term": True, "axis": 1, "transpose": False},
    "BatchNorm": {"use_global_stats": None, "moving_average_fraction": 0.999, "eps": 1e-05},
    "Scale": {"bias_term": False, "axis": 1, "num_axes": 1},
    "Dropout": {"dropout_ratio": 0.5},
    "Eltwise": {"operation": "sum", "coeff": ()},
    "Concat": {"axis": 1},
    "ReLU": {"negative_slope": 0.0},
    "Softmax": {"axis": 1},
    "Data": {},
  }


def test_writer_refuses_what_it_cannot_write(tmp_path):
  with pytest.raises(ValueError, match="unknown parameters"):
    write_net(tmp_path / "x", "", [CaffeLayer("c", "Convolution", params={"kernal": 3})])
  with pytest.raises(ValueError, match="V1 has no layer type 'BatchNorm'"):
    write_net(tmp_path / "x", "", [CaffeLayer("bn", "BatchNorm")], v1=True)
  with pytest.raises(ValueError, match="pool 'min'"):
    write_net(tmp_path / "x", "", [CaffeLayer("p", "Pooling", params={"pool": "min"})])


# ------------------------------------------------------------------------------------------------
# Files that are not readable models.


def assert_refused(path: pathlib.Path, match: str) -> None:
  with pytest.raises(CaffeFormatError, match=match) as info:
    read_net(path)
  message = str(info.value)
  assert str(path) in message and "\n" not in message


@pytest.mark.smoke
def test_truncated_and_garbage_files(tmp_path):
  layers = [
    CaffeLayer("fc", "InnerProduct", ("x",), ("fc",), {"num_output": 100}, [np.ones((100, 10))]),
    CaffeLayer("prob", "Softmax", ("fc",), ("prob",)),
  ]
  path = tmp_path / "whole.caffemodel"
  write_net(path, "net", layers)
  payload = path.read_bytes()
  for cut in (len(payload) - 1, len(payload) // 2, 20):
    assert_refused(write(tmp_path, payload[:cut], f"cut{cut}"), "not a Caffe model, or cut short")
  garbage = np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes()
  assert_refused(write(tmp_path, garbage, "garbage"), "not a Caffe model")
  prototxt = b'name: "AlexNet"\nlayer {\n  name: "data"\n  type: "Input"\n}\n'
  assert_refused(write(tmp_path, prototxt, "deploy.prototxt"), "not a Caffe model")
  assert_refused(write(tmp_path, b"", "empty"), "holds no layers")
  assert_refused(write(tmp_path, ld(NET["name"], "only a name"), "nameonly"), "holds no layers")


def test_inconsistent_files(tmp_path):
  blob = ld(LAYER["blobs"], shape(2, 3) + packed(BLOB["data"], np.arange(5)))
  layer = ld(LAYER["name"], "conv1") + ld(LAYER["type"], "Convolution") + blob
  assert_refused(
    write(tmp_path, ld(NET["layer"], layer), "short"),
    r"layer 'conv1' blob 0: 5 values, but its shape \(2, 3\) holds 6",
  )
  odd = ld(LAYER["blobs"], shape(1) + ld(BLOB["data"], b"\0" * 5))
  odd_layer = ld(LAYER["name"], "conv1") + ld(LAYER["type"], "Convolution") + odd
  assert_refused(write(tmp_path, ld(NET["layer"], odd_layer), "odd"), "5 bytes of values")
  both = ld(NET["layer"], ld(LAYER["name"], "a")) + ld(NET["layers"], ld(V1_LAYER["name"], "b"))
  assert_refused(write(tmp_path, both, "both"), "both V2 `layer` and V1 `layers`")
  v0 = ld(NET["layers"], ld(V1_LAYER["layer"], ld(1, "conv1")))
  assert_refused(write(tmp_path, v0, "v0"), "V0 form")
  unknown = ld(NET["layers"], ld(V1_LAYER["name"], "odd") + vi(V1_LAYER["type"], 99))
  assert_refused(write(tmp_path, unknown, "unknown"), "V1 layer 'odd' has no or an unknown type")


# ------------------------------------------------------------------------------------------------
# The published nets (tests/caffe_nets.py): the releases' facts.


def learned(layers: list[CaffeLayer]) -> int:
  """Trained parameters: every blob but BatchNorm's statistics."""
  return sum(b.size for l in layers if l.type != "BatchNorm" for b in l.blobs)


@pytest.fixture(scope="module")
def published():
  """builder name, *args → (layers, input size), each built once for this module."""
  built = {}

  def get(name: str, *args):
    if (name, args) not in built:
      built[name, args] = getattr(caffe_nets, name)(*args)
    return built[name, args]

  yield get
  built.clear()


@pytest.mark.parametrize(
  "net, count, size",
  [
    (("bvlc_alexnet", 0), 60_965_224, 227),
    (("caffenet", 0), 60_965_224, 227),
    (("bvlc_googlenet", 0, False), 6_998_552, 224),
    (("bvlc_googlenet", 0, True), 13_378_280, 224),
    (("resnet", 50, 0), 25_557_096, 224),  # torchvision's 25,557,032 + conv1's bias
    pytest.param(("resnet", 101, 0), 44_549_160, 224, marks=pytest.mark.slow),
    pytest.param(("resnet", 152, 0), 60_192_808, 224, marks=pytest.mark.slow),
    pytest.param(("vgg", 16, 0), 138_357_544, 224, marks=pytest.mark.slow),
    pytest.param(("vgg", 19, 0), 143_667_240, 224, marks=pytest.mark.slow),
  ],
  ids=lambda v: "_".join(map(str, v)) if isinstance(v, tuple) else None,
)
def test_published_parameter_counts(published, net, count, size):
  layers, input_size = published(*net)
  assert learned(layers) == count and input_size == size
  assert layers[0].type == "Input" and layers[-1].name == "prob" and layers[-1].type == "Softmax"
  names = [l.name for l in layers]
  assert len(names) == len(set(names))


def test_published_layer_facts(published):
  alexnet = {l.name: l for l in published("bvlc_alexnet", 0)[0]}
  assert [l for l in alexnet if l[:4] in ("norm", "pool")] == [
    "norm1",
    "pool1",
    "norm2",
    "pool2",
    "pool5",
  ]
  assert [alexnet[f"conv{i}"].params["group"] for i in range(1, 6)] == [1, 2, 1, 2, 2]
  assert alexnet["norm1"].params == {
    "local_size": 5,
    "alpha": 0.0001,
    "beta": 0.75,
    "k": 1.0,
    "norm_region": "across_channels",
  }
  assert alexnet["fc6"].blobs[0].shape == (4096, 256 * 6 * 6)
  caffenet = [l.name for l in published("caffenet", 0)[0] if l.name[:4] in ("norm", "pool")]
  assert caffenet == ["pool1", "norm1", "pool2", "norm2", "pool5"]

  googlenet = {l.name: l for l in published("bvlc_googlenet", 0, True)[0]}
  assert googlenet["loss1/conv"].blobs[0].shape == (128, 512, 1, 1)
  assert googlenet["loss2/conv"].blobs[0].shape == (128, 528, 1, 1)
  assert googlenet["loss1/fc"].blobs[0].shape == (1024, 128 * 4 * 4)
  assert googlenet["loss1/ave_pool"].params["pool"] == "ave"
  assert googlenet["loss1/drop_fc"].params["dropout_ratio"] == 0.7
  assert googlenet["pool5/drop_7x7_s1"].params["dropout_ratio"] == 0.4
  assert googlenet["inception_5b/output"].bottoms == tuple(
    f"inception_5b/{b}" for b in ("1x1", "3x3", "5x5", "pool_proj")
  )
  # Caffe's ceil rounding: 112 → 56 where floor would give 55 (GoogLeNet pool1–pool4, ResNet pool1).
  assert [caffe_nets.caffe_pooled_size(n, 3, 2, 0) for n in (112, 56, 28, 14)] == [56, 28, 14, 7]
  assert (
    caffe_nets.caffe_pooled_size(14, 5, 3, 0) == 4 and caffe_nets.caffe_pooled_size(7, 3, 1, 1) == 7
  )

  resnet = {l.name: l for l in published("resnet", 50, 0)[0]}
  assert resnet["conv1"].params["bias_term"] is True
  assert resnet["res3a_branch2a"].params == {
    "num_output": 128,
    "bias_term": False,
    "kernel": 1,
    "stride": 2,  # the stride sits on the first 1×1, as in MSRA's release
    "pad": 0,
    "dilation": 1,
    "group": 1,
  }
  assert (
    resnet["res3a_branch1"].params["stride"] == 2 and resnet["res2a_branch1"].params["stride"] == 1
  )
  assert resnet["bn2a_branch1"].bottoms == ("res2a_branch1",) and "scale2a_branch1" in resnet
  assert resnet["res2a"].bottoms == ("res2a_branch1", "res2a_branch2c")
  assert resnet["res2b"].bottoms == ("res2a", "res2b_branch2c")
  factors = np.concatenate([l.blobs[2] for l in resnet.values() if l.type == "BatchNorm"])
  assert resnet["bn_conv1"].blobs[2].shape == (1,) and np.abs(factors - 1).max() > 0.1
  assert caffe_nets.resnet_block_names(101)[4][-1] == "res4b22"
  assert caffe_nets.resnet_block_names(152)[3] == ["res3a"] + [f"res3b{i}" for i in range(1, 8)]
  assert caffe_nets.resnet_block_names(152)[5] == ["res5a", "res5b", "res5c"]


def test_googlenet_round_trip(tmp_path):
  layers, _ = caffe_nets.bvlc_googlenet(3)
  write_net(tmp_path / "g.caffemodel", "GoogleNet", layers)
  name, got = read_net(tmp_path / "g.caffemodel")
  assert name == "GoogleNet"
  assert_same_layers(got, layers)


@pytest.mark.slow
def test_vgg_round_trip_v1(published, tmp_path):
  """The VGG release's form: V1 layers, input fields; 553 MB."""
  layers, _ = published("vgg", 16, 0)
  write_net(tmp_path / "vgg.caffemodel", "VGG_ILSVRC_16_layers", layers, v1=True)
  _, got = read_net(tmp_path / "vgg.caffemodel")
  assert [l.name for l in got] == [l.name for l in layers]
  assert got[-2].name == "fc8" and got[-2].blobs[0].shape == (1, 1, 1000, 4096)
  np.testing.assert_array_equal(got[-2].blobs[0][0, 0], layers[-2].blobs[0])
  np.testing.assert_array_equal(got[1].blobs[0], layers[1].blobs[0])


# ------------------------------------------------------------------------------------------------
# The PyTorch twin against Caffe's loops, transliterated.


def caffe_pool(x: np.ndarray, kind: str, k: int, s: int, p: int) -> np.ndarray:
  """pooling_layer.cpp Forward_cpu, MAX and AVE, loop by loop."""
  n, c, h, w = x.shape
  oh, ow = (caffe_nets.caffe_pooled_size(d, k, s, p) for d in (h, w))
  out = np.zeros((n, c, oh, ow), np.float64)
  for ph in range(oh):
    for pw in range(ow):
      hs, ws = ph * s - p, pw * s - p
      if kind == "max":
        he, we = min(hs + k, h), min(ws + k, w)
        hs, ws = max(hs, 0), max(ws, 0)
        out[:, :, ph, pw] = x[:, :, hs:he, ws:we].max(axis=(2, 3))
      else:
        he, we = min(hs + k, h + p), min(ws + k, w + p)
        size = (he - hs) * (we - ws)
        hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
        out[:, :, ph, pw] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / size
  return out


def caffe_lrn(x: np.ndarray, n: int, alpha: float, beta: float, k: float) -> np.ndarray:
  """lrn_layer.cpp CrossChannelForward_cpu: scale = k + α/n Σ over the n channels around."""
  c = x.shape[1]
  out = np.empty_like(x, np.float64)
  for i in range(c):
    lo, hi = max(0, i - (n - 1) // 2), min(c, i + (n - 1) // 2 + 1)
    scale = k + alpha / n * (x[:, lo:hi] ** 2).sum(1)
    out[:, i] = x[:, i] * scale**-beta
  return out


def caffe_conv(x, weight, bias, stride, pad, group):
  n, c, h, w = x.shape
  o, cg, kh, kw = weight.shape
  xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
  oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
  out = np.zeros((n, o, oh, ow))
  per = o // group
  for oc in range(o):
    g = oc // per
    for i in range(oh):
      for j in range(ow):
        patch = xp[
          :, g * cg : (g + 1) * cg, i * stride : i * stride + kh, j * stride : j * stride + kw
        ]
        out[:, oc, i, j] = (patch * weight[oc]).sum((1, 2, 3)) + bias[oc]
  return out


@pytest.fixture(scope="session")
def torch_python():
  # Looked for, not imported: importing torch takes seconds here.
  if not list(REPO.glob(".venv-torch/lib/python3*/site-packages/torch/__init__.py")):
    pytest.skip(".venv-torch with torch is not set up (make bench-pytorch)")
  return TORCH_PYTHON


def run_twin(python, tmp_path, layers, image, *flags):
  caffe_nets.dump_for_twin(layers, tmp_path / "net.json", tmp_path / "blobs.npz")
  np.save(tmp_path / "input.npy", image)
  files = [tmp_path / f for f in ("net.json", "blobs.npz", "input.npy", "out.npz")]
  subprocess.run([python, TWIN, *files, *flags], check=True, capture_output=True, timeout=300)
  with np.load(tmp_path / "out.npz") as out:
    return {k: out[k] for k in out.files}


def nchw(array: np.ndarray) -> np.ndarray:
  return array.transpose(0, 3, 1, 2) if array.ndim == 4 else array


def test_twin_against_caffe_loops(torch_python, tmp_path):
  rng = np.random.default_rng(0)
  image = (rng.standard_normal((2, 3, 11, 11)) * 50).astype(np.float32)
  weight = (rng.standard_normal((6, 1, 3, 3)) * 0.5).astype(np.float32)
  bias = rng.standard_normal(6).astype(np.float32)
  mean, variance = (
    rng.standard_normal(6).astype(np.float32),
    rng.uniform(1, 2, 6).astype(np.float32),
  )
  factor = np.float32(0.875)
  gamma, beta = (
    rng.uniform(0.5, 1.5, 6).astype(np.float32),
    rng.standard_normal(6).astype(np.float32),
  )
  fc_weight = rng.standard_normal((4, 6 * 3 * 3)).astype(np.float32)

  def pool_params(kind, k, s, p):
    return {
      "pool": kind,
      "kernel": k,
      "stride": s,
      "pad": p,
      "global_pooling": False,
      "round_mode": "ceil",
    }

  lrn = {"local_size": 5, "alpha": 0.0001, "beta": 0.75, "k": 2.0, "norm_region": "across_channels"}
  conv = {
    "num_output": 6,
    "bias_term": True,
    "kernel": 3,
    "stride": 1,
    "pad": 1,
    "dilation": 1,
    "group": 3,
  }
  layers = [
    CaffeLayer("data", "Input", (), ("data",), {"shape": ((2, 3, 11, 11),)}),
    CaffeLayer("conv", "Convolution", ("data",), ("conv",), conv, [weight[:, :1], bias]),
    # 11 → ceil((11 − 3) / 2) + 1 = 5 (exact); 11, k 2, s 2 → 6 (ceil: a last window of one column)
    CaffeLayer("max_ceil", "Pooling", ("conv",), ("max_ceil",), pool_params("max", 2, 2, 0)),
    CaffeLayer("ave_ceil", "Pooling", ("conv",), ("ave_ceil",), pool_params("ave", 2, 2, 0)),
    # padded: 11, k 3, s 2, p 1 → 6; 11, k 2, s 3, p 1 → ceil(11/3)+1 = 5, then (5−1)·3 ≥ 12: 4
    CaffeLayer("max_pad", "Pooling", ("conv",), ("max_pad",), pool_params("max", 3, 2, 1)),
    CaffeLayer("ave_pad", "Pooling", ("conv",), ("ave_pad",), pool_params("ave", 3, 2, 1)),
    CaffeLayer("ave_cut", "Pooling", ("conv",), ("ave_cut",), pool_params("ave", 2, 3, 1)),
    CaffeLayer("norm", "LRN", ("conv",), ("norm",), lrn),
    CaffeLayer("pool", "Pooling", ("norm",), ("pool",), pool_params("max", 3, 4, 0)),
    CaffeLayer(
      "bn",
      "BatchNorm",
      ("pool",),
      ("pool",),
      {"use_global_stats": True, "moving_average_fraction": 0.999, "eps": 1e-05},
      [mean * factor, variance * factor, np.array([factor])],
    ),
    CaffeLayer(
      "scale",
      "Scale",
      ("pool",),
      ("pool",),
      {"bias_term": True, "axis": 1, "num_axes": 1},
      [gamma, beta],
    ),
    CaffeLayer("relu", "ReLU", ("pool",), ("pool",), {"negative_slope": 0.1}),
    CaffeLayer(
      "sum", "Eltwise", ("pool", "pool"), ("sum",), {"operation": "sum", "coeff": (1.0, -0.5)}
    ),
    CaffeLayer("cat", "Concat", ("pool", "sum"), ("cat",), {"axis": 1}),
    CaffeLayer(
      "fc",
      "InnerProduct",
      ("pool",),
      ("fc",),
      {"num_output": 4, "bias_term": True, "axis": 1, "transpose": False},
      [fc_weight, bias[:4]],
    ),
    CaffeLayer("prob", "Softmax", ("fc",), ("prob",), {"axis": 1}),
  ]
  out = run_twin(torch_python, tmp_path, layers, image, "--float64")
  x = image.astype(np.float64)
  conv_out = caffe_conv(x, weight[:, :1], bias, 1, 1, 3)
  want = {
    "layer:conv": conv_out,
    "layer:max_ceil": caffe_pool(conv_out, "max", 2, 2, 0),
    "layer:ave_ceil": caffe_pool(conv_out, "ave", 2, 2, 0),
    "layer:max_pad": caffe_pool(conv_out, "max", 3, 2, 1),
    "layer:ave_pad": caffe_pool(conv_out, "ave", 3, 2, 1),
    "layer:ave_cut": caffe_pool(conv_out, "ave", 2, 3, 1),
    "layer:norm": caffe_lrn(conv_out, 5, 0.0001, 0.75, 2.0),
  }
  assert [want[k].shape[2] for k in ("layer:max_ceil", "layer:max_pad", "layer:ave_cut")] == [
    6,
    6,
    4,
  ]
  pooled = caffe_pool(want["layer:norm"], "max", 3, 4, 0)
  # Caffe divides the stored (float32) mean·f and variance·f by f.
  stored_mean, stored_variance = (
    (mean * factor) / np.float64(factor),
    (variance * factor) / np.float64(factor),
  )
  normed = (pooled - stored_mean[:, None, None]) / np.sqrt(stored_variance[:, None, None] + 1e-5)
  scaled = normed * gamma[:, None, None] + beta[:, None, None]
  relu = np.where(scaled > 0, scaled, 0.1 * scaled)
  logits = relu.reshape(2, -1) @ fc_weight.T.astype(np.float64) + bias[:4]
  want |= {"pool": relu, "sum": 0.5 * relu, "cat": np.concatenate([relu, 0.5 * relu], 1)}
  want |= {"layer:bn": normed, "fc": logits}
  want["prob"] = np.exp(logits - logits.max(1, keepdims=True))
  want["prob"] /= want["prob"].sum(1, keepdims=True)
  for key, value in want.items():
    np.testing.assert_allclose(nchw(out[key]), value, rtol=1e-9, atol=1e-9, err_msg=key)
  assert np.abs(want["layer:norm"] / conv_out - 1).max() > 0.05  # the LRN did something
  assert out["data"].shape == (2, 11, 11, 3)  # NHWC


@pytest.mark.slow
def test_twin_runs_googlenet(torch_python, tmp_path):
  layers, size = caffe_nets.bvlc_googlenet(0)
  image = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32) * 50
  out = run_twin(torch_python, tmp_path, layers, image)
  assert out["prob"].shape == (1, 1000) and abs(out["prob"].sum() - 1) < 1e-5
  assert out["loss1/classifier"].shape == out["loss2/classifier"].shape == (1, 1000)
  assert out["inception_4a/output"].shape == (1, 14, 14, 512)
  assert out["pool1/3x3_s2"].shape == (1, 56, 56, 64)  # ceil rounding
  assert 0.01 < out["prob"].max() < 0.99  # logits of a sensible size
  net = json.loads((tmp_path / "net.json").read_text())
  assert [l["name"] for l in net] == [l.name for l in layers]
