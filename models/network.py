"""`ConvNet`: the Flax module that applies a layer table (models/layers.py) in order."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from models.activations import ACTIVATIONS, INITIALIZERS, with_backward_rule
from models.layers import AuxHead, Layer, LayerSettings

Array = jax.Array


class ConvNet(nn.Module):
  """Applies a layer table in order; returns (logits, {layer name: output}).

  `activation` and `kernel_init` name entries of models/activations.py's tables; they are
  checked when the network is created (`models.create_model`), not each time it is applied.
  """

  layers: Sequence[Layer]
  activation: str = "relu"
  kernel_init: str = "he"
  batch_norm: bool = False
  dtype: jnp.dtype = jnp.float32
  axis_name: str | None = None  # set when training data-parallel (parallel.AXIS)
  conv_impl: str = "auto"  # models/conv.py: auto, xla, cpu or onednn
  backward: str = "gradient"  # BACKWARD_RULES; the others serve visualisation only
  batch_norm_epsilon: float = 1e-5
  batch_norm_momentum: float = 0.9  # Flax's convention: PyTorch's momentum 0.1 is 0.9 here

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> tuple[Array, dict[str, Array]]:
    settings = LayerSettings(
      with_backward_rule(
        ACTIVATIONS[self.activation], self.backward, is_relu=self.activation == "relu"
      ),
      INITIALIZERS[self.kernel_init],
      self.batch_norm,
      self.dtype,
      train,
      self.axis_name,
      self.conv_impl,
      self.backward,
      self.batch_norm_epsilon,
      self.batch_norm_momentum,
    )
    x = x.astype(self.dtype)
    intermediates = {}
    for layer in self.layers:
      output = layer(x, settings)
      intermediates[layer.name] = output
      if not layer.branches_off:
        x = output
    return x.astype(jnp.float32), intermediates

  def aux_loss_weights(self) -> dict[str, float]:
    """Auxiliary classifiers whose scores join the training loss, with their weights."""
    return {l.name: l.loss_weight for l in self.layers if isinstance(l, AuxHead)}
