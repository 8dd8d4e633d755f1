"""LeNet-5 and the model registry."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import models
from configs import default

# Output shapes of LeCun et al. 1998, Fig. 2 (batch dimension dropped).
LENET5_SHAPES = {
  "c1": (28, 28, 6),
  "s2": (14, 14, 6),
  "c3": (10, 10, 16),
  "s4": (5, 5, 16),
  "c5": (1, 1, 120),
  "f6": (84,),
  "output": (10,),
}
# (inputs + bias) × outputs, by hand.
LENET5_PARAMS = {
  "c1": (5 * 5 * 1 + 1) * 6,
  "c3": (5 * 5 * 6 + 1) * 16,
  "c5": (5 * 5 * 16 + 1) * 120,
  "f6": (120 + 1) * 84,
  "output": (84 + 1) * 10,
}


def lenet5(**fields):
  return models.create_model(ml_collections.ConfigDict({"name": "lenet5", **fields}), 10)


def run(model, batch=2, seed=0):
  images = jax.random.normal(jax.random.key(seed), (batch, 32, 32, 1))
  variables = model.init(jax.random.key(1), images)
  return variables, *model.apply(variables, images)


@pytest.mark.smoke
@pytest.mark.parametrize("form", ["classic", "modern"])
def test_lenet5_output_shape_at_every_stage(form):
  _, logits, intermediates = run(lenet5(form=form))
  assert logits.shape == (2, 10)
  assert {name: value.shape[1:] for name, value in intermediates.items()} == LENET5_SHAPES


@pytest.mark.smoke
@pytest.mark.parametrize("form", ["classic", "modern"])
def test_lenet5_parameter_count_per_layer(form):
  variables, _, _ = run(lenet5(form=form))
  counts = {
    name: sum(x.size for x in jax.tree.leaves(layer)) for name, layer in variables["params"].items()
  }
  assert counts == LENET5_PARAMS
  assert sum(counts.values()) == 61_706


def test_classic_form_squashes_after_average_subsampling():
  _, _, classic = run(lenet5(form="classic"))
  _, _, modern = run(lenet5(form="modern"))
  assert float(jnp.abs(classic["s2"]).max()) < 1.0  # tanh after the subsampling
  assert float(classic["s2"].min()) < 0.0
  assert float(modern["s2"].min()) >= 0.0  # ReLU then max pool


def test_classic_subsampling_is_the_average_of_each_2x2_window():
  _, _, intermediates = run(lenet5(form="classic"))
  c1 = np.asarray(intermediates["c1"])
  windows = c1.reshape(2, 14, 2, 14, 2, 6).mean(axis=(2, 4))
  np.testing.assert_allclose(
    np.asarray(intermediates["s2"]), np.tanh(windows), rtol=1e-5, atol=1e-6
  )


def test_modern_subsampling_is_the_max_of_each_2x2_window():
  _, _, intermediates = run(lenet5(form="modern"))
  c1 = np.asarray(intermediates["c1"])
  np.testing.assert_array_equal(
    np.asarray(intermediates["s2"]), c1.reshape(2, 14, 2, 14, 2, 6).max(axis=(2, 4))
  )


def test_activation_field_overrides_the_form():
  _, _, intermediates = run(lenet5(form="modern", activation="tanh"))
  assert float(intermediates["c1"].min()) < 0.0


def test_unknown_form_and_activation_are_clear_errors():
  with pytest.raises(ValueError, match="unknown LeNet-5 form 'cnn'; known: classic, modern"):
    lenet5(form="cnn")
  with pytest.raises(ValueError, match="unknown model.activation 'gelu'; known: leaky_relu, relu"):
    lenet5(activation="gelu")
  with pytest.raises(ValueError, match="unknown model.kernel_init 'zeros'; known: gaussian"):
    lenet5(kernel_init="zeros")


def test_registry_builds_from_config_and_rejects_unknown_names():
  config = default.get_config()
  model = models.create_model(config.model, num_classes=7)
  _, logits, _ = run(model)
  assert logits.shape == (2, 7)
  config.model.name = "lenet6"
  with pytest.raises(ValueError, match="unknown model 'lenet6'; known: alexnet, alphago_policy"):
    models.create_model(config.model, num_classes=10)


def test_bfloat16_compute_keeps_float32_parameters_and_logits():
  config = default.get_config()
  config.model.dtype = "bfloat16"
  variables, logits, intermediates = run(models.create_model(config.model, 10))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(variables))
  assert intermediates["c1"].dtype == jnp.bfloat16
  assert logits.dtype == jnp.float32


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("size, window", [(8, 2), (9, 2), (7, 3)])
def test_tiled_pooling_equals_reduce_window(kind, size, window):
  """Non-overlapping pools take the reshape route; values and (tie-free) gradients are
  reduce_window's, including sizes the window does not divide (VALID drops the remainder)."""
  from flax import linen as nn

  from models.ops import pool

  x = jax.random.normal(jax.random.key(0), (2, size, size, 3))
  flax_pool = nn.max_pool if kind == "max" else nn.avg_pool
  expected = flax_pool(x, (window, window), (window, window), "VALID")
  np.testing.assert_allclose(pool(x, kind, window, window), expected, rtol=1e-6)
  weights = jax.random.normal(jax.random.key(1), expected.shape)
  grad = jax.grad(lambda x: jnp.sum(pool(x, kind, window, window) * weights))(x)
  expected_grad = jax.grad(
    lambda x: jnp.sum(flax_pool(x, (window, window), (window, window), "VALID") * weights)
  )(x)
  np.testing.assert_allclose(grad, expected_grad, rtol=1e-6, atol=1e-7)
