"""Evaluates the newest checkpoint of a training run with the run's own config.

  .venv/bin/python eval.py --workdir=DIR [--config.eval.ten_crop=True] [--config.FIELD=VALUE ...]

Reads DIR/config.json, so a fine-tuned, subset or resumed run evaluates with --workdir alone;
--config.FIELD=VALUE changes only how it is evaluated (config_rules.EVALUATION_FIELDS: batch
size, crop protocol, split, data folder, devices). Prints top-1 and top-5 error (single crop, and
ten-crop with `eval.ten_crop`), writes them into DIR/results.json, the per-example predictions
into DIR/predictions.npz, and the run's page, DIR/report.html (reporting/run_page.py). The work
is done by evaluation.evaluate_workdir.
"""

import pathlib

from absl import flags

import cli
import config_rules
import evaluation
import parallel
from reporting import run_page


def main() -> str:
  cli.check_overrides(FLAGS.config, FLAGS.workdir, config_rules.EVALUATION_FIELDS)
  results = evaluation.evaluate_workdir(FLAGS.config, FLAGS.workdir)
  if parallel.is_lead_process():
    run_page.write_or_say(pathlib.Path(FLAGS.workdir), parallel.announce)
  return evaluation.results_lines(results)


if __name__ == "__main__":
  cli.define_workdir_and_its_config("a training run's folder (its config.json is the config)")
  FLAGS = flags.FLAGS
  cli.run(main)
