"""Device-side augmentation and evaluation crops: pure jax.numpy functions of (images, key).

They run inside the jitted train and eval steps on uint8 batches of the stored shape
(e.g. 256×256×3): the host only decodes and resizes, the accelerator does the rest. Every
training transform is switchable from the config (`augment.*`), so ablations can turn each off.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ColorStats:
  """Training-set colour statistics in [0, 1] pixel units."""
  mean: np.ndarray        # [C] per channel
  std: np.ndarray         # [C]
  mean_image: np.ndarray  # [H, W, C] per pixel, or empty
  eigvals: np.ndarray     # [C] of the C×C covariance, descending
  eigvecs: np.ndarray     # [C, C], columns are the eigenvectors p_i


def random_crop(images: Array, key: Array, size: int) -> Array:
  """A `size`×`size` window at a uniformly random position in each image of [B, H, W, C]."""
  batch, height, width, channels = images.shape
  top_key, left_key = jax.random.split(key)
  tops = jax.random.randint(top_key, (batch,), 0, height - size + 1)
  lefts = jax.random.randint(left_key, (batch,), 0, width - size + 1)
  crop = lambda image, top, left: jax.lax.dynamic_slice(image, (top, left, 0), (size, size, channels))
  return jax.vmap(crop)(images, tops, lefts)


def random_flip(images: Array, key: Array) -> Array:
  """Each image mirrored left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1], images)


def pca_lighting_shift(key: Array, batch: int, eigvals: Array, eigvecs: Array, sigma: float) -> Array:
  """[p1 p2 p3]·[α1 λ1, α2 λ2, α3 λ3]ᵀ per image, α ~ N(0, σ) (Krizhevsky et al. 2012 §4.1): [B, C]."""
  alphas = sigma * jax.random.normal(key, (batch, eigvals.shape[0]))
  return (alphas * eigvals) @ eigvecs.T


def center_crop(images: Array, size: int) -> Array:
  height, width = images.shape[1:3]
  top, left = (height - size) // 2, (width - size) // 2
  return images[:, top:top + size, left:left + size]


def ten_crops(images: Array, size: int) -> Array:
  """[10, B, size, size, C]: the four corners, the centre, then the mirror image of each."""
  height, width = images.shape[1:3]
  corners = [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size),
             ((height - size) // 2, (width - size) // 2)]
  crops = jnp.stack([images[:, t:t + size, l:l + size] for t, l in corners])
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
  """(uint8 [B, H, W, C], key) → float32 [B, S, S, C]: lighting, normalisation, crop, flip."""
  augment, size = config.augment, config.dataset.image_size

  def preprocess(images: Array, key: Array) -> Array:
    crop_key, flip_key, light_key = jax.random.split(key, 3)
    x = normalize(images, stats, config.dataset.normalization)
    if augment.pca_lighting > 0:
      shift = pca_lighting_shift(light_key, images.shape[0], jnp.asarray(stats.eigvals),
                                 jnp.asarray(stats.eigvecs), augment.pca_lighting)
      scale = stats.std if config.dataset.normalization.startswith("standardize") else 1.0
      x = x + (shift / jnp.asarray(scale, jnp.float32))[:, None, None, :]
    if size and size < images.shape[1]:
      x = random_crop(x, crop_key, size) if augment.random_crop else center_crop(x, size)
    if augment.flip:
      x = random_flip(x, flip_key)
    return x

  return preprocess


def make_eval_preprocess(config: Any, stats: ColorStats, protocol: str) -> Callable[[Array], Array]:
  """uint8 [B, H, W, C] → [1 or 10, B, S, S, C]: the centre crop, or the ten crops."""
  size = config.dataset.image_size

  def preprocess(images: Array) -> Array:
    x = normalize(images, stats, config.dataset.normalization)
    if protocol == "ten_crop":
      return ten_crops(x, size or x.shape[1])
    return (center_crop(x, size) if size else x)[None]

  return preprocess
