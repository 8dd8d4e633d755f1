"""The CPU convolution route: every formulation equals XLA's convolution, in value and gradient."""

from __future__ import annotations

import dataclasses
import json
import time

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
  assert_through_conv2d_equals_xla("cpu", input_shape, kernel, features, stride, padding, groups)


def assert_through_conv2d_equals_xla(implementation, input_shape, kernel, features, stride,
                                     padding, groups):  # fmt: skip
  """conv2d by `implementation`, value and both gradients of a loss through its custom VJP,
  equal to XLA's convolution's."""
  x, w = operands(input_shape, kernel, features, groups)

  def value_and_grads(implementation):
    def f(x, w):
      pads = padding if isinstance(padding, str) else ((padding, padding),) * 2
      y = conv.conv2d(x, w, stride, pads, groups, implementation)
      return jnp.sum(jnp.sin(y)), y

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1), has_aux=True))(x, w)

  (_, y), grads = value_and_grads(implementation)
  (_, y_xla), grads_xla = value_and_grads("xla")
  assert_close(y, y_xla)
  for actual, expected in zip(grads, grads_xla, strict=True):
    assert_close(actual, expected)


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


# ---------------------------------------------------------------------------------------------
# Where a route comes from: the run's record, the machine's cache, a measurement.

BIG = conv.ConvShape((64, 16, 16, 8), (3, 3, 8, 16), 1, ((1, 1), (1, 1)), 1, "float32")


@pytest.fixture
def machine_cache(tmp_path, monkeypatch):
  """An empty routes cache of this machine's in `tmp_path/cache`, and no measuring: a test that
  needs one says so."""
  monkeypatch.setenv(caches.CACHE_ENV, str(tmp_path / "cache"))
  conv._routes_on_disk.cache_clear()

  def no_measuring(direction, shape, options):
    raise AssertionError(f"measured {direction} {shape}")

  monkeypatch.setattr(conv, "_fastest", no_measuring)

  def write(routes: dict[str, str]) -> None:
    conv.cache_file().parent.mkdir(parents=True, exist_ok=True)
    conv.cache_file().write_text(json.dumps(routes))
    conv._routes_on_disk.cache_clear()

  yield write
  conv._routes_on_disk.cache_clear()


def key(direction: str, shape: conv.ConvShape = BIG) -> str:
  return f"{direction}:{shape.key()}"


def test_a_recorded_route_wins_over_the_machine_cache(tmp_path, machine_cache):
  assert BIG.multiply_adds > conv.MIN_MEASURED_MACS
  machine_cache({key(d): "xla" for d in ("forward", "input_grad", "weight_grad")})
  record = tmp_path / "run" / conv.ROUTES_FILE
  record.parent.mkdir()
  record.write_text(json.dumps({key("forward"): "taps", key("weight_grad"): "patches"}))
  with conv.RouteBook(record) as book:
    assert conv.route("forward", BIG) == "taps"
    assert conv.route("weight_grad", BIG) == "patches"
    assert conv.route("input_grad", BIG) == "xla"  # not recorded: the cache's
  assert book.used == {
    key("forward"): "taps",
    key("weight_grad"): "patches",
    key("input_grad"): "xla",
  }
  # Every route the run took is in its record now; the recorded ones unchanged.
  assert json.loads(record.read_text()) == book.used
  assert conv.route("forward", BIG) == "xla"  # outside the block: the machine's


def test_a_run_records_the_routes_it_takes_small_shapes_included(tmp_path, machine_cache):
  small = conv.ConvShape((1, 4, 4, 1), (3, 3, 1, 2), 1, ((0, 0), (0, 0)), 1, "float32")
  machine_cache({key("forward"): "taps"})
  record = tmp_path / conv.ROUTES_FILE
  with conv.RouteBook(record, write=True):
    assert conv.route("forward", BIG) == "taps"
    assert conv.route("forward", small) == "xla"  # below MIN_MEASURED_MACS
  assert json.loads(record.read_text()) == {key("forward"): "taps", key("forward", small): "xla"}
  # A reader (visualize.py, predict.py) obeys the record and writes nothing.
  record.write_text(json.dumps({key("forward", small): "taps"}))
  before = record.stat().st_mtime_ns
  with conv.RouteBook(record, write=False):
    assert conv.route("forward", small) == "taps"
    assert conv.route("forward", BIG) == "taps"
  assert record.stat().st_mtime_ns == before


def test_a_recorded_route_this_machine_cannot_run_is_one_warning_and_falls_back(
  tmp_path, machine_cache, monkeypatch
):
  # As on a machine without the oneDNN extension: "onednn" is no candidate there.
  candidates = conv.candidates
  monkeypatch.setattr(
    conv,
    "candidates",
    lambda direction, shape: {
      k: v for k, v in candidates(direction, shape).items() if k != "onednn"
    },
  )
  machine_cache({key("forward"): "taps"})
  record = tmp_path / conv.ROUTES_FILE
  record.write_text(json.dumps({key("forward"): "onednn"}))
  lines = []
  with conv.RouteBook(record, lines.append):
    assert conv.route("forward", BIG) == "taps"
    assert conv.route("forward", BIG) == "taps"  # traced again: no second warning
  assert len(lines) == 1, lines
  assert lines[0].startswith("warning: ") and key("forward") in lines[0] and "'onednn'" in lines[0]
  # The record keeps what the run began with: a machine that has oneDNN follows it again.
  assert json.loads(record.read_text()) == {key("forward"): "onednn"}


def test_an_unreadable_record_is_one_warning_and_routes_anew(tmp_path, machine_cache):
  machine_cache({key("forward"): "taps"})
  record = tmp_path / conv.ROUTES_FILE
  record.write_text("{garbage")
  lines = []
  with conv.RouteBook(record, lines.append):
    assert conv.route("forward", BIG) == "taps"
  assert len(lines) == 1 and "cannot be read" in lines[0]
  assert json.loads(record.read_text()) == {key("forward"): "taps"}


def test_a_big_batch_is_timed_on_a_bounded_batch_and_kept_under_its_own_key(
  machine_cache, monkeypatch
):
  huge = conv.ConvShape((10_000, 32, 32, 16), (5, 5, 16, 32), 1, ((2, 2), (2, 2)), 1, "float32")
  timed = []
  monkeypatch.setattr(
    conv, "_fastest", lambda direction, shape, options: timed.append(shape) or "taps"
  )
  assert conv.route("forward", huge) == "taps"
  (shape,) = timed
  assert shape.multiply_adds <= conv.MEASURED_MACS < 2 * shape.multiply_adds
  assert shape.input[1:] == huge.input[1:] and shape.kernel == huge.kernel
  assert json.loads(conv.cache_file().read_text()) == {
    key("forward", huge): "taps",
    key("forward", shape): "taps",
  }
  # Another batch cut to the same timed shape (a last, smaller eval batch) measures nothing.
  other = dataclasses.replace(huge, input=(5_000, *huge.input[1:]))
  assert conv.route("forward", other) == "taps" and len(timed) == 1


def test_a_hopeless_candidate_runs_once(monkeypatch):
  calls = []

  def slow(*operands):
    calls.append(1)
    time.sleep(0.02)
    return jnp.zeros(())

  assert conv._seconds(slow, (), cutoff=0.001) >= 0.02
  assert len(calls) == 1
  calls.clear()
  conv._seconds(slow, (), budget=0.05)
  assert len(calls) >= 4  # warm-up, one, and at least two timed repeats


def test_measuring_frees_its_operands(monkeypatch):
  """The measurement holds nothing when it returns: its operands are deleted (and each
  candidate's executable before the next is compiled)."""
  shape = conv.ConvShape((2, 8, 8, 3), (3, 3, 3, 4), 1, ((1, 1), (1, 1)), 1, "float32")
  put = jax.device_put
  operands = []
  monkeypatch.setattr(jax, "device_put", lambda x, d: operands.append(put(x, d)) or operands[-1])
  best = conv._fastest("forward", shape, conv.candidates("forward", shape))
  assert best in conv.candidates("forward", shape)
  assert len(operands) == 2 and all(o.is_deleted() for o in operands)


def test_the_measured_threshold_can_be_lowered_by_the_environment(monkeypatch):
  monkeypatch.delenv(conv.MIN_MACS_ENV, raising=False)
  assert conv.min_measured_macs() == conv.MIN_MEASURED_MACS
  monkeypatch.setenv(conv.MIN_MACS_ENV, "0")
  assert conv.min_measured_macs() == 0
  monkeypatch.setenv(conv.MIN_MACS_ENV, "lots")
  with pytest.raises(ValueError, match="CONVZOO_MIN_MEASURED_MACS must be a number of"):
    conv.min_measured_macs()


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
