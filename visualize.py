"""Looks inside a trained run (spec §5): filters, top patches, t-SNE, occlusion, saliency,
deconvnet, guided backpropagation, class models, inversion, Grad-CAM, integrated gradients,
SmoothGrad and the randomisation sanity check.

  .venv/bin/python visualize.py --workdir=DIR [--config.FIELD=VALUE ...] \\
      [--only=occlusion,saliency] [--layer=c3] [--images=16]

Restores DIR's newest checkpoint and the run's config (DIR/config.json; --config.FIELD
overrides any field, visualize.* holds each technique's settings) and writes DIR/visualizations/:
a PNG and the arrays (.npz) per technique, and index.html showing them all with their settings.
Nothing else in DIR changes. The work is done by visualization/suite.py.
"""

from __future__ import annotations

import json
import pathlib
import sys

import ml_collections
from absl import flags
from ml_collections import config_flags

import checkpoints
import cli
import config_values
from configs import base
from visualization import suite


def run_config(argv: list[str]) -> ml_collections.ConfigDict:
  """The config saved in the workdir named on the command line, with the visualize.* fields
  of the base config added; the base config if there is none (the run then says why)."""
  following = dict(zip(argv, [*argv[1:], ""], strict=True))  # --workdir DIR
  workdir = following.get("--workdir") or next(
    (a.split("=", 1)[1] for a in argv if a.startswith("--workdir=")), ""
  )
  saved = pathlib.Path(workdir, checkpoints.CONFIG_FILE) if workdir else None
  try:
    config = ml_collections.ConfigDict(json.loads(saved.read_text()))
  except (AttributeError, OSError, ValueError):
    config = base.get_config()
  config.visualize = {**base.get_config().visualize, **config.get("visualize", {})}
  return config


def main() -> str:
  workdir = pathlib.Path(FLAGS.workdir)
  if not (workdir / checkpoints.CONFIG_FILE).is_file():
    raise ValueError(
      f"{workdir / checkpoints.CONFIG_FILE} not found; --workdir must be a training run's folder"
    )
  shortcuts = {"only": FLAGS.only, "layer": FLAGS.layer, "images": FLAGS.images}
  overrides = {f"visualize.{k}": v for k, v in shortcuts.items() if v is not None}
  return suite.run(config_values.with_overrides(FLAGS.config, overrides), workdir)


if __name__ == "__main__":
  config_flags.DEFINE_config_dict("config", run_config(sys.argv), "the run's config, overridable")
  flags.DEFINE_string("workdir", None, "a training run's folder")
  flags.mark_flags_as_required(["workdir"])
  flags.DEFINE_string("only", None, "techniques, comma-separated (visualize.only)")
  flags.DEFINE_string("layer", None, "the layer to look at (visualize.layer)")
  flags.DEFINE_integer("images", None, "eval images to explain (visualize.images)")
  FLAGS = flags.FLAGS
  cli.run(main)
