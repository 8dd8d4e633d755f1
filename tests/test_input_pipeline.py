"""Preparing Fashion-MNIST offline, reading TFDS splits, batching and normalisation."""

import os

import numpy as np
import pytest

import caches
import input_pipeline
from input_pipeline import augment, datasets, fashion_mnist
from input_pipeline.pipeline import SplitReader, eval_batches, train_batches
from tests.conftest import TINY_TEST, TINY_TRAIN, make_config, make_idx_files, write_idx


class ArraySource(list):
  """Examples held in a list, with the source interface."""

  def get_many(self, indices):
    return [self[i] for i in indices]


def reader_of(images, labels, cache=True):
  """A SplitReader over arrays: image i is images[i], its label labels[i]."""
  source = ArraySource((image, int(label)) for image, label in zip(images, labels, strict=True))
  return SplitReader(source, lambda image: image, images.shape[1:], 2, 2**30 if cache else 0)


def test_read_idx_round_trips(tmp_path):
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  write_idx(tmp_path / "a.gz", array)
  np.testing.assert_array_equal(fashion_mnist.read_idx(tmp_path / "a.gz"), array)


def test_read_idx_rejects_other_files(tmp_path):
  (tmp_path / "bad").write_bytes(b"PNG not an idx file")
  with pytest.raises(ValueError, match="is not an IDX file"):
    fashion_mnist.read_idx(tmp_path / "bad")


def test_prepared_split_holds_exactly_the_source_examples(tmp_path):
  written = make_idx_files(tmp_path / "idx", seed=3)
  fashion_mnist.prepare(str(tmp_path / "tfds"), str(tmp_path / "idx"))
  for split, count in (("train", TINY_TRAIN), ("test", TINY_TEST)):
    source = datasets.TfdsSource("fashion_mnist", split, str(tmp_path / "tfds"))
    examples = [source[i] for i in range(len(source))]
    assert len(examples) == count
    assert all(image.shape == (28, 28, 1) and image.dtype == np.uint8 for image, _ in examples)
    images, labels = written[split]
    expected = sorted(zip(labels.tolist(), (image.tobytes() for image in images), strict=True))
    assert sorted((label, image[..., 0].tobytes()) for image, label in examples) == expected


def test_prepare_reuses_prepared_data(tiny_data_dir):
  info_file = os.path.join(tiny_data_dir, "fashion_mnist", "3.0.1", "dataset_info.json")
  before = os.stat(info_file).st_mtime_ns
  fashion_mnist.prepare(tiny_data_dir, source_dir="/nonexistent")  # would fail if it rebuilt
  assert os.stat(info_file).st_mtime_ns == before


def test_missing_source_files_say_how_to_get_them(tmp_path, monkeypatch):
  monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", str(tmp_path / "nothing"))
  monkeypatch.delenv("FASHION_MNIST_DIR", raising=False)
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    fashion_mnist.prepare(str(tmp_path / "tfds"), str(tmp_path / "empty"))


def test_dataset_errors_are_immediate_and_name_the_fix(tmp_path, tiny_data_dir):
  with pytest.raises(ValueError, match="unknown dataset 'fashoin_mnist'"):
    datasets.open_builder("fashoin_mnist", tiny_data_dir)
  with pytest.raises(ValueError, match="'fashion_mnist' is not prepared in .*make data"):
    datasets.open_builder("fashion_mnist", str(tmp_path))
  with pytest.raises(ValueError, match="'mnist' is not prepared in .*tfds build mnist"):
    datasets.open_builder("mnist", str(tmp_path))
  config = make_config(tiny_data_dir)
  config.dataset.eval_split = "validation"
  with pytest.raises(ValueError, match="unknown split 'validation' .* known: test, train"):
    input_pipeline.check_dataset(config)


def test_colour_statistics_are_those_of_the_stored_training_images(tiny_data_dir):
  data = input_pipeline.load_data(make_config(tiny_data_dir))
  assert data.stored_shape == (32, 32, 1) and len(data.train) == TINY_TRAIN
  images = np.concatenate(list(data.train.all_images()))
  np.testing.assert_allclose(data.stats.mean, [images.mean() / 255], rtol=1e-9)
  np.testing.assert_allclose(data.stats.std, [images.std() / 255], rtol=1e-9)
  normalized = np.asarray(augment.normalize(images, data.stats, "standardize"))
  np.testing.assert_allclose(normalized.mean(), 0.0, atol=1e-4)
  np.testing.assert_allclose(normalized.std(), 1.0, atol=1e-4)
  assert (images[:, :2] == 0).all()  # the two-pixel padding


def test_normalization_modes():
  stats = augment.ColorStats(
    mean=np.array([0.2, 0.4]),
    std=np.array([0.5, 0.25]),
    mean_image=np.full((1, 2, 2), 0.1),
    eigvals=np.ones(2),
    eigvecs=np.eye(2),
  )
  images = np.array([[[[51, 102], [255, 0]]]], np.uint8)  # [1, 1, 2, 2]
  x = images / 255.0
  for mode, expected in (
    ("none", x),
    ("mean", x - [0.2, 0.4]),
    ("standardize", (x - [0.2, 0.4]) / [0.5, 0.25]),
    ("mean_per_pixel", x - 0.1),
    ("standardize_per_pixel", (x - 0.1) / [0.5, 0.25]),
  ):
    np.testing.assert_allclose(augment.normalize(images, stats, mode), expected, rtol=1e-6)


def labels_of(batches, count):
  return [next(batches)["label"] for _ in range(count)]


def test_train_batches_are_seeded_epoch_permutations():
  images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
  labels = np.arange(10, dtype=np.int32)
  reader = reader_of(images, labels)
  epoch = np.concatenate(labels_of(train_batches(reader, 3, seed=1), 3))
  assert len(set(epoch.tolist())) == 9  # 3 full batches of distinct examples, remainder dropped
  same = labels_of(train_batches(reader, 3, seed=1), 8)
  again = labels_of(train_batches(reader_of(images, labels, cache=False), 3, seed=1), 8)
  other = labels_of(train_batches(reader, 3, seed=2), 8)
  np.testing.assert_array_equal(np.stack(same), np.stack(again))
  assert not np.array_equal(np.stack(same), np.stack(other))
  assert not np.array_equal(np.stack(same[:3]), np.stack(same[3:6]))  # reshuffled each epoch
  batch = next(train_batches(reader, 3, seed=1))
  np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"])


def test_train_batches_resume_at_any_step():
  reader = reader_of(np.zeros((10, 1, 1, 1), np.uint8), np.arange(10))
  full = labels_of(train_batches(reader, 4, seed=5), 9)
  for start in (1, 2, 5):
    resumed = labels_of(train_batches(reader, 4, seed=5, start_step=start), 9 - start)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(full[start:]))


def test_batch_larger_than_split_is_an_error():
  with pytest.raises(ValueError, match="batch_size 11 is larger than the training split"):
    next(train_batches(reader_of(np.zeros((10, 1, 1, 1), np.uint8), np.zeros(10)), 11, seed=0))


@pytest.mark.parametrize("count,batch", [(10, 3), (10, 5), (10, 10), (7, 20), (1, 1)])
@pytest.mark.parametrize("cache", [True, False])
def test_eval_batches_count_every_example_exactly_once(count, batch, cache):
  images = np.arange(count, dtype=np.uint8).reshape(count, 1, 1, 1) + 1
  batches = list(eval_batches(reader_of(images, np.arange(count), cache), batch))
  assert all(b["image"].shape == (batch, 1, 1, 1) and b["mask"].shape == (batch,) for b in batches)
  mask = np.concatenate([b["mask"] for b in batches])
  seen = np.concatenate([b["image"][:, 0, 0, 0] for b in batches])[mask == 1]
  np.testing.assert_array_equal(seen, np.arange(count) + 1)
  assert (np.concatenate([b["image"][:, 0, 0, 0] for b in batches])[mask == 0] == 0).all()


def test_decoded_splits_are_kept_and_read_back_unless_damaged(tiny_data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv(caches.CACHE_ENV, str(tmp_path))
  config = make_config(tiny_data_dir)
  first = input_pipeline.load_data(config)
  kept = sorted((tmp_path / "decoded").iterdir())
  assert len(kept) == 2  # train and test

  def no_decoding(self, chunk=4096):
    raise AssertionError("decoded again although a copy was kept")

  with monkeypatch.context() as patched:
    patched.setattr(SplitReader, "_read_all", no_decoding)
    again = input_pipeline.load_data(config)
  for split in ("train", "eval"):
    expected, actual = getattr(first, split), getattr(again, split)
    everything = np.arange(len(expected))
    for a, b in zip(expected.read(everything), actual.read(everything), strict=True):
      np.testing.assert_array_equal(a, b)

  kept[0].write_bytes(b"not an npz")  # damaged: decoded again and replaced
  repaired = input_pipeline.load_data(config)
  assert len(repaired.train) == TINY_TRAIN and len(repaired.eval) == TINY_TEST
  assert np.load(kept[0])["images"].dtype == np.uint8

  config.dataset.pad = 4  # another host preprocessing: another copy
  padded = input_pipeline.load_data(config)
  assert padded.train.shape == (36, 36, 1)
  assert len(list((tmp_path / "decoded").iterdir())) == 4
