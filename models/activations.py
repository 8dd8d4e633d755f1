"""The pointwise choices a network is built with: activations, kernel initializers, and the
backward rules (visualisation only) that change how a backward pass goes through activations
and max pools.

`model.activation` and `model.kernel_init` name an entry of ACTIVATIONS and INITIALIZERS
(checked by `models.create_model`); visualization/ picks a backward rule per network it applies.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import linen as nn

import config_values

Array = jax.Array


def swish(x: Array) -> Array:
  """x·σ(x) (Ramachandran et al. 2017)."""
  return x * jax.nn.sigmoid(x)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
  "relu": nn.relu,
  "tanh": jnp.tanh,
  "sigmoid": jax.nn.sigmoid,
  "leaky_relu": lambda x: nn.leaky_relu(x, negative_slope=0.01),
  "swish": swish,
}

INITIALIZERS: dict[str, Callable] = {
  # He et al. 2015 ("Xavier/2"): the default for ReLU networks.
  "he": nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"),
  "glorot": nn.initializers.glorot_uniform(),
  # Krizhevsky et al. 2012 §5: zero-mean Gaussian, standard deviation 0.01.
  "gaussian": nn.initializers.normal(stddev=0.01),
  # PyTorch's default for conv and linear layers (uniform, bound 1/sqrt(fan_in)).
  "lecun_uniform": nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform"),
}

# How a backward pass goes through activations and max pools. "gradient": the true gradient.
# For visualisation (visualization/): "guided" and "deconvnet" change the ReLU's rule
# (Springenberg et al. 2015; Zeiler & Fergus 2014), other activations keep their gradient;
# "dependency" passes cotangents through every activation unchanged and spreads a max pool's
# over its whole window, so that the support of ∂unit/∂input is the unit's receptive field.
BACKWARD_RULES = ("gradient", "guided", "deconvnet", "dependency")


def with_backward_rule(activation: Callable[[Array], Array], rule: str, is_relu: bool) -> Callable:
  """`activation` whose backward pass follows `rule` (one of BACKWARD_RULES)."""
  # Checked here, where the rule is read: any other name would pass cotangents straight
  # through, as "dependency" does.
  config_values.check_choice("backward rule", rule, BACKWARD_RULES)
  if rule == "gradient" or (rule in ("guided", "deconvnet") and not is_relu):
    return activation

  @jax.custom_vjp
  def ruled(x: Array) -> Array:
    return activation(x)

  def forward(x: Array) -> tuple[Array, Callable]:
    return jax.vjp(activation, x)

  def backward(vjp: Callable, r: Array) -> tuple[Array]:
    positive = r * (r > 0)
    if rule == "guided":  # R_l = (f_l > 0)·(R_l+1 > 0)·R_l+1
      return vjp(positive)
    if rule == "deconvnet":  # R_l = (R_l+1 > 0)·R_l+1, whatever the forward input
      return (positive,)
    return (r,)

  ruled.defvjp(forward, backward)
  return ruled


def spread_max_pool(pool_fn: Callable, average_fn: Callable) -> Callable:
  """A max pool whose backward pass spreads each cotangent over the whole window (the
  "dependency" rule), through the equally shaped average pool's gradient."""

  @jax.custom_vjp
  def pooled(x: Array) -> Array:
    return pool_fn(x)

  def forward(x: Array) -> tuple[Array, Callable]:
    return pool_fn(x), jax.vjp(average_fn, x)[1]

  def backward(vjp: Callable, r: Array) -> tuple[Array]:
    return vjp(r)

  pooled.defvjp(forward, backward)
  return pooled
