"""Classifying images with any run, trained or imported: its network, its newest checkpoint and
its evaluation preprocessing. `predict.py` is its command line.

Image files (JPEG, PNG, …) go through the run's host preprocessing (resize, centre crop, pad)
and then its evaluation crop (the centre, or the ten crops whose softmax outputs are averaged,
as evaluation.eval_step does); a .npy of uint8 images already at the crop size gets the
normalisation only.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

import checkpoints
import input_pipeline
import models
from input_pipeline import augment, color_pca, datasets, preprocess

BATCH = 16  # images per forward pass (ten crops each with --ten_crop)


@dataclasses.dataclass(frozen=True)
class Classifier:
  """A run's network with its weights, input shape, normalisation and class names."""

  config: ml_collections.ConfigDict
  model: models.ConvNet
  variables: dict[str, Any]
  stats: augment.ColorStats
  native_shape: tuple  # the dataset's images [H, W, C] (None for sizes that vary)
  stored_shape: tuple[int, int, int]  # what host preprocessing gives (before the crop)
  input_shape: tuple[int, int, int]  # what the network sees
  class_names: list[str]


def class_names(config: ml_collections.ConfigDict, num_classes: int) -> list[str]:
  """The run's class names: ImageNet's (TFDS ships them with its SI-Score labels, in class-id
  order, beside the synset ids of its imagenet2012 labels.txt), else the dataset's own."""
  if config.dataset.name == "imagenet2012" and num_classes == 1000:
    from tensorflow_datasets.datasets.siscore import labels  # a plain list, no side effects

    return [name.split(",")[0] for name in labels.IMAGENET_LABELS_LIST]
  try:  # the classes the run kept (dataset.classes), by name
    names = datasets.class_names(config.dataset, input_pipeline.dataset_info(config.dataset))
  except ValueError:  # not prepared here: the ids will do
    names = []
  return names if len(names) == num_classes else [str(i) for i in range(num_classes)]


def load(
  config: ml_collections.ConfigDict, workdir: str | pathlib.Path, report: Callable
) -> Classifier:
  """The newest checkpoint of `workdir` as a Classifier for its config."""
  step, saved = checkpoints.read_newest(workdir, "predict", report)
  probe = models.create_model(config.model, 2)
  head = saved["params"].get(probe.layers[-1].name, {})
  if "bias" not in head:
    raise ValueError(
      f"{workdir}: the checkpoint's parameters do not end in layer {probe.layers[-1].name!r}"
    )
  num_classes = int(np.shape(head["bias"])[0])
  model = models.create_model(config.model, num_classes)
  native = native_shape(config)
  stored = preprocess.stored_shape(config.dataset, native)
  size = config.dataset.crop_size
  input_shape = (size, size, stored[-1]) if size else stored
  models.trace(model, input_shape, num_classes)
  if config.dataset.mean:  # a fixed normalisation (published weights): no statistics to compute
    stats = color_pca.IMAGENET
  else:
    stats = input_pipeline.load_data(config).stats
  variables = {"params": saved["params"], "batch_stats": saved.get("batch_stats") or {}}
  return Classifier(
    config, model, variables, stats, native, stored, input_shape, class_names(config, num_classes)
  )


def native_shape(config: ml_collections.ConfigDict) -> tuple:
  """The dataset's image shape (None for sizes that vary), from its metadata; a dataset not
  prepared here is taken as varying-size RGB when the config resizes every image anyway
  (ImageNet and imported runs)."""
  try:
    return tuple(datasets.dataset_info(config.dataset).image_shape)
  except ValueError:
    if config.dataset.resize:
      return (None, None, 3)
    raise


def read_image(path: pathlib.Path, classifier: Classifier) -> np.ndarray:
  """An image file → uint8 [stored shape], as the run's host preprocessing makes it."""
  height, width, channels = classifier.native_shape
  if path.suffix == ".npy":
    raise ValueError(f"{path} is an array: give it as --images={path}")
  try:
    with Image.open(path) as image:
      image = image.convert("L" if channels == 1 else "RGB")
      pixels = np.asarray(image).reshape(image.height, image.width, channels)
  except (OSError, ValueError) as error:
    raise ValueError(f"{path}: not an image PIL can read ({error})") from error
  if height and width and pixels.shape[:2] != (height, width):  # the dataset's size, not ours
    pixels = np.asarray(Image.fromarray(pixels.squeeze()).resize((width, height), Image.BILINEAR))
    pixels = pixels.reshape(height, width, channels)
  return preprocess.make_host_preprocess(classifier.config.dataset)(pixels)


def read_npy(path: pathlib.Path, classifier: Classifier) -> np.ndarray:
  """A .npy of uint8 [N, H, W, C] images at the network's input size, read without pickles."""
  try:
    images = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as error:
    raise ValueError(f"{path}: not a .npy array ({error})") from error
  want = classifier.input_shape
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want:
    raise ValueError(
      f"{path} holds {images.dtype} {images.shape}; --images takes uint8 [N, "
      f"{want[0]}, {want[1]}, {want[2]}] (images at the network's input size)"
    )
  return images


def class_scores(
  classifier: Classifier, images: np.ndarray, ten_crop: bool, already_cropped: bool = False
) -> np.ndarray:
  """Class scores [N, classes]: the centre crop's logits, or the log of the ten crops' mean
  softmax output (either way, their softmax is the prediction)."""
  config = classifier.config
  protocol = "ten_crop" if ten_crop else "single"
  crop = augment.make_eval_preprocess(config, classifier.stats, protocol)
  if already_cropped:  # at the crop size: normalise only
    convention = augment.InputConvention.of(config.dataset)
    normalization = config.dataset.normalization
    crop = lambda x: augment.normalize(x, classifier.stats, normalization, convention)[None]

  @jax.jit
  def predict(batch: jax.Array) -> jax.Array:
    apply = lambda x: classifier.model.apply(classifier.variables, x, train=False)[0]
    logits = jax.lax.map(apply, crop(batch))
    if logits.shape[0] == 1:
      return logits[0]
    return jnp.log(jnp.mean(jax.nn.softmax(logits), axis=0))

  out = [
    np.asarray(predict(jnp.asarray(images[i : i + BATCH]))) for i in range(0, len(images), BATCH)
  ]
  return np.concatenate(out) if out else np.zeros((0, len(classifier.class_names)), np.float32)


def top_lines(names: Sequence[str], probs: np.ndarray, labels: Sequence[str], top: int) -> str:
  """One line per image: its top classes with their probabilities."""
  lines = []
  for label, row in zip(labels, probs, strict=True):
    best = np.argsort(-row, kind="stable")[:top]
    ranked = "  ".join(f"{names[i]} ({i}) {100 * row[i]:.1f} %" for i in best)
    lines.append(f"{label}: {ranked}")
  return "\n".join(lines)
