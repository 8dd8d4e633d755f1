"""Host-side preprocessing to one stored shape: rescale, centre-crop, pad (Krizhevsky et al.
2012, §2).

AlexNet's protocol rescales each image so its shorter side is 256 and takes the central
256×256 patch; everything random happens later, on the device (input_pipeline/augment.py).
Images stay uint8 so that what is stored, cached and sent to the device can be inspected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

import config_values

RESIZE_MODES = ("shorter_side", "warp")


def resize(image: np.ndarray, size: int, mode: str = "shorter_side") -> np.ndarray:
  """uint8 [H, W, C] → shorter side `size` keeping the aspect ("shorter_side"), or
  `size`×`size` ("warp")."""
  config_values.check_choice("dataset.resize_mode", mode, RESIZE_MODES)
  height, width = image.shape[:2]
  if mode == "shorter_side":
    scale = size / min(height, width)
    new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
  else:  # warp
    new_height = new_width = size
  if (new_height, new_width) == (height, width):
    return image
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  resized = np.asarray(pil.resize((new_width, new_height), Image.BILINEAR))
  return resized.reshape(new_height, new_width, image.shape[-1])


def center_crop_image(image: np.ndarray, size: int) -> np.ndarray:
  """The central `size`×`size` patch of one image [H, W, C]."""
  height, width = image.shape[:2]
  if size > min(height, width):
    raise ValueError(f"center crop {size} is larger than the image ({height}×{width})")
  top, left = (height - size) // 2, (width - size) // 2
  return image[top : top + size, left : left + size]


def pad(image: np.ndarray, amount: int) -> np.ndarray:
  return np.pad(image, [(amount, amount), (amount, amount), (0, 0)]) if amount else image


def stored_shape(dataset_config: Any, image_shape: tuple) -> tuple[int, int, int]:
  """The shape every image has after host preprocessing, or a ValueError if it has none."""
  height, width, channels = image_shape
  # Checked even when resize is 0, where it is unused: a typo should not wait for the day it is.
  config_values.check_choice("dataset.resize_mode", dataset_config.resize_mode, RESIZE_MODES)
  if dataset_config.resize:
    if dataset_config.center_crop > dataset_config.resize:
      raise ValueError(
        f"dataset.center_crop {dataset_config.center_crop} is larger than the "
        f"resized image (shorter side dataset.resize={dataset_config.resize})"
      )
    if dataset_config.center_crop:
      height = width = dataset_config.center_crop
    elif dataset_config.resize_mode == "warp":
      height = width = dataset_config.resize
    else:
      raise ValueError(
        "dataset.resize with resize_mode=shorter_side needs dataset.center_crop "
        "to give every image one shape"
      )
  elif height is None or width is None:
    raise ValueError(
      f"dataset {dataset_config.name!r} has images of varying size; set "
      "dataset.resize and dataset.center_crop (e.g. 256 and 256)"
    )
  elif dataset_config.center_crop:
    if dataset_config.center_crop > min(height, width):
      raise ValueError(
        f"dataset.center_crop {dataset_config.center_crop} is larger than the "
        f"images ({height}×{width})"
      )
    height = width = dataset_config.center_crop
  return height + 2 * dataset_config.pad, width + 2 * dataset_config.pad, channels


HOST_FIELDS = ("resize", "resize_mode", "center_crop", "pad")  # the dataset.* fields it reads


def make_host_preprocess(dataset_config: Any) -> Callable[[np.ndarray], np.ndarray]:
  """image uint8 [H, W, C] → uint8 [stored shape]: resize, centre crop, pad, as configured."""

  def preprocess(image: np.ndarray) -> np.ndarray:
    if dataset_config.resize:
      image = resize(image, dataset_config.resize, dataset_config.resize_mode)
    if dataset_config.center_crop:
      image = center_crop_image(image, dataset_config.center_crop)
    return pad(image, dataset_config.pad)

  return preprocess
