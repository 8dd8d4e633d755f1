"""LeNet-5 (LeCun et al. 1998): [CONV-POOL-CONV-POOL-CONV-FC-FC] on 32×32 inputs."""

from __future__ import annotations

import config_values
from models.layers import Conv, Dense, Pool
from models.registry import register

# form → (activation, pooling kind, activation after pooling)
FORMS = {
  # LeCun et al. 1998 §II.B: squashing units and average ("trainable") subsampling.
  "classic": ("tanh", "avg", True),
  "modern": ("relu", "max", False),
}


def lenet5_activation(form: str = "modern") -> str:
  return config_values.choose("LeNet-5 form", form, FORMS)[0]


@register("lenet5", input_size=32, channels=1, num_classes=10, activation=lenet5_activation)
def lenet5(num_classes: int, form: str = "modern") -> tuple:
  """The layer table, named as in the paper: C1, S2, C3, S4, C5, F6, output."""
  _, pool_kind, act_after_pool = config_values.choose("LeNet-5 form", form, FORMS)
  return (
    Conv("c1", 6, 5),  # 28×28×6
    Pool("s2", 2, 2, pool_kind, activation=act_after_pool),  # 14×14×6
    Conv("c3", 16, 5),  # 10×10×16
    Pool("s4", 2, 2, pool_kind, activation=act_after_pool),  # 5×5×16
    Conv("c5", 120, 5),  # 1×1×120
    Dense("f6", 84),  # 84
    Dense("output", num_classes, activation=False),
  )
