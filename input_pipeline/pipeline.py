"""Batches of host-preprocessed uint8 images: seeded shuffling, padded and masked eval batches.

The training stream is a pure function of (seed, step): epoch e visits the examples in the order
`permutation(seed, e)`, so a run resumed at step s sees exactly the batches it would have seen,
and its position needs no saving beyond the step. A split that fits in `cache_bytes` is read
once into memory; a larger one is read batch by batch by a pool of threads (PIL decodes and
resizes outside the GIL), one batch ahead of the train step.
"""

from __future__ import annotations

import concurrent.futures
import math
import pathlib
import zipfile
from collections.abc import Callable, Iterator, Sequence

import numpy as np

import caches


class SplitReader:
  """uint8 [N, *shape] images and int32 labels of one split, after host preprocessing."""

  def __init__(
    self,
    source: Sequence,
    preprocess: Callable[[np.ndarray], np.ndarray],
    shape: tuple[int, ...],
    num_workers: int,
    cache_bytes: int,
    decoded_file: pathlib.Path | None = None,
  ):
    self._source, self._preprocess, self.shape = source, preprocess, tuple(shape)
    self._pool = concurrent.futures.ThreadPoolExecutor(max(1, num_workers))
    self._prefetcher = concurrent.futures.ThreadPoolExecutor(1)  # a batch ahead, off the pool
    self.cached = len(source) * math.prod(shape) <= cache_bytes
    self._images = self._labels = None
    if self.cached:
      self._images, self._labels = self._decoded(decoded_file)

  def __len__(self) -> int:
    return len(self._source) if self._labels is None else len(self._labels)

  def keep_classes(self, classes: tuple[int, ...]) -> None:
    """Keeps the examples of `classes` only, relabelled 0, 1, … in that order (in memory only)."""
    if not self.cached:
      raise ValueError("dataset.classes needs the splits held in memory; raise dataset.cache_gb")
    relabel = np.full(max(int(self._labels.max()), max(classes)) + 1, -1, np.int32)
    relabel[list(classes)] = np.arange(len(classes))
    kept = relabel[self._labels] >= 0
    self._images, self._labels = self._images[kept], relabel[self._labels[kept]]

  def _read_one(self, index: int) -> tuple[np.ndarray, int]:
    image, label = self._source[index]
    return self._checked(self._preprocess(image), index), label

  def _read_from_source(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.empty((len(indices), *self.shape), np.uint8)
    labels = np.empty((len(indices),), np.int32)
    for position, (image, label) in enumerate(
      self._pool.map(self._read_one, indices, chunksize=64)
    ):
      images[position], labels[position] = image, label
    return images, labels

  def _decoded(self, path: pathlib.Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The whole split from `path` (a copy this class wrote before), else read and decoded from
    the source and written there. Decoding Fashion-MNIST's 70,000 PNGs took 9.7 s of every
    run's start (profiled: TFDS deserialisation and PIL), reading them back 0.1 s."""
    expected = (len(self._source), *self.shape)
    if path is not None and path.exists():
      try:
        with np.load(path) as stored:
          images, labels = stored["images"], stored["labels"]
        if images.shape == expected and images.dtype == np.uint8 and len(labels) == expected[0]:
          return images, labels.astype(np.int32)
      except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        pass  # a damaged copy is read again from the source and replaced
    images, labels = self._read_all()
    if path is not None:
      caches.write_atomically(path, lambda f: np.savez(f, images=images, labels=labels))
    return images, labels

  def _read_all(self, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """The whole split, read in large sequential chunks: for small images, per-record overhead
    dominates and threads only contend for the GIL."""
    images = np.empty((len(self), *self.shape), np.uint8)
    labels = np.empty((len(self),), np.int32)
    for start in range(0, len(self), chunk):
      indices = np.arange(start, min(start + chunk, len(self)))
      for index, (image, label) in zip(indices, self._source.get_many(indices), strict=True):
        images[index], labels[index] = self._checked(self._preprocess(image), index), label
    return images, labels

  def _checked(self, image: np.ndarray, index: int) -> np.ndarray:
    if image.shape != self.shape:
      raise ValueError(
        f"example {index} has shape {image.shape} after preprocessing, not {self.shape}"
      )
    return image

  def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if self.cached:
      return self._images[indices], self._labels[indices]
    return self._read_from_source(indices)

  def prefetch(self, indices: np.ndarray) -> concurrent.futures.Future:
    """The batch, read in the background; at once when the split is in memory (a thread
    handoff per step would cost more than the read)."""
    if not self.cached:
      return self._prefetcher.submit(self.read, indices)
    done = concurrent.futures.Future()
    done.set_result(self.read(indices))
    return done

  def all_images(self, chunk: int = 1024, limit: int = 0) -> Iterator[np.ndarray]:
    """Every image (the first `limit`, if set), in order, in chunks (for statistics)."""
    count = min(len(self), limit) if limit else len(self)
    for start in range(0, count, chunk):
      yield self.read(np.arange(start, min(start + chunk, count)))[0]


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def train_batches(
  reader: SplitReader,
  batch_size: int,
  seed: int,
  start_step: int = 0,
  part: tuple[int, int] = (0, 1),
) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled global batches from step `start_step` on; each epoch drops its partial
  batch. With `part=(i, n)`, this process reads the i-th of n equal slices of every batch."""
  index, count = part
  share = batch_size // count
  steps_per_epoch = len(reader) // batch_size
  if steps_per_epoch == 0:
    raise ValueError(
      f"batch_size {batch_size} is larger than the training split ({len(reader)} examples)"
    )

  orders: dict[int, np.ndarray] = {}

  def indices(step: int) -> np.ndarray:
    epoch, step_in_epoch = divmod(step, steps_per_epoch)
    if epoch not in orders:  # one permutation per epoch, kept while it is in use
      orders.clear()
      orders[epoch] = epoch_permutation(seed, epoch, len(reader))
    first = step_in_epoch * batch_size + index * share
    return orders[epoch][first : first + share]

  step, pending = start_step, reader.prefetch(indices(start_step))
  while True:
    images, labels = pending.result()
    step += 1
    pending = reader.prefetch(indices(step))
    yield {"image": images, "label": labels}


def eval_batches(
  reader: SplitReader, batch_size: int, part: tuple[int, int] = (0, 1)
) -> Iterator[dict[str, np.ndarray]]:
  """The split in order, in batches of exactly `batch_size`; the last is zero-padded.

  `mask` is 1 for real examples and 0 for padding, so every example counts exactly once.
  With `part=(i, n)`, this process reads the i-th of n equal slices of every batch.
  """
  index, count = part
  share = batch_size // count
  starts = range(0, len(reader), batch_size)
  span = lambda start: np.arange(
    min(start + index * share, len(reader)), min(start + (index + 1) * share, len(reader))
  )
  pending = reader.prefetch(span(0))
  for start in starts:
    images, labels = pending.result()
    if start + batch_size < len(reader):
      pending = reader.prefetch(span(start + batch_size))
    padding = share - len(images)
    yield {
      "image": np.pad(images, [(0, padding)] + [(0, 0)] * (images.ndim - 1)),
      "label": np.pad(labels, (0, padding)),
      "mask": np.pad(np.ones(len(images), np.float32), (0, padding)),
    }
