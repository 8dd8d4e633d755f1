"""CIFAR-10 ResNets and plain nets (He et al. 2015 §4.2): `configs/cifar_resnet.py:56`, `:plain20`.

Run: (needs cifar10 prepared in the TFDS data dir)
  .venv/bin/python train.py --config=configs/cifar_resnet.py:20 --workdir=workdirs/cifar_resnet20
Published test error: ResNet-20 8.75, -32 7.51, -44 7.17, -56 6.97, -110 6.43 %; the plain nets
  get worse with depth (plain-56 above plain-20), the degradation problem.
"""

import ml_collections

import models
from configs import base
from models import resnet


def get_config(depth: str = "20") -> ml_collections.ConfigDict:
  plain, number = resnet.parse_depth(depth, tuple(resnet.CIFAR_DEPTHS), "CIFAR ResNet")
  config = models.set_model(base.get_config(), f"cifar_{'plain' if plain else 'resnet'}{number}")
  config.model.shortcut = "A"  # §4.2: identity shortcuts, zero-padded where channels grow
  config.dataset.name = "cifar10"
  # §4.2: "4 pixels are padded on each side, and a 32×32 crop is randomly sampled from the
  # padded image or its horizontal flip"; testing sees the original 32×32 (the centre crop).
  config.dataset.pad = 4
  config.dataset.crop_size = 32
  config.augment.random_crop = True
  config.augment.flip = True
  config.dataset.normalization = "mean_per_pixel"  # "with the per-pixel mean subtracted"
  config.optimizer.learning_rate = 0.1
  config.optimizer.weight_decay = 1e-4
  config.batch_size = 128
  # 64k iterations, ÷10 at 32k and 48k: epochs 164, 82, 123 at 390 steps per epoch.
  config.num_epochs = 164
  config.schedule.name = "step"
  config.schedule.warmup_epochs = 0
  config.schedule.step_epochs = (82, 123)
  config.eval_every_steps = 3900
  config.checkpoint_every_steps = 3900
  return config
