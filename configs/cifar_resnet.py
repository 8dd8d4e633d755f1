"""CIFAR-10 ResNets and plain nets (He et al. 2015 §4.2): `configs/cifar_resnet.py:56`, `:plain20`.

Run: (needs cifar10 prepared in the TFDS data dir)
  .venv/bin/python train.py --config=configs/cifar_resnet.py:20 --workdir=workdirs/cifar_resnet20
Published test error: ResNet-20 8.75, -32 7.51, -44 7.17, -56 6.97, -110 6.43 %; the plain nets
  get worse with depth (plain-56 above plain-20), the degradation problem.
"""

import ml_collections

from configs import default
from models import resnet


def get_config(depth: str = "20") -> ml_collections.ConfigDict:
  plain, number = resnet.parse_depth(depth, tuple(resnet.CIFAR_DEPTHS), "CIFAR ResNet")
  config = default.get_config()
  del config.model.form
  config.model.name = f"cifar_{'plain' if plain else 'resnet'}{number}"
  config.model.shortcut = "A"  # §4.2: identity shortcuts, zero-padded where channels grow
  config.dataset.name = "cifar10"
  config.dataset.pad = 0
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
