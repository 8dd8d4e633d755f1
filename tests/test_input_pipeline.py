"""Preparing Fashion-MNIST offline, reading TFDS splits, batching and normalisation."""

import os

import numpy as np
import pytest

import input_pipeline
from input_pipeline import datasets, fashion_mnist
from input_pipeline.pipeline import Normalizer, eval_batches, train_batches
from tests.conftest import TINY_TEST, TINY_TRAIN, make_config, make_idx_files, write_idx


def test_read_idx_round_trips(tmp_path):
  array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  write_idx(tmp_path / "a.gz", array)
  np.testing.assert_array_equal(fashion_mnist.read_idx(tmp_path / "a.gz"), array)


def test_read_idx_rejects_other_files(tmp_path):
  (tmp_path / "bad").write_bytes(b"PNG not an idx file")
  with pytest.raises(ValueError, match="is not an IDX file"):
    fashion_mnist.read_idx(tmp_path / "bad")


def test_prepared_split_holds_exactly_the_source_examples(tmp_path):
  source = make_idx_files(tmp_path / "idx", seed=3)
  fashion_mnist.prepare(str(tmp_path / "tfds"), str(tmp_path / "idx"))
  for split, count in (("train", TINY_TRAIN), ("test", TINY_TEST)):
    images, labels = datasets.load_split("fashion_mnist", split, str(tmp_path / "tfds"))
    assert images.shape == (count, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int32
    expected = sorted(zip(source[split][1].tolist(), (im.tobytes() for im in source[split][0])))
    assert sorted(zip(labels.tolist(), (im[..., 0].tobytes() for im in images))) == expected


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
    input_pipeline.check_dataset(config.dataset)


def test_data_is_padded_and_normalised_with_training_statistics(tiny_data_dir):
  data = input_pipeline.load_data(make_config(tiny_data_dir).dataset)
  assert data.train_images.shape == (TINY_TRAIN, 32, 32, 1)
  assert data.eval_images.shape == (TINY_TEST, 32, 32, 1)
  raw, _ = datasets.load_split("fashion_mnist", "train", tiny_data_dir)
  np.testing.assert_allclose(data.normalizer.mean, raw.mean() / 255, rtol=1e-6)
  np.testing.assert_allclose(data.normalizer.std, raw.std() / 255, rtol=1e-6)
  inner = data.train_images[:, 2:-2, 2:-2]
  np.testing.assert_allclose(inner.mean(), 0.0, atol=1e-4)
  np.testing.assert_allclose(inner.std(), 1.0, atol=1e-4)
  border = -data.normalizer.mean / data.normalizer.std  # a raw 0 pixel
  np.testing.assert_allclose(data.train_images[:, :2], border[0], rtol=1e-6)


def test_normalizer_formula():
  images = np.array([[[[0], [255]]], [[[51], [102]]]], np.uint8)  # [2, 1, 2, 1]
  normalizer = Normalizer.from_images(images, pad=1)
  out = normalizer(images)
  assert out.shape == (2, 3, 4, 1) and out.dtype == np.float32
  np.testing.assert_allclose(out[0, 1, 2, 0], (1.0 - normalizer.mean[0]) / normalizer.std[0], rtol=1e-6)


def labels_of(batches, count):
  return [next(batches)["label"] for _ in range(count)]


def test_train_batches_are_seeded_epoch_permutations():
  images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
  labels = np.arange(10, dtype=np.int32)
  epoch = np.concatenate(labels_of(train_batches(images, labels, 3, seed=1), 3))
  assert len(set(epoch.tolist())) == 9  # 3 full batches of distinct examples, remainder dropped
  same = labels_of(train_batches(images, labels, 3, seed=1), 8)
  again = labels_of(train_batches(images, labels, 3, seed=1), 8)
  other = labels_of(train_batches(images, labels, 3, seed=2), 8)
  np.testing.assert_array_equal(np.stack(same), np.stack(again))
  assert not np.array_equal(np.stack(same), np.stack(other))
  assert not np.array_equal(np.stack(same[:3]), np.stack(same[3:6]))  # reshuffled each epoch
  batch = next(train_batches(images, labels, 3, seed=1))
  np.testing.assert_array_equal(batch["image"][:, 0, 0, 0], batch["label"])


def test_train_batches_resume_at_any_step():
  images = np.zeros((10, 1, 1, 1), np.float32)
  labels = np.arange(10, dtype=np.int32)
  full = labels_of(train_batches(images, labels, 4, seed=5), 9)
  for start in (1, 2, 5):
    resumed = labels_of(train_batches(images, labels, 4, seed=5, start_step=start), 9 - start)
    np.testing.assert_array_equal(np.stack(resumed), np.stack(full[start:]))


def test_batch_larger_than_split_is_an_error():
  with pytest.raises(ValueError, match="batch_size 11 is larger than the training split"):
    next(train_batches(np.zeros((10, 1, 1, 1)), np.zeros(10), 11, seed=0))


@pytest.mark.parametrize("count,batch", [(10, 3), (10, 5), (10, 10), (7, 20), (1, 1)])
def test_eval_batches_count_every_example_exactly_once(count, batch):
  images = np.arange(count, dtype=np.float32).reshape(count, 1, 1, 1) + 1
  batches = list(eval_batches(images, np.arange(count, dtype=np.int32), batch))
  assert all(b["image"].shape == (batch, 1, 1, 1) and b["mask"].shape == (batch,) for b in batches)
  mask = np.concatenate([b["mask"] for b in batches])
  seen = np.concatenate([b["image"][:, 0, 0, 0] for b in batches])[mask == 1]
  np.testing.assert_array_equal(seen, np.arange(count) + 1)
  assert (np.concatenate([b["image"][:, 0, 0, 0] for b in batches])[mask == 0] == 0).all()
