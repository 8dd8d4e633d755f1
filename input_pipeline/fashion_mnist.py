"""Prepares the real Fashion-MNIST as the standard TFDS `fashion_mnist` dataset, offline.

Debian's `dataset-fashion-mnist` package ships the original IDX files (re-gzipped, so their
checksums differ from the ones TFDS registers). The builder below is TFDS's own FashionMNIST
with those local files as its source and PIL as its PNG encoder (TFDS encodes with TensorFlow,
which convzoo does not install); the result is read back by TFDS's registered builder.

  .venv/bin/python -m input_pipeline.fashion_mnist [--source_dir=DIR] [--data_dir=DIR]
"""

from __future__ import annotations

import gzip
import io
import os
import pathlib
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import flags
from PIL import Image
from tensorflow_datasets.image_classification import mnist

NAME = "fashion_mnist"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
HOW_TO_GET = (
  "install Debian's package (`apt-get update && apt-get install dataset-fashion-mnist`) "
  "or pass --source_dir / set FASHION_MNIST_DIR to a folder holding the four IDX .gz files"
)


def read_idx(path: pathlib.Path) -> np.ndarray:
  """Reads a (gzipped) IDX file of unsigned bytes: magic 0x0000 08 NDIM, dims, data."""
  with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
    raw = f.read()
  if raw[:3] != b"\x00\x00\x08":
    raise ValueError(f"{path} is not an IDX file of unsigned bytes")
  ndim = raw[3]
  dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find_source_dir(source_dir: str | None = None) -> pathlib.Path:
  """The first folder holding all four IDX files, or a FileNotFoundError saying how to get them."""
  candidates = [source_dir, os.environ.get("FASHION_MNIST_DIR"), DEBIAN_DIR]
  for candidate in filter(None, candidates):
    folder = pathlib.Path(candidate)
    if all((folder / f).exists() for pair in FILES.values() for f in pair):
      return folder
  tried = ", ".join(filter(None, candidates))
  raise FileNotFoundError(f"Fashion-MNIST IDX files not found (looked in: {tried}); {HOW_TO_GET}")


def png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image, mode="L").save(buffer, format="PNG")
  return buffer.getvalue()


class LocalFashionMNIST(mnist.FashionMNIST, skip_registration=True):
  """TFDS's FashionMNIST (same name, version, features) built from local IDX files."""

  name = NAME

  def __init__(self, *, source_dir: pathlib.Path, **kwargs):
    self._source_dir = source_dir
    super().__init__(**kwargs)

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing is downloaded
    return {
      split: self._generate_examples(*(self._source_dir / f for f in files))
      for split, files in FILES.items()
    }

  def _generate_examples(self, images_path, labels_path) -> Iterator:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if len(images) != len(labels):
      raise ValueError(
        f"{images_path} has {len(images)} images but {labels_path} {len(labels)} labels"
      )
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
      yield index, {"image": png_bytes(image), "label": int(label)}


def prepare(data_dir: str, source_dir: str | None = None) -> pathlib.Path:
  """Builds `fashion_mnist` in `data_dir` unless it is already there; returns its folder."""
  builder = tfds.builder(NAME, data_dir=data_dir)
  if builder.is_prepared():
    return pathlib.Path(builder.data_dir)
  local = LocalFashionMNIST(
    source_dir=find_source_dir(source_dir), data_dir=data_dir, file_format="array_record"
  )
  local.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return pathlib.Path(local.data_dir)


def prepare_from_flags() -> str:
  from input_pipeline.datasets import default_data_dir

  folder = prepare(flags.FLAGS.data_dir or default_data_dir(), flags.FLAGS.source_dir)
  return f"{NAME} is prepared in {folder}"


if __name__ == "__main__":
  import cli  # the runner of every program: one-line errors

  flags.DEFINE_string("data_dir", "", "TFDS data dir ('' = $TFDS_DATA_DIR or <repo>/data/tfds)")
  flags.DEFINE_string("source_dir", None, "folder holding the four Fashion-MNIST IDX .gz files")
  cli.run(prepare_from_flags)
