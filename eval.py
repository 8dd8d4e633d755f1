"""Evaluates the newest checkpoint of a workdir on the config's eval split.

  .venv/bin/python eval.py --config=configs/default.py --workdir=DIR [--config.FIELD=VALUE ...]

Prints top-1 and top-5 error (single crop, and ten-crop with `eval.ten_crop`) and writes them
into DIR/results.json. The work is done by evaluation.evaluate_workdir.
"""

import cli
import evaluation

if __name__ == "__main__":
  cli.define_config_and_workdir()
  cli.run(
    lambda: evaluation.results_lines(
      evaluation.evaluate_workdir(cli.FLAGS.config, cli.FLAGS.workdir)
    )
  )
