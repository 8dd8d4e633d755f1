"""Caffe `.caffemodel` files, read (and written, for tests) through the `protobuf` package alone.

No Caffe and no protoc: the message schema is a `FileDescriptorProto` assembled below, the subset
of BVLC Caffe's `src/caffe/proto/caffe.proto` (https://github.com/BVLC/caffe, master 9b89154,
2020-02-13) that convzoo reads, with Caffe's field numbers, types and proto2 defaults. Whatever
else a file holds (solver fields, fillers, `param` specs, diffs) protobuf keeps as unknown fields,
and it is ignored.

Both layouts Caffe wrote are read: V2 `NetParameter.layer` (LayerParameter, type a string: the
GoogLeNet and ResNet releases) and V1 `NetParameter.layers` (V1LayerParameter, type an enum,
blobs with legacy num/channels/height/width dims: the AlexNet, CaffeNet and VGG releases). Layers
come back in one form, `CaffeLayer`, with V2 type names (Caffe's own `UpgradeV1LayerType`), and
a net's deprecated `input`/`input_dim`/`input_shape` fields come back as a leading "Input" layer
named "input", as Caffe's `UpgradeNetInput` makes them.

Blob values: caffe.proto declares `repeated float data = 5 [packed = true]`. Packed, that is one
length-delimited field whose payload is the little-endian floats back to back: on the wire
exactly a `bytes` field. So the schema here declares `data` (and `double_data`) as `bytes`, and
numpy views the payload (`np.frombuffer`): a VGG-16 file holds 138 M floats, which as a protobuf
repeated field would be 138 M Python objects (minutes, gigabytes). A file whose floats are
not packed (legal proto2, written by no Caffe release) leaves those `bytes` fields empty and the
values in unknown fields; such a blob is parsed again with the declaration caffe.proto has
(`repeated float`), slowly but exactly. The arrays returned are read-only views of the values
as read; copy one to change it.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

# ------------------------------------------------------------------------------------------------
# The schema: caffe.proto's declarations, one tuple each, `(label, type, name, number, default)`.
# A type is a proto scalar type, a message named here, or (with a dot) an enum nested in its
# message. The order within a message follows caffe.proto.

_ENUMS: dict[str, dict[str, dict[str, int]]] = {
  "PoolingParameter": {
    "PoolMethod": {"MAX": 0, "AVE": 1, "STOCHASTIC": 2},
    "RoundMode": {"CEIL": 0, "FLOOR": 1},
  },
  "LRNParameter": {"NormRegion": {"ACROSS_CHANNELS": 0, "WITHIN_CHANNEL": 1}},
  "EltwiseParameter": {"EltwiseOp": {"PROD": 0, "SUM": 1, "MAX": 2}},
}

# V1LayerParameter.LayerType: enum name → (number, the V2 type string Caffe upgrades it to, in
# src/caffe/util/upgrade_proto.cpp UpgradeV1LayerType).
_V1_LAYER_TYPES: dict[str, tuple[int, str]] = {
  "NONE": (0, ""),
  "ABSVAL": (35, "AbsVal"),
  "ACCURACY": (1, "Accuracy"),
  "ARGMAX": (30, "ArgMax"),
  "BNLL": (2, "BNLL"),
  "CONCAT": (3, "Concat"),
  "CONTRASTIVE_LOSS": (37, "ContrastiveLoss"),
  "CONVOLUTION": (4, "Convolution"),
  "DATA": (5, "Data"),
  "DECONVOLUTION": (39, "Deconvolution"),
  "DROPOUT": (6, "Dropout"),
  "DUMMY_DATA": (32, "DummyData"),
  "EUCLIDEAN_LOSS": (7, "EuclideanLoss"),
  "ELTWISE": (25, "Eltwise"),
  "EXP": (38, "Exp"),
  "FLATTEN": (8, "Flatten"),
  "HDF5_DATA": (9, "HDF5Data"),
  "HDF5_OUTPUT": (10, "HDF5Output"),
  "HINGE_LOSS": (28, "HingeLoss"),
  "IM2COL": (11, "Im2col"),
  "IMAGE_DATA": (12, "ImageData"),
  "INFOGAIN_LOSS": (13, "InfogainLoss"),
  "INNER_PRODUCT": (14, "InnerProduct"),
  "LRN": (15, "LRN"),
  "MEMORY_DATA": (29, "MemoryData"),
  "MULTINOMIAL_LOGISTIC_LOSS": (16, "MultinomialLogisticLoss"),
  "MVN": (34, "MVN"),
  "POOLING": (17, "Pooling"),
  "POWER": (26, "Power"),
  "RELU": (18, "ReLU"),
  "SIGMOID": (19, "Sigmoid"),
  "SIGMOID_CROSS_ENTROPY_LOSS": (27, "SigmoidCrossEntropyLoss"),
  "SILENCE": (36, "Silence"),
  "SOFTMAX": (20, "Softmax"),
  "SOFTMAX_LOSS": (21, "SoftmaxWithLoss"),
  "SPLIT": (22, "Split"),
  "SLICE": (33, "Slice"),
  "TANH": (23, "TanH"),
  "WINDOW_DATA": (24, "WindowData"),
  "THRESHOLD": (31, "Threshold"),
}
_ENUMS["V1LayerParameter"] = {"LayerType": {k: n for k, (n, _) in _V1_LAYER_TYPES.items()}}
_V1_TO_V2 = dict(_V1_LAYER_TYPES.values())
_V2_TO_V1 = {v2: n for n, v2 in _V1_LAYER_TYPES.values() if v2}

Field = tuple[str, str, str, int, str | None]

# The layer parameter messages, by their field name in LayerParameter (V2 number, V1 number).
_PARAM_FIELDS: dict[str, tuple[str, int, int | None]] = {
  "batch_norm_param": ("BatchNormParameter", 139, None),
  "concat_param": ("ConcatParameter", 104, 9),
  "convolution_param": ("ConvolutionParameter", 106, 10),
  "dropout_param": ("DropoutParameter", 108, 12),
  "eltwise_param": ("EltwiseParameter", 110, 24),
  "inner_product_param": ("InnerProductParameter", 117, 17),
  "input_param": ("InputParameter", 143, None),
  "lrn_param": ("LRNParameter", 118, 18),
  "pooling_param": ("PoolingParameter", 121, 19),
  "relu_param": ("ReLUParameter", 123, 30),
  "scale_param": ("ScaleParameter", 142, None),
  "softmax_param": ("SoftmaxParameter", 125, 39),
}

_MESSAGES: dict[str, list[Field]] = {
  "BlobShape": [("repeated", "int64", "dim", 1, "packed")],
  "BlobProto": [
    ("optional", "BlobShape", "shape", 7, None),
    # caffe.proto: `repeated float data = 5 [packed = true]`, `repeated double double_data = 8
    # [packed = true]`: the same bytes on the wire, read here without a Python float per value.
    # Repeated, as a packed field may come in several runs (Caffe writes one).
    ("repeated", "bytes", "data", 5, None),
    ("repeated", "bytes", "double_data", 8, None),
    ("optional", "int32", "num", 1, "0"),
    ("optional", "int32", "channels", 2, "0"),
    ("optional", "int32", "height", 3, "0"),
    ("optional", "int32", "width", 4, "0"),
  ],
  "NetParameter": [
    ("optional", "string", "name", 1, None),
    ("repeated", "string", "input", 3, None),
    ("repeated", "BlobShape", "input_shape", 8, None),
    ("repeated", "int32", "input_dim", 4, None),
    ("repeated", "LayerParameter", "layer", 100, None),
    ("repeated", "V1LayerParameter", "layers", 2, None),
  ],
  "LayerParameter": [
    ("optional", "string", "name", 1, None),
    ("optional", "string", "type", 2, None),
    ("repeated", "string", "bottom", 3, None),
    ("repeated", "string", "top", 4, None),
    ("repeated", "BlobProto", "blobs", 7, None),
  ]
  + [("optional", m, f, n2, None) for f, (m, n2, _) in _PARAM_FIELDS.items()],
  "V1LayerParameter": [
    ("repeated", "string", "bottom", 2, None),
    ("repeated", "string", "top", 3, None),
    ("optional", "string", "name", 4, None),
    ("optional", "V1LayerParameter.LayerType", "type", 5, None),
    ("repeated", "BlobProto", "blobs", 6, None),
    # caffe.proto: `optional V0LayerParameter layer = 1`, the pre-2014 form; declared only to
    # refuse it by name.
    ("optional", "bytes", "layer", 1, None),
  ]
  + [("optional", m, f, n1, None) for f, (m, _, n1) in _PARAM_FIELDS.items() if n1 is not None],
  "ConcatParameter": [
    ("optional", "int32", "axis", 2, "1"),
    ("optional", "uint32", "concat_dim", 1, "1"),
  ],
  "BatchNormParameter": [
    ("optional", "bool", "use_global_stats", 1, None),
    ("optional", "float", "moving_average_fraction", 2, "0.999"),
    ("optional", "float", "eps", 3, "1e-05"),
  ],
  "ConvolutionParameter": [
    ("optional", "uint32", "num_output", 1, None),
    ("optional", "bool", "bias_term", 2, "true"),
    ("repeated", "uint32", "pad", 3, None),
    ("repeated", "uint32", "kernel_size", 4, None),
    ("repeated", "uint32", "stride", 6, None),
    ("repeated", "uint32", "dilation", 18, None),
    ("optional", "uint32", "pad_h", 9, "0"),
    ("optional", "uint32", "pad_w", 10, "0"),
    ("optional", "uint32", "kernel_h", 11, None),
    ("optional", "uint32", "kernel_w", 12, None),
    ("optional", "uint32", "stride_h", 13, None),
    ("optional", "uint32", "stride_w", 14, None),
    ("optional", "uint32", "group", 5, "1"),
  ],
  "DropoutParameter": [("optional", "float", "dropout_ratio", 1, "0.5")],
  "EltwiseParameter": [
    ("optional", "EltwiseParameter.EltwiseOp", "operation", 1, "SUM"),
    ("repeated", "float", "coeff", 2, None),
  ],
  "InnerProductParameter": [
    ("optional", "uint32", "num_output", 1, None),
    ("optional", "bool", "bias_term", 2, "true"),
    ("optional", "int32", "axis", 5, "1"),
    ("optional", "bool", "transpose", 6, "false"),
  ],
  "InputParameter": [("repeated", "BlobShape", "shape", 1, None)],
  "LRNParameter": [
    ("optional", "uint32", "local_size", 1, "5"),
    ("optional", "float", "alpha", 2, "1"),
    ("optional", "float", "beta", 3, "0.75"),
    ("optional", "LRNParameter.NormRegion", "norm_region", 4, "ACROSS_CHANNELS"),
    ("optional", "float", "k", 5, "1"),
  ],
  "PoolingParameter": [
    ("optional", "PoolingParameter.PoolMethod", "pool", 1, "MAX"),
    ("optional", "uint32", "pad", 4, "0"),
    ("optional", "uint32", "pad_h", 9, "0"),
    ("optional", "uint32", "pad_w", 10, "0"),
    ("optional", "uint32", "kernel_size", 2, None),
    ("optional", "uint32", "kernel_h", 5, None),
    ("optional", "uint32", "kernel_w", 6, None),
    ("optional", "uint32", "stride", 3, "1"),
    ("optional", "uint32", "stride_h", 7, None),
    ("optional", "uint32", "stride_w", 8, None),
    ("optional", "bool", "global_pooling", 12, "false"),
    ("optional", "PoolingParameter.RoundMode", "round_mode", 13, "CEIL"),
  ],
  "ReLUParameter": [("optional", "float", "negative_slope", 1, "0")],
  "ScaleParameter": [
    ("optional", "int32", "axis", 1, "1"),
    ("optional", "int32", "num_axes", 2, "1"),
    ("optional", "bool", "bias_term", 4, "false"),
  ],
  "SoftmaxParameter": [("optional", "int32", "axis", 2, "1")],
}

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
  "double": _FDP.TYPE_DOUBLE,
  "float": _FDP.TYPE_FLOAT,
  "int64": _FDP.TYPE_INT64,
  "int32": _FDP.TYPE_INT32,
  "uint32": _FDP.TYPE_UINT32,
  "bool": _FDP.TYPE_BOOL,
  "string": _FDP.TYPE_STRING,
  "bytes": _FDP.TYPE_BYTES,
}


def _message_classes(file_name: str, messages: dict[str, list[Field]]) -> dict[str, type]:
  """Message classes for `messages` (package `caffe`, proto2) in a descriptor pool of their own."""
  proto = descriptor_pb2.FileDescriptorProto(name=file_name, package="caffe", syntax="proto2")
  for message_name, fields in messages.items():
    message = proto.message_type.add(name=message_name)
    for enum_name, values in _ENUMS.get(message_name, {}).items():
      enum = message.enum_type.add(name=enum_name)
      for value_name, number in values.items():
        enum.value.add(name=value_name, number=number)
    for label, type_name, name, number, default in fields:
      field = message.field.add(name=name, number=number)
      field.label = _FDP.LABEL_REPEATED if label == "repeated" else _FDP.LABEL_OPTIONAL
      if type_name in _SCALARS:
        field.type = _SCALARS[type_name]
      else:
        field.type = _FDP.TYPE_ENUM if "." in type_name else _FDP.TYPE_MESSAGE
        field.type_name = f".caffe.{type_name}"
      if default == "packed":
        field.options.packed = True
      elif default is not None:
        field.default_value = default
  # A pool of its own: no clash with a real caffe_pb2 (or anything else) in the default pool.
  pool = descriptor_pool.DescriptorPool()
  pool.Add(proto)
  return {
    name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{name}"))
    for name in messages
  }


_CLASSES = _message_classes("convzoo_caffe.proto", _MESSAGES)
# The fallback for blobs whose values are not one packed run: caffe.proto's own declarations.
_UNPACKED_CLASSES = _message_classes(
  "convzoo_caffe_unpacked.proto",
  {
    "BlobShape": _MESSAGES["BlobShape"],
    "BlobProto": [
      ("repeated", "float", "data", 5, None)
      if f[2] == "data"
      else ("repeated", "double", "double_data", 8, None)
      if f[2] == "double_data"
      else f
      for f in _MESSAGES["BlobProto"]
    ],
  },
)
_LEGACY_DIMS = ("num", "channels", "height", "width")


# ------------------------------------------------------------------------------------------------
# The API.


class CaffeFormatError(ValueError):
  """A file that is not a readable Caffe model; the message is one line naming the file."""


@dataclasses.dataclass
class CaffeLayer:
  """One Caffe layer: V2 type name, blob names, parameters as plain values, float32 blobs.

  `params` by type (absent fields take caffe.proto's defaults; a size is an int when the same
  in every spatial dim, else a tuple (h, w)):
    Convolution, Deconvolution: num_output, bias_term, kernel, stride, pad, dilation, group
    Pooling: pool ("max", "ave", "stochastic"), kernel (None when global_pooling sets it),
      stride, pad, global_pooling, round_mode ("ceil", "floor")
    LRN: local_size, alpha, beta, k, norm_region ("across_channels", "within_channel")
    InnerProduct: num_output, bias_term, axis, transpose
    BatchNorm: use_global_stats (None when unset: Caffe then uses them in its TEST phase),
      moving_average_fraction, eps
    Scale: bias_term, axis, num_axes      Dropout: dropout_ratio      ReLU: negative_slope
    Eltwise: operation ("sum", "prod", "max"), coeff (a tuple, empty for all ones)
    Concat: axis (the legacy concat_dim when that is set)      Softmax: axis
    Input: shape (a tuple of shapes, one per top)
  Any other type: {}. Floats are the shortest decimals that read back to the stored float32
  (alpha 0.0001, not 9.99999974738e-05).

  `blobs` have the shape the file gives them: V2 files a `shape`, V1 files the legacy 4-d
  (num, channels, height, width), so a V1 InnerProduct weight is (1, 1, out, in) and a V1 bias
  (1, 1, 1, out); callers squeeze. Read blobs are read-only arrays.
  """

  name: str
  type: str
  bottoms: tuple[str, ...] = ()
  tops: tuple[str, ...] = ()
  params: dict[str, Any] = dataclasses.field(default_factory=dict)
  blobs: list[np.ndarray] = dataclasses.field(default_factory=list)


def read_net(path: str | pathlib.Path) -> tuple[str, list[CaffeLayer]]:
  """A `.caffemodel`'s net name and layers in file order (V1 `layers` or V2 `layer`)."""
  path = pathlib.Path(path)
  net = _CLASSES["NetParameter"]()
  data = path.read_bytes()
  try:
    net.ParseFromString(data)
  except DecodeError as e:
    raise CaffeFormatError(f"{path}: not a Caffe model, or cut short ({e})") from None
  del data  # the parsed message holds its own copy: the file's bytes can go before the blobs
  if len(net.layer) and len(net.layers):
    raise CaffeFormatError(f"{path}: holds both V2 `layer` and V1 `layers` definitions")
  if not len(net.layer) and not len(net.layers):
    raise CaffeFormatError(f"{path}: holds no layers (not a Caffe model?)")
  layers = _input_layers(net)
  if len(net.layer):
    layers += [_layer(path, message, message.type) for message in net.layer]
  else:
    for message in net.layers:
      if message.HasField("layer"):
        raise CaffeFormatError(
          f"{path}: layer {message.name!r} is in the V0 form (Caffe before 2014), not supported"
        )
      if not message.HasField("type"):
        raise CaffeFormatError(f"{path}: V1 layer {message.name!r} has no or an unknown type")
      layers.append(_layer(path, message, _V1_TO_V2[message.type]))
  return net.name, layers


def write_net(
  path: str | pathlib.Path, name: str, layers: Sequence[CaffeLayer], v1: bool = False
) -> None:
  """Writes `layers` as a `.caffemodel`: V2 `layer`s, or with `v1` the V1 `layers` form, legacy
  4-d blob dims (left-padded with 1s) and Input layers as the net's `input`/`input_dim`."""
  net = _CLASSES["NetParameter"](name=name)
  framed = []  # (the layer without its blobs, [(the blob without its values, the values)])
  for layer in layers:
    if v1 and layer.type == "Input":
      _set_inputs(net, layer)
      continue
    if v1:
      if layer.type not in _V2_TO_V1:
        raise ValueError(f"layer {layer.name!r}: V1 has no layer type {layer.type!r}")
      message = _CLASSES["V1LayerParameter"](name=layer.name, type=_V2_TO_V1[layer.type])
    else:
      message = _CLASSES["LayerParameter"](name=layer.name, type=layer.type)
    message.bottom.extend(layer.bottoms)
    message.top.extend(layer.tops)
    _set_params(message, layer)
    blobs = []
    for array in layer.blobs:
      values = np.asarray(array, dtype="<f4")  # (ascontiguousarray would make a scalar 1-d)
      blobs.append((_blob_head(values.shape, v1), values.reshape(-1, order="C")))
    framed.append((message, blobs))
  # protobuf would copy every value twice (into its arena, then into the serialized string): 18 s
  # and 4x the file's size in memory for a VGG-16. So protobuf serializes all but the values, and
  # the three enclosing length-delimited fields (net.layer(s), layer.blobs, blob.data) are framed
  # here, the values written straight from their arrays. Fields in another order than Caffe's
  # C++ writes them parse the same.
  layer_field, blobs_field = (2, 6) if v1 else (100, 7)
  with open(path, "wb") as f:
    f.write(net.SerializeToString())
    for message, blobs in framed:
      head = message.SerializeToString()
      parts = []
      for blob_head, values in blobs:
        data_head = _tag(5) + _varint(values.nbytes)  # BlobProto.data, packed
        blob_size = len(blob_head) + len(data_head) + values.nbytes
        parts.append((_tag(blobs_field) + _varint(blob_size) + blob_head + data_head, values))
      size = len(head) + sum(len(p) + v.nbytes for p, v in parts)
      f.write(_tag(layer_field) + _varint(size) + head)
      for prefix, values in parts:
        f.write(prefix)
        f.write(memoryview(values).cast("B"))


# ------------------------------------------------------------------------------------------------
# Reading.


def _input_layers(net: Any) -> list[CaffeLayer]:
  """The net's deprecated input fields as Caffe's UpgradeNetInput turns them into a layer."""
  if not len(net.input) or not (len(net.input_shape) or len(net.input_dim)):
    return []  # an input without dims: Caffe just drops it
  if len(net.input_shape):
    shapes = tuple(tuple(s.dim) for s in net.input_shape)
  else:
    dims = list(net.input_dim)
    shapes = tuple(tuple(dims[4 * i : 4 * i + 4]) for i in range(len(net.input)))
  return [CaffeLayer("input", "Input", (), tuple(net.input), {"shape": shapes}, [])]


def _layer(path: pathlib.Path, message: Any, type_name: str) -> CaffeLayer:
  blobs = [_blob_array(path, message.name, i, blob) for i, blob in enumerate(message.blobs)]
  return CaffeLayer(
    name=message.name,
    type=type_name,
    bottoms=tuple(message.bottom),
    tops=tuple(message.top),
    params=_params(message, type_name),
    blobs=blobs,
  )


def _blob_array(path: pathlib.Path, layer: str, index: int, blob: Any) -> np.ndarray:
  """A blob's values as a read-only float32 array of its shape (Caffe's Blob::FromProto)."""
  if any(blob.HasField(d) for d in _LEGACY_DIMS):
    shape = tuple(getattr(blob, d) for d in _LEGACY_DIMS)
  elif blob.HasField("shape"):
    shape = tuple(blob.shape.dim)
  else:
    shape = None
  where = f"{path}: layer {layer!r} blob {index}"
  if shape is not None and min(shape, default=0) < 0:
    raise CaffeFormatError(f"{where}: negative dimension in shape {shape}")
  count = None if shape is None else math.prod(shape)
  # Caffe prefers double_data when present. Each access copies the payload: read it once.
  runs, dtype = blob.double_data, np.dtype("<f8")
  if not len(runs):
    runs, dtype = blob.data, np.dtype("<f4")
  payload = runs[0] if len(runs) == 1 else b"".join(runs)
  if len(payload) % dtype.itemsize == 0 and count in (None, len(payload) // dtype.itemsize):
    values = np.frombuffer(payload, dtype)
  else:
    try:
      values = _unpacked_values(blob)
    except DecodeError:
      raise CaffeFormatError(f"{where}: {len(payload)} bytes of values, not whole floats") from None
  if count is not None and values.size != count:
    raise CaffeFormatError(f"{where}: {values.size} values, but its shape {shape} holds {count}")
  values = values.astype(np.float32, copy=False).reshape(values.shape if shape is None else shape)
  values.flags.writeable = False
  return values


def _unpacked_values(blob: Any) -> np.ndarray:
  """A blob's values parsed with caffe.proto's `repeated float`/`repeated double` declarations,
  for values not packed (protobuf kept them as unknown fields): slow, and rare."""
  full = _UNPACKED_CLASSES["BlobProto"].FromString(blob.SerializeToString())
  if len(full.double_data):
    return np.array(full.double_data, np.float64)
  return np.array(full.data, np.float32)


def _f32(value: float) -> float:
  """A float32 field's value as the shortest decimal that reads back to the same float32."""
  return float(str(np.float32(value)))


def _enum_name(message: Any, field: str) -> str:
  number = getattr(message, field)
  return message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[number].name.lower()


def _size(values: Sequence[int]) -> int | tuple[int, ...]:
  """An int when every spatial dim has the same size, else a tuple."""
  values = tuple(int(v) for v in values)
  return values[0] if len(set(values)) == 1 else values


# The parameters read one to one from a layer's parameter message: type → (field, [(key, kind)]).
_PLAIN: dict[str, tuple[str, list[tuple[str, str]]]] = {
  "LRN": (
    "lrn_param",
    [("local_size", "int"), ("alpha", "float"), ("beta", "float"), ("k", "float")]
    + [("norm_region", "enum")],
  ),
  "InnerProduct": (
    "inner_product_param",
    [("num_output", "int"), ("bias_term", "bool"), ("axis", "int"), ("transpose", "bool")],
  ),
  "BatchNorm": (
    "batch_norm_param",
    [("use_global_stats", "bool?"), ("moving_average_fraction", "float"), ("eps", "float")],
  ),
  "Scale": ("scale_param", [("bias_term", "bool"), ("axis", "int"), ("num_axes", "int")]),
  "Dropout": ("dropout_param", [("dropout_ratio", "float")]),
  "Eltwise": ("eltwise_param", [("operation", "enum"), ("coeff", "floats")]),
  "ReLU": ("relu_param", [("negative_slope", "float")]),
  "Softmax": ("softmax_param", [("axis", "int")]),
}


def _params(message: Any, type_name: str) -> dict[str, Any]:
  if type_name in ("Convolution", "Deconvolution"):
    return _conv_params(message.convolution_param)
  if type_name == "Pooling":
    return _pool_params(message.pooling_param)
  if type_name == "Concat":
    p = message.concat_param
    return {"axis": int(p.concat_dim if p.HasField("concat_dim") else p.axis)}
  if type_name == "Input":
    if "input_param" not in message.DESCRIPTOR.fields_by_name:
      return {}
    return {"shape": tuple(tuple(s.dim) for s in message.input_param.shape)}
  if type_name not in _PLAIN:
    return {}
  field, keys = _PLAIN[type_name]
  if field not in message.DESCRIPTOR.fields_by_name:  # a V1 layer has no such field
    return {}
  p = getattr(message, field)
  params: dict[str, Any] = {}
  for key, kind in keys:
    value = getattr(p, key)
    if kind == "float":
      value = _f32(value)
    elif kind == "floats":
      value = tuple(_f32(v) for v in value)
    elif kind == "enum":
      value = _enum_name(p, key)
    elif kind == "bool?":
      value = bool(value) if p.HasField(key) else None
    elif kind == "bool":
      value = bool(value)
    else:
      value = int(value)
    params[key] = value
  return params


def _conv_params(p: Any) -> dict[str, Any]:
  """BaseConvolutionLayer::LayerSetUp's reading: `x_h`/`x_w` when set, else the repeated `x`
  (one value for every dim, or one per dim), else the default."""

  def spatial(name: str, default: int | None) -> int | tuple[int, ...] | None:
    if name != "dilation" and (p.HasField(f"{name}_h") or p.HasField(f"{name}_w")):
      return _size((getattr(p, f"{name}_h"), getattr(p, f"{name}_w")))
    values = getattr(p, "kernel_size" if name == "kernel" else name)
    return _size(values) if len(values) else default

  return {
    "num_output": int(p.num_output),
    "bias_term": bool(p.bias_term),
    "kernel": spatial("kernel", None),
    "stride": spatial("stride", 1),
    "pad": spatial("pad", 0),
    "dilation": spatial("dilation", 1),
    "group": int(p.group),
  }


def _pool_params(p: Any) -> dict[str, Any]:
  """PoolingLayer::LayerSetUp's reading: `kernel_size`, or `kernel_h`/`kernel_w`; `pad` unless
  `pad_h` is set; `stride` unless `stride_h` is set."""
  if p.HasField("kernel_size"):
    kernel = int(p.kernel_size)
  elif p.HasField("kernel_h") or p.HasField("kernel_w"):
    kernel = _size((p.kernel_h, p.kernel_w))
  else:
    kernel = None  # global pooling: the input's size
  return {
    "pool": _enum_name(p, "pool"),
    "kernel": kernel,
    "stride": _size((p.stride_h, p.stride_w)) if p.HasField("stride_h") else int(p.stride),
    "pad": _size((p.pad_h, p.pad_w)) if p.HasField("pad_h") else int(p.pad),
    "global_pooling": bool(p.global_pooling),
    "round_mode": _enum_name(p, "round_mode"),
  }


# ------------------------------------------------------------------------------------------------
# Writing.


def _set_params(message: Any, layer: CaffeLayer) -> None:
  params = dict(layer.params)
  if not params:
    return  # caffe.proto's defaults
  t = layer.type

  def field(name: str) -> Any:
    if name not in message.DESCRIPTOR.fields_by_name:
      raise ValueError(f"layer {layer.name!r}: V1 layers have no {name}")
    return getattr(message, name)

  if t in ("Convolution", "Deconvolution"):
    p = field("convolution_param")
    for key in ("num_output", "bias_term", "group"):
      if key in params:
        setattr(p, key, params.pop(key))
    for key, default in (("kernel", None), ("stride", 1), ("pad", 0), ("dilation", 1)):
      value = params.pop(key, default)
      if value is None or value == default:
        continue
      if isinstance(value, int):
        getattr(p, "kernel_size" if key == "kernel" else key).append(value)
      elif len(value) == 2 and key != "dilation":
        setattr(p, f"{key}_h", value[0])
        setattr(p, f"{key}_w", value[1])
      else:
        getattr(p, "kernel_size" if key == "kernel" else key).extend(value)
  elif t == "Pooling":
    p = field("pooling_param")
    if "pool" in params:
      p.pool = _enum_number(p, "pool", params.pop("pool"))
    if "round_mode" in params:
      p.round_mode = _enum_number(p, "round_mode", params.pop("round_mode"))
    if "global_pooling" in params:
      p.global_pooling = params.pop("global_pooling")
    for key, default in (("kernel", None), ("stride", 1), ("pad", 0)):
      value = params.pop(key, default)
      if value is None or value == default:
        continue
      if isinstance(value, int):
        setattr(p, "kernel_size" if key == "kernel" else key, value)
      else:
        setattr(p, f"{key}_h", value[0])
        setattr(p, f"{key}_w", value[1])
  elif t == "Concat":
    field("concat_param").axis = params.pop("axis", 1)
  elif t == "Input":
    p = field("input_param")
    for shape in params.pop("shape", ()):
      p.shape.add().dim.extend(shape)
  elif t in _PLAIN:
    name, keys = _PLAIN[t]
    p = field(name)
    for key, kind in keys:
      if key not in params:
        continue
      value = params.pop(key)
      if kind == "enum":
        setattr(p, key, _enum_number(p, key, value))
      elif kind == "floats":
        getattr(p, key).extend(value)
      elif value is not None:
        setattr(p, key, value)
  if params:
    raise ValueError(f"layer {layer.name!r} ({t}): unknown parameters {sorted(params)}")


def _enum_number(message: Any, field: str, name: str) -> int:
  values = message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_name
  if name.upper() not in values:
    raise ValueError(f"{field} {name!r}: one of {[v.lower() for v in values]}")
  return values[name.upper()].number


def _set_inputs(net: Any, layer: CaffeLayer) -> None:
  """A V1 net's Input layer as the net's `input` and `input_dim` (4-d) or `input_shape` fields."""
  shapes = layer.params.get("shape", ())
  if len(shapes) != len(layer.tops):
    raise ValueError(f"Input layer {layer.name!r}: one shape per top, got {shapes}")
  net.input.extend(layer.tops)
  for shape in shapes:
    if len(shape) == 4 and not len(net.input_shape):
      net.input_dim.extend(shape)
    else:
      net.input_shape.add().dim.extend(shape)
  if len(net.input_shape) and len(net.input_dim):
    raise ValueError("V1 inputs: all 4-d (input_dim), or given by input_shape")


def _blob_head(shape: tuple[int, ...], v1: bool) -> bytes:
  """A BlobProto's serialized shape: `shape`, or in V1 the legacy 4-d dims."""
  blob = _CLASSES["BlobProto"]()
  if v1 and len(shape) <= 4:
    for name, dim in zip(_LEGACY_DIMS, (1,) * (4 - len(shape)) + shape, strict=True):
      setattr(blob, name, dim)
  else:
    blob.shape.SetInParent()  # present even for a scalar's empty shape
    blob.shape.dim.extend(shape)
  return blob.SerializeToString()


def _varint(value: int) -> bytes:
  out = bytearray()
  while value > 0x7F:
    out.append(value & 0x7F | 0x80)
    value >>= 7
  out.append(value)
  return bytes(out)


def _tag(number: int) -> bytes:
  """The key of length-delimited field `number` (wire type 2)."""
  return _varint(number << 3 | 2)
