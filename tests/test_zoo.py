"""The case-study networks: shapes from the papers' tables, parameter counts, LRN, removal,
widths."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import experiment
import models
import parallel
import schedules
import training
from models.layers import AuxHead, Conv, Dense, GlobalAvgPool
from models.network import ConvNet
from models.ops import local_response_norm


def build(name, num_classes=1000, **fields):
  return models.create_model(ml_collections.ConfigDict({"name": name, **fields}), num_classes)


def shapes(name, num_classes=1000, input_shape=None, **fields):
  """{layer: output shape without batch} at the native input, traced without compute."""
  model = build(name, num_classes, **fields)
  _, intermediates = models.trace(model, input_shape or models.entry(name).input_shape, num_classes)
  return {k: tuple(v.shape[1:]) for k, v in intermediates.items()}


def params(name, num_classes=1000, input_shape=None, **fields):
  """{top-level parameter name: count}."""
  model = build(name, num_classes, **fields)
  variables, _ = models.trace(model, input_shape or models.entry(name).input_shape, num_classes)
  return {k: sum(x.size for x in jax.tree.leaves(v)) for k, v in variables["params"].items()}


def names(name, **fields):
  """Layer names in the order the network applies them."""
  return [layer.name for layer in build(name, **fields).layers]


def total(name, **kwargs):
  return sum(params(name, **kwargs).values())


# ---------------------------------------------------------------------------------------------
# Shapes at every stage, as the papers' tables give them.


def test_alexnet_shapes():
  s = shapes("alexnet")
  assert s["conv1"] == s["norm1"] == (55, 55, 96)
  assert s["pool1"] == (27, 27, 96)
  assert s["conv2"] == (27, 27, 256) and s["pool2"] == (13, 13, 256)
  assert s["conv3"] == s["conv4"] == (13, 13, 384) and s["conv5"] == (13, 13, 256)
  assert s["pool3"] == (6, 6, 256)
  assert s["fc6"] == s["fc7"] == (4096,) and s["fc8"] == (1000,)
  assert names("alexnet")[:3] == ["conv1", "norm1", "pool1"]  # the paper's ReLU → LRN → pool
  assert names("alexnet", lrn_order="pool_lrn")[:3] == ["conv1", "pool1", "norm1"]


def test_zfnet_shapes():
  s = shapes("zfnet")
  assert [s[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool3")] == [
    (110, 110, 96),
    (55, 55, 96),
    (26, 26, 256),
    (13, 13, 256),
    (13, 13, 512),
    (6, 6, 512),
  ]
  assert s["conv3"] == (13, 13, 512) and s["conv4"] == (13, 13, 1024)


@pytest.mark.parametrize(
  "configuration,weight_layers",
  [("a", 11), ("a_lrn", 11), ("b", 13), ("c", 16), ("d", 16), ("e", 19)],
)
def test_vgg_stages_halve_to_7x7x512(configuration, weight_layers):
  name = f"vgg_{configuration}"
  s = shapes(name)
  assert [s[f"pool{i}"] for i in range(1, 6)] == [
    (112, 112, 64),
    (56, 56, 128),
    (28, 28, 256),
    (14, 14, 512),
    (7, 7, 512),
  ]
  model = build(name)
  assert sum(isinstance(l, (Conv, Dense)) for l in model.layers) == weight_layers
  assert ("norm1" in s) == (configuration == "a_lrn")


def test_vgg_c_has_1x1_convolutions_closing_stages_3_to_5():
  p = params("vgg_c")
  assert p["conv3_3"] == 256 * 256 + 256 and p["conv5_3"] == 512 * 512 + 512
  assert params("vgg_d")["conv3_3"] == 3 * 3 * 256 * 256 + 256


GOOGLENET_SHAPES = {
  "conv1": (112, 112, 64),
  "pool1": (56, 56, 64),
  "conv2": (56, 56, 192),
  "pool2": (28, 28, 192),
  "inception_3a": (28, 28, 256),
  "inception_3b": (28, 28, 480),
  "pool3": (14, 14, 480),
  "inception_4a": (14, 14, 512),
  "inception_4b": (14, 14, 512),
  "inception_4c": (14, 14, 512),
  "inception_4d": (14, 14, 528),
  "inception_4e": (14, 14, 832),
  "pool4": (7, 7, 832),
  "inception_5a": (7, 7, 832),
  "inception_5b": (7, 7, 1024),
  "avgpool": (1024,),
  "aux1": (1000,),
  "aux2": (1000,),
  "linear": (1000,),
}


def test_googlenet_shapes():
  s = shapes("googlenet")
  assert {k: s[k] for k in GOOGLENET_SHAPES} == GOOGLENET_SHAPES
  order = names("googlenet")
  assert order.index("aux1") == order.index("inception_4a") + 1
  assert order.index("aux2") == order.index("inception_4d") + 1
  without = shapes("googlenet", aux_classifiers=False, norm="none")
  assert "aux1" not in without and "norm1" not in without


def test_inception_3a_parameters_by_hand():
  by_hand = (
    (192 * 64 + 64)
    + (192 * 96 + 96)
    + (9 * 96 * 128 + 128)
    + (192 * 16 + 16)
    + (25 * 16 * 32 + 32)
    + (192 * 32 + 32)
  )
  assert params("googlenet")["inception_3a"] == by_hand == 163_696


@pytest.mark.parametrize(
  "name,channels", [("resnet18", (64, 128, 256, 512)), ("resnet50", (256, 512, 1024, 2048))]
)
def test_resnet_strides(name, channels):
  s = shapes(name)
  assert s["conv1"][:2] == (112, 112) and s["pool1"][:2] == (56, 56)
  last = {"resnet18": (2, 2, 2, 2), "resnet50": (3, 4, 6, 3)}[name]
  for stage, (size, width, blocks) in enumerate(
    zip((56, 28, 14, 7), channels, last, strict=True), start=1
  ):
    assert s[f"stage{stage}_block{blocks}"] == (size, size, width)
  assert s["avgpool"] == (channels[-1],) and s["fc"] == (1000,)


def test_cifar_resnet_stages():
  s = shapes("cifar_resnet56", 10)
  assert s["conv1"] == (32, 32, 16)
  assert [s[f"stage{i}_block9"] for i in (1, 2, 3)] == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]
  assert sum(k.startswith("stage") for k in s) == 27  # 6n + 2 = 56 → n = 9 per stage


def test_nin_and_alphago_shapes():
  s = shapes("nin")
  assert s["cccp2"] == (54, 54, 96) and s["pool3"] == (5, 5, 384)
  assert s["cccp8"] == (5, 5, 1000) and s["avgpool"] == (1000,)
  s = shapes("alphago_policy", 361)
  assert s["conv1"] == s["conv12"] == (19, 19, 192) and s["conv13"] == (19, 19, 1)
  assert s["position_bias"] == (361,)
  assert params("alphago_policy", 361)["position_bias"] == 361
  with pytest.raises(ValueError, match="scores the 361 board points; got num_classes 10"):
    build("alphago_policy", 10)


# ---------------------------------------------------------------------------------------------
# Parameter counts.


def test_alexnet_parameters_by_hand():
  p = params("alexnet")
  assert p["conv1"] == 11 * 11 * 3 * 96 + 96
  assert p["conv2"] == 5 * 5 * 96 * 256 + 256
  assert p["fc6"] == 6 * 6 * 256 * 4096 + 4096
  assert p["fc8"] == 4096 * 1000 + 1000
  assert sum(p.values()) == 62_378_344  # "60–62 M"
  assert p["fc6"] + p["fc7"] + p["fc8"] > 0.93 * sum(p.values())  # almost all in the FCs


@pytest.mark.parametrize(
  "name,count",
  [
    ("resnet18", 11_689_512),
    ("resnet34", 21_797_672),
    ("resnet50", 25_557_032),
    ("resnet101", 44_549_160),
    ("resnet152", 60_192_808),
    ("vgg_a", 132_863_336),
    ("vgg_d", 138_357_544),
    ("vgg_e", 143_667_240),
    ("cifar_resnet20", 269_722),
  ],
)
def test_published_parameter_counts(name, count):
  # ImageNet counts as torchvision reports them; ResNet-20: "0.27M" (He et al. 2015, Table 6).
  assert total(name, num_classes=10 if name.startswith("cifar") else 1000) == count


def test_grouped_convolutions_halve_those_layers_weights():
  single, grouped = params("alexnet"), params("alexnet", groups=2)
  for layer, biases in (("conv2", 256), ("conv4", 384), ("conv5", 256)):
    assert grouped[layer] - biases == (single[layer] - biases) // 2
  for layer in ("conv1", "conv3", "fc6", "fc7", "fc8"):
    assert grouped[layer] == single[layer]


def test_torchvision_variant_widths():
  assert total("alexnet", variant="torchvision", input_shape=(224, 224, 3)) == 61_100_840


@pytest.mark.parametrize(
  "residual,plain",
  [
    ("resnet34", "plain34"),
    pytest.param("resnet152", "plain152", marks=pytest.mark.slow),
    ("cifar_resnet20", "cifar_plain20"),
  ],
)
def test_plain_and_residual_nets_have_equal_parameters_with_identity_shortcuts(residual, plain):
  assert total(residual, shortcut="A") == total(plain, shortcut="A")
  assert total(residual, shortcut="B") > total(plain)  # the projections
  assert total(residual, shortcut="C") > total(residual, shortcut="B")
  assert params(residual, shortcut="none") == params(plain)


def test_batch_norm_follows_every_resnet_conv():
  model = build("resnet18")
  variables, _ = models.trace(model, (224, 224, 3), 1000)
  block = variables["params"]["stage2_block1"]
  assert set(block) == {"conv1", "conv1_bn", "conv2", "conv2_bn", "projection", "projection_bn"}
  assert "bias" not in block["conv1"]  # batch norm's shift replaces it
  assert set(variables["batch_stats"]["conv1_bn"]) == {"mean", "var"}


# ---------------------------------------------------------------------------------------------
# Local response normalisation against the formula.


def lrn_by_formula(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
  channels = a.shape[-1]
  b = np.empty_like(a)
  for i in range(channels):
    low, high = max(0, i - n // 2), min(channels - 1, i + n // 2)
    b[..., i] = a[..., i] / (k + alpha * np.sum(a[..., low : high + 1] ** 2, axis=-1)) ** beta
  return b


@pytest.mark.parametrize("n,alpha", [(5, 1e-4), (3, 0.5), (4, 0.02)])
def test_lrn_matches_the_formula(n, alpha):
  a = np.random.default_rng(0).normal(0, 20, (2, 3, 3, 11)).astype(np.float32)
  np.testing.assert_allclose(
    local_response_norm(jnp.asarray(a), 2.0, n, alpha, 0.75),
    lrn_by_formula(a, 2.0, n, alpha, 0.75),
    rtol=1e-5,
  )


# ---------------------------------------------------------------------------------------------
# Removal and widths.


def test_removing_fc_layers_takes_their_dropout_and_adapts_the_head():
  base = params("alexnet")
  p = params("alexnet", remove="fc7")
  assert "fc7" not in p and sum(base.values()) - sum(p.values()) == base["fc7"]  # ≈16 M
  assert "drop7" not in shapes("alexnet", remove="fc7") and "drop6" in shapes(
    "alexnet", remove="fc7"
  )
  p = params("alexnet", remove="fc6,fc7")
  assert p["fc8"] == 9216 * 1000 + 1000
  assert 48e6 < sum(base.values()) - sum(p.values()) < 52e6  # Zeiler & Fergus: ≈50 M


def test_removing_convolutions_lrn_and_dropout():
  s = shapes("alexnet", remove="conv3,conv4")
  assert "conv3" not in s and s["conv5"] == (13, 13, 256)
  assert params("alexnet", remove="conv3,conv4")["conv5"] == 3 * 3 * 256 * 256 + 256
  assert "norm1" not in shapes("alexnet", remove="norm1") and "norm2" in shapes(
    "alexnet", remove="norm1"
  )
  assert "drop6" not in shapes("alexnet", remove="drop6")


def test_removing_an_inception_module_takes_its_aux_classifier():
  s = shapes("googlenet", remove="inception_4a")
  assert "aux1" not in s and "aux2" in s
  assert (
    params("googlenet", remove="inception_4e")["inception_5a"] < params("googlenet")["inception_5a"]
  )
  assert shapes("googlenet", remove="inception_4e")["pool4"] == (7, 7, 528)


def test_removing_residual_blocks_and_stages():
  s = shapes("resnet18", remove="stage2_block1")
  assert s["stage2_block2"] == (56, 56, 128)  # no block strides now; the next one projects
  model = build("resnet18", remove="stage2_block1")
  variables, _ = models.trace(model, (224, 224, 3), 1000)
  assert "projection" in variables["params"]["stage2_block2"]
  s = shapes("resnet18", remove="stage4")
  assert not any(k.startswith("stage4") for k in s) and s["avgpool"] == (256,)


def test_bad_removals_are_clear_errors():
  with pytest.raises(ValueError, match=r"cannot remove 'fc9': no such layer; valid names: conv1, "):
    build("alexnet", remove="fc9")
  with pytest.raises(ValueError, match="cannot remove 'fc8': it produces the class scores"):
    build("alexnet", remove="fc8")
  with pytest.raises(ValueError, match=r"ends in shape \(1024,\), not 1000 class scores"):
    shapes("nin", remove="cccp8")
  with pytest.raises(
    ValueError, match="input 16×16×3 is too small .*the smallest it takes is 32×32"
  ):
    shapes("vgg_d", input_shape=(16, 16, 3))  # five halvings of 16: nothing left


def test_widths_of_named_layers():
  p = params("alexnet", widths="fc6=2048,fc7=2048")
  assert p["fc6"] == 9216 * 2048 + 2048 and p["fc7"] == 2048 * 2048 + 2048
  assert p["fc8"] == 2048 * 1000 + 1000
  assert shapes("resnet18", widths="stage4_block2=256")["stage4_block2"] == (7, 7, 256)
  with pytest.raises(ValueError, match="cannot set the width of 'pool1'"):
    build("alexnet", widths="pool1=3")
  with pytest.raises(ValueError, match="cannot set the width of 'fc8'"):
    build("alexnet", widths="fc8=10")
  with pytest.raises(ValueError, match="bad model.widths entry 'fc6'"):
    build("alexnet", widths="fc6")


def test_norm_choices():
  assert "norm1" not in shapes("alexnet", norm="none")
  p = params("alexnet", norm="batch")
  assert "conv1_bn" in p and "norm1" not in shapes("alexnet", norm="batch")
  assert "conv1_bn" not in params("resnet18", norm="none")
  with pytest.raises(ValueError, match="model 'resnet18' has no LRN layers"):
    build("resnet18", norm="lrn")
  with pytest.raises(ValueError, match="unknown model.norm 'group'"):
    build("resnet18", norm="group")


# ---------------------------------------------------------------------------------------------
# Every registered model initialises and runs forward and backward.

FAST_REAL_RUNS = ("lenet5",)  # the others compile for seconds each: slow tier
REAL_RUNS = {
  "lenet5": 32,
  "alexnet": 67,
  "nin": 67,
  "alphago_policy": 19,
  "vgg_a": 32,
  "resnet18": 32,
  "plain18": 32,
  "cifar_resnet20": 16,
  "cifar_plain20": 16,
}


def forward_backward(model, images, variables):
  def loss(p):
    logits, _, _ = models.apply_for_training(
      model.apply, {**variables, "params": p}, images, jax.random.key(1)
    )
    return jnp.sum(jnp.square(logits))

  return jax.value_and_grad(loss)(variables["params"])


# One network of each family in the fast tier; the others trace for seconds each: slow tier.
FAST_TRACES = ("lenet5", "alexnet", "vgg_a", "googlenet", "nin", "resnet50", "cifar_resnet20")


@pytest.mark.parametrize(
  "name",
  [
    name if name in FAST_TRACES else pytest.param(name, marks=pytest.mark.slow)
    for name in sorted(models.REGISTRY)
  ],
)
def test_every_model_traces_forward_and_backward_at_its_native_input(name):
  """Shapes only (nothing is computed): every gradient has its parameter's shape."""
  entry = models.entry(name)
  model = models.for_shapes(build(name, entry.num_classes if name == "alphago_policy" else 7))
  images = jax.ShapeDtypeStruct((2, *entry.input_shape), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  value, grads = jax.eval_shape(lambda v, x: forward_backward(model, x, v), variables, images)
  assert value.shape == ()
  assert jax.tree.map(lambda g: g.shape, grads) == jax.tree.map(
    lambda p: p.shape, variables["params"]
  )


@pytest.mark.parametrize(
  "name",
  [
    name if name in FAST_REAL_RUNS else pytest.param(name, marks=pytest.mark.slow)
    for name in sorted(REAL_RUNS)
  ],
)
def test_networks_compute_finite_nonzero_gradients(name):
  entry = models.entry(name)
  model = build(name, entry.num_classes if name == "alphago_policy" else 7)
  size = REAL_RUNS[name]
  images = jax.random.normal(jax.random.key(0), (2, size, size, entry.channels))
  variables = model.init(jax.random.key(0), images)
  value, grads = jax.jit(lambda v: forward_backward(model, images, v))(variables)
  assert np.isfinite(float(value))
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(grads))


@pytest.mark.slow
def test_auxiliary_losses_join_the_training_objective():
  model = ConvNet(
    (
      Conv("conv", 8, 3),
      AuxHead("aux", 5, loss_weight=0.3),
      GlobalAvgPool("avgpool"),
      Dense("out", 5, activation=False),
    )
  )
  images = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
  labels = jnp.array([0, 1, 2, 3])
  tx = optax.sgd(0.0)
  state = experiment.TrainState.create(
    apply_fn=model.apply,
    tx=tx,
    batch_stats={},
    params=model.init(jax.random.key(1), images)["params"],
    rng=jax.random.key_data(jax.random.key(2)),
    plateau=schedules.Plateau.create(),
  )
  devices = parallel.DataParallel(num_devices=1)
  step = devices.map(
    functools.partial(
      training.train_step,
      learning_rate_fn=lambda step: 0.0,
      preprocess=lambda images, keys: images,
      aux_loss_weights=tuple(model.aux_loss_weights().items()),
    )
  )
  _, metrics = step(devices.replicate(state), devices.shard({"image": images, "label": labels}))
  metrics = devices.unreplicate(metrics)
  # The dropout key train_step uses at step 0.
  _, dropout_key = jax.random.split(jax.random.fold_in(jax.random.key(2), 0))
  logits, intermediates = model.apply(
    {"params": state.params}, images, train=True, rngs={"dropout": dropout_key}
  )
  main = training.cross_entropy_loss(logits, labels).mean()
  aux = training.cross_entropy_loss(intermediates["aux"], labels).mean()
  assert model.aux_loss_weights() == {"aux": 0.3}
  assert float(metrics["loss"]) == pytest.approx(float(main + 0.3 * aux), rel=1e-6)
  assert float(aux) > 0
