"""Layout conversions from PyTorch's and Caffe's tensors to convzoo's, and the strict bookkeeping
of an import: every source tensor used exactly once, every convzoo variable filled once.

PyTorch and Caffe store a convolution's kernel as [out, in/groups, height, width] (OIHW) and a
fully connected layer's as [out, in]; Flax wants [height, width, in/groups, out] (HWIO) and
[in, out]. Grouped kernels need nothing more: both stack the groups along the output axis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

Path = tuple[str, ...]  # (collection, layer, ..., variable), e.g. ("params", "conv1", "kernel")


def conv_kernel(weight: np.ndarray) -> np.ndarray:
  """OIHW → HWIO."""
  if weight.ndim != 4:
    raise ValueError(f"a convolution kernel has 4 axes, not shape {weight.shape}")
  return weight.transpose(2, 3, 1, 0)


def dense_kernel(
  weight: np.ndarray, channels_first: tuple[int, int, int] | None = None
) -> np.ndarray:
  """[out, in] → [in, out]. `channels_first` = (C, H, W) when the layer's input is a flattened
  C×H×W map: PyTorch and Caffe flatten NCHW (channel slowest), convzoo flattens NHWC (channel
  fastest), so the input axis is permuted from (c, h, w) to (h, w, c) order."""
  weight = (
    weight.reshape(weight.shape[0], -1)
    if weight.ndim == 4 and weight.shape[2:] == (1, 1)
    else weight
  )
  if weight.ndim == 4:  # timm's VGG stores fc6 as a 7×7 convolution: OIHW, i.e. NCHW order
    out, channels, height, width = weight.shape
    return weight.transpose(2, 3, 1, 0).reshape(height * width * channels, out)
  if weight.ndim != 2:
    raise ValueError(f"a fully connected weight has 2 axes, not shape {weight.shape}")
  if channels_first is None:
    return weight.T
  channels, height, width = channels_first
  out = weight.shape[0]
  if weight.shape[1] != channels * height * width:
    raise ValueError(
      f"a fully connected weight of shape {weight.shape} cannot read a "
      f"{channels}×{height}×{width} map"
    )
  return weight.reshape(out, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, out)


class Transfer:
  """Source tensors in, convzoo variables out, each exactly once.

  `take` hands out a source tensor (a second take of one name is an error); `put` fills a
  convzoo variable, checking its shape. `finish` names what is left over or missing.
  The source dict is consumed: each tensor leaves it when taken, so its memory is freed as
  soon as its converted copy exists (a VGG-19 import would otherwise hold both whole).
  """

  def __init__(self, source: dict[str, np.ndarray], target_shapes: Mapping[Path, tuple]):
    self.source = source
    self.target_shapes = dict(target_shapes)
    self.taken: set[str] = set()
    self.values: dict[Path, np.ndarray] = {}

  def has(self, name: str) -> bool:
    return name in self.source or name in self.taken

  def take(self, name: str) -> np.ndarray:
    if name in self.taken:
      raise ValueError(f"tensor {name!r} would be used twice")
    if name not in self.source:
      raise ValueError(f"the file has no tensor {name!r}, which this network needs")
    self.taken.add(name)
    return np.asarray(self.source.pop(name))

  def skip(self, names: Iterable[str]) -> None:
    """Marks bookkeeping tensors (batch norm's num_batches_tracked) as used."""
    for name in names:
      if self.source.pop(name, None) is not None:
        self.taken.add(name)

  def put(self, path: Path, value: np.ndarray, source: str = "") -> None:
    where = "/".join(path[1:])
    if path not in self.target_shapes:
      raise ValueError(f"convzoo's network has no variable {where} (for {source or 'a tensor'})")
    if path in self.values:
      raise ValueError(f"variable {where} would be filled twice")
    wanted = tuple(self.target_shapes[path])
    if tuple(value.shape) != wanted:
      raise ValueError(
        f"{source or 'a tensor'} has shape {tuple(value.shape)} where convzoo's {where} "
        f"needs {wanted}: the file holds another network or variant"
      )
    self.values[path] = np.ascontiguousarray(value, dtype=np.float32)

  def finish(self) -> dict[Path, np.ndarray]:
    """The filled variables, or a ValueError naming the first leftover or missing ones."""
    leftover = list(self.source)
    if leftover:
      shown = ", ".join(leftover[:5]) + (
        f" and {len(leftover) - 5} more" if len(leftover) > 5 else ""
      )
      raise ValueError(
        f"{len(leftover)} tensor(s) of the file have no place in this network: {shown}"
      )
    missing = ["/".join(path[1:]) for path in self.target_shapes if path not in self.values]
    if missing:
      shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
      raise ValueError(f"{len(missing)} variable(s) of the network were not filled: {shown}")
    return self.values
