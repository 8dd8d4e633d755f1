"""LeNet-5 (ReLU, max pooling) on Fashion-MNIST: the default convzoo experiment.

Run:
  .venv/bin/python train.py --config=configs/default.py --workdir=workdirs/default

Expected: about 9 % top-1 test error (published small CNNs: 7.5–12 %), in about a minute and
a half on a 2-core CPU, compile included.
"""

import ml_collections

import models
from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = models.set_model(base.get_config(), "lenet5")
  config.model.form = "modern"  # "classic": tanh + average subsampling (1998)
  config.dataset.pad = 2  # 28×28 → 32×32, as LeCun et al. pad the digits
  return config
