"""ResNets and plain nets (He et al. 2015) on ImageNet: `configs/resnet.py:50`, `:plain34`.

Run:
  .venv/bin/python train.py --config=configs/resnet.py:34 --workdir=workdirs/resnet34
  .venv/bin/python train.py --config=configs/resnet.py:plain34 --workdir=workdirs/plain34
Variants: --config.model.shortcut=A|B|C|none (zero-padded identity, projection where the
  shape changes, projection everywhere, no shortcut: the plain net).
Published top-1 error (10-crop, val): plain-18 27.94, ResNet-18 27.88, plain-34 28.54,
  ResNet-34 25.03 (B), ResNet-50 22.85, ResNet-101 21.75, ResNet-152 21.43; top-5 for
  ResNet-152 5.71 (single model), 3.57 % the ILSVRC-2015 ensemble.
"""

import ml_collections

import models
from configs import imagenet_base
from models import resnet


def get_config(depth: str = "50") -> ml_collections.ConfigDict:
  plain, number = resnet.parse_depth(depth, tuple(resnet.IMAGENET_STAGES), "ResNet")
  config = models.set_model(imagenet_base.get_config(), f"{'plain' if plain else 'resnet'}{number}")
  config.model.shortcut = "B"  # §3.3: projections only where dimensions change
  config.optimizer.learning_rate = 0.1
  config.optimizer.weight_decay = 1e-4  # the paper's (the lecture slide says 1e-5)
  config.batch_size = 256
  # 60×10⁴ iterations (~120 epochs), ÷10 when the error plateaus.
  config.num_epochs = 120
  config.schedule.step_epochs = (30, 60, 90)
  return config
