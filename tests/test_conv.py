"""The CPU convolution route: every formulation equals XLA's convolution, in value and gradient."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import caches
import models
from models import conv
from tests.conftest import make_config

# (input N, H, W, C; kernel, features, stride, padding, groups): 1×1, 3×3, 5×5, 7×7/2 and
# 11×11/4 kernels, SAME and explicit padding, odd sizes a stride does not divide, AlexNet's two
# groups, and single-channel input.
SHAPES = [
  ((2, 8, 8, 3), 3, 4, 1, 1, 1),
  ((2, 9, 9, 4), 3, 6, 2, 1, 1),
  ((3, 7, 7, 5), 1, 8, 1, 0, 1),
  ((2, 8, 8, 6), 1, 4, 2, 0, 1),
  ((1, 12, 12, 1), 5, 6, 1, 0, 1),
  ((2, 15, 15, 3), 7, 4, 2, 3, 1),
  ((1, 31, 31, 3), 11, 4, 4, 0, 1),
  ((2, 9, 9, 8), 5, 6, 1, 2, 2),
  ((2, 6, 6, 4), 3, 4, 1, "SAME", 2),
  ((2, 10, 10, 4), 3, 8, 2, "SAME", 1),
]


def grid(shapes: list[tuple]) -> list:
  """The shapes, kernels of 5×5 and more in the slow tier (each compiles for seconds)."""
  return [
    shape if shape[1] < 5 else pytest.param(*shape, marks=pytest.mark.slow) for shape in shapes
  ]


def operands(input_shape, kernel, features, groups, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal(input_shape).astype(np.float32)
  w = rng.standard_normal((kernel, kernel, input_shape[3] // groups, features)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(w)


def reference(x, w, stride, padding, groups):
  pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
  return lax.conv_general_dilated(
    x, w, (stride, stride), pad, dimension_numbers=conv.DIMENSIONS, feature_group_count=groups
  )


def assert_close(actual, expected, rtol=1e-5):
  """Equal to `rtol` of the expected array's largest magnitude."""
  scale = float(jnp.max(jnp.abs(expected)))
  assert actual.shape == expected.shape
  assert float(jnp.max(jnp.abs(actual - expected))) <= rtol * scale


def shape_of(x, w, stride, padding, groups) -> conv.ConvShape:
  pads = padding if isinstance(padding, str) else ((padding, padding),) * 2
  return conv.conv_shape(x, w, stride, pads, groups)


@pytest.mark.parametrize("input_shape, kernel, features, stride, padding, groups", grid(SHAPES))
def test_every_formulation_equals_xla(input_shape, kernel, features, stride, padding, groups):
  x, w = operands(input_shape, kernel, features, groups)
  shape = shape_of(x, w, stride, padding, groups)
  expected_y = reference(x, w, stride, padding, groups)
  g = jnp.asarray(np.random.default_rng(1).standard_normal(expected_y.shape).astype(np.float32))
  _, vjp = jax.vjp(lambda x, w: reference(x, w, stride, padding, groups), x, w)
  expected_dx, expected_dw = vjp(g)
  for name in conv.candidates("forward", shape):
    assert_close(conv.FORWARD[name](x, w, shape), expected_y)
  for name in conv.candidates("input_grad", shape):
    assert_close(conv.INPUT_GRAD[name](g, w, shape), expected_dx)
  for name in conv.candidates("weight_grad", shape):
    assert_close(conv.WEIGHT_GRAD[name](x, g, shape), expected_dw)


@pytest.mark.parametrize(
  "input_shape, kernel, features, stride, padding, groups", grid(SHAPES[::3])
)
def test_cpu_route_value_and_gradients_equal_xla(
  input_shape, kernel, features, stride, padding, groups, monkeypatch
):
  """Through the custom VJP, with the per-tap formulations in every direction."""
  monkeypatch.setattr(conv, "route", lambda direction, shape: "taps")
  x, w = operands(input_shape, kernel, features, groups)

  def loss(implementation):
    def f(x, w):
      pads = padding if isinstance(padding, str) else ((padding, padding),) * 2
      y = conv.conv2d(x, w, stride, pads, groups, implementation)
      return jnp.sum(jnp.sin(y)), y

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(x, w)

  (_, y_cpu), (dx_cpu, dw_cpu) = loss("cpu")
  (_, y_xla), (dx_xla, dw_xla) = loss("xla")
  assert_close(y_cpu, y_xla)
  assert_close(dx_cpu, dx_xla)
  assert_close(dw_cpu, dw_xla)


def test_routes_are_measured_once_and_kept_on_disk(tmp_path, monkeypatch):
  monkeypatch.setenv(caches.CACHE_ENV, str(tmp_path))
  conv._routes_on_disk.cache_clear()
  x, w = operands((2, 6, 6, 3), 3, 5, 1)
  shape = shape_of(x, w, 1, 1, 1)
  monkeypatch.setattr(conv, "MIN_MEASURED_MACS", 0)
  try:
    chosen = {d: conv.route(d, shape) for d in ("forward", "input_grad", "weight_grad")}
    stored = json.loads(conv.cache_file().read_text())
    assert {k.split(":")[0]: v for k, v in stored.items()} == chosen
    # A later process reads the choice instead of measuring again: an edited file is obeyed.
    stored = dict.fromkeys(stored, "xla")
    conv.cache_file().write_text(json.dumps(stored))
    conv._routes_on_disk.cache_clear()
    assert {d: conv.route(d, shape) for d in chosen} == dict.fromkeys(chosen, "xla")
  finally:
    conv._routes_on_disk.cache_clear()


def test_conv_impl_is_a_config_field_checked_before_building():
  config = make_config("", model__conv_impl="xla")
  assert models.create_model(config.model, 10).conv_impl == "xla"
  config.model.conv_impl = "eigen"
  with pytest.raises(ValueError, match="unknown model.conv_impl 'eigen'; known: auto, xla, cpu"):
    models.create_model(config.model, 10)


@pytest.mark.slow
def test_a_network_trains_to_the_same_gradients_with_either_route():
  """AlexNet-style grouped convolutions and a strided 1×1 projection, through the layer table."""
  grads = {}
  for implementation in ("xla", "cpu"):
    config = make_config("", model__conv_impl=implementation)
    models.set_model(config, "cifar_resnet20")
    config.model.shortcut = "B"
    model = models.create_model(config.model, 10)
    x = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    variables = model.init(jax.random.key(1), x)

    def loss(params, model=model, variables=variables, x=x):
      (logits, _), _ = model.apply(
        {**variables, "params": params}, x, train=True, mutable=["batch_stats"]
      )
      return jnp.sum(jax.nn.log_softmax(logits)[:, 0])

    grads[implementation] = jax.jit(jax.grad(loss))(variables["params"])
  for expected, actual in zip(
    jax.tree.leaves(grads["xla"]), jax.tree.leaves(grads["cpu"]), strict=True
  ):
    assert_close(actual, expected, rtol=1e-4)
