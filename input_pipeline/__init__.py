"""Input pipelines: datasets (TFDS or synthetic) → host preprocessing → uint8 batches →
device augmentation.

`load_data(config)` opens the train and eval splits, `check_dataset(config)` checks a config's
data fields without reading any image; the train and eval steps turn the uint8 batches into
network inputs with `augment.make_train_preprocess` / `make_eval_preprocess`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any

import caches
import config_values
from input_pipeline import augment, datasets, preprocess
from input_pipeline.augment import ColorStats
from input_pipeline.pipeline import SplitReader, eval_batches, train_batches

__all__ = ["Data", "load_data", "check_dataset", "eval_batches", "train_batches", "ColorStats"]


@dataclasses.dataclass(frozen=True)
class Data:
  """The train and eval splits, ready to batch, and the colour statistics of the train split."""

  info: datasets.DatasetInfo
  train: SplitReader
  eval: SplitReader
  stats: ColorStats

  @property
  def stored_shape(self) -> tuple[int, ...]:
    return self.train.shape


def input_shape(config: Any, info: datasets.DatasetInfo) -> tuple[int, int, int]:
  """The shape the network sees: the stored shape, cropped to `dataset.crop_size` if set."""
  height, width, channels = preprocess.stored_shape(config.dataset, info.image_shape)
  size = config.dataset.crop_size
  if size and size > min(height, width):
    raise ValueError(
      f"dataset.crop_size {size} is larger than the stored image "
      f"{height}×{width}; lower it or raise dataset.resize / center_crop"
    )
  return (size, size, channels) if size else (height, width, channels)


def parse_classes(text: str, num_classes: int) -> tuple[int, ...]:
  """ "0-4" or "5,7,9" → the class ids kept (empty: all); a ValueError names a bad entry."""
  classes: list[int] = []
  for entry in config_values.split_list(text):
    first, _, last = entry.partition("-")
    try:
      span = range(int(first), int(last or first) + 1)
      if not span:  # "7-3"
        raise ValueError(entry)
    except ValueError:
      raise ValueError(
        f"bad dataset.classes entry {entry!r}; use ids and ranges, e.g. \"0-4\" or \"5,7,9\""
      ) from None
    for label in span:
      if not 0 <= label < num_classes or label in classes:
        raise ValueError(
          f"dataset.classes: class {label} is out of range 0–{num_classes - 1} or given twice"
        )
      classes.append(label)
  return tuple(classes)


def dataset_info(dataset_config: Any) -> datasets.DatasetInfo:
  """The dataset's info, with the classes `dataset.classes` keeps (and their number)."""
  info = datasets.dataset_info(dataset_config)
  classes = parse_classes(dataset_config.classes, info.num_classes)
  if classes:
    info = dataclasses.replace(info, num_classes=len(classes), classes=classes)
  return info


def check_dataset(config: Any) -> datasets.DatasetInfo:
  """Checks the config's data fields without reading images; returns the dataset's info
  (with the number of classes kept by `dataset.classes`)."""
  dataset = config.dataset
  info = dataset_info(dataset)
  for split in (dataset.train_split, dataset.eval_split):
    datasets.check_split(info, split)
  crop = input_shape(config, info)
  stored = preprocess.stored_shape(dataset, info.image_shape)
  if config.eval.ten_crop and crop[:2] == stored[:2]:
    raise ValueError(
      f"eval.ten_crop: the crop ({crop[0]}×{crop[1]}) is the whole stored image, so its ten crops "
      "would be one image five times and its mirror five times; set dataset.crop_size below "
      f"{min(stored[:2])} or leave eval.ten_crop off"
    )
  config_values.check_choice("dataset.normalization", dataset.normalization, augment.NORMALIZATIONS)
  check_convention(augment.InputConvention.of(dataset), dataset.normalization, crop[-1])
  stats_path(config)
  return info


def check_convention(
  convention: augment.InputConvention, normalization: str, channels: int
) -> None:
  """A ValueError naming the first input-convention field (`dataset.channel_order`, …) that
  cannot apply to these images and this normalisation."""
  config_values.check_choice(
    "dataset.channel_order", convention.channel_order, augment.CHANNEL_ORDERS
  )
  if convention.channel_order == "bgr" and channels != 3:
    raise ValueError(f"dataset.channel_order=bgr needs 3-channel images; these have {channels}")
  if convention.pixel_range not in augment.PIXEL_RANGES:
    raise ValueError(
      f"dataset.pixel_range {convention.pixel_range:g} is not allowed; allowed: 1.0 ([0, 1]) "
      "or 255.0 (0–255)"
    )
  for field, values in (("mean", convention.mean), ("std", convention.std)):
    if values and len(values) != channels:
      raise ValueError(
        f"dataset.{field} has {len(values)} values; the images have {channels} channels"
      )
  if convention.std and not convention.mean:
    raise ValueError("dataset.std is set without dataset.mean; set both, or neither")
  if any(not value > 0 for value in convention.std):
    raise ValueError(f"dataset.std {convention.std} must be positive")
  if convention.mean and normalization.endswith("per_pixel"):
    raise ValueError(
      f"dataset.mean is per channel; dataset.normalization={normalization} needs a per-pixel "
      "mean: use standardize or mean with it"
    )


def stats_path(config: Any) -> pathlib.Path | None:
  """The colour-statistics file the config names, checked to exist; None for "" and "imagenet"."""
  name = config.dataset.color_stats
  if name in ("", "imagenet"):
    return None
  path = pathlib.Path(name)
  if not path.exists():
    raise ValueError(
      f"colour statistics file {path} not found; compute it with "
      "`.venv/bin/python -m input_pipeline.color_pca --config=YOUR_CONFIG`, or set "
      "dataset.color_stats to \"\" (computed for in-memory data) or \"imagenet\""
    )
  return path


def default_stats_path(dataset_config: Any) -> pathlib.Path:
  return (
    pathlib.Path(datasets.resolve_data_dir(dataset_config.data_dir))
    / dataset_config.name
    / f"color_stats_{dataset_config.train_split}.npz"
  )


def load_stats(config: Any, train: SplitReader, channels: int) -> ColorStats:
  """The file the config names; else computed from an in-memory train split; else the default
  file if the tool wrote one; else the published ImageNet constants (RGB only)."""
  # Imported here: `python -m input_pipeline.color_pca` must not find it imported already.
  from input_pipeline import color_pca

  path = stats_path(config)
  if path is None and config.dataset.color_stats == "" and not train.cached:
    path = default_stats_path(config.dataset)
    path = path if path.exists() else None
  if path is not None:
    stats = color_pca.load(path)
  elif config.dataset.color_stats == "" and train.cached:
    stats = color_pca.compute(train.all_images())
  elif channels == 3:
    stats = color_pca.IMAGENET
  else:
    raise ValueError(
      f"no colour statistics for {channels}-channel images; compute them with "
      "`.venv/bin/python -m input_pipeline.color_pca --config=YOUR_CONFIG`"
    )
  if stats.mean.shape != (channels,):
    raise ValueError(
      f"colour statistics have {stats.mean.shape[0]} channels; the images have {channels}"
    )
  if config.dataset.normalization.endswith("per_pixel") and stats.mean_image.shape != train.shape:
    raise ValueError(
      f"dataset.normalization={config.dataset.normalization} needs a per-pixel "
      f"mean of shape {train.shape}; compute it with input_pipeline.color_pca"
    )
  return stats


def open_reader(config: Any, split: str, info: datasets.DatasetInfo) -> SplitReader:
  dataset = config.dataset
  shape = preprocess.stored_shape(dataset, info.image_shape)
  source = datasets.open_source(dataset, split)
  return SplitReader(
    source,
    preprocess.make_host_preprocess(dataset),
    shape,
    dataset.num_workers or os.cpu_count() or 1,
    int(dataset.cache_gb * 2**30),
    decoded_file(dataset, split, source.fingerprint(), shape),
  )


def decoded_file(
  dataset: Any, split: str, fingerprint: str | None, shape: tuple[int, ...]
) -> pathlib.Path | None:
  """Where a split held in memory keeps its decoded, host-preprocessed images between runs:
  named by everything they depend on (the prepared files and the host preprocessing)."""
  if fingerprint is None:
    return None
  recipe = [fingerprint, list(shape)] + [dataset[f] for f in preprocess.HOST_FIELDS]
  digest = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]
  slug = "".join(c if c.isalnum() else "_" for c in f"{dataset.name}-{split}")
  return caches.root() / "decoded" / f"{slug}-{digest}.npz"


def open_split(config: Any, split: str, info: datasets.DatasetInfo) -> SplitReader:
  """A split's reader holding only the config's classes (`dataset.classes`), relabelled."""
  reader = open_reader(config, split, info)
  if info.classes:
    reader.keep_classes(info.classes)
  return reader


def load_data(config: Any) -> Data:
  info = check_dataset(config)
  train = open_split(config, config.dataset.train_split, info)
  evaluation = open_split(config, config.dataset.eval_split, info)
  return Data(info, train, evaluation, load_stats(config, train, train.shape[-1]))
