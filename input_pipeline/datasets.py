"""TFDS datasets read offline through `tfds.data_source` (ArrayRecord, no TensorFlow needed)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import types
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

import config_values

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


class _DropOpenCVAdvice(logging.Filter):
  """TFDS recommends OpenCV at the first image decode; convzoo decodes with PIL on purpose."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "OpenCV is not installed" not in record.getMessage()


_DROP_OPENCV_ADVICE = _DropOpenCVAdvice()


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR") or str(REPO_ROOT / "data" / "tfds")


def resolve_data_dir(data_dir: str) -> str:
  return data_dir or default_data_dir()


def how_to_prepare(name: str, data_dir: str) -> str:
  if name == "fashion_mnist":
    return (
      f"run `make data` (or `.venv/bin/python -m input_pipeline.fashion_mnist "
      f"--data_dir={data_dir}`)"
    )
  manual = (
    " --manual_dir=DIR_WITH_ILSVRC2012_img_train.tar_AND_ILSVRC2012_img_val.tar"
    if name == "imagenet2012"
    else ""
  )
  return (
    f"prepare it offline with TFDS into {data_dir} in ArrayRecord format "
    f"(`tfds build {name} --data_dir={data_dir} --file_format=array_record{manual}`)"
  )


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  image_shape: tuple[int | None, ...]  # [H, W, C]; None for sizes that vary
  split_sizes: dict[str, int]  # empty where TFDS does not know them (mocked data)
  classes: tuple[int, ...] = ()  # the dataset's class ids kept (dataset.classes); (): all


def _tfds_is_mocked() -> bool:
  """Inside `tfds.testing.mock_data`, records are generated without prepared files."""
  prepare = tfds.core.DatasetBuilder.download_and_prepare
  return getattr(prepare, "__name__", "") == "mock_download_and_prepare"


def open_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """A prepared TFDS builder, or a ValueError saying what is wrong and how to fix it.

  Never downloads: TFDS retries for minutes when there is no network.
  """
  if name not in tfds.list_builders(with_community_datasets=False):
    raise ValueError(
      f"unknown dataset {name!r}; use synthetic or a TFDS dataset name such as "
      "fashion_mnist, mnist, cifar10, imagenette, imagenet2012"
    )
  if _tfds_is_mocked():
    return tfds.builder(name, data_dir=data_dir)
  version = tfds.builder_cls(name).VERSION  # what this TFDS reads (folders of others warn)
  prepared_here = any(pathlib.Path(data_dir, name).glob(f"**/{version}/dataset_info.json"))
  try:
    builder = tfds.builder(name, data_dir=data_dir) if prepared_here else None
  except Exception as error:  # TFDS raises protobuf, JSON and OS errors for damaged metadata
    raise DatasetDamaged(
      name, data_dir, f"its metadata ({name}/*/dataset_info.json) cannot be read", error
    ) from None
  if builder is None or not builder.is_prepared():
    found = sorted(p.parent.name for p in pathlib.Path(data_dir, name).glob("**/dataset_info.json"))
    other = (
      f" (found version {', '.join(found)}, prepared by another TFDS; this one reads {version})"
      if found
      else ""
    )
    raise ValueError(
      f"dataset {name!r} is not prepared in {data_dir}{other}; {how_to_prepare(name, data_dir)}"
    )
  return builder


def dataset_info(dataset_config: Any) -> DatasetInfo:
  """Name, classes, image shape and split sizes, from TFDS or the synthetic dataset's config."""
  if dataset_config.name == SYNTHETIC:
    return synthetic_info(dataset_config)
  name = dataset_config.name
  info = open_builder(name, resolve_data_dir(dataset_config.data_dir)).info
  if "image" not in info.features or "label" not in info.features:
    raise ValueError(
      f"dataset {name!r} has features {list(info.features)}; "
      "convzoo needs an image-classification dataset with 'image' and 'label'"
    )
  return DatasetInfo(
    name,
    info.features["label"].num_classes,
    tuple(info.features["image"].shape),
    {split: info.splits[split].num_examples for split in info.splits},
  )


def class_names(dataset_config: Any, info: DatasetInfo) -> list[str]:
  """The dataset's class names (of the classes kept), else the class ids as text."""
  names = [str(i) for i in range(info.num_classes)]
  if dataset_config.name != SYNTHETIC:
    builder = open_builder(dataset_config.name, resolve_data_dir(dataset_config.data_dir))
    label = builder.info.features["label"]
    known = list(label.names) if getattr(label, "names", None) else []
    ids = info.classes or range(len(known))
    names = [known[i] for i in ids] if known else names
  return names


def check_split(info: DatasetInfo, split: str) -> None:
  if info.split_sizes:  # "train[:5%]" is a slice of "train"
    config_values.check_choice(
      "split", split.split("[")[0], set(info.split_sizes), of=f"dataset {info.name!r}"
    )


def split_size(info: DatasetInfo, split: str) -> int | None:
  """How many examples `split` holds ("train", "train[:5%]", "train[:100]+test[:10]"), or None
  where TFDS does not know the sizes (mocked data)."""
  known = {name: types.SimpleNamespace(num_examples=n) for name, n in info.split_sizes.items()}
  if split.split("[")[0] not in known:
    return info.split_sizes.get(split)
  try:
    parts = tfds.core.ReadInstruction.from_spec(split).to_absolute(known)
  except (AssertionError, ValueError) as error:  # a slice past the end, a malformed one
    raise ValueError(f"split {split!r} of dataset {info.name!r}: {error}") from None
  return sum(len(range(known[p.splitname].num_examples)[p.from_ : p.to]) for p in parts)


class DatasetDamaged(ValueError):
  """A prepared dataset whose files are missing or do not read; preparing it again fixes it."""

  def __init__(self, name: str, data_dir: str, what: str, error: Exception | None = None):
    reason = f" ({' '.join(str(error).split())[:300]})" if error is not None else ""
    super().__init__(
      f"dataset {name!r} in {data_dir} is damaged: {what}{reason}; prepare it again: "
      f"delete {pathlib.Path(data_dir, name)} and {how_to_prepare(name, data_dir)}"
    )


class TfdsSource:
  """Random access to (image uint8 [H, W, C], label) of one split, through `tfds.data_source`.

  Its files are checked when it opens (a missing one is named before anything compiles); a
  read that fails (a truncated or corrupted file) is a DatasetDamaged naming the files.
  """

  def __init__(self, name: str, split: str, data_dir: str):
    absl_logging.get_absl_logger().addFilter(_DROP_OPENCV_ADVICE)  # added once, however often
    self._name, self._data_dir, self._split = name, data_dir, split
    try:
      self._records = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as error:
      raise DatasetDamaged(name, data_dir, f"its {split!r} split cannot be opened", error) from None
    if not _tfds_is_mocked():
      self._files = [
        pathlib.Path(p) for p in self._records.dataset_info.splits[split.split("[")[0]].filepaths
      ]
      missing = [str(p) for p in self._files if not p.is_file()]
      if missing:
        raise DatasetDamaged(name, data_dir, f"missing {', '.join(missing)}")

  def _damaged(self, error: Exception) -> DatasetDamaged:
    files = ", ".join(str(p) for p in self._files)
    return DatasetDamaged(self._name, self._data_dir, f"reading {files} failed", error)

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
    try:
      record = self._records[int(index)]
    except (RuntimeError, OSError, ValueError) as error:  # Riegeli's and protobuf's errors
      raise self._damaged(error) from None
    return np.asarray(record["image"]), int(record["label"])

  def fingerprint(self) -> str | None:
    """What identifies the split's prepared files: their folder, names, sizes and modification
    times (None inside tfds.testing, which generates records without files)."""
    if _tfds_is_mocked():
      return None
    folder = pathlib.Path(self._records.dataset_info.data_dir).resolve()
    files = sorted(
      (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()
    )
    return json.dumps([str(folder), self._split, files])

  def get_many(self, indices: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Several examples in one ArrayRecord read (much faster than one by one for small images)."""
    keys = [int(i) for i in indices]
    if _tfds_is_mocked():  # the mock serves records one at a time
      return [self[key] for key in keys]
    try:
      records = self._records.__getitems__(keys)
    except (RuntimeError, OSError, ValueError) as error:  # Riegeli's and protobuf's errors
      raise self._damaged(error) from None
    return [(np.asarray(r["image"]), int(r["label"])) for r in records]


# ---------------------------------------------------------------------------------------------
# The synthetic dataset: deterministic random images, for smoke runs and throughput figures.

SYNTHETIC = "synthetic"


def synthetic_info(dataset_config: Any) -> DatasetInfo:
  """Its splits are the config's train and eval splits, whatever their names."""
  c = dataset_config.synthetic
  return DatasetInfo(
    SYNTHETIC,
    c.num_classes,
    (c.image_size, c.image_size, c.channels),
    {dataset_config.train_split: c.train_examples, dataset_config.eval_split: c.eval_examples},
  )


class SyntheticSource:
  """Image i of a split is a function of (seed, split, i): noise around its class's colour."""

  def __init__(self, synthetic: Any, train: bool):
    self._config, self._split = synthetic, 0 if train else 1
    self._size = synthetic.train_examples if train else synthetic.eval_examples

  def __len__(self) -> int:
    return self._size

  def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
    c = self._config
    rng = np.random.default_rng([c.seed, self._split, int(index)])
    label = int(rng.integers(c.num_classes))
    colour = np.random.default_rng([c.seed, 2, label]).integers(0, 160, c.channels)
    noise = rng.integers(0, 96, (c.image_size, c.image_size, c.channels))
    return (colour + noise).astype(np.uint8), label

  def fingerprint(self) -> None:
    """Never cached: generating is as fast as reading back."""
    return None

  def get_many(self, indices: np.ndarray) -> list[tuple[np.ndarray, int]]:
    return [self[i] for i in indices]


def open_source(dataset_config: Any, split: str) -> TfdsSource | SyntheticSource:
  if dataset_config.name == SYNTHETIC:
    return SyntheticSource(dataset_config.synthetic, split == dataset_config.train_split)
  return TfdsSource(dataset_config.name, split, resolve_data_dir(dataset_config.data_dir))
