"""Plain against residual CIFAR-10 nets at two depths (He et al. 2016, §4.2, Fig. 6).

Run (needs cifar10 prepared):
  .venv/bin/python ablate.py --study=configs/studies/depth_degradation.py --workdir=workdirs/depth
Published test errors: plain-20 ≈ 9.5 %, plain-56 ≈ 13.8 % (deeper is worse: degradation);
ResNet-20 8.75 %, ResNet-56 6.97 % (deeper is better).
"""

import ml_collections

from configs import cifar_resnet


def get_config() -> ml_collections.ConfigDict:
  study = ml_collections.ConfigDict()
  study.base = cifar_resnet.get_config("20")  # the baseline: ResNet-20
  study.variants = (
    ("resnet56", {"model.name": "cifar_resnet56"}),
    ("plain20", {"model.name": "cifar_plain20"}),
    ("plain56", {"model.name": "cifar_plain56"}),
  )
  return study
