"""AlexNet's augmentations switched off one at a time (Krizhevsky et al. 2012, §4.1).

Run (needs imagenet2012 prepared):
  .venv/bin/python ablate.py --study=configs/studies/augmentation.py --workdir=workdirs/augmentation
Published: without the random crops and reflections the network overfits badly; PCA lighting
cuts top-1 error by over 1 %.
"""

import ml_collections

from configs import alexnet


def get_config() -> ml_collections.ConfigDict:
  study = ml_collections.ConfigDict()
  study.base = alexnet.get_config()
  study.variants = (
    ("no_random_crop", {"augment.random_crop": False}),
    ("no_flip", {"augment.flip": False}),
    ("no_pca_lighting", {"augment.pca_lighting": 0.0}),
  )
  return study
