"""Looks inside a trained run: filters, top patches, t-SNE, occlusion, saliency, deconvnet,
guided backpropagation, class models, inversion, Grad-CAM, integrated gradients, SmoothGrad
and the randomisation sanity check.

  .venv/bin/python visualize.py --workdir=DIR [--config.FIELD=VALUE ...] \\
      [--only=occlusion,saliency] [--layer=c3] [--images=16]

Restores DIR's newest checkpoint and the run's config (DIR/config.json; --config.FIELD=VALUE
changes visualize.*, each technique's settings, and how the run is evaluated:
config_rules.EVALUATION_FIELDS) and writes DIR/visualizations/:
a PNG and the arrays (.npz) per technique, and index.html showing them all with their settings.
Nothing else in DIR changes. The work is done by visualization/suite.py.
"""

from absl import flags

import cli
import config_rules
import config_values
from visualization import suite


def main() -> str:
  cli.check_overrides(FLAGS.config, FLAGS.workdir, (*config_rules.EVALUATION_FIELDS, "visualize."))
  shortcuts = {"only": FLAGS.only, "layer": FLAGS.layer, "images": FLAGS.images}
  overrides = {f"visualize.{k}": v for k, v in shortcuts.items() if v is not None}
  return suite.run(config_values.with_overrides(FLAGS.config, overrides), FLAGS.workdir)


if __name__ == "__main__":
  cli.define_workdir_and_its_config("a training run's folder")
  flags.DEFINE_string("only", None, "techniques, comma-separated (visualize.only)")
  flags.DEFINE_string("layer", None, "the layer to look at (visualize.layer)")
  flags.DEFINE_integer("images", None, "eval images to explain (visualize.images)")
  FLAGS = flags.FLAGS
  cli.run(main)
