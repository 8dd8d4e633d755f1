"""Batches from in-memory splits: seeded shuffling, normalisation, padded and masked eval batches.

The training stream is a pure function of (seed, step): epoch e visits the examples in the order
`permutation(seed, e)`, so a run resumed at step s sees exactly the batches it would have seen.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class Normalizer:
  """Pads the image borders, then subtracts the training-set channel mean and divides by its std."""
  mean: np.ndarray  # [C], in [0, 1] units
  std: np.ndarray   # [C]
  pad: int = 0

  @classmethod
  def from_images(cls, images: np.ndarray, pad: int = 0) -> "Normalizer":
    """Channel statistics of the (unpadded) training images, uint8 [N, H, W, C]."""
    mean = images.mean(axis=(0, 1, 2), dtype=np.float64) / 255.0
    std = images.std(axis=(0, 1, 2), dtype=np.float64) / 255.0
    return cls(mean, std, pad)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, C] → float32 [N, H + 2·pad, W + 2·pad, C]."""
    if self.pad:
      images = np.pad(images, [(0, 0), (self.pad, self.pad), (self.pad, self.pad), (0, 0)])
    scale = np.float32(1 / 255) / self.std.astype(np.float32)
    return images.astype(np.float32) * scale - (self.mean / self.std).astype(np.float32)


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def train_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled batches of already-normalised images, starting at `start_step`.

  Each epoch drops its last partial batch, so every step sees `batch_size` examples.
  """
  steps_per_epoch = len(images) // batch_size
  if steps_per_epoch == 0:
    raise ValueError(f"batch_size {batch_size} is larger than the training split ({len(images)} examples)")
  epoch, step_in_epoch = divmod(start_step, steps_per_epoch)
  while True:
    order = epoch_permutation(seed, epoch, len(images))
    for step in range(step_in_epoch, steps_per_epoch):
      index = order[step * batch_size:(step + 1) * batch_size]
      yield {"image": images[index], "label": labels[index]}
    epoch, step_in_epoch = epoch + 1, 0


def eval_batches(images: np.ndarray, labels: np.ndarray,
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """The split in order, in batches of exactly `batch_size`; the last is zero-padded.

  `mask` is 1 for real examples and 0 for padding, so every example counts exactly once.
  """
  for start in range(0, len(images), batch_size):
    image, label = images[start:start + batch_size], labels[start:start + batch_size]
    padding = batch_size - len(image)
    yield {
        "image": np.pad(image, [(0, padding)] + [(0, 0)] * (image.ndim - 1)),
        "label": np.pad(label, (0, padding)),
        "mask": np.pad(np.ones(len(image), np.float32), (0, padding)),
    }
