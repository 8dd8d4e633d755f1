"""Shared base of the ImageNet case-study recipes: ILSVRC-2012, SGD with momentum, step decay.

Family configs (alexnet.py, vgg.py, googlenet.py, resnet.py, ...) name their network with
`models.set_model` and change a few lines of this. Training needs imagenet2012 prepared in the
TFDS data dir (ArrayRecord).
"""

import ml_collections

from configs import base


def get_config() -> ml_collections.ConfigDict:
  config = base.get_config()

  config.dataset.name = "imagenet2012"
  config.dataset.train_split = "train"
  config.dataset.eval_split = "validation"
  # Krizhevsky et al. 2012 §2 and §4.1: shorter side 256, central 256×256, random 224 crops
  # and their reflections, PCA lighting σ 0.1; 10-crop evaluation.
  config.dataset.resize = 256
  config.dataset.center_crop = 256
  config.dataset.crop_size = 224
  config.dataset.normalization = "mean"  # the paper subtracts the mean and nothing else
  config.augment.random_crop = True
  config.augment.flip = True
  config.augment.pca_lighting = 0.1
  config.eval.ten_crop = True

  # Krizhevsky et al. 2012 §5; Simonyan & Zisserman 2014 §3.1.
  config.optimizer.learning_rate = 0.01
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4

  # The papers divide by 10 when validation accuracy plateaus; these configs divide at the
  # epochs where that happened (reproducible); --config.schedule.name=plateau applies the rule.
  config.schedule.name = "step"
  config.schedule.warmup_epochs = 0
  config.schedule.step_factor = 0.1

  config.batch_size = 256
  config.eval_batch_size = 256  # divides across 1, 2, 4, 8 devices
  config.eval_every_steps = 5000
  config.checkpoint_every_steps = 5000
  config.log_every_steps = 100
  return config
