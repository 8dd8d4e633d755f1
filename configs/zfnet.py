"""ZFNet (Zeiler & Fergus 2013) on ImageNet: AlexNet's recipe with the ZF geometry.

Run:
  .venv/bin/python train.py --config=configs/zfnet.py --workdir=workdirs/zfnet
Published: 14.8 % top-5 error (one model, ILSVRC-2013); 11.2–11.7 % for the later ensembles.
"""

import ml_collections

import models
from configs import alexnet


def get_config() -> ml_collections.ConfigDict:
  config = models.set_model(alexnet.get_config(), "zfnet")  # keeps AlexNet's recipe and lrn_order
  config.dataset.crop_size = 224
  config.num_epochs = 70  # "stopped training after 70 epochs"
  config.schedule.step_epochs = (25, 50, 65)
  return config
