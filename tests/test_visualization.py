"""The visualisation suite: each technique against an analytic answer, a hand computation or a
brute-force one, and every technique on the zoo's networks."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np
import pytest

import models
import records
from input_pipeline import augment
from models.layers import Dense
from models.network import ConvNet
from tests.conftest import TINY_TEST, run_script, snapshot
from visualization import (
  attribution,
  drawing,
  receptive,
  sanity,
  suite,
  synthesis,
  techniques,
  units,
)
from visualization.network import Network
from visualization.page import INDEX
from visualization.plan import Plan

# One network of each family and kind of block, at small inputs. The other zoo networks are
# these at other depths and widths (test_the_zoo_holds_no_kind_of_layer_the_above_lack), and
# their receptive fields are checked at their native sizes (FINAL_FIELDS).
ZOO = {
  "lenet5": 32,
  "alexnet": 67,
  "zfnet": 67,
  "vgg_a": 32,
  "googlenet": 80,
  "nin": 67,
  "resnet18": 32,
  "resnet50": 32,
  "plain18": 32,
  "plain50": 32,
  "cifar_resnet20": 16,
  "cifar_plain20": 16,
  "alphago_policy": 19,
}
FAST = ("lenet5",)  # the others compile for seconds each: slow tier


def zoo_params():
  return [name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in ZOO]


def stats(channels: int) -> augment.ColorStats:
  return augment.ColorStats(
    np.full(channels, 0.5, np.float32),
    np.full(channels, 0.25, np.float32),
    np.zeros((0,), np.float32),
    np.ones(channels, np.float32),
    np.eye(channels, dtype=np.float32),
  )


def registered_model(name: str) -> models.ConvNet:
  """The network as the registry defines it, with its own number of classes."""
  return models.create_model(
    ml_collections.ConfigDict({"name": name}), models.entry(name).num_classes
  )


def layer_kinds(name: str) -> set[tuple]:
  """What a network is made of, widths, depths and names aside: each entry's type and
  settings (kernel, stride, padding, block, shortcut …) with the network's activation and
  normalisation, i.e. everything the backward rules and receptive fields depend on."""
  model = registered_model(name)
  widths = {"name", "group", "features", "c1", "c3_reduce", "c3", "c5_reduce", "c5", "pool_proj"}
  return {
    (type(layer).__name__, model.activation, model.batch_norm)
    + tuple(
      (f.name, getattr(layer, f.name)) for f in dataclasses.fields(layer) if f.name not in widths
    )
    for layer in model.layers
  }


def test_the_zoo_holds_no_kind_of_layer_the_above_lack():
  tested = set().union(*(layer_kinds(name) for name in ZOO))
  for name in models.REGISTRY:
    untested = layer_kinds(name) - tested
    assert not untested, f"{name} has layers no network in ZOO has (add one): {untested}"


def zoo_network(name: str, **fields) -> tuple[Network, jax.Array, int]:
  entry = models.entry(name)
  classes = entry.num_classes if name == "alphago_policy" else 7
  model = models.create_model(ml_collections.ConfigDict({"name": name, **fields}), classes)
  x = jax.random.normal(jax.random.key(1), (2, ZOO[name], ZOO[name], entry.channels))
  variables = model.init(jax.random.key(0), x)
  return Network(model, dict(variables), stats(entry.channels)), x, classes


def toy_network(layers, inputs: int = 6, seed: int = 0) -> tuple[Network, jax.Array]:
  model = ConvNet(tuple(layers))
  x = jax.random.normal(jax.random.key(seed + 1), (3, 1, 1, inputs))
  return Network(model, dict(model.init(jax.random.key(seed), x)), stats(inputs)), x


# ---------------------------------------------------------------------------------------------
# Gradients and their backward rules.


def test_saliency_of_a_linear_model_is_its_class_weights():
  weights = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 5))
  scores = lambda x: x.reshape(len(x), -1) @ weights
  x = jax.random.normal(jax.random.key(1), (2, 4, 4, 3))
  classes = jnp.array([1, 4])
  grads = attribution.gradient(scores, x, classes)
  for i, c in enumerate(classes):
    np.testing.assert_allclose(grads[i], weights[:, c].reshape(4, 4, 3), rtol=1e-6)
    np.testing.assert_allclose(
      attribution.saliency(scores, x, classes)[i],
      np.abs(weights[:, c].reshape(4, 4, 3)).max(-1),
      rtol=1e-6,
    )


def test_gradient_of_a_small_relu_net_matches_finite_differences():
  network, x = toy_network([Dense("hidden", 8), Dense("output", 3, activation=False)])
  scores = network.scores()
  classes = jnp.array([0, 1, 2])
  grads = np.asarray(attribution.gradient(scores, x, classes))
  eps = 1e-3
  for i in range(6):
    step = jnp.zeros_like(x).at[..., i].set(eps)
    difference = (
      attribution.target_score(scores(x + step), classes)
      - attribution.target_score(scores(x - step), classes)
    ) / (2 * eps)
    np.testing.assert_allclose(grads[:, 0, 0, i], difference, atol=2e-3)


def test_guided_backprop_and_deconvnet_match_hand_masks_on_a_one_relu_toy():
  network, x = toy_network([Dense("hidden", 5), Dense("output", 3, activation=False)])
  w1, b1 = (
    network.variables["params"]["hidden"]["kernel"],
    network.variables["params"]["hidden"]["bias"],
  )
  w2 = network.variables["params"]["output"]["kernel"]
  classes = jnp.array([0, 2, 1])
  hidden = x.reshape(3, -1) @ w1 + b1
  relevance = w2[:, classes].T  # ∂S_c/∂ReLU output, per image [3, 5]
  expected = {
    "gradient": (hidden > 0) * relevance,
    "guided": (hidden > 0) * (relevance > 0) * relevance,
    "deconvnet": (relevance > 0) * relevance,
  }
  for rule, mask in expected.items():
    got = attribution.gradient(network.scores(rule), x, classes).reshape(3, -1)
    np.testing.assert_allclose(got, mask @ w1.T, rtol=1e-5, atol=1e-6)
  assert not np.allclose(expected["guided"], expected["gradient"])  # the toy shows a difference


def test_rules_change_nothing_in_a_network_without_relus():
  network, x, _ = zoo_network("lenet5", activation="tanh")
  classes = jnp.array([1, 3])
  plain = attribution.gradient(network.scores(), x, classes)
  for rule in ("guided", "deconvnet"):
    np.testing.assert_array_equal(attribution.gradient(network.scores(rule), x, classes), plain)


@pytest.mark.parametrize("name", zoo_params())
def test_guided_and_deconvnet_maps_differ_from_the_gradient_in_every_network(name):
  network, x, _ = zoo_network(name)
  classes = jnp.array([1, 3])
  plain = attribution.gradient(network.scores(), x, classes)
  for rule in ("guided", "deconvnet"):
    ruled = attribution.gradient(network.scores(rule), x, classes)
    assert np.isfinite(ruled).all() and float(jnp.abs(ruled).max()) > 0
    assert not np.allclose(ruled, plain, atol=1e-6), rule


# ---------------------------------------------------------------------------------------------
# Receptive fields.


@pytest.mark.parametrize("name", zoo_params())
def test_receptive_fields_from_the_table_equal_the_support_of_the_unit_gradient(name):
  network, x, classes = zoo_network(name)
  x = x[:1]
  fields = receptive.receptive_fields(network.model, x.shape[1:], classes)
  outputs, vjp = jax.vjp(network.activations("dependency"), x)
  vjp = jax.jit(vjp)
  checked = 0
  for layer, field in fields.items():
    output = outputs[layer]
    if field is None or output.ndim != 4:
      continue
    height, width = output.shape[1:3]
    for y, x_ in {(0, 0), (height // 2, width // 2), (height - 1, width - 1)}:
      cotangent = {k: jnp.zeros_like(v) for k, v in outputs.items()}
      # Every channel at (y, x): an inception module's channels come from branches of
      # different widths, and its field is their union.
      cotangent[layer] = cotangent[layer].at[0, y, x_, :].set(1.0)
      (grad,) = vjp(cotangent)
      rows, cols = np.nonzero(np.abs(np.asarray(grad[0])).sum(-1))
      support = (rows.min(), rows.max(), cols.min(), cols.max())
      assert support == field.box(y, x_), (layer, y, x_)
      checked += 1
  assert checked >= 3


def test_lenet5_fields_by_hand():
  network, x, classes = zoo_network("lenet5")
  fields = receptive.receptive_fields(network.model, x.shape[1:], classes)
  assert fields["c1"].size == (5, 5)
  assert fields["s2"].size == (6, 6)  # 5 + (2 − 1)·1
  assert fields["c3"].size == (14, 14)  # 6 + (5 − 1)·2
  assert fields["s4"].size == (16, 16)
  assert fields["c5"].size == (32, 32) and fields["f6"] is None


# The receptive field of each network's last spatial layer at its native input, derived by hand
# from the papers' tables: r += (k − 1)·j, j *= s for each window of kernel k and stride s.
# AlexNet, VGG-16 and ResNet-50/101/152 agree with Araujo, Norris & Sim, "Computing receptive
# fields of convolutional neural networks" (Distill 2019), Table 1. A plain net's field is its
# ResNet's (the shortcuts read less than the main path).
FINAL_FIELDS = {
  "lenet5": ("c5", 32),  # the whole 32 × 32 input
  "alexnet": ("pool3", 195),  # 11/4, 3/2, 5, 3/2, 3, 3, 3, 3/2
  "zfnet": ("pool3", 171),  # 7/2, 3/2, 5/2, 3/2, 3, 3, 3, 3/2
  "nin": ("cccp8", 195),  # AlexNet's windows, the 1 × 1 cccp layers adding none
  "googlenet": ("inception_5b", 715),  # 7/2, 3/2, 3, 3/2; each module's 5 × 5 branch widest
  "alphago_policy": ("conv13", 27),  # 5 × 5, then 11 3 × 3
  # VGG (Simonyan & Zisserman 2015, Table 1): 3 × 3 convolutions, 2 × 2/2 pools; C's third
  # convolution in stages 3–5 is 1 × 1.
  "vgg_a": ("pool5", 150),
  "vgg_a_lrn": ("pool5", 150),
  "vgg_b": ("pool5", 156),
  "vgg_c": ("pool5", 156),
  "vgg_d": ("pool5", 212),
  "vgg_e": ("pool5", 268),
  # ImageNet ResNets: 11 after the 7/2 stem and 3/2 pool (jump 4); each 3 × 3 then adds 2·j,
  # j doubling at each stage's first block (its 3 × 3 for basic blocks, its first 1 × 1 for
  # bottlenecks, so there the 3 × 3 sees the new jump).
  "resnet18": ("stage4_block2", 435),
  "resnet34": ("stage4_block3", 899),
  "resnet50": ("stage4_block3", 483),
  "resnet101": ("stage4_block3", 1027),
  "resnet152": ("stage4_block3", 1507),
  # CIFAR ResNets, depth 6n + 2: 3 + 4n + (2 + 4(2n − 1)) + (4 + 8(2n − 1)) = 28n − 3.
  "cifar_resnet20": ("stage3_block3", 81),
  "cifar_resnet32": ("stage3_block5", 137),
  "cifar_resnet44": ("stage3_block7", 193),
  "cifar_resnet56": ("stage3_block9", 249),
  "cifar_resnet110": ("stage3_block18", 501),
}


@pytest.mark.parametrize("name", list(models.REGISTRY))
def test_every_networks_last_field_at_its_native_size_is_the_one_derived_by_hand(name):
  layer, size = FINAL_FIELDS[name.replace("plain", "resnet")]
  entry = models.entry(name)
  model = registered_model(name)
  fields = receptive.receptive_fields(model, entry.input_shape, entry.num_classes)
  spatial = [layer_name for layer_name, field in fields.items() if field is not None]
  assert spatial[-1] == layer and fields[layer].size == (size, size)


# ---------------------------------------------------------------------------------------------
# Occlusion, integrated gradients, SmoothGrad, Grad-CAM.


def test_occlusion_changes_only_where_the_square_touches_what_the_model_reads():
  weights = jax.random.normal(jax.random.key(0), (4, 4, 1, 3))

  def scores(x):  # reads only rows and columns 10–13
    return jnp.einsum("nhwc,hwck->nk", x[:, 10:14, 10:14], weights)

  x = jax.random.normal(jax.random.key(1), (2, 24, 24, 1))
  classes = jnp.array([0, 2])
  probability, top, rows, cols = attribution.occlusion(scores, x, classes, 5, 2, jnp.zeros(1), 7)
  assert probability.shape == top.shape == (2, len(rows), len(cols)) and rows[-1] == 19
  unoccluded = jax.nn.softmax(scores(x))[jnp.arange(2), classes]
  for i, top_edge in enumerate(rows):
    for j, left_edge in enumerate(cols):
      touches = top_edge <= 13 and top_edge + 5 > 10 and left_edge <= 13 and left_edge + 5 > 10
      changed = np.abs(probability[:, i, j] - unoccluded) > 1e-6
      assert changed.any() if touches else not changed.any(), (top_edge, left_edge)


def test_integrated_gradients_are_complete():
  network, x, _ = zoo_network("lenet5")
  classes = jnp.array([2, 5])
  baseline = jnp.zeros_like(x)
  attributions = attribution.integrated_gradients(network.scores(), x, classes, baseline, 128)
  scores = network.scores()
  difference = attribution.target_score(scores(x), classes) - attribution.target_score(
    scores(baseline), classes
  )
  np.testing.assert_allclose(attributions.sum(axis=(1, 2, 3)), difference, rtol=0.01)


def test_smooth_grad_without_noise_is_the_gradient_and_with_noise_differs():
  network, x, _ = zoo_network("lenet5")
  classes = jnp.array([2, 5])
  key = jax.random.key(3)
  plain = attribution.gradient(network.scores(), x, classes)
  np.testing.assert_allclose(
    attribution.smooth_grad(network.scores(), x, classes, key, 4, 0.0), plain, atol=1e-6
  )
  noisy = attribution.smooth_grad(network.scores(), x, classes, key, 4, 0.2)
  assert not np.allclose(noisy, plain)


def test_grad_cam_weights_the_maps_by_their_mean_gradient():
  network, x, _ = zoo_network("lenet5")
  head, tail = network.split("c3")
  classes = jnp.array([2, 5])
  cam = attribution.grad_cam(head, tail, x, classes)
  assert cam.shape == (2, 32, 32) and float(cam.min()) >= 0
  activations = head(x)
  grads = jax.grad(lambda a: attribution.target_score(tail(a), classes).sum())(activations)
  by_hand = jax.nn.relu((grads.mean((1, 2), keepdims=True) * activations).sum(-1))
  np.testing.assert_allclose(
    cam, jax.image.resize(by_hand, (2, 32, 32), "bilinear"), rtol=1e-5, atol=1e-6
  )
  np.testing.assert_allclose(tail(head(x)), network.scores()(x), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="needs a layer with a spatial map"):
    attribution.grad_cam(*network.split("f6"), x, classes)


# ---------------------------------------------------------------------------------------------
# Synthesis.


def test_class_model_of_a_linear_score_converges_to_w_over_2_lambda():
  weights = jax.random.normal(jax.random.key(0), (4 * 4 * 3, 3))
  scores = lambda x: x.reshape(len(x), -1) @ weights
  l2 = 0.5
  images = synthesis.class_models(
    scores, (4, 4, 3), jnp.arange(3), jax.random.key(0), steps=100, learning_rate=0.5, l2=l2
  )
  for c in range(3):
    np.testing.assert_allclose(images[c], weights[:, c].reshape(4, 4, 3) / (2 * l2), rtol=1e-4)


def test_inversion_recovers_an_image_a_linear_code_determines():
  matrix = jax.random.normal(jax.random.key(0), (4 * 4, 32))
  code_of = lambda x: x.reshape(len(x), -1) @ matrix
  target = jax.random.uniform(jax.random.key(1), (2, 4, 4, 1))
  found = synthesis.invert(
    code_of, code_of(target), (4, 4, 1), jax.random.key(2), steps=600, tv_weight=0.0
  )
  np.testing.assert_allclose(found, target, atol=2e-2)


# ---------------------------------------------------------------------------------------------
# Units.


def test_streamed_top_k_equals_a_brute_force_top_k():
  network, _, _ = zoo_network("lenet5")
  images = jax.random.normal(jax.random.key(5), (40, 32, 32, 1))
  layer_of = lambda x: network.activations()(x)["c3"]
  wanted = np.array([0, 3, 7])
  found = units.top_activations(
    layer_of, ((i, images[i : i + 7]) for i in range(0, 40, 7)), wanted, 5
  )
  everything = np.asarray(layer_of(images))[..., wanted]  # [40, h, w, 3]
  best = everything.reshape(40, -1, 3).max(1)  # [40, 3]
  for u in range(3):
    order = np.argsort(-best[:, u], kind="stable")[:5]
    np.testing.assert_array_equal(found.images[u], order)
    np.testing.assert_allclose(found.values[u], best[order, u], rtol=1e-6)
    for rank, image in enumerate(order):
      y, x = found.positions[u, rank]
      assert everything[image, y, x, u] == best[image, u]


def test_patches_are_cut_by_the_field_and_padded_past_the_edge():
  network, x, classes = zoo_network("lenet5")
  field = receptive.receptive_fields(network.model, x.shape[1:], classes)["c3"]  # 14×14, /2
  image = np.arange(32 * 32, dtype=np.float32).reshape(32, 32, 1)
  inside = units.cut_patch(image, field, 3, 4, fill=-1.0)
  np.testing.assert_array_equal(inside[..., 0], image[6:20, 8:22, 0])
  edge = units.cut_patch(image, field, 9, 9, fill=-1.0)  # rows and columns 18–31 exist
  assert edge.shape == (14, 14, 1)
  np.testing.assert_array_equal(edge[..., 0], image[18:32, 18:32, 0])


def test_filters_are_scaled_to_the_unit_range_one_image_per_filter():
  kernel = np.random.default_rng(0).normal(size=(5, 5, 3, 8))
  images = units.filter_images(kernel)
  assert images.shape == (8, 5, 5, 3)
  np.testing.assert_allclose(images.min((1, 2, 3)), 0)
  np.testing.assert_allclose(images.max((1, 2, 3)), 1)


# ---------------------------------------------------------------------------------------------
# The sanity check.


def test_rank_correlation_by_hand():
  a = np.array([[1.0, 2.0, 3.0, 4.0]])
  np.testing.assert_allclose(sanity.rank_correlation(a, a), [1.0])
  np.testing.assert_allclose(sanity.rank_correlation(a, -a), [-1.0])
  np.testing.assert_allclose(sanity.rank_correlation(a, np.array([[1.0, 3.0, 2.0, 4.0]])), [0.8])


def test_cascading_randomization_decorrelates_the_gradient_map():
  network, x, _ = zoo_network("lenet5")
  fresh = network.model.init(jax.random.key(42), x)["params"]
  classes = jnp.array([1, 4])
  rows = sanity.cascading_randomization(
    network, lambda n: attribution.saliency(n.scores(), x, classes), fresh
  )
  assert [layer for layer, _ in rows] == ["output", "f6", "c5", "c3", "c1"]
  assert rows[-1][1] < 0.5  # all weights re-initialised: little left of the trained map


# ---------------------------------------------------------------------------------------------
# Every technique on every zoo network.


@pytest.mark.parametrize("name", zoo_params())
def test_every_technique_runs_on_every_zoo_network(name):
  network, x, classes = zoo_network(name)
  labels = jnp.array([1, 3])
  scores = network.scores()
  key = jax.random.key(0)
  spatial = [
    l.name
    for l in network.model.layers
    if not l.branches_off and network.activations()(x[:1])[l.name].ndim == 4
  ]
  layer = spatial[-1]
  layer_of = lambda x: network.activations("deconvnet")(x)[layer]
  results = {
    "saliency": attribution.saliency(scores, x, labels),
    "deconvnet": attribution.gradient(layer_of, x, jnp.array([0, 1])),
    "guided": attribution.gradient(network.scores("guided"), x, labels),
    "grad_cam": attribution.grad_cam(*network.split(layer), x, labels),
    "integrated_gradients": attribution.integrated_gradients(scores, x, labels, 0 * x, 2),
    "smooth_grad": attribution.smooth_grad(scores, x, labels, key, 2),
    "occlusion": attribution.occlusion(scores, x, labels, x.shape[1] // 2, x.shape[1] // 2, 0.0)[0],
    "class_models": synthesis.class_models(scores, x.shape[1:], jnp.arange(2), key, steps=2),
    "inversion": synthesis.invert(
      network.split(layer)[0], network.split(layer)[0](x), x.shape[1:], key, 2
    ),
    "patches": units.top_activations(network.split(layer)[0], [(0, x)], np.arange(2), 1).values,
  }
  for technique, value in results.items():
    assert np.isfinite(np.asarray(value)).all(), technique
  first = next(l.name for l in network.model.layers if l.name in network.variables["params"])
  assert units.filter_images(network.variables["params"][first]["kernel"]).ndim == 4
  fields = receptive.receptive_fields(network.model, x.shape[1:], classes)
  assert fields[spatial[0]] is not None


# ---------------------------------------------------------------------------------------------
# The pictures: what their colours and axes mean, read from the figures themselves.


@pytest.fixture
def drawn(monkeypatch) -> dict:
  """The figures the drawing functions save, by file name (saved as ever, then kept)."""
  figures = {}
  save = records.save

  def keep(figure, path):
    save(figure, path)
    figures[path.name] = figure

  monkeypatch.setattr(records, "save", keep)
  return figures


def lenet5_subject(folder) -> techniques.Subject:
  """Two images and an untrained seven-class LeNet-5, as the techniques take them."""
  network, x, classes = zoo_network("lenet5")
  settings = {
    "seed": 0,
    "batch": 64,
    "occlusion_patch": 8,
    "occlusion_stride": 4,
    "ig_steps": 2,
    "smooth_grad_samples": 2,
    "smooth_grad_noise": 0.1,
  }
  return techniques.Subject(
    network,
    ml_collections.ConfigDict({"visualize": settings}),
    None,
    Plan([], "c3", [], {}, np.arange(2), False, []),
    {},
    x,
    jnp.array([1, 3]),
    [f"class {c}" for c in range(classes)],
    folder,
  )


def grid_cells(figure) -> list[list]:
  """A grid's image axes as rows of columns, top to bottom and left to right."""
  cells = [a for a in figure.axes if a.images]
  rows = sorted({round(a.get_position().y0, 6) for a in cells}, reverse=True)
  return [
    sorted(
      (a for a in cells if round(a.get_position().y0, 6) == y), key=lambda a: a.get_position().x0
    )
    for y in rows
  ]


def keys(figure) -> list:
  """A grid's keys (colour bars and legends), left to right: its axes without an image."""
  return sorted((a for a in figure.axes if not a.images), key=lambda a: a.get_position().x0)


def check_under(figure, key, column: int) -> None:
  """`key` lies under the grid's column `column`, inside the figure and clear of every image."""
  cells = grid_cells(figure)
  assert key.get_subplotspec().colspan == cells[0][column].get_subplotspec().colspan
  assert key.get_position().y1 <= min(cell.get_position().y0 for cell in cells[-1])
  extent = key.get_tightbbox()  # with its ticks, label or legend
  assert figure.bbox.x0 <= extent.x0 and figure.bbox.y0 <= extent.y0
  assert extent.x1 <= figure.bbox.x1 and extent.y1 <= figure.bbox.y1
  for row in cells:
    for cell in row:
      assert not extent.overlaps(cell.get_window_extent())


def read_by_bar(figure, bar, column: int) -> np.ndarray:
  """A grid column's images as its colour bar reads them: the images hold 0–1, the colour
  map's ends, which the bar labels low–high."""
  low, high = bar.get_xlim()
  shown = np.stack([np.asarray(row[column].images[0].get_array()) for row in grid_cells(figure)])
  return low + shown * (high - low)


HEAT_MAPS = {  # technique: its colour bar's label, and whether its maps are signed
  "saliency": ("|∂S_c/∂I|\n÷ its per-image maximum", False),
  "grad_cam": ("Grad-CAM at c3\n÷ its per-image maximum", False),
  "integrated_gradients": ("|integrated gradients|\n÷ its per-image maximum", False),
  "smooth_grad": ("|SmoothGrad|\n÷ its per-image maximum", False),
  "guided": ("guided ∂S_c/∂I\n÷ its per-image max |·|", True),
  "deconvnet": ("c3 unit's deconvnet projection\n÷ its per-image max |·|", True),
}


@pytest.mark.parametrize("name", HEAT_MAPS)
def test_heat_maps_have_a_colour_bar_that_reads_the_drawn_values_truly(name, tmp_path, drawn):
  techniques.TECHNIQUES[name](lenet5_subject(tmp_path))
  figure = drawn[f"{name}.png"]
  (bar,) = keys(figure)
  check_under(figure, bar, column=1)
  label, is_signed = HEAT_MAPS[name]
  assert bar.get_xlabel() == label
  assert bar.get_xlim() == ((-1.0, 1.0) if is_signed else (0.0, 1.0))
  with np.load(tmp_path / f"{name}.npz") as saved:
    maps = saved["maps"]
  assert (maps < 0).any() if is_signed else (maps >= 0).all()
  # What the bar says each drawn value is: the map divided by its largest |value|.
  bound = np.abs(maps).max(axis=tuple(range(1, maps.ndim)), keepdims=True)
  values = read_by_bar(figure, bar, column=1)
  np.testing.assert_allclose(values, (maps / bound).reshape(values.shape), atol=1e-6)


def test_occlusion_has_a_probability_bar_and_a_legend_of_exactly_the_classes_shown(tmp_path, drawn):
  subject = lenet5_subject(tmp_path)
  techniques.occlusion(subject)
  figure = drawn["occlusion.png"]
  bar, legend_axis = keys(figure)
  check_under(figure, bar, column=1)
  check_under(figure, legend_axis, column=2)
  assert bar.get_xlabel() == "p(true class)" and bar.get_xlim() == (0.0, 1.0)
  with np.load(tmp_path / "occlusion.npz") as saved:
    probability, top = saved["probability"], saved["top_class"]
  np.testing.assert_allclose(read_by_bar(figure, bar, column=1), probability, atol=1e-6)
  legend = legend_axis.get_legend()
  present = np.unique(top)
  names = [t.get_text() for t in legend.get_texts()]
  assert names == [subject.class_names[c] for c in present]
  # Every cell of the class maps is drawn in its class's legend colour.
  colours = {n: h.get_facecolor()[:3] for n, h in zip(names, legend.legend_handles, strict=True)}
  classes = np.stack([np.asarray(row[2].images[0].get_array()) for row in grid_cells(figure)])
  for c in present:
    np.testing.assert_allclose(
      classes[top == c], np.broadcast_to(colours[f"class {c}"], classes[top == c].shape), atol=1e-6
    )
  assert len(set(colours.values())) == len(colours)


def test_class_colours_name_the_largest_classes_when_too_many_for_a_palette():
  names = [f"class {c}" for c in range(1000)]
  # 25 classes, class 100 + k covering 25 − k cells: the 18 largest are 100–117.
  maps = np.concatenate([np.full(25 - k, 100 + k) for k in range(25)]).reshape(1, 1, -1)
  rgb, legend = drawing.class_colours(maps, names)
  assert list(legend) == [f"class {100 + k}" for k in range(18)] + ["7 other classes"]
  assert len(set(legend.values())) == 19
  for name, colour in legend.items():
    where = maps == int(name.split()[1]) if name.startswith("class") else maps >= 118
    np.testing.assert_allclose(rgb[where], np.broadcast_to(colour, rgb[where].shape))
  few, legend = drawing.class_colours(np.array([[[3, 1]]]), names[:10])
  assert list(legend) == ["class 1", "class 3"]  # by id; class c in tab10's colour c, as t-SNE
  np.testing.assert_allclose(few[0, 0], [matplotlib.colormaps["tab10"].colors[c] for c in (3, 1)])


def test_plots_with_axes_name_what_their_axes_hold(tmp_path, drawn):
  drawing.line_plot(tmp_path / "sanity.png", ["output", "f6"], {"saliency": [0.4, 0.3]}, "sanity")
  drawing.scatter(
    tmp_path / "tsne.png",
    np.array([[0.0, 0.0], [1.0, 2.0]]),
    np.array([0, 1]),
    ["a", "b"],
    np.zeros((1, 4, 4, 1)),
    np.zeros((1, 2)),
    "t-SNE",
  )
  (line,) = drawn["sanity.png"].axes
  assert "rank correlation" in line.get_ylabel() and "(unitless)" in line.get_ylabel()
  assert line.get_xlabel() == "re-initialised from the output down to this layer (cumulative)"
  (points,) = drawn["tsne.png"].axes
  assert [points.get_xlabel(), points.get_ylabel()] == [
    "t-SNE dimension 1 (unitless)",
    "t-SNE dimension 2 (unitless)",
  ]


# ---------------------------------------------------------------------------------------------
# The suite on a training workdir, and its bad input.

SMALL_SUITE = {
  "visualize__images": 3,
  "visualize__units": 2,
  "visualize__top_k": 3,
  "visualize__tsne_images": 60,
  "visualize__tsne_perplexity": 10.0,
  "visualize__class_model_steps": 3,
  "visualize__invert_steps": 3,
  "visualize__ig_steps": 2,
  "visualize__smooth_grad_samples": 2,
}


@pytest.mark.slow
def test_suite_writes_every_technique_and_changes_nothing_else(
  tiny_config, tmp_path, trained_tiny_run
):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  before = snapshot(workdir)
  summary = suite.run(tiny_config(**SMALL_SUITE), workdir)
  assert summary.startswith(f"{len(techniques.TECHNIQUES)} techniques in ")
  folder = workdir / suite.OUTPUT
  page = (folder / "index.html").read_text()
  for name in techniques.TECHNIQUES:
    assert f"<h2 id='{name}'>" in page
    assert (folder / f"{name}.npz").is_file()
  assert (folder / "sanity.md").is_file()
  with np.load(folder / "patches.npz") as patches:  # the default layer: the last map over 1×1
    assert patches["s4_images"].shape == (2, 3) and patches["s4_images"].max() < 512
    np.testing.assert_array_equal(patches["s4_units"], [0, 1])
  assert {p: t for p, t in snapshot(workdir).items() if suite.OUTPUT not in p.parts} == before


@pytest.mark.slow
def test_a_run_of_some_techniques_adds_to_the_page(tiny_config, tmp_path, trained_tiny_run):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  folder = workdir / suite.OUTPUT
  for only in ("saliency", "filters"):
    suite.run(tiny_config(**SMALL_SUITE, visualize__only=only), workdir)
  page = (folder / "index.html").read_text()
  assert 0 < page.index("<h2 id='filters'>") < page.index("<h2 id='saliency'>")  # suite order
  (folder / "filters.png").unlink()  # a picture removed by hand leaves the page
  suite.run(tiny_config(**SMALL_SUITE, visualize__only="saliency"), workdir)
  page = (folder / "index.html").read_text()
  assert "id='filters'" not in page and page.count("<h2 id='saliency'>") == 1
  assert set(json.loads((folder / INDEX).read_text())) == {"filters", "saliency"}


@pytest.mark.parametrize(
  "overrides,message",
  [
    ({"visualize__only": "occlusion,lime"}, "unknown technique 'lime'; known: filters, "),
    ({"visualize__layer": "c9"}, "unknown layer 'c9'; layers: c1, s2, c3"),
    (
      {"visualize__layer": "f6"},
      r"layer 'f6' has no spatial map \(output \(84,\)\); layers with one: c1, s2, c3, s4",
    ),
    ({"visualize__invert_layers": "c1,x"}, "unknown layer 'x'"),
    ({"visualize__top_k": 0}, "visualize.top_k must be positive, got 0"),
    ({"visualize__unit_ids": "3,16"}, "visualize.unit_ids '3,16': layer 's4' has units 0–15"),
    ({"visualize__patch_layers": "c1,f6"}, "layer 'f6' has no spatial map"),
    ({"visualize__classes": "Bag,Hat"}, "unknown class 'Hat' in visualize.classes; ids 0–9"),
    ({"visualize__smooth_grad_noise": float("nan")}, "smooth_grad_noise must be finite"),
  ],
)
def test_bad_visualize_settings_are_refused_before_anything_is_written(
  tiny_config, tmp_path, trained_tiny_run, overrides, message
):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  before = snapshot(workdir)
  with pytest.raises(ValueError, match=message):
    suite.run(tiny_config(**overrides), workdir)
  assert snapshot(workdir) == before


def test_more_images_than_the_eval_split_are_refused_by_the_plan_before_anything_compiles(
  tiny_config, tmp_path, trained_tiny_run, caplog
):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  before = snapshot(workdir)
  with jax.log_compiles(), pytest.raises(ValueError) as refused:
    suite.run(tiny_config(visualize__images=100000), workdir)
  assert str(refused.value) == (
    f"visualize.images 100000 is more than the {TINY_TEST} images of split 'test'"
  )
  assert refused.traceback[-1].name == "check" and refused.traceback[-1].path.name == "plan.py"
  assert not [r for r in caplog.records if r.getMessage().startswith("Compiling")]
  assert snapshot(workdir) == before


def test_visualize_without_checkpoints_is_one_line(tmp_path):
  (tmp_path / "config.json").write_text("{}")
  result = run_script("visualize.py", f"--workdir={tmp_path}")
  assert result.returncode == 1
  assert result.stderr.strip() == f"error: no checkpoint in {tmp_path}/checkpoints; train first"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


@pytest.mark.slow
def test_visualize_command_line_runs_on_a_workdir(tiny_data_dir, tmp_path, trained_tiny_run):
  workdir = trained_tiny_run.copy(tmp_path / "run")
  result = run_script(
    "visualize.py",
    f"--workdir={workdir}",
    "--only=filters,occlusion",
    "--images=2",
    "--layer=c3",
    f"--config.dataset.data_dir={tiny_data_dir}",
    "--config.visualize.occlusion_patch=6",
  )
  assert result.returncode == 0, result.stderr
  assert "2 techniques in" in result.stdout
  with np.load(workdir / suite.OUTPUT / "occlusion.npz") as occlusion:
    assert occlusion["probability"].shape[0] == 2
