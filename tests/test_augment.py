"""The AlexNet data protocol: host resize and crop, device augmentation, ten crops, colour PCA."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

import evaluation
import experiment
import input_pipeline
import models
import parallel
import records
import schedules
import training
from configs import cifar_resnet
from input_pipeline import augment, color_pca, preprocess
from reporting import predictions as saved_predictions
from tests import pages
from tests.conftest import make_config

H, W = 12, 16


def coordinate_images(batch: int = 4) -> np.ndarray:
  """[B, H, W, 2]: channel 0 holds the row, channel 1 the column of each pixel."""
  rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
  return np.broadcast_to(np.stack([rows, cols], -1), (batch, H, W, 2)).astype(np.float32)


def window_of(crop: np.ndarray) -> tuple[int, int, bool]:
  """(top, left, mirrored) of a crop cut from a coordinate image."""
  rows, cols = crop[..., 0], crop[..., 1]
  mirrored = crop.shape[1] > 1 and cols[0, 0] > cols[0, 1]
  return int(rows[0, 0]), int(cols[0, -1] if mirrored else cols[0, 0]), bool(mirrored)


def expected_window(top: int, left: int, size: int, mirrored: bool = False) -> np.ndarray:
  crop = coordinate_images(1)[0, top : top + size, left : left + size]
  return crop[:, ::-1] if mirrored else crop


def test_random_crops_are_windows_inside_the_image_of_the_right_size():
  images = coordinate_images(64)
  crops = np.asarray(
    augment.random_crop(jnp.asarray(images), augment.example_keys(jax.random.key(0), 0, 64), 8)
  )
  assert crops.shape == (64, 8, 8, 2)
  positions = set()
  for crop in crops:
    top, left, _ = window_of(crop)
    assert 0 <= top <= H - 8 and 0 <= left <= W - 8
    np.testing.assert_array_equal(crop, expected_window(top, left, 8))
    positions.add((top, left))
  assert len(positions) > 10  # really random


def test_flips_mirror_or_keep_and_are_involutions():
  images = jnp.asarray(coordinate_images(32))
  key = augment.example_keys(jax.random.key(3), 0, 32)
  flipped = np.asarray(augment.random_flip(images, key))
  mirrored = [not np.array_equal(f, i) for f, i in zip(flipped, np.asarray(images), strict=True)]
  assert 0 < sum(mirrored) < 32
  for f, m in zip(flipped, mirrored, strict=True):
    np.testing.assert_array_equal(
      f, coordinate_images(1)[0][:, ::-1] if m else coordinate_images(1)[0]
    )
  np.testing.assert_array_equal(augment.random_flip(jnp.asarray(flipped), key), images)


def test_pca_shift_equals_the_formula():
  eigvals = np.array([0.3, 0.02, 0.005])
  eigvecs = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
  keys, sigma = augment.example_keys(jax.random.key(7), 0, 5), 0.1
  shift = np.asarray(
    augment.pca_lighting_shift(keys, jnp.asarray(eigvals), jnp.asarray(eigvecs), sigma)
  )
  alphas = sigma * np.stack([np.asarray(jax.random.normal(k, (3,))) for k in keys])
  for b in range(5):
    expected = sum(eigvecs[:, i] * alphas[b, i] * eigvals[i] for i in range(3))  # Σ p_i α_i λ_i
    np.testing.assert_allclose(shift[b], expected, rtol=1e-5, atol=1e-9)


def test_colour_pca_tool_recovers_a_known_covariance():
  rng = np.random.default_rng(0)
  basis = np.linalg.qr(rng.normal(size=(3, 3)))[0]
  covariance = basis @ np.diag([900.0, 200.0, 40.0]) @ basis.T  # in 0–255 units
  pixels = rng.multivariate_normal([128, 120, 110], covariance, size=(20, 64, 64))
  images = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
  stats = color_pca.compute(np.array_split(images, 4))
  np.testing.assert_allclose(stats.eigvals * 255**2, [900, 200, 40], rtol=0.05)
  for i in range(3):  # eigenvectors up to sign
    assert abs(float(stats.eigvecs[:, i] @ basis[:, i])) > 0.99
  np.testing.assert_allclose(stats.mean * 255, [128, 120, 110], atol=0.5)
  assert stats.mean_image.shape == (64, 64, 3)


def test_ten_crops_are_the_corners_the_centre_and_their_mirrors():
  crops = np.asarray(augment.ten_crops(jnp.asarray(coordinate_images(2)), 8))
  assert crops.shape == (10, 2, 8, 8, 2)
  windows = [(0, 0), (0, W - 8), (H - 8, 0), (H - 8, W - 8), ((H - 8) // 2, (W - 8) // 2)]
  for index, (top, left) in enumerate(windows):
    np.testing.assert_array_equal(crops[index, 1], expected_window(top, left, 8))
    np.testing.assert_array_equal(crops[index + 5, 1], expected_window(top, left, 8, mirrored=True))


def test_host_resize_and_centre_crop():
  image = np.random.default_rng(0).integers(0, 255, (40, 100, 3), dtype=np.uint8)
  resized = preprocess.resize(image, 32)
  assert resized.shape == (32, 80, 3)
  assert preprocess.resize(image, 32, "warp").shape == (32, 32, 3)
  assert preprocess.center_crop_image(resized, 32).shape == (32, 32, 3)
  np.testing.assert_array_equal(preprocess.center_crop_image(resized, 32), resized[:, 24:56])
  with pytest.raises(ValueError, match="center crop 33 is larger than the image"):
    preprocess.center_crop_image(resized, 33)


def tiny_model_config():
  return ml_collections.ConfigDict({"name": "cifar_resnet20", "shortcut": "A"})


@pytest.mark.slow
def test_ten_crop_evaluation_averages_the_softmax_of_each_crop():
  config = make_config("", dataset__crop_size=24, eval__ten_crop=True)
  config.dataset.normalization = "none"
  stats = color_pca.IMAGENET
  model = models.create_model(tiny_model_config(), 10)
  images = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
  labels = np.array([1, 2, 3])
  variables = model.init(jax.random.key(0), jnp.zeros((1, 24, 24, 3)))
  state = experiment.TrainState.create(
    apply_fn=model.apply,
    params=variables["params"],
    tx=optax.sgd(0.1),
    batch_stats=variables["batch_stats"],
    rng=None,
    plateau=schedules.Plateau.create(),
  )
  devices = parallel.DataParallel(num_devices=1)
  step = evaluation.create_eval_steps(config, stats, devices)["ten_crop"]
  batch = {"image": images, "label": labels, "mask": np.ones(3, np.float32)}
  counts, predictions = step(devices.replicate(state), devices.shard(batch))
  counts = devices.unreplicate(counts)
  crops = augment.ten_crops(jnp.asarray(images, jnp.float32) / 255.0, 24)
  logits = [model.apply(variables, crop)[0] for crop in crops]
  probabilities = np.mean([jax.nn.softmax(l) for l in logits], axis=0)
  expected_loss = -np.log(probabilities[np.arange(3), labels]).sum()
  assert counts["loss"] == pytest.approx(expected_loss, rel=1e-4)
  assert counts["top1_errors"] == np.sum(probabilities.argmax(-1) != labels)
  # The saved predictions (reporting/predictions.py) are the averaged softmax's top 5.
  predictions = devices.gather(predictions)
  np.testing.assert_array_equal(predictions["classes"][:, 0], probabilities.argmax(-1))
  top5 = -np.sort(-probabilities, axis=-1)[:, :5]
  np.testing.assert_allclose(predictions["probabilities"], top5, rtol=1e-4)
  np.testing.assert_allclose(
    predictions["true_probability"], probabilities[np.arange(3), labels], rtol=1e-4
  )


def test_same_seed_same_augmentation():
  config = make_config(
    "",
    dataset__crop_size=24,
    augment__random_crop=True,
    augment__flip=True,
    augment__pca_lighting=0.1,
  )
  fn = augment.make_train_preprocess(config, color_pca.IMAGENET)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
  keys = lambda seed, first=0: augment.example_keys(jax.random.key(seed), first, 4)
  a, b = fn(images, keys(1)), fn(images, keys(1))
  np.testing.assert_array_equal(a, b)
  assert a.shape == (4, 24, 24, 3)
  assert not np.array_equal(a, fn(images, keys(2)))
  # Each example's draws depend on its key alone: halves of the batch augment the same way.
  halves = np.concatenate([fn(images[:2], keys(1)[:2]), fn(images[2:], keys(1, 2)[:2])])
  np.testing.assert_array_equal(a, halves)


def imagenet_like(**overrides):
  """imagenet2012, resized small so a tiny network can run: 40 → centre 36 → 32 crops."""
  config = make_config(
    "",
    dataset__name="imagenet2012",
    dataset__train_split="train",
    dataset__eval_split="validation",
    dataset__resize=40,
    dataset__center_crop=36,
    dataset__pad=0,
    dataset__crop_size=32,
    dataset__color_stats="imagenet",
    dataset__normalization="mean",
    augment__random_crop=True,
    augment__flip=True,
    augment__pca_lighting=0.1,
    eval__ten_crop=True,
    model__name="cifar_resnet20",
    batch_size=8,
    eval_batch_size=8,
    num_train_steps=3,
    eval_every_steps=3,
    checkpoint_every_steps=3,
    log_every_steps=1,
  )
  del config.model.form
  config.model.shortcut = "A"
  for name, value in overrides.items():
    section, field = name.split("__")
    config[section][field] = value
  return config


def test_cifar_recipe_pads_by_4_crops_32_at_random_and_flips():
  """He et al. 2015 §4.2: pad 4, a random 32×32 crop or its mirror; testing sees the original."""
  config = cifar_resnet.get_config("20")
  config.dataset.name = "synthetic"
  config.dataset.synthetic.update(image_size=32, num_classes=10)
  config.dataset.normalization = "none"  # pixel values stay comparable below
  info = input_pipeline.check_dataset(config)
  assert input_pipeline.input_shape(config, info) == (32, 32, 3)
  rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
  image = np.stack([rows + 1, cols + 1, np.full_like(rows, 200)], -1).astype(np.uint8)
  padded = preprocess.make_host_preprocess(config.dataset)(image)
  assert padded.shape == (40, 40, 3) and padded[:4].max() == 0 and padded[:, -4:].max() == 0
  stats = color_pca.IMAGENET
  batch = jnp.asarray(np.broadcast_to(padded, (64, 40, 40, 3)))
  crops = (
    np.asarray(
      augment.make_train_preprocess(config, stats)(
        batch, augment.example_keys(jax.random.key(0), 0, 64)
      )
    )
    * 255
  )
  windows = {
    (top, left, mirrored): padded[top : top + 32, left : left + 32][:, :: -1 if mirrored else 1]
    for top in range(9)
    for left in range(9)
    for mirrored in (False, True)
  }
  found = [next(k for k, w in windows.items() if np.allclose(crop, w, atol=1e-3)) for crop in crops]
  assert len({(top, left) for top, left, _ in found}) > 20  # random positions over the padding
  assert 0 < sum(mirrored for _, _, mirrored in found) < 64
  centre = np.asarray(augment.make_eval_preprocess(config, stats, "single")(batch[:1]))[0, 0]
  np.testing.assert_allclose(centre * 255, image, atol=1e-3)


@pytest.mark.slow
def test_mocked_imagenet_of_random_sizes_trains_and_evaluates_both_protocols(tmp_path):
  with tfds.testing.mock_data(num_examples=20):
    data = input_pipeline.load_data(imagenet_like())
    images = np.concatenate(list(data.eval.all_images()))
    assert images.shape == (20, 36, 36, 3)  # random sizes → shorter side 40 → central 36×36
    metrics = training.train_and_evaluate(imagenet_like(), tmp_path)
  assert set(metrics["protocols"]) == {"single", "ten_crop"}
  for protocol in ("single", "ten_crop"):
    assert metrics["protocols"][protocol]["num_examples"] == 20  # 3 batches of 7, one padded
  results = records.read_metrics(tmp_path)
  assert {"train", "eval", "eval_ten_crop"} <= set(results)


@pytest.mark.slow
def test_synthetic_dataset_is_deterministic_and_flows_through_both_protocols(tmp_path):
  config = imagenet_like(
    dataset__name="synthetic", dataset__train_split="train", dataset__eval_split="test"
  )
  config.dataset.synthetic.update(image_size=48, num_classes=10, train_examples=16, eval_examples=9)
  first = input_pipeline.load_data(config)
  second = input_pipeline.load_data(config)
  np.testing.assert_array_equal(
    np.concatenate(list(first.train.all_images())), np.concatenate(list(second.train.all_images()))
  )
  metrics = training.train_and_evaluate(config, tmp_path)
  assert metrics["protocols"]["ten_crop"]["num_examples"] == 9
  # Both protocols' predictions are saved, and the page heads with both protocols' errors.
  saved = saved_predictions.read(tmp_path)
  assert set(saved.protocols) == {"single", "ten_crop"} and len(saved.labels) == 9
  ten_crop = metrics["protocols"]["ten_crop"]
  in_top5 = (saved.protocols["ten_crop"].classes == saved.labels[:, None]).any(axis=1)
  assert 100.0 * np.mean(~in_top5) == pytest.approx(ten_crop["top5_error"])
  text = pages.read(tmp_path / "report.html", pages.RUN_SECTIONS).text
  assert f"test error (10-crop) top-1 {ten_crop['top1_error']:.2f} %" in text


@pytest.mark.parametrize(
  "overrides,message",
  [
    ({"dataset__crop_size": 40}, "dataset.crop_size 40 is larger than the stored image 36×36"),
    ({"dataset__center_crop": 48}, "dataset.center_crop 48 is larger than the resized image"),
    (
      {"dataset__color_stats": "/nowhere/stats.npz"},
      "colour statistics file /nowhere/stats.npz not found; compute it with",
    ),
    ({"dataset__normalization": "whiten"}, "unknown dataset.normalization 'whiten'"),
    ({"dataset__resize": 0}, "has images of varying size; set dataset.resize"),
    (
      {"dataset__resize_mode": "bogus", "dataset__resize": 0, "dataset__center_crop": 0},
      "unknown dataset.resize_mode 'bogus'; known: shorter_side, warp",
    ),
  ],
)
def test_bad_data_configs_fail_before_anything_runs(tmp_path, overrides, message):
  with tfds.testing.mock_data(num_examples=4), pytest.raises(ValueError, match=message):
    training.train_and_evaluate(imagenet_like(**overrides), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_imagenet_without_its_manual_download_says_how_to_prepare_it(tmp_path):
  config = imagenet_like(dataset__data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="'imagenet2012' is not prepared in .*--manual_dir="):
    training.train_and_evaluate(config, tmp_path / "run")


def test_one_class_is_refused(tmp_path):
  config = imagenet_like(
    dataset__name="synthetic", dataset__train_split="train", dataset__eval_split="test"
  )
  config.dataset.synthetic.num_classes = 1
  with pytest.raises(ValueError, match="'synthetic' has 1 class; classifying needs 2"):
    training.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()
