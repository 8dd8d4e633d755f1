"""Input pipelines: TFDS datasets, normalisation, train and eval batches."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from input_pipeline import datasets
from input_pipeline.pipeline import Normalizer, eval_batches, train_batches

__all__ = ["Data", "load_data", "check_dataset", "eval_batches", "train_batches"]


@dataclasses.dataclass(frozen=True)
class Data:
  """Normalised train and eval splits held in memory."""
  info: datasets.DatasetInfo
  train_images: np.ndarray  # float32 [N, H, W, C]
  train_labels: np.ndarray  # int32 [N]
  eval_images: np.ndarray
  eval_labels: np.ndarray
  normalizer: Normalizer


def check_dataset(dataset_config: Any) -> datasets.DatasetInfo:
  """Checks name, preparation and splits without reading any data; returns the dataset's info."""
  data_dir = datasets.resolve_data_dir(dataset_config.data_dir)
  info = datasets.dataset_info(dataset_config.name, data_dir)
  for split in (dataset_config.train_split, dataset_config.eval_split):
    datasets.check_split(info, split)
  return info


def load_data(dataset_config: Any) -> Data:
  info = check_dataset(dataset_config)
  data_dir = datasets.resolve_data_dir(dataset_config.data_dir)
  train_images, train_labels = datasets.load_split(info.name, dataset_config.train_split, data_dir)
  eval_images, eval_labels = datasets.load_split(info.name, dataset_config.eval_split, data_dir)
  normalizer = Normalizer.from_images(train_images, dataset_config.pad)
  return Data(info, normalizer(train_images), train_labels, normalizer(eval_images), eval_labels,
              normalizer)
