"""Trains a convzoo model from a config.

  .venv/bin/python train.py --config=configs/default.py --workdir=DIR [--config.FIELD=VALUE ...]

Trains data-parallel on every local device (on CPU, the host is split into $CONVZOO_CPU_DEVICES
devices, one per core up to 8 by default), or on every device of every host with
`--config.distributed.enabled`.
Resumes from the newest restorable checkpoint in DIR; on SIGTERM or Ctrl-C saves and exits
(status 143 or 130).
Writes TensorBoard events, metrics.jsonl, curves.png, results.json and conv_routes.json (the
convolution routes the run uses, obeyed when it resumes) there. The work is done by
training.train_and_evaluate.
"""

import cli
import training

if __name__ == "__main__":
  cli.define_config_and_workdir()
  cli.run(
    lambda: training.results_line(training.train_and_evaluate(cli.FLAGS.config, cli.FLAGS.workdir))
  )
