"""Zeiler & Fergus (2014) §5.3 on AlexNet: remove layers, resize the FC layers (docs/studies.md).

Run (needs imagenet2012 prepared; for a quick look add --study.base.num_train_steps=N):
  .venv/bin/python ablate.py --study=configs/studies/zeiler_fergus.py \
      --workdir=workdirs/zeiler_fergus
Published top-5 error changes against their 18.1 %: fc7 removed +1.1, fc6 and fc7 +5.7,
conv3 and conv4 +3.0, all four +33.5 ("depth of the network is key"); fc6/fc7 at 2048 or
8192 units change little.
"""

import ml_collections

from configs import alexnet


def get_config() -> ml_collections.ConfigDict:
  study = ml_collections.ConfigDict()
  study.base = alexnet.get_config()
  study.variants = (
    ("no_fc7", {"model.remove": "fc7"}),
    ("no_fc6_fc7", {"model.remove": "fc6,fc7"}),
    ("no_conv3_conv4", {"model.remove": "conv3,conv4"}),
    ("no_conv3_conv4_fc6_fc7", {"model.remove": "conv3,conv4,fc6,fc7"}),
    ("fc_2048", {"model.widths": "fc6=2048,fc7=2048"}),
    ("fc_8192", {"model.widths": "fc6=8192,fc7=8192"}),
  )
  return study
