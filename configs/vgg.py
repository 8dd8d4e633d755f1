"""VGG (Simonyan & Zisserman 2014), configurations A, A-LRN, B, C, D, E: `configs/vgg.py:d`.

Run:
  .venv/bin/python train.py --config=configs/vgg.py:d --workdir=workdirs/vgg_d
Published (single scale, top-1/top-5 val error): A 29.6/10.4, A-LRN 29.7/10.5, B 28.7/9.9,
  C 28.1/9.4, D 27.0/8.8, E 27.3/9.0; ILSVRC-14 ensemble 7.3 % top-5. VGG-16 (D): 138.4 M
  parameters.
"""

import ml_collections

import config_values
import models
from configs import imagenet_base
from models import vgg


def get_config(configuration: str = "d") -> ml_collections.ConfigDict:
  config_values.check_choice("VGG configuration", configuration, vgg.CONFIGS)
  config = models.set_model(imagenet_base.get_config(), f"vgg_{configuration}")
  config.model.kernel_init = "glorot"  # §3.1: Glorot & Bengio initialisation, no pre-training
  config.batch_size = 256
  config.num_epochs = 74  # 370K iterations; learning rate cut 3 times
  config.schedule.step_epochs = (30, 50, 65)
  return config
