"""Activation functions in LeNet-5 on Fashion-MNIST: ReLU (the baseline), tanh, sigmoid,
leaky ReLU, swish.

Run (the embedded data; about 2 minutes a variant here):
  .venv/bin/python ablate.py --study=configs/studies/activations.py --workdir=workdirs/activations
Krizhevsky et al. (2012, Fig. 1): a 4-layer CNN with ReLUs reaches 25 % training error on
CIFAR-10 six times faster than with tanh; sigmoid nets train slowest of all.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
  study = ml_collections.ConfigDict()
  study.base = default.get_config()  # ReLU
  study.variants = tuple(
    (name, {"model.activation": name}) for name in ("tanh", "sigmoid", "leaky_relu", "swish")
  )
  return study
