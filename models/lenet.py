"""LeNet-5 (LeCun et al. 1998): [CONV-POOL-CONV-POOL-CONV-FC-FC] on 32×32 inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from models.layers import Conv, Dense, LayerStack, Pool

# form → (activation, pooling kind, activation after pooling)
FORMS = {
    # LeCun et al. 1998 §II.B: squashing units and trainable average subsampling.
    "classic": ("tanh", "avg", True),
    "modern": ("relu", "max", False),
}


def lenet5_layers(num_classes: int, pool_kind: str, act_after_pool: bool) -> tuple:
  """The layer table, named as in the paper: C1, S2, C3, S4, C5, F6, output."""
  return (
      Conv("c1", features=6, kernel=5),                        # 28×28×6
      Pool("s2", 2, 2, pool_kind, act_after_pool),             # 14×14×6
      Conv("c3", features=16, kernel=5),                       # 10×10×16
      Pool("s4", 2, 2, pool_kind, act_after_pool),             # 5×5×16
      Conv("c5", features=120, kernel=5),                      # 1×1×120
      Dense("f6", features=84),                                # 84
      Dense("output", features=num_classes, activation=False), # num_classes
  )


class LeNet5(nn.Module):
  """LeNet-5 in its 1998 form ("classic") or with ReLU and max pooling ("modern")."""
  num_classes: int = 10
  form: str = "modern"
  activation: str | None = None  # None: the form's own
  kernel_init: str = "he"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, train: bool = False):
    del train  # LeNet-5 has no dropout or batch norm.
    if self.form not in FORMS:
      raise ValueError(f"unknown LeNet-5 form {self.form!r}; known: {', '.join(FORMS)}")
    form_activation, pool_kind, act_after_pool = FORMS[self.form]
    stack = LayerStack(lenet5_layers(self.num_classes, pool_kind, act_after_pool),
                       activation=self.activation or form_activation,
                       kernel_init=self.kernel_init, dtype=self.dtype, name="layers")
    logits, intermediates = stack(images)
    return logits.astype(jnp.float32), intermediates
