"""The model registry, family fields from signatures, unchanged parameter trees, config values,
and programs that change nothing when imported."""

import hashlib
import json
import pathlib
import subprocess
import sys

import jax
import ml_collections
import pytest
from flax import traverse_util

import config_values
import models
import training
from configs import base
from models import accounting
from models.layers import Conv, Dense, Pool

REPO = pathlib.Path(__file__).resolve().parent.parent
# Written by the code before the spec/module pairs became one scoped wrapper (tests/data).
PARAMETER_TREES = json.loads((REPO / "tests" / "data" / "parameter_trees.json").read_text())


def fingerprint(name: str) -> dict:
  """Leaf count, parameter count and a digest of every variable's path and shape."""
  entry = models.entry(name)
  model = models.create_model(ml_collections.ConfigDict({"name": name}), entry.num_classes)
  variables, _ = models.trace(model, entry.input_shape, entry.num_classes)
  leaves = {
    "/".join((collection, *key)): value.shape
    for collection in variables
    for key, value in traverse_util.flatten_dict(variables[collection]).items()
  }
  lines = "\n".join(f"{path} {'x'.join(map(str, shape))}" for path, shape in sorted(leaves.items()))
  return {
    "leaves": len(leaves),
    "parameters": sum(x.size for x in jax.tree.leaves(variables["params"])),
    "sha256": hashlib.sha256(lines.encode()).hexdigest(),
  }


@pytest.mark.smoke
@pytest.mark.parametrize("name", sorted(PARAMETER_TREES))
def test_parameter_trees_are_those_old_checkpoints_hold(name):
  assert fingerprint(name) == PARAMETER_TREES[name]


@pytest.mark.smoke
def test_every_family_file_registers_its_networks():
  assert set(models.REGISTRY) == set(PARAMETER_TREES)
  assert {entry.build.func.__module__ for entry in models.REGISTRY.values()} == {
    f"models.{family}"
    for family in ("alexnet", "alphago", "googlenet", "lenet", "nin", "resnet", "vgg")
  }


def test_family_fields_and_defaults_come_from_the_builders_signature():
  assert models.entry("alexnet").defaults == {
    "variant": "paper",
    "groups": 1,
    "lrn_order": "relu_lrn_pool",
    "lrn": "paper",
  }
  # depth and residual are bound
  assert models.entry("resnet50").defaults == {"shortcut": "B", "variant": "paper"}
  assert models.entry("cifar_plain56").defaults == {"shortcut": "A"}
  assert models.entry("vgg_c").fields == ()
  assert models.entry("alphago_policy").input_shape == (19, 19, 48)


def test_set_model_swaps_family_fields():
  config = models.set_model(base.get_config(), "alexnet")
  assert (config.model.variant, config.model.groups) == ("paper", 1)
  config.model.lrn_order = "pool_lrn"
  models.set_model(config, "zfnet")
  assert "variant" not in config.model and "groups" not in config.model
  assert config.model.lrn_order == "pool_lrn"  # a field both families have keeps its value
  models.set_model(config, "resnet18")
  assert "lrn_order" not in config.model and config.model.shortcut == "B"


# A new family: one decorated table builder. Registering it is all it takes to train it.
def toy_mlp(num_classes: int, hidden: int = 16, pool: str = "max") -> tuple:
  return (Pool("pool", 4, 4, pool), Dense("hidden", hidden), Dense("out", num_classes, False))


@pytest.fixture
def toy_family():
  models.register("toy_mlp", input_size=32, channels=1, num_classes=10)(toy_mlp)
  yield
  models.registry.unregister("toy_mlp")


def test_a_new_family_is_one_decorated_builder(toy_family, tiny_config, tmp_path):
  config = models.set_model(
    tiny_config(num_train_steps=4, eval_every_steps=4, checkpoint_every_steps=4, log_every_steps=2),
    "toy_mlp",
  )
  assert (config.model.hidden, config.model.pool) == (16, "max")
  config.model.hidden = 8
  counts = accounting.summarize(models.create_model(config.model, 10), (32, 32, 1), 10)
  assert counts["total_params"] == (64 + 1) * 8 + (8 + 1) * 10
  metrics = training.train_and_evaluate(config, tmp_path)
  assert metrics["num_examples"] == 300 and metrics["top1_error"] < 100
  with pytest.raises(ValueError, match="model 'toy_mlp' is registered twice"):
    models.register("toy_mlp", input_size=32)(toy_mlp)
  with pytest.raises(TypeError, match="family fields need defaults: width"):
    models.register("bad", input_size=32)(lambda num_classes, width: ())


def test_entries_report_their_pooling_and_branching():
  assert Pool("p", 3, 2).pooling_flops((13, 13, 8), (6, 6, 8)) == 6 * 6 * 8 * 9
  assert (
    not Conv("c", 8, 3).branches_off and Conv("c", 8, 3).pooling_flops((4, 4, 1), (2, 2, 8)) == 0
  )
  googlenet = models.create_model(ml_collections.ConfigDict({"name": "googlenet"}), 10)
  layers = {layer.name: layer for layer in googlenet.layers}
  inception, aux = layers["inception_3a"], layers["aux1"]
  assert inception.pooling_flops((28, 28, 192), (28, 28, 256)) == 28 * 28 * 192 * 9
  assert aux.branches_off and aux.pooling_flops((14, 14, 512), (10,)) == 4 * 4 * 512 * 25


# ---------------------------------------------------------------------------------------------
# Config values.


def test_lists_pairs_and_choices():
  assert config_values.split_list(" fc7, ,conv4 ") == ["fc7", "conv4"]
  assert config_values.split_list(("a", " b")) == ["a", "b"]
  assert config_values.parse_pairs("a=1, b = 2", "f", int, "N=INT") == [("a", 1), ("b", 2)]
  for bad in ("a", "=1", "a=x"):
    with pytest.raises(ValueError, match=f"bad f entry '{bad}'; expected N=INT"):
      config_values.parse_pairs(bad, "f", int, "N=INT")
  with pytest.raises(ValueError, match="unknown colour 'red'; known: blue, green"):
    config_values.choose("colour", "red", {"green": 1, "blue": 2})
  with pytest.raises(ValueError, match="unknown size 3; known: 1, 2"):
    config_values.check_choice("size", 3, (1, 2))


@pytest.mark.smoke
def test_dotted_overrides_copy_check_and_type():
  config = base.get_config()
  changed = config_values.with_overrides(config, {"model.remove": "fc7", "seed": 3})
  assert (changed.model.remove, changed.seed, config.seed) == ("fc7", 3, 0)
  with pytest.raises(ValueError, match="unknown config field 'model.nmae'"):
    config_values.with_overrides(config, {"model.nmae": "x"})
  with pytest.raises(ValueError, match="unknown config field 'modle'"):
    config_values.with_overrides(config, {"modle.name": "x"})
  with pytest.raises(ValueError, match="bad value 'big' for 'batch_size'"):
    config_values.with_overrides(config, {"batch_size": "big"})


def test_importing_the_programs_defines_no_flags_and_changes_no_global_state():
  code = (
    "import sys; from absl import flags, logging as absl_logging\n"
    "import ablate, eval, summary, train, visualize, input_pipeline.color_pca\n"
    "assert not {'config', 'study', 'workdir', 'model', 'format'} & set(flags.FLAGS), 'flags'\n"
    "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot'\n"
    "assert not absl_logging.get_absl_logger().filters, 'log filter'\n"
  )
  result = subprocess.run(
    [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
  )
  assert result.returncode == 0, result.stderr


def test_torchvision_names_are_aliases():
  assert models.entry("vgg16") is models.entry("vgg_d")
  assert models.entry("vgg11") is models.entry("vgg_a")
  with pytest.raises(
    ValueError, match="unknown model 'vgg16_bn'; it is vgg_d with model.norm=batch"
  ):
    models.entry("vgg16_bn")
