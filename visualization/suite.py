"""Every technique on a training workdir: what `visualize.py` runs.

Checks everything it can before anything compiles (the workdir, the techniques, the layers,
the settings), restores the newest checkpoint and the run's config, then writes into
`DIR/visualizations/` a PNG and the arrays (`.npz`) per technique and `index.html`.
"""

from __future__ import annotations

import pathlib
import time

import jax.numpy as jnp
import ml_collections
import numpy as np

import checkpoints
import experiment
import input_pipeline
import models
import parallel
from input_pipeline import augment
from models import conv
from visualization import page, plan, receptive, techniques
from visualization.network import Network

OUTPUT = "visualizations"


def run(config: ml_collections.ConfigDict, workdir: str | pathlib.Path) -> str:
  """Runs the configured techniques on `workdir`'s newest checkpoint; returns a summary."""
  started = time.perf_counter()
  workdir = pathlib.Path(workdir).resolve()
  if checkpoints.latest_step(workdir) is None:
    raise ValueError(f"no checkpoint in {workdir / checkpoints.CHECKPOINTS}; train first")
  info = experiment.check_config(config)
  model = models.create_model(config.model, info.num_classes)
  input_shape = input_pipeline.input_shape(config, info)
  _, shapes = models.trace(model, input_shape, info.num_classes)
  names = plan.class_names(config, info)
  # Opened before the plan, which checks visualize.images against the eval split as
  # dataset.classes leaves it; opening the data compiles nothing.
  data = input_pipeline.load_data(config)
  planned = plan.check(
    config, Network(model, {}, None), shapes, names, len(data.eval), list(techniques.TECHNIQUES)
  )

  step, saved = checkpoints.read_newest(workdir, "visualize", parallel.announce)
  variables = {"params": saved["params"], "batch_stats": saved.get("batch_stats") or {}}
  network = Network(
    model,
    variables,
    data.stats,
    config.dataset.normalization,
    config.dataset.crop_size,
    augment.InputConvention.of(config.dataset),
  )
  images, labels = data.eval.read(np.arange(config.visualize.images))
  folder = workdir / OUTPUT
  folder.mkdir(exist_ok=True)
  subject = techniques.Subject(
    network,
    config,
    data,
    planned,
    receptive.receptive_fields(model, input_shape, info.num_classes),
    network.inputs(jnp.asarray(images)),
    jnp.asarray(labels),
    names,
    folder,
  )
  # The run's convolution routes where it recorded them (models/conv.py); read, never written.
  with conv.RouteBook(workdir / conv.ROUTES_FILE, parallel.announce, write=False):
    for name in planned.techniques:
      began = time.perf_counter()
      section = techniques.TECHNIQUES[name](subject)
      seconds = time.perf_counter() - began
      parallel.announce(f"{name}: {folder / section[1]} ({seconds:.1f} s)")
      recorded = page.record(folder, name, section, seconds, step)
  title = f"{config.model.name} on {info.name}, step {step}: {workdir}"
  shown = page.sections(folder, recorded, step, list(techniques.TECHNIQUES))
  written = page.write(folder, title, shown)
  total = time.perf_counter() - started
  count = len(planned.techniques)
  return f"{count} technique{'s' * (count != 1)} in {total:.0f} s: {written}"
