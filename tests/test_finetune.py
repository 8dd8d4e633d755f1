"""Fine-tuning: starting from another run, frozen layers, learning-rate multipliers, probes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

import checkpoints
import experiment
import finetune
import input_pipeline
import models
import training
from tests.conftest import make_config


def saved_params(workdir, step):
  return checkpoints.read(workdir, step)["params"]


def fresh_state(config, num_classes=10):
  model = models.create_model(config.model, num_classes)
  return experiment.create_train_state(
    config, model, (32, 32, 1), experiment.create_optimizer(config, 0.1, model.layers[-1].name)
  )


@pytest.mark.slow
def test_frozen_layers_stay_bit_identical_while_the_rest_trains(tiny_config, tmp_path):
  config = tiny_config(optimizer__frozen="c1,c3/kernel")
  training.train_and_evaluate(config, tmp_path)
  before, after = fresh_state(config).params, saved_params(tmp_path, 40)
  np.testing.assert_array_equal(before["c1"]["kernel"], after["c1"]["kernel"])
  np.testing.assert_array_equal(before["c1"]["bias"], after["c1"]["bias"])
  np.testing.assert_array_equal(before["c3"]["kernel"], after["c3"]["kernel"])
  assert not np.array_equal(before["c3"]["bias"], after["c3"]["bias"])  # only the kernel frozen
  assert not np.array_equal(before["f6"]["kernel"], after["f6"]["kernel"])


@pytest.mark.slow
def test_multipliers_scale_each_groups_update():
  config = make_config(
    "",
    optimizer__momentum=0.0,
    optimizer__weight_decay=0.0,
    optimizer__lr_multipliers="output=0.1,f*=0.01",
  )
  plain = make_config("", optimizer__momentum=0.0, optimizer__weight_decay=0.0)
  params = fresh_state(config).params
  grads = jax.tree.map(jnp.ones_like, params)

  def updates(cfg):
    tx = experiment.create_optimizer(cfg, lambda step: 0.5, "output")
    return traverse_util.flatten_dict(tx.update(grads, tx.init(params), params)[0])

  scaled, reference = updates(config), updates(plain)
  factors = {"output": 0.1, "f6": 0.01, "c1": 1.0, "c3": 1.0, "c5": 1.0}
  for key, value in scaled.items():
    np.testing.assert_allclose(value, factors[key[0]] * reference[key], rtol=1e-6)
    assert float(np.abs(reference[key]).max()) == pytest.approx(0.5)


def test_linear_probe_trains_the_head_alone():
  optimizer = make_config("", optimizer__linear_probe=True).optimizer
  paths = finetune.parameter_paths(fresh_state(make_config("")).params)
  groups = {path: finetune.group_of(path, optimizer, "output") for path in paths}
  assert {p for p, g in groups.items() if g != finetune.FROZEN} == {"output/kernel", "output/bias"}


@pytest.mark.parametrize(
  "overrides,message",
  [
    (
      {"optimizer__frozen": "f9"},
      "layer pattern 'f9' matches no parameter; layers: c1, c3, c5, f6, output",
    ),
    ({"init_from": "", "init_reset": "head"}, "layer pattern 'head' matches no parameter"),
    ({"optimizer__lr_multipliers": "f6"}, "bad optimizer.lr_multipliers entry 'f6'"),
    ({"optimizer__lr_multipliers": "f6=-1"}, "bad optimizer.lr_multipliers entry 'f6=-1'"),
    ({"init_from": "/nonexistent/run"}, "init_from /nonexistent/run: no checkpoints folder there"),
  ],
)
def test_bad_fine_tuning_configs_are_refused(tiny_config, tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    training.train_and_evaluate(tiny_config(**overrides), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_new_head_is_reinitialised_and_listed(tiny_config, trained_tiny_run):
  source_dir = trained_tiny_run.workdir
  state = fresh_state(tiny_config(), num_classes=5)
  reports = []
  merged = finetune.initialize_from(
    str(source_dir), {"params": state.params, "batch_stats": state.batch_stats}, reports.append
  )
  source = saved_params(source_dir, 40)
  np.testing.assert_array_equal(merged["params"]["c1"]["kernel"], source["c1"]["kernel"])
  np.testing.assert_array_equal(
    merged["params"]["output"]["kernel"], state.params["output"]["kernel"]
  )
  assert merged["params"]["output"]["kernel"].shape == (84, 5)
  assert reports[0].endswith("re-initialised (new shape or init_reset): output")


@pytest.mark.slow
def test_networks_that_differ_beyond_shapes_are_an_error(tiny_config, tmp_path, trained_tiny_run):
  with pytest.raises(
    ValueError,
    match=r"differ in params beyond their shapes \(only here: none; "
    r"only there: f6/bias, f6/kernel\)",
  ):
    training.train_and_evaluate(
      tiny_config(model__remove="f6", init_from=str(trained_tiny_run.workdir)), tmp_path / "target"
    )


@pytest.mark.slow
def test_linear_probe_from_a_pretrained_run(tiny_config, tmp_path, capsys, trained_tiny_run):
  capsys.readouterr()
  probe = training.train_and_evaluate(
    tiny_config(init_from=str(trained_tiny_run.workdir), optimizer__linear_probe=True),
    tmp_path / "probe",
  )
  assert "initialised from" in capsys.readouterr().out
  source = saved_params(trained_tiny_run.workdir, 40)
  probed = saved_params(tmp_path / "probe", 40)
  for layer in ("c1", "c3", "c5", "f6"):
    jax.tree.map(np.testing.assert_array_equal, source[layer], probed[layer])
  assert not np.array_equal(source["output"]["kernel"], probed["output"]["kernel"])
  assert probe["top1_error"] < 30.0


def test_class_subsets_keep_and_relabel_their_examples(tiny_config):
  full = input_pipeline.load_data(tiny_config())
  subset = input_pipeline.load_data(tiny_config(dataset__classes="7,2"))
  assert subset.info.num_classes == 2
  for split in ("train", "eval"):
    images, labels = getattr(full, split).read(np.arange(len(getattr(full, split))))
    kept = np.isin(labels, [7, 2])
    sub_images, sub_labels = getattr(subset, split).read(np.arange(len(getattr(subset, split))))
    assert len(sub_labels) == kept.sum() > 0
    np.testing.assert_array_equal(sub_images, images[kept])
    np.testing.assert_array_equal(sub_labels, np.where(labels[kept] == 7, 0, 1))


@pytest.mark.parametrize(
  "classes,message",
  [
    ("0-12", "class 10 is out of range 0–9"),
    ("1,1", "class 1 is out of range 0–9 or given twice"),
    ("a-b", "bad dataset.classes entry 'a-b'"),
    ("7-3", "bad dataset.classes entry '7-3'"),  # a reversed range would keep nothing
  ],
)
def test_bad_class_subsets_are_refused(tiny_config, tmp_path, classes, message):
  with pytest.raises(ValueError, match=message):
    training.train_and_evaluate(tiny_config(dataset__classes=classes), tmp_path / "run")
