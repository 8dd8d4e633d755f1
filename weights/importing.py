"""A published network's file → a convzoo workdir (config.json and a checkpoint) that eval.py,
predict.py, visualize.py and `--config.init_from` take like any trained run.

Everything is checked before anything is written: the source name, the file (read without
running code), every tensor's place and shape, and for Caffe every layer's definition. The
checkpoint holds the train state at step 0 with the imported weights.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import traverse_util

import checkpoints
import experiment
import models
import schedules
import workdirs
from configs import imagenet_base
from weights import caffe_names, caffemodel, sources, tensor_files
from weights.conversions import Transfer

IMAGENET_TRAIN_EXAMPLES = 1_281_167  # sizes the (unused) schedule of the imported run
PROVENANCE_FILE = "imported.json"


def imported_config(recipe: sources.Recipe, aux: bool) -> ml_collections.ConfigDict:
  """The ImageNet recipe with the published network's model fields and input convention."""
  config = models.set_model(imagenet_base.get_config(), recipe.model["name"])
  for field, value in recipe.model.items():
    config.model[field] = value
  if "aux_classifiers" in config.model:
    config.model.aux_classifiers = aux
  for field, value in recipe.dataset.items():
    config.dataset[field] = value
  config.dataset.color_stats = "imagenet"  # PCA lighting when fine-tuning; the mean is fixed
  # An imported run is a starting point (eval, visualize, init_from), not a run to resume:
  # without momentum its checkpoint holds no optimizer slots, half the size.
  config.optimizer.momentum = 0.0
  # Forward passes at 224×224 of an ImageNet network: the visualisations' default batch of 256
  # (sized for Fashion-MNIST) would need tens of GB on the CPU.
  config.visualize.batch = 16
  return config


def read_source(source: str, file: pathlib.Path) -> tuple[dict[str, np.ndarray], list | None]:
  """(tensors by name, Caffe layers or None); one-line ValueErrors for unreadable files."""
  if not file.is_file():
    raise ValueError(f"--file {file}: no such file")
  if source == "caffe":
    _, layers = caffemodel.read_net(file)
    return caffe_names.blobs_by_name(layers), layers
  return tensor_files.read_tensors(file), None


def has_aux_heads(tensors: dict[str, np.ndarray]) -> bool:
  """Whether a GoogLeNet file holds its auxiliary classifiers (torchvision's does, Caffe's
  train_val models do)."""
  return any(name.startswith(("aux1.", "loss1/")) for name in tensors)


def transfer(
  recipe: sources.Recipe,
  model: models.ConvNet,
  shapes: Any,
  tensors: dict[str, np.ndarray],
  caffe_layers: list | None,
  aux: bool,
) -> dict[str, Any]:
  """The network's variables ({"params", "batch_stats"}) from the file's tensors."""
  target = {
    (collection, *path): tuple(value.shape)
    for collection, tree in shapes.items()
    for path, value in traverse_util.flatten_dict(tree).items()
  }
  t = Transfer(tensors, target)
  if caffe_layers is not None:  # definitions first: nothing is copied from another network
    caffe_names.check_geometry(caffe_layers, model.layers, recipe.caffe_convs(aux))
  recipe.transfer(t, model.layers, aux)
  values = t.finish()
  variables: dict[str, Any] = {"params": {}, "batch_stats": {}}
  for key in list(values):
    # As jax arrays (on the CPU, device_put of an aligned array is zero-copy): orbax writes
    # them without the host copy it makes of numpy arrays, which took a VGG-19 import's peak
    # memory from 3.3× the file's size to 2.5× (measured, 575 MB file, whole process).
    collection, *path = key
    variables[collection][tuple(path)] = jax.device_put(values.pop(key))
  return {k: traverse_util.unflatten_dict(v) if v else {} for k, v in variables.items()}


def train_state(config: ml_collections.ConfigDict, model: models.ConvNet, variables: dict):
  """The step-0 train state holding `variables`, as a run would save it."""
  learning_rate_fn = schedules.create_learning_rate_fn(config, IMAGENET_TRAIN_EXAMPLES)
  tx = experiment.create_optimizer(config, learning_rate_fn, model.layers[-1].name)
  step_key = jax.random.fold_in(jax.random.key(config.seed), 1)
  state = experiment.TrainState.create(
    apply_fn=model.apply,
    params=variables["params"],
    tx=tx,
    batch_stats=variables["batch_stats"],
    rng=jax.random.key_data(step_key),
    plateau=schedules.Plateau.create(),
  )
  return jax.tree.map(lambda x: x if isinstance(x, jax.Array) else np.asarray(x), state)


def sha256(file: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(file, "rb") as f:
    while chunk := f.read(1 << 24):
      digest.update(chunk)
  return digest.hexdigest()


def import_weights(
  spec: str, file: str | pathlib.Path, workdir: str | pathlib.Path, report: Callable = print
) -> dict[str, Any]:
  """Imports `file` as the published network `spec` into `workdir`; returns what it wrote."""
  source, network, recipe = sources.parse(spec)
  file = pathlib.Path(file).expanduser()
  workdir = workdirs.check_usable(workdir)
  if checkpoints.latest_step(workdir) is not None or (workdir / checkpoints.CONFIG_FILE).exists():
    raise ValueError(
      f"workdir {workdir} already holds a run; import into a new folder (nothing was written)"
    )
  start = time.perf_counter()
  tensors, caffe_layers = read_source(source, file)
  aux = has_aux_heads(tensors)
  config = imported_config(recipe, aux)
  model = models.create_model(config.model, sources.NUM_CLASSES)
  crop = config.dataset.crop_size
  shapes, _ = models.trace(model, (crop, crop, 3), sources.NUM_CLASSES)
  try:
    variables = transfer(recipe, model, shapes, tensors, caffe_layers, aux)
  except ValueError as error:
    raise ValueError(f"{file} as {spec}: {error}; nothing was written") from error
  del tensors, caffe_layers  # the converted copies are all that is needed now
  state = train_state(config, model, variables)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpoints.write_config(config, workdir)
  manager = checkpoints.create_manager(workdir, config.keep_checkpoints)
  checkpoints.save(manager, 0, state)
  checkpoints.finish(manager)
  provenance = {
    "source": f"{source}:{network}",
    "file": str(file.resolve()),
    "sha256": sha256(file),
    "bytes": file.stat().st_size,
    "published_top1_top5": recipe.published,
    "auxiliary_heads": aux,
  }
  (workdir / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
  count = sum(int(np.prod(np.shape(v))) for v in jax.tree.leaves(variables["params"]))
  report(
    f"imported {source}:{network} from {file} ({count:,} parameters) into {workdir} in "
    f"{time.perf_counter() - start:.1f} s"
    + (
      f"; published single-crop accuracy (top-1/top-5 %): {recipe.published}"
      if recipe.published
      else ""
    )
  )
  return provenance
