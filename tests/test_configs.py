"""Every shipped config loads, names a registered model that builds at its input, and
documents itself."""

import importlib
import pathlib

import pytest

import models

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = [
  "default.py",
  "alexnet.py",
  "zfnet.py",
  "googlenet.py",
  "nin.py",
  *[f"vgg.py:{c}" for c in ("a", "a_lrn", "b", "c", "d", "e")],
  *[f"resnet.py:{d}" for d in ("18", "34", "50", "101", "152", "plain18", "plain34")],
  *[f"cifar_resnet.py:{d}" for d in ("20", "56", "110", "plain20", "plain56")],
]


GENERIC_MODEL_FIELDS = {
  "name",
  "activation",
  "kernel_init",
  "norm",
  "batch_norm_momentum",
  "batch_norm_epsilon",
  "remove",
  "widths",
  "dtype",
  "conv_impl",
}


def load(spec: str):
  path, _, argument = spec.partition(":")
  module = importlib.import_module(f"configs.{path.removesuffix('.py')}")
  return module, (module.get_config(argument) if argument else module.get_config())


@pytest.mark.smoke
@pytest.mark.parametrize("spec", CONFIGS)
def test_config_builds_its_model(spec):
  module, config = load(spec)
  entry = models.entry(config.model.name)
  size = config.dataset.crop_size or entry.input_size
  num_classes = {"imagenet2012": 1000, "cifar10": 10, "fashion_mnist": 10}[config.dataset.name]
  model = models.create_model(config.model, num_classes)
  models.trace(model, (size, size, entry.channels), num_classes)
  assert set(config.model) - GENERIC_MODEL_FIELDS == set(entry.fields)  # no stray family fields
  assert "Run:" in module.__doc__ and "train.py --config=configs/" in module.__doc__
  assert config.optimizer.learning_rate > 0 and config.batch_size > 0


def test_recipes_follow_the_papers():
  _, alexnet = load("alexnet.py")
  assert (
    alexnet.optimizer.learning_rate,
    alexnet.optimizer.momentum,
    alexnet.optimizer.weight_decay,
    alexnet.batch_size,
  ) == (0.01, 0.9, 5e-4, 128)
  assert alexnet.dataset.crop_size == 227
  _, resnet = load("resnet.py:34")
  assert (resnet.optimizer.learning_rate, resnet.optimizer.weight_decay, resnet.batch_size) == (
    0.1,
    1e-4,
    256,
  )
  _, vgg = load("vgg.py:d")
  assert vgg.model.name == "vgg_d" and vgg.batch_size == 256


def test_unknown_parameterisation_is_a_clear_error():
  with pytest.raises(ValueError, match="unknown VGG configuration 'f'; known: a, a_lrn"):
    load("vgg.py:f")
  with pytest.raises(ValueError, match="unknown ResNet '17'"):
    load("resnet.py:17")


@pytest.mark.smoke
def test_every_config_file_is_tested():
  files = {p.name for p in (REPO / "configs").glob("*.py")} - {
    "__init__.py",
    "base.py",
    "imagenet_base.py",
  }
  assert files == {spec.partition(":")[0] for spec in CONFIGS}
