"""oneDNN's convolutions (native/, models/onednn.py): every direction equals XLA's convolution
over the grid of tests/test_conv.py, in float32 and bfloat16, through the custom VJP too; and
convzoo without the extension routes as before, saying so once."""

from __future__ import annotations

import logging
import os
import platform
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import models
import training
from models import conv, onednn
from tests.conftest import make_config
from tests.test_conv import (
  SHAPES,
  assert_close,
  assert_through_conv2d_equals_xla,
  grid,
  operands,
  reference,
  shape_of,
)

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="oneDNN extension not built")


def test_the_extension_is_built_where_it_can_be():
  """`make setup` builds it on x86-64 Linux with a C++ compiler: a silent skip of every test
  below would otherwise hide a broken build."""
  if os.environ.get(onednn.SWITCH_ENV, "").lower() == "off":
    pytest.skip(f"{onednn.SWITCH_ENV}=off")
  if platform.machine() != "x86_64" or not shutil.which(os.environ.get("CXX", "g++")):
    pytest.skip("no x86-64 C++ toolchain: the extension is optional here")
  assert onednn.available()
  assert onednn.isa()  # oneDNN dispatches to a known instruction set


def expected_products(x, w, g, stride, padding, groups):
  """y, dx, dw of XLA's convolution (autodiff of lax.conv_general_dilated)."""
  y, vjp = jax.vjp(lambda x, w: reference(x, w, stride, padding, groups), x, w)
  return (y, *vjp(g))


def oneDNN_products(x, w, g, shape):
  return (
    jax.jit(onednn.forward, static_argnums=2)(x, w, shape),
    jax.jit(onednn.input_grad, static_argnums=2)(g, w, shape),
    jax.jit(onednn.weight_grad, static_argnums=2)(x, g, shape),
  )


@needs_onednn
@pytest.mark.parametrize("input_shape, kernel, features, stride, padding, groups", grid(SHAPES))
def test_every_direction_equals_xla_in_float32(
  input_shape, kernel, features, stride, padding, groups
):
  x, w = operands(input_shape, kernel, features, groups)
  shape = shape_of(x, w, stride, padding, groups)
  g = jnp.asarray(np.random.default_rng(1).standard_normal(shape.output).astype(np.float32))
  expected = expected_products(x, w, g, stride, padding, groups)
  for actual, wanted in zip(oneDNN_products(x, w, g, shape), expected, strict=True):
    assert_close(actual, wanted, rtol=1e-5)


@needs_onednn
@pytest.mark.parametrize("input_shape, kernel, features, stride, padding, groups", grid(SHAPES))
def test_every_direction_equals_xla_in_bfloat16(
  input_shape, kernel, features, stride, padding, groups
):
  """bfloat16 operands and result, float32 accumulation: within the result's own rounding
  (8 significant bits: 2⁻⁸ of its magnitude) of float32 arithmetic on the same operands."""
  x, w = (t.astype(jnp.bfloat16) for t in operands(input_shape, kernel, features, groups))
  shape = shape_of(x, w, stride, padding, groups)
  if not all(onednn.implementation(d, shape) for d in onednn.TARGETS):
    pytest.skip(f"oneDNN has no bfloat16 convolution on this processor ({onednn.isa()})")
  g = jnp.asarray(np.random.default_rng(1).standard_normal(shape.output), jnp.bfloat16)
  as32 = lambda t: t.astype(jnp.float32)
  expected = expected_products(as32(x), as32(w), as32(g), stride, padding, groups)
  for actual, wanted in zip(oneDNN_products(x, w, g, shape), expected, strict=True):
    assert actual.dtype == jnp.bfloat16
    assert_close(as32(actual), wanted, rtol=2**-7)


@needs_onednn
@pytest.mark.parametrize(
  "input_shape, kernel, features, stride, padding, groups", grid(SHAPES[::3] + SHAPES[7:8])
)
def test_conv_impl_onednn_value_and_gradients_equal_xla(
  input_shape, kernel, features, stride, padding, groups
):
  """Through conv2d's custom VJP, as a network calls it (model.conv_impl=onednn)."""
  assert_through_conv2d_equals_xla("onednn", input_shape, kernel, features, stride, padding, groups)


@needs_onednn
def test_the_measured_route_offers_onednn_only_with_an_optimised_kernel():
  x, w = operands((2, 8, 8, 16), 3, 16, 1)
  shape = shape_of(x, w, 1, 1, 1)
  for direction in onednn.TARGETS:
    assert "onednn" in conv.candidates(direction, shape)
    assert not onednn.implementation(direction, shape).startswith("ref")
  bf16 = shape_of(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), 1, 1, 1)
  if not onednn.implementation("forward", bf16):
    assert "onednn" not in conv.candidates("forward", bf16)


def test_without_the_extension_routes_are_todays_and_onednn_is_refused(monkeypatch):
  monkeypatch.setattr(onednn, "_library", lambda: None)
  x, w = operands((2, 8, 8, 16), 3, 16, 1)
  shape = shape_of(x, w, 1, 1, 1)
  assert set(conv.candidates("forward", shape)) == {"xla", "taps"}
  assert set(conv.candidates("weight_grad", shape)) == {"xla", "taps", "patches"}
  y = jax.jit(lambda x, w: conv.conv2d(x, w, 1, "SAME", 1, "cpu"))(x, w)
  assert_close(y, reference(x, w, 1, "SAME", 1))
  config = make_config("", model__conv_impl="onednn")
  with pytest.raises(ValueError, match="model.conv_impl=onednn needs the oneDNN extension"):
    models.create_model(config.model, 10)


def test_switching_it_off_is_said_in_one_line(monkeypatch, caplog):
  monkeypatch.setenv(onednn.SWITCH_ENV, "off")
  onednn._library.cache_clear()
  try:
    with caplog.at_level(logging.WARNING, logger=onednn.__name__):
      assert not onednn.available()
      assert not onednn.available()  # said once, not per convolution
    assert [r.getMessage() for r in caplog.records] == [
      "oneDNN convolutions switched off (CONVZOO_ONEDNN=off): using XLA's and JAX's"
    ]
  finally:
    monkeypatch.delenv(onednn.SWITCH_ENV)
    onednn._library.cache_clear()


@needs_onednn
@pytest.mark.slow
def test_one_and_eight_devices_train_to_the_same_state_through_onednn(
  tiny_config, tmp_path, monkeypatch
):
  """Each device's thread calls oneDNN (8 devices: one OpenMP thread each, 1 device: every
  core); batch norm and flips as in tests/test_parallel.py's test of today's routes."""
  from tests.test_parallel import assert_trees_close, saved_state

  traced = []
  call = onednn._call
  monkeypatch.setattr(onednn, "_call", lambda *args: traced.append(args[0]) or call(*args))
  config = lambda devices: tiny_config(
    num_devices=devices,
    num_train_steps=12,
    model__norm="batch",
    model__conv_impl="onednn",
    augment__flip=True,
    eval_every_steps=12,
    checkpoint_every_steps=12,
  )
  one = training.train_and_evaluate(config(1), tmp_path / "one")
  assert set(traced) == set(onednn.TARGETS)  # every direction went through oneDNN
  eight = training.train_and_evaluate(config(8), tmp_path / "eight")
  assert_trees_close(saved_state(tmp_path / "one", 12), saved_state(tmp_path / "eight", 12), 1e-5)
  assert eight["top1_error"] == one["top1_error"]
  assert eight["loss"] == pytest.approx(one["loss"], rel=1e-5)
