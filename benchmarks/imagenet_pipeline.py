"""The ImageNet input pipeline's images/s beside the AlexNet train step's, in one run.

  .venv/bin/python benchmarks/imagenet_pipeline.py [--images=256] [--batch=128] [--steps=3]

* host: JPEG decode (PIL, as TFDS without TensorFlow does) + shorter side 256 + centre 256×256,
  on ImageNet-sized JPEGs made here (500×375, quality 90), by `dataset.num_workers` threads;
* device augmentation alone: random 227 crops, flips, PCA lighting, mean subtraction (jitted);
* AlexNet train step (forward, backward, SGD update) on 256×256 uint8 batches, augmentation
  included, at --batch.
The ratio host / train step says whether the host keeps the step fed on this machine.
"""

from __future__ import annotations

import io
import os
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import experiment  # noqa: E402
import parallel  # noqa: E402
import training  # noqa: E402
from configs import alexnet  # noqa: E402
from input_pipeline import augment, color_pca, preprocess  # noqa: E402
from input_pipeline.pipeline import SplitReader  # noqa: E402

flags.DEFINE_integer("images", 256, "JPEGs to decode")
flags.DEFINE_integer("batch", 128, "train-step batch")
flags.DEFINE_integer("steps", 3, "timed train steps")


class JpegSource:
  """ImageNet-sized JPEGs, decoded on access as a TFDS source would."""

  def __init__(self, count: int):
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:375, 0:500]
    self._jpegs = []
    for i in range(count):
      smooth = (np.stack([rows, cols, rows + cols], -1) * (i % 7 + 1) / 8) % 256
      image = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255).astype(np.uint8)
      buffer = io.BytesIO()
      Image.fromarray(image).save(buffer, format="JPEG", quality=90)
      self._jpegs.append(buffer.getvalue())

  def __len__(self) -> int:
    return len(self._jpegs)

  def __getitem__(self, index: int):
    return np.asarray(Image.open(io.BytesIO(self._jpegs[index])).convert("RGB")), index % 1000


def main(argv):
  del argv
  args = flags.FLAGS
  parallel.configure_cpu_devices()
  config = alexnet.get_config()
  workers = config.dataset.num_workers or os.cpu_count() or 1
  reader = SplitReader(
    JpegSource(args.images),
    preprocess.make_host_preprocess(config.dataset),
    (256, 256, 3),
    workers,
    cache_bytes=0,
  )
  start = time.perf_counter()
  images, labels = reader.read(np.arange(len(reader)))
  host = len(reader) / (time.perf_counter() - start)

  stats = color_pca.IMAGENET
  fn = jax.jit(augment.make_train_preprocess(config, stats))
  batch = jnp.asarray(np.resize(images, (args.batch, 256, 256, 3)))
  keys = lambda seed: augment.example_keys(jax.random.key(seed), 0, args.batch)
  jax.block_until_ready(fn(batch, keys(0)))
  start = time.perf_counter()
  for step in range(args.steps):
    jax.block_until_ready(fn(batch, keys(step)))
  device_augment = args.steps * args.batch / (time.perf_counter() - start)

  data_parallel = parallel.DataParallel()
  data_parallel.check_batch_size("--batch", args.batch)
  model, learning_rate_fn, state = experiment.create_model_and_state(
    config, 1000, (227, 227, 3), 1_281_167
  )
  state = data_parallel.replicate(state)
  step_fn = training.create_train_step(config, model, learning_rate_fn, stats, data_parallel)
  train_batch = data_parallel.shard(
    {"image": np.asarray(batch), "label": np.resize(labels, args.batch).astype(np.int32)}
  )
  state, _ = step_fn(state, train_batch)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, _ = step_fn(state, train_batch)
  jax.block_until_ready(state)
  step_speed = args.steps * args.batch / (time.perf_counter() - start)

  print(f"\n{jax.device_count()} {jax.default_backend()} device(s), {workers} host threads")
  print(f"host decode + resize + centre crop: {host:,.1f} img/s ({len(reader)} JPEGs 500×375)")
  print(f"device augmentation alone:          {device_augment:,.1f} img/s (batch {args.batch})")
  print(f"AlexNet train step (augmentation included): {step_speed:,.1f} img/s (batch {args.batch})")
  print(f"host / train step: {host / step_speed:.2f}")


if __name__ == "__main__":
  app.run(main)
