"""ZFNet (Zeiler & Fergus 2013) on ImageNet: AlexNet's recipe with the ZF geometry.

Run:
  .venv/bin/python train.py --config=configs/zfnet.py --workdir=workdirs/zfnet
Published: 14.8 % top-5 error (one model, ILSVRC-2013); 11.2–11.7 % for the later ensembles.
"""

import ml_collections

from configs import alexnet


def get_config() -> ml_collections.ConfigDict:
  config = alexnet.get_config()
  config.model.name = "zfnet"
  del config.model.variant, config.model.groups  # AlexNet only
  config.dataset.image_size = 224
  config.num_epochs = 70                          # "stopped training after 70 epochs"
  config.schedule.step_epochs = (25, 50, 65)
  return config
