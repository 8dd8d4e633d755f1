"""Per-layer accounting of a network: output shape, parameters, FLOPs, activation memory.

  .venv/bin/python summary.py --model=alexnet [--format=table|json|csv] [--input_size=N]
  .venv/bin/python summary.py --config=configs/alexnet.py [--config.model.remove=fc7,fc6]

FLOPs are multiply-adds for one image; models/accounting.py says what is counted and does it.
"""

from __future__ import annotations

import json

import ml_collections
from absl import flags
from absl import logging as absl_logging

import cli
import experiment
import models
from models import accounting

FORMATS = ("table", "json", "csv")


def resolve_model(
  config: ml_collections.ConfigDict | None,
  name: str | None,
  input_size: int | None,
  num_classes: int | None,
):
  """The model, its input shape and class count, from --config or --model (and overrides)."""
  if (config is None) == (name is None):
    raise ValueError("give exactly one of --config and --model")
  if config is not None:
    _, shape, classes = experiment.model_and_input(config)
    model_config = config.model
  else:
    model_config = ml_collections.ConfigDict({"name": name})
    shape, classes = models.entry(name).input_shape, models.entry(name).num_classes
  if input_size is not None:
    shape = (input_size, input_size, shape[2])
  classes = num_classes or classes
  return models.create_model(model_config, classes), shape, classes


def render(
  config: ml_collections.ConfigDict | None,
  name: str | None,
  output_format: str,
  input_size: int | None = None,
  num_classes: int | None = None,
) -> str:
  """The summary of --config's or --model's network as a table, JSON or CSV text."""
  model, shape, classes = resolve_model(config, name, input_size, num_classes)
  summary = accounting.summarize(model, shape, classes)
  if output_format == "json":
    return json.dumps(summary)
  if output_format == "csv":
    return accounting.format_csv(summary).rstrip("\n")
  title = config.model.name if config is not None else name
  return accounting.format_table(
    summary, f"{title}: input {'×'.join(map(str, shape))}, {classes} classes"
  )


if __name__ == "__main__":
  cli.define_config_flag("config", "experiment config whose model to summarise", required=False)
  flags.DEFINE_string("model", None, "registry name, summarised at its native input")
  flags.DEFINE_enum("format", "table", FORMATS, "table (text), json or csv")
  flags.DEFINE_integer("input_size", None, "square input size in pixels (default: native)")
  flags.DEFINE_integer("num_classes", None, "number of classes (default: the dataset's or native)")
  FLAGS = flags.FLAGS
  cli.run(
    lambda: render(FLAGS.config, FLAGS.model, FLAGS.format, FLAGS.input_size, FLAGS.num_classes),
    log_level=absl_logging.ERROR,
    bare_shows_usage=True,  # it needs --model or --config
  )  # TFDS warns about datasets not prepared here
