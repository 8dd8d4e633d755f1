"""TFDS datasets read offline through `tfds.data_source` (ArrayRecord, no TensorFlow needed)."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds
from absl import logging as absl_logging

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
READ_CHUNK = 4096  # records per data_source read


class _DropOpenCVAdvice(logging.Filter):
  """TFDS recommends OpenCV at the first image decode; convzoo decodes with PIL on purpose."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "OpenCV is not installed" not in record.getMessage()


absl_logging.get_absl_logger().addFilter(_DropOpenCVAdvice())


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR") or str(REPO_ROOT / "data" / "tfds")


def resolve_data_dir(data_dir: str) -> str:
  return data_dir or default_data_dir()


def how_to_prepare(name: str, data_dir: str) -> str:
  if name == "fashion_mnist":
    return f"run `make data` (or `.venv/bin/python -m input_pipeline.fashion_mnist --data_dir={data_dir}`)"
  return (f"prepare it offline with TFDS into {data_dir} in ArrayRecord format "
          f"(`tfds build {name} --data_dir={data_dir} --file_format=array_record`)")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  image_shape: tuple[int, ...]
  split_sizes: dict[str, int]


def open_builder(name: str, data_dir: str) -> tfds.core.DatasetBuilder:
  """A prepared TFDS builder, or a ValueError saying what is wrong and how to fix it.

  Never downloads: TFDS retries for minutes when there is no network.
  """
  if name not in tfds.list_builders(with_community_datasets=False):
    raise ValueError(f"unknown dataset {name!r}; use a TFDS dataset name such as fashion_mnist, "
                     "mnist, cifar10, imagenette, imagenet2012")
  prepared_here = any(pathlib.Path(data_dir, name).glob("**/dataset_info.json"))
  builder = tfds.builder(name, data_dir=data_dir) if prepared_here else None
  if builder is None or not builder.is_prepared():
    raise ValueError(f"dataset {name!r} is not prepared in {data_dir}; {how_to_prepare(name, data_dir)}")
  return builder


def dataset_info(name: str, data_dir: str) -> DatasetInfo:
  info = open_builder(name, data_dir).info
  if "image" not in info.features or "label" not in info.features:
    raise ValueError(f"dataset {name!r} has features {list(info.features)}; "
                     "convzoo needs an image-classification dataset with 'image' and 'label'")
  return DatasetInfo(name, info.features["label"].num_classes, tuple(info.features["image"].shape),
                     {split: info.splits[split].num_examples for split in info.splits})


def check_split(info: DatasetInfo, split: str) -> None:
  base = split.split("[")[0]
  if base not in info.split_sizes:
    raise ValueError(f"unknown split {split!r} of dataset {info.name!r}; "
                     f"known: {', '.join(sorted(info.split_sizes))}")


@functools.lru_cache(maxsize=4)
def load_split(name: str, split: str, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads a whole split into memory once: images uint8 [N, H, W, C], labels int32 [N] (read-only)."""
  info = dataset_info(name, data_dir)
  check_split(info, split)
  if any(d is None for d in info.image_shape):
    raise ValueError(f"dataset {name!r} has images of varying shape {info.image_shape}; "
                     "the in-memory loader needs one fixed shape")
  source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  images = np.empty((len(source), *info.image_shape), np.uint8)
  labels = np.empty((len(source),), np.int32)
  for start in range(0, len(source), READ_CHUNK):
    records = source.__getitems__(list(range(start, min(start + READ_CHUNK, len(source)))))
    for offset, record in enumerate(records):
      images[start + offset] = record["image"]
      labels[start + offset] = record["label"]
  images.flags.writeable = labels.flags.writeable = False
  return images, labels
