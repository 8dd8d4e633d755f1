"""import_weights.py and predict.py without PyTorch: refusals, the imported workdir in eval.py,
visualize.py and init_from, and predictions. Parity with the sources' own code is in
test_weight_parity.py."""

from __future__ import annotations

import json
import os
import pickle
import zipfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pages
import pytest
import safetensors.numpy
import tensorflow_datasets as tfds
from conftest import REPO, run_script, snapshot
from PIL import Image

import checkpoints
import evaluation
import finetune
import models
import prediction
from input_pipeline import augment, color_pca
from reporting import run_page
from visualization import suite
from weights import importing, sources

RESNET18_STAGES = (64, 128, 256, 512)


def torchvision_resnet18(seed: int = 0) -> dict[str, np.ndarray]:
  """A state_dict with torchvision's ResNet-18 names and shapes, random values."""
  rng = np.random.default_rng(seed)
  tensors = {}

  def conv(name, out, inp, k):
    tensors[f"{name}.weight"] = rng.normal(0, (2 / (inp * k * k)) ** 0.5, (out, inp, k, k))

  def bn(name, c):
    tensors[f"{name}.weight"] = rng.uniform(0.5, 1.5, c)
    tensors[f"{name}.bias"] = rng.normal(0, 0.1, c)
    tensors[f"{name}.running_mean"] = rng.normal(0, 0.1, c)
    tensors[f"{name}.running_var"] = rng.uniform(0.5, 1.5, c)
    tensors[f"{name}.num_batches_tracked"] = np.array(7)

  conv("conv1", 64, 3, 7)
  bn("bn1", 64)
  inp = 64
  for stage, width in enumerate(RESNET18_STAGES, start=1):
    for block in range(2):
      conv(f"layer{stage}.{block}.conv1", width, inp, 3)
      bn(f"layer{stage}.{block}.bn1", width)
      conv(f"layer{stage}.{block}.conv2", width, width, 3)
      bn(f"layer{stage}.{block}.bn2", width)
      if block == 0 and stage > 1:
        conv(f"layer{stage}.{block}.downsample.0", width, inp, 1)
        bn(f"layer{stage}.{block}.downsample.1", width)
      inp = width
  tensors["fc.weight"] = rng.normal(0, 0.05, (1000, 512))
  tensors["fc.bias"] = rng.normal(0, 0.05, 1000)
  return {k: v.astype(np.int64 if v.dtype.kind == "i" else np.float32) for k, v in tensors.items()}


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("weights") / "resnet18.safetensors"
  safetensors.numpy.save_file(torchvision_resnet18(), str(path))
  return path


@pytest.fixture(scope="module")
def imported_resnet18(resnet18_file, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("imported") / "resnet18"
  importing.import_weights("torchvision:resnet18", resnet18_file, workdir, report=lambda _: None)
  return workdir


def saved_config(workdir) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(json.loads((workdir / checkpoints.CONFIG_FILE).read_text()))


def test_an_imported_workdir_holds_the_variant_its_convention_and_every_tensor(
  imported_resnet18,
):
  config = saved_config(imported_resnet18)
  assert (config.model.name, config.model.variant, config.model.norm) == (
    "resnet18",
    "torchvision",
    "batch",
  )
  assert config.dataset.mean == [0.485, 0.456, 0.406] and config.dataset.channel_order == "rgb"
  provenance = json.loads((imported_resnet18 / importing.PROVENANCE_FILE).read_text())
  assert provenance["source"] == "torchvision:resnet18" and len(provenance["sha256"]) == 64
  _, saved = checkpoints.read_newest(imported_resnet18, "test", lambda _: None)
  tensors = torchvision_resnet18()
  # OIHW → HWIO, [out, in] → [in, out], batch norm into params and batch_stats.
  np.testing.assert_array_equal(
    saved["params"]["conv1"]["kernel"], tensors["conv1.weight"].transpose(2, 3, 1, 0)
  )
  np.testing.assert_array_equal(saved["params"]["fc"]["kernel"], tensors["fc.weight"].T)
  block = saved["batch_stats"]["stage2_block1"]["projection_bn"]
  np.testing.assert_array_equal(block["var"], tensors["layer2.0.downsample.1.running_var"])
  count = sum(v.size for k, v in tensors.items() if not k.endswith("num_batches_tracked"))
  stored = sum(np.size(v) for v in jax.tree.leaves([saved["params"], saved["batch_stats"]]))
  assert stored == count  # every tensor, once


def malicious_pth(path, marker) -> None:
  """A torch-format zip whose pickle, if unpickled by pickle.load, would create `marker`."""

  class Payload:
    def __reduce__(self):
      return os.system, (f"touch {marker}",)

  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"conv1.weight": Payload()}, protocol=2))
    archive.writestr("archive/version", "3\n")


def broken_files(tmp_path, resnet18_file):
  data = resnet18_file.read_bytes()
  tensors = torchvision_resnet18()
  files = {}
  files["truncated"] = tmp_path / "truncated.safetensors"
  files["truncated"].write_bytes(data[: len(data) // 2])
  files["corrupt"] = tmp_path / "corrupt.pth"
  files["corrupt"].write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
  files["leftover"] = tmp_path / "leftover.safetensors"
  safetensors.numpy.save_file(
    {**tensors, "extra.weight": np.ones(3, np.float32)}, str(files["leftover"])
  )
  files["missing"] = tmp_path / "missing.safetensors"
  safetensors.numpy.save_file(
    {k: v for k, v in tensors.items() if k != "fc.bias"}, str(files["missing"])
  )
  return files


@pytest.mark.parametrize(
  "case,spec,message",
  [
    ("truncated", "torchvision:resnet18", r"truncated|cut short|shorter"),
    ("corrupt", "torchvision:resnet18", r"zip|corrupt|not a"),
    ("another network", "torchvision:resnet50", r"no tensor 'layer1.0.conv3.weight'|shape"),
    ("leftover", "torchvision:resnet18", r"1 tensor\(s\) of the file have no place.*extra.weight"),
    ("missing", "torchvision:resnet18", r"no tensor 'fc.bias'"),
    ("bad source", "pytorch:resnet18", r"unknown weights source 'pytorch'; known: caffe, timm"),
    ("bad network", "torchvision:resnet19", r"unknown torchvision network 'resnet19'; known:"),
    ("no colon", "resnet18", r"is not SOURCE:NETWORK"),
  ],
)
def test_a_bad_file_or_name_is_one_line_and_nothing_is_written(
  tmp_path, resnet18_file, case, spec, message
):
  files = broken_files(tmp_path, resnet18_file)
  file = files.get(case, resnet18_file)
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=message) as error:
    importing.import_weights(spec, file, workdir, report=lambda _: None)
  assert "\n" not in str(error.value)
  assert not workdir.exists()


def test_a_pth_whose_pickle_would_run_code_is_refused_without_running_it(tmp_path):
  marker = tmp_path / "pwned"
  malicious_pth(tmp_path / "evil.pth", marker)
  result = run_script(
    "import_weights.py",
    "--source=torchvision:resnet18",
    f"--file={tmp_path / 'evil.pth'}",
    f"--workdir={tmp_path / 'run'}",
  )
  assert result.returncode == 1, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and "posix.system" in lines[0]
  assert not marker.exists() and not (tmp_path / "run").exists()


def test_an_existing_run_is_never_overwritten(imported_resnet18, resnet18_file):
  before = snapshot(imported_resnet18)
  with pytest.raises(ValueError, match="already holds a run"):
    importing.import_weights("torchvision:resnet18", resnet18_file, imported_resnet18)
  assert snapshot(imported_resnet18) == before


def test_caffe_definitions_are_checked_before_any_weight_is_copied(tmp_path):
  from tests import caffe_nets
  from weights import caffemodel

  layers, _ = caffe_nets.bvlc_alexnet(seed=0)
  for layer in layers:
    if layer.name == "conv2":
      layer.params["group"] = 1  # the blobs still fit a grouped conv2: only the definition says
  caffemodel.write_net(tmp_path / "alexnet.caffemodel", "AlexNet", layers)
  with pytest.raises(ValueError, match=r"layer 'conv2' is kernel 5, stride 1, pad 2, group 1"):
    importing.import_weights("caffe:bvlc_alexnet", tmp_path / "alexnet.caffemodel", tmp_path / "r")
  assert not (tmp_path / "r").exists()


def write_images(folder):
  rng = np.random.default_rng(3)
  paths = [folder / "photo.jpg", folder / "small.png"]
  Image.fromarray(rng.integers(0, 256, (300, 400, 3), np.uint8)).save(paths[0], quality=95)
  Image.fromarray(rng.integers(0, 256, (100, 90, 3), np.uint8)).save(paths[1])
  return paths


def network_logits(workdir, inputs):
  """The run's network applied directly, for checking predict's numbers."""
  config = saved_config(workdir)
  _, saved = checkpoints.read_newest(workdir, "test", lambda _: None)
  model = models.create_model(config.model, 1000)
  variables = {"params": saved["params"], "batch_stats": saved["batch_stats"]}
  return np.asarray(model.apply(variables, inputs, train=False)[0])


def test_predict_classifies_files_and_arrays_with_imagenet_names(imported_resnet18, tmp_path):
  config = saved_config(imported_resnet18)
  classifier = prediction.load(config, imported_resnet18, lambda _: None)
  assert classifier.class_names[0] == "tench" and len(classifier.class_names) == 1000
  paths = write_images(tmp_path)
  images = np.stack([prediction.read_image(p, classifier) for p in paths])
  assert images.shape == (2, 256, 256, 3)  # shorter side 256, central 256×256
  single = prediction.class_scores(classifier, images, ten_crop=False)
  convention = augment.InputConvention.of(config.dataset)
  centre = augment.center_crop_batch(jnp.asarray(images), 224)
  inputs = augment.normalize(centre, color_pca.IMAGENET, "standardize", convention)
  # Equal to float rounding of the largest logit: the two paths may compute a convolution by
  # different formulations (the route measured for predict's batch, oneDNN's or XLA's).
  expected = network_logits(imported_resnet18, inputs)
  np.testing.assert_allclose(single, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
  ten = prediction.class_scores(classifier, images, ten_crop=True)
  assert ten.shape == (2, 1000) and not np.allclose(ten, single)
  np.testing.assert_allclose(np.exp(ten).sum(axis=1), 1, rtol=1e-4)  # log mean probabilities
  # A .npy at the input size gets the normalisation only: the centre crops give the same scores.
  np.save(tmp_path / "crops.npy", np.asarray(centre))
  crops = prediction.read_npy(tmp_path / "crops.npy", classifier)
  from_npy = prediction.class_scores(classifier, crops, ten_crop=False, already_cropped=True)
  np.testing.assert_allclose(from_npy, single, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_predict_program_prints_top_classes_and_saves_logits(imported_resnet18, tmp_path):
  paths = write_images(tmp_path)
  result = run_script(
    "predict.py", f"--workdir={imported_resnet18}", "--top=3", "--ten_crop", *map(str, paths)
  )
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()[-2:]
  assert [line.split(":")[0] for line in lines] == [str(p) for p in paths]
  assert all(line.count(" %") == 3 for line in lines)
  np.save(tmp_path / "x.npy", np.zeros((2, 224, 224, 3), np.uint8))
  out = tmp_path / "logits.npy"
  result = run_script(
    "predict.py",
    f"--workdir={imported_resnet18}",
    f"--images={tmp_path / 'x.npy'}",
    f"--save_logits={out}",
  )
  assert result.returncode == 0, result.stderr
  assert np.load(out).shape == (2, 1000)
  for args, message in [
    ([], "give image files, or --images=FILE.npy"),
    ([str(tmp_path / "nothing.jpg")], "no such file: "),
    ([f"--images={tmp_path / 'x.npy'}", "--ten_crop"], "--ten_crop needs image files"),
  ]:
    result = run_script("predict.py", f"--workdir={imported_resnet18}", *args)
    assert result.returncode == 1 and message in result.stderr, result.stderr


def test_predict_on_a_trained_run_names_its_dataset_classes(trained_tiny_run, tmp_path):
  config = ml_collections.ConfigDict(
    json.loads((trained_tiny_run.workdir / "config.json").read_text())
  )
  classifier = prediction.load(config, trained_tiny_run.workdir, lambda _: None)
  # 28×28 digits padded by 2 (LeCun et al. 1998), as the run was trained.
  assert classifier.class_names[0] == "T-shirt/top" and classifier.input_shape == (32, 32, 1)
  Image.fromarray(np.full((56, 40, 3), 200, np.uint8)).save(tmp_path / "shirt.png")
  image = prediction.read_image(tmp_path / "shirt.png", classifier)
  assert image.shape == (32, 32, 1)  # grey, warped to the dataset's 28×28, padded
  scores = prediction.class_scores(classifier, image[None], ten_crop=False)
  assert scores.shape == (1, 10)


@pytest.mark.slow
def test_eval_visualize_and_init_from_take_an_imported_workdir(imported_resnet18, tmp_path):
  config = saved_config(imported_resnet18)
  config.eval_batch_size = 8
  config.eval.ten_crop = False
  config.visualize.update(
    only="filters,occlusion", images=2, occlusion_patch=64, occlusion_stride=64
  )
  with tfds.testing.mock_data(num_examples=4):
    results = evaluation.evaluate_workdir(config, imported_resnet18)
    assert results["single"]["num_examples"] == 4
    assert 0 <= results["single"]["top1_error"] <= 100  # percent
    suite.run(config, imported_resnet18)
    # The page of an imported run: what it is, its predictions, and a link to its pictures.
    page = pages.read(run_page.write(imported_resnet18), pages.RUN_SECTIONS)
  assert (imported_resnet18 / "visualizations" / "filters.png").is_file()
  assert "Imported from torchvision:resnet18, not trained here." in page.text
  assert "single-crop predictions of 4 'validation' examples at step 0" in page.text
  assert "visualizations/index.html" in page.links
  # init_from: a 10-class fine-tune keeps every imported layer but the new head.
  model = models.create_model(config.model, 10)
  fresh = model.init(jax.random.key(1), jnp.zeros((1, 64, 64, 3)))
  merged = finetune.initialize_from(str(imported_resnet18), dict(fresh), lambda _: None)
  _, saved = checkpoints.read_newest(imported_resnet18, "test", lambda _: None)
  np.testing.assert_array_equal(
    merged["params"]["conv1"]["kernel"], saved["params"]["conv1"]["kernel"]
  )
  assert merged["params"]["fc"]["kernel"].shape == (512, 10)


def test_every_source_network_builds_and_traces():
  for source, recipes in sources.SOURCES.items():
    for name, recipe in recipes.items():
      config = importing.imported_config(recipe, aux=True)
      model = models.create_model(config.model, sources.NUM_CLASSES)
      crop = config.dataset.crop_size
      models.trace(model, (crop, crop, 3), sources.NUM_CLASSES)
      assert recipe.published or source != "torchvision", (source, name)


@pytest.mark.smoke
def test_the_import_program_without_arguments_shows_its_usage():
  result = run_script("import_weights.py")
  assert "--source=SOURCE:NETWORK" in result.stderr + result.stdout
  assert (REPO / "docs" / "weights.md").is_file()
