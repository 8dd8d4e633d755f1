"""Device-side augmentation and evaluation crops: pure jax.numpy functions of (images, key).

They run inside the jitted train and eval steps on uint8 batches of the stored shape
(e.g. 256×256×3): the host only decodes and resizes, the accelerator does the rest. Every
training transform is switchable from the config (`augment.*`), so ablations can turn each off.
Random draws come from one key per example (`example_keys`), folded from the example's place
in the global batch, so they do not depend on how the batch is split across devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ColorStats:
  """Training-set colour statistics in [0, 1] pixel units."""

  mean: np.ndarray  # [C] per channel
  std: np.ndarray  # [C]
  mean_image: np.ndarray  # [H, W, C] per pixel, or empty
  eigvals: np.ndarray  # [C] of the C×C covariance, descending
  eigvecs: np.ndarray  # [C, C], columns are the eigenvectors p_i


def example_keys(key: Array, first: int | Array, count: int) -> Array:
  """Keys of examples first … first+count−1 of a global batch: [count]."""
  return jax.vmap(jax.random.fold_in, (None, 0))(key, first + jnp.arange(count))


def random_crop(images: Array, keys: Array, size: int) -> Array:
  """A `size`×`size` window at a uniformly random position in each image of [B, H, W, C]."""
  height, width, channels = images.shape[1:]

  def crop(image: Array, key: Array) -> Array:
    top = jax.random.randint(jax.random.fold_in(key, 0), (), 0, height - size + 1)
    left = jax.random.randint(jax.random.fold_in(key, 1), (), 0, width - size + 1)
    return jax.lax.dynamic_slice(image, (top, left, 0), (size, size, channels))

  return jax.vmap(crop)(images, keys)


def random_flip(images: Array, keys: Array) -> Array:
  """Each image mirrored left-right with probability 1/2."""
  flip = jax.vmap(lambda key: jax.random.bernoulli(key, 0.5))(keys)
  return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)


def pca_lighting_shift(keys: Array, eigvals: Array, eigvecs: Array, sigma: float) -> Array:
  """[p1 p2 p3]·[α1 λ1, α2 λ2, α3 λ3]ᵀ per image, α ~ N(0, σ): [B, C].

  Krizhevsky et al. 2012 §4.1.
  """
  alphas = sigma * jax.vmap(lambda key: jax.random.normal(key, eigvals.shape))(keys)
  return (alphas * eigvals) @ eigvecs.T


def center_crop_batch(images: Array, size: int) -> Array:
  """The central `size`×`size` window of every image of [B, H, W, C]."""
  height, width = images.shape[1:3]
  top, left = (height - size) // 2, (width - size) // 2
  return images[:, top : top + size, left : left + size]


def ten_crops(images: Array, size: int) -> Array:
  """[10, B, size, size, C]: the four corners, the centre, then the mirror image of each."""
  height, width = images.shape[1:3]
  corners = [
    (0, 0),
    (0, width - size),
    (height - size, 0),
    (height - size, width - size),
    ((height - size) // 2, (width - size) // 2),
  ]
  crops = jnp.stack([images[:, t : t + size, l : l + size] for t, l in corners])
  return jnp.concatenate([crops, crops[:, :, :, ::-1]])


def normalize(images: Array, stats: ColorStats, mode: str) -> Array:
  """uint8 → float32: [0, 1], minus the training mean (per channel or per pixel), over std."""
  x = images.astype(jnp.float32) / 255.0
  if mode == "none":
    return x
  mean = stats.mean_image if mode.endswith("per_pixel") else stats.mean
  x = x - jnp.asarray(mean, jnp.float32)
  if mode.startswith("standardize"):
    x = x / jnp.asarray(stats.std, jnp.float32)
  return x


NORMALIZATIONS = ("standardize", "standardize_per_pixel", "mean", "mean_per_pixel", "none")


def make_train_preprocess(config: Any, stats: ColorStats) -> Callable[[Array, Array], Array]:
  """(uint8 [B, H, W, C], keys [B]) → float32 [B, S, S, C]: lighting, normalisation, crop, flip."""
  augment, size = config.augment, config.dataset.crop_size

  def preprocess(images: Array, keys: Array) -> Array:
    split = jax.vmap(lambda key: jax.random.split(key, 3))(keys)  # [B, 3]
    crop_keys, flip_keys, light_keys = split[:, 0], split[:, 1], split[:, 2]
    x = normalize(images, stats, config.dataset.normalization)
    if augment.pca_lighting > 0:
      shift = pca_lighting_shift(
        light_keys, jnp.asarray(stats.eigvals), jnp.asarray(stats.eigvecs), augment.pca_lighting
      )
      scale = stats.std if config.dataset.normalization.startswith("standardize") else 1.0
      x = x + (shift / jnp.asarray(scale, jnp.float32))[:, None, None, :]
    if size and size < images.shape[1]:
      x = random_crop(x, crop_keys, size) if augment.random_crop else center_crop_batch(x, size)
    if augment.flip:
      x = random_flip(x, flip_keys)
    return x

  return preprocess


def make_eval_preprocess(config: Any, stats: ColorStats, protocol: str) -> Callable[[Array], Array]:
  """uint8 [B, H, W, C] → [1 or 10, B, S, S, C]: the centre crop, or the ten crops."""
  size = config.dataset.crop_size

  def preprocess(images: Array) -> Array:
    x = normalize(images, stats, config.dataset.normalization)
    if protocol == "ten_crop":
      return ten_crops(x, size or x.shape[1])
    return (center_crop_batch(x, size) if size else x)[None]

  return preprocess
