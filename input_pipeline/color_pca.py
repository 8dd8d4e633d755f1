"""Colour statistics of a training split: mean, std, per-pixel mean and the RGB PCA of "fancy PCA".

  .venv/bin/python -m input_pipeline.color_pca --config=configs/alexnet.py [--max_images=N]

computes, over the training split as the network stores it (after resize and centre crop), the
per-channel mean and std, the per-pixel mean image and the eigen-decomposition of the 3×3
covariance of RGB pixel values (Krizhevsky et al. 2012 §4.1), and writes them to
`dataset.color_stats` (default: <data_dir>/<dataset>/color_stats_<split>.npz). Configs use the
file with `dataset.color_stats`; "imagenet" gives the published ImageNet constants.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from typing import Any

import numpy as np
from absl import flags

import cli
from input_pipeline.augment import ColorStats

# ImageNet statistics in [0, 1] units as published with fb.resnet.torch (eigenvalues and
# eigenvectors of the RGB covariance, after Krizhevsky et al. 2012) and torchvision (mean, std).
IMAGENET = ColorStats(
  mean=np.array([0.485, 0.456, 0.406]),
  std=np.array([0.229, 0.224, 0.225]),
  mean_image=np.zeros((0,)),
  eigvals=np.array([0.2175, 0.0188, 0.0045]),
  eigvecs=np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]]
  ),
)


def compute(batches: Iterable[np.ndarray]) -> ColorStats:
  """Statistics of uint8 batches [B, H, W, C] (all of one shape), in [0, 1] units."""
  num_images, num_pixels, total, outer, image_sum = 0, 0, 0.0, 0.0, 0.0
  for batch in batches:
    pixels = batch.reshape(-1, batch.shape[-1]).astype(np.float64) / 255.0
    num_images += len(batch)
    num_pixels += len(pixels)
    total = total + pixels.sum(axis=0)
    outer = outer + pixels.T @ pixels
    image_sum = image_sum + batch.sum(axis=0, dtype=np.float64) / 255.0
  if num_images == 0:
    raise ValueError("no images to compute colour statistics from")
  mean = total / num_pixels
  covariance = outer / num_pixels - np.outer(mean, mean)
  eigvals, eigvecs = np.linalg.eigh(covariance)
  order = np.argsort(eigvals)[::-1]
  return ColorStats(
    mean=mean,
    std=np.sqrt(np.diag(covariance)),
    mean_image=image_sum / num_images,
    eigvals=eigvals[order],
    eigvecs=eigvecs[:, order],
  )


def save(stats: ColorStats, path: str | pathlib.Path) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(
    path,
    mean=stats.mean,
    std=stats.std,
    mean_image=stats.mean_image,
    eigvals=stats.eigvals,
    eigvecs=stats.eigvecs,
  )


def load(path: str | pathlib.Path) -> ColorStats:
  try:
    with np.load(path) as data:
      return ColorStats(**{field: data[field] for field in ColorStats.__dataclass_fields__})
  except (OSError, KeyError, ValueError) as error:
    raise ValueError(f"cannot read colour statistics {path}: {error}") from error


def compute_for_config(config: Any, max_images: int = 0) -> tuple[ColorStats, pathlib.Path, int]:
  """Statistics of the config's training split (its first `max_images`, 0: all) and their path."""
  import input_pipeline  # the package imports this module

  info = input_pipeline.check_dataset(config)
  reader = input_pipeline.open_reader(config, config.dataset.train_split, info)
  count = min(len(reader), max_images) if max_images else len(reader)
  path = pathlib.Path(
    config.dataset.color_stats or input_pipeline.default_stats_path(config.dataset)
  )
  return compute(reader.all_images(256, count)), path, count


def compute_and_save(config: Any, max_images: int = 0, out: str = "") -> str:
  """Computes the config's statistics, writes them (to `out` if given), and says what it did."""
  stats, path, count = compute_for_config(config, max_images)
  path = pathlib.Path(out) if out else path
  save(stats, path)
  np.set_printoptions(precision=4, suppress=True)
  return (
    f"{count} training images → {path}\n"
    f"mean {stats.mean}  std {stats.std}\neigenvalues {stats.eigvals}\n"
    f"eigenvectors (columns)\n{stats.eigvecs}"
  )


if __name__ == "__main__":
  cli.define_config_flag("config", "experiment config whose training split to use")
  flags.DEFINE_integer("max_images", 0, "use the first N training images (0: all)", lower_bound=0)
  flags.DEFINE_string(
    "out",
    "",
    "where to write (default: dataset.color_stats or <data_dir>/<dataset>/color_stats_<split>.npz)",
  )
  cli.run(lambda: compute_and_save(flags.FLAGS.config, flags.FLAGS.max_images, flags.FLAGS.out))
