"""GoogLeNet / Inception-v1 (Szegedy et al. 2014) on ImageNet.

Run:
  .venv/bin/python train.py --config=configs/googlenet.py --workdir=workdirs/googlenet
Variants: --config.model.aux_classifiers=false, --config.model.norm=none (no LRN).
Published: 6.67 % top-5 error (7-model ensemble, 144 crops); one model, one crop: 10.07 %.
"""

import ml_collections

import models
from configs import imagenet_base


def get_config() -> ml_collections.ConfigDict:
  config = models.set_model(imagenet_base.get_config(), "googlenet")
  config.model.aux_classifiers = True  # on 4a and 4d, loss weight 0.3, ignored at test time
  config.model.kernel_init = "glorot"
  config.optimizer.weight_decay = 2e-4
  config.num_epochs = 120
  # §6: "decreasing the learning rate by 4% every 8 epochs".
  config.schedule.step_epochs = tuple(range(8, 120, 8))
  config.schedule.step_factor = 0.96
  return config
