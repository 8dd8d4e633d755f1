"""Network in Network (Lin et al. 2014), the ImageNet model: mlpconv blocks, global average pooling.

Run:
  .venv/bin/python train.py --config=configs/nin.py --workdir=workdirs/nin
Published: about AlexNet's accuracy (≈ 41 % top-1 error, one crop) with 7.6 M parameters
  instead of 61 M (the released Caffe model).
"""

import ml_collections

import models
from configs import imagenet_base


def get_config() -> ml_collections.ConfigDict:
  config = models.set_model(imagenet_base.get_config(), "nin")
  config.model.kernel_init = "gaussian"
  config.batch_size = 128
  config.num_epochs = 90
  config.schedule.step_epochs = (30, 60, 80)
  return config
