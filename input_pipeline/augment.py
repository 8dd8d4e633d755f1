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


NORMALIZATIONS = ("standardize", "standardize_per_pixel", "mean", "mean_per_pixel", "none")
CHANNEL_ORDERS = ("rgb", "bgr")
PIXEL_RANGES = (1.0, 255.0)


@dataclasses.dataclass(frozen=True)
class InputConvention:
  """The form of input a network's weights expect, beyond the normalisation mode.

  Published weights fix it: torchvision's read RGB in [0, 1] standardised with the ImageNet
  mean and std; Caffe's read BGR in 0–255 minus a mean pixel (import_weights.py writes these
  into the run's config). `mean` and `std`, when given, are per channel in the network's own
  channel order and units and replace the colour statistics' mean and std.
  """

  channel_order: str = "rgb"  # the order of conv1's input channels
  pixel_range: float = 1.0  # 1: pixels in [0, 1]; 255: in 0–255
  mean: tuple[float, ...] = ()
  std: tuple[float, ...] = ()

  @classmethod
  def of(cls, dataset_config: Any) -> InputConvention:
    """The convention a config's `dataset` section sets (the defaults for configs without one)."""
    get = dataset_config.get
    return cls(
      get("channel_order", "rgb"),
      float(get("pixel_range", 1.0)),
      tuple(get("mean", ())),
      tuple(get("std", ())),
    )

  def reorder(self, values: Any) -> Any:
    """RGB-ordered values (last axis) in the network's channel order."""
    return values[..., ::-1] if self.channel_order == "bgr" else values

  def statistics(self, stats: ColorStats, mode: str) -> tuple[Any, Any]:
    """(mean, std) in the network's order and units for `mode`: what is subtracted (per channel
    or per pixel) and what is divided by."""
    if self.mean:
      mean, std = np.asarray(self.mean), np.asarray(self.std or np.ones(len(self.mean)))
    else:
      mean = stats.mean_image if mode.endswith("per_pixel") else stats.mean
      mean, std = self.reorder(mean) * self.pixel_range, self.reorder(stats.std) * self.pixel_range
    return mean, (std if mode.startswith("standardize") else np.ones_like(std))


def normalize(
  images: Array, stats: ColorStats, mode: str, convention: InputConvention = InputConvention()
) -> Array:
  """uint8 RGB → float32 network input: [0, 1] (or 0–255) in the network's channel order, minus
  the mean (per channel or per pixel), over std."""
  # Divided, not multiplied by a reciprocal: x / 255 is what the default runs have always used,
  # bit for bit; x / 1 leaves Caffe's 0–255 values exact.
  x = convention.reorder(images.astype(jnp.float32) / (255.0 / convention.pixel_range))
  if mode == "none":
    return x
  mean, std = convention.statistics(stats, mode)
  x = x - jnp.asarray(mean, jnp.float32)
  if mode.startswith("standardize"):
    x = x / jnp.asarray(std, jnp.float32)
  return x


def pixels(x: Array, stats: ColorStats, mode: str, convention: InputConvention) -> Array:
  """The network's input → RGB pixels in [0, 1] (`normalize` undone, unclipped; a per-pixel
  mean is undone with its per-channel average)."""
  if mode != "none":
    per_channel = "standardize" if mode.startswith("standardize") else "mean"
    mean, std = convention.statistics(stats, per_channel)
    if mode.startswith("standardize"):
      x = x * jnp.asarray(std, jnp.float32)
    x = x + jnp.asarray(mean, jnp.float32)
  return convention.reorder(x) / convention.pixel_range


def lighting_in_input_units(
  shift: Array, stats: ColorStats, mode: str, convention: InputConvention
) -> Array:
  """A PCA lighting shift [B, C] of RGB [0, 1] pixels, as a shift of the network's input."""
  shift = convention.reorder(shift)
  if convention.pixel_range != 1.0:
    shift = shift * convention.pixel_range
  if mode.startswith("standardize"):
    shift = shift / jnp.asarray(convention.statistics(stats, mode)[1], jnp.float32)
  return shift


def make_train_preprocess(config: Any, stats: ColorStats) -> Callable[[Array, Array], Array]:
  """(uint8 [B, H, W, C], keys [B]) → float32 [B, S, S, C]: lighting, normalisation, crop, flip."""
  augment, size = config.augment, config.dataset.crop_size
  mode, convention = config.dataset.normalization, InputConvention.of(config.dataset)

  def preprocess(images: Array, keys: Array) -> Array:
    split = jax.vmap(lambda key: jax.random.split(key, 3))(keys)  # [B, 3]
    crop_keys, flip_keys, light_keys = split[:, 0], split[:, 1], split[:, 2]
    x = normalize(images, stats, mode, convention)
    if augment.pca_lighting > 0:
      shift = pca_lighting_shift(
        light_keys, jnp.asarray(stats.eigvals), jnp.asarray(stats.eigvecs), augment.pca_lighting
      )
      x = x + lighting_in_input_units(shift, stats, mode, convention)[:, None, None, :]
    if size and size < images.shape[1]:
      x = random_crop(x, crop_keys, size) if augment.random_crop else center_crop_batch(x, size)
    if augment.flip:
      x = random_flip(x, flip_keys)
    return x

  return preprocess


def make_eval_preprocess(config: Any, stats: ColorStats, protocol: str) -> Callable[[Array], Array]:
  """uint8 [B, H, W, C] → [1 or 10, B, S, S, C]: the centre crop, or the ten crops."""
  size = config.dataset.crop_size
  convention = InputConvention.of(config.dataset)

  def preprocess(images: Array) -> Array:
    x = normalize(images, stats, config.dataset.normalization, convention)
    if protocol == "ten_crop":
      return ten_crops(x, size or x.shape[1])
    return (center_crop_batch(x, size) if size else x)[None]

  return preprocess
