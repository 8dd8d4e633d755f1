"""AlexNet (Krizhevsky et al. 2012) on ImageNet, the paper's recipe.

Run:
  .venv/bin/python train.py --config=configs/alexnet.py --workdir=workdirs/alexnet
Variants: --config.model.groups=2 (two-GPU grouping), --config.model.lrn_order=pool_lrn,
  --config.model.variant=torchvision (64, 192, 384, 256, 256 filters).
Published: one CNN 40.7 % top-1, 18.2 % top-5 error on ILSVRC-2012 val (10-crop: 18.2 % with
  10 patches; the paper's 1-CNN entry); 62.4 M parameters, 1.14 G multiply-adds at 227×227.
"""

import ml_collections

import models
from configs import imagenet_base


def get_config() -> ml_collections.ConfigDict:
  config = models.set_model(imagenet_base.get_config(), "alexnet")
  config.model.variant = "paper"  # paper or torchvision
  config.model.groups = 1  # 2: the two-GPU original
  config.model.lrn_order = "relu_lrn_pool"  # the paper's; pool_lrn as in cs231n's table
  config.model.kernel_init = "gaussian"  # N(0, 0.01), §5
  config.dataset.crop_size = 227  # the paper says 224; 227 makes the sizes work
  config.batch_size = 128
  config.num_epochs = 90  # "roughly 90 cycles", learning rate cut 3 times
  config.schedule.step_epochs = (30, 60, 80)
  return config
