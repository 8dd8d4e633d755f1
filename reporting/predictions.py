"""The per-example predictions of an evaluation, saved as `DIR/predictions.npz`, and what is
read from them: the confusion matrix, per-class errors and the most confidently wrong examples.

The file holds plain arrays only (read with `allow_pickle=False`, so a file from elsewhere cannot
run code): `step`, `split`, `labels` [N] and, per crop protocol P, `P.classes` [N, k] (the top-k
classes, best first, k = min(5, classes)), `P.probabilities` [N, k] (theirs) and
`P.true_probability` [N] (the true class's). Example i is the i-th of the evaluated split.
"""

from __future__ import annotations

import dataclasses
import pathlib
import zipfile
from collections.abc import Mapping

import numpy as np

FILE = "predictions.npz"
FIELDS = ("classes", "probabilities", "true_probability")


@dataclasses.dataclass(frozen=True)
class ProtocolPredictions:
  classes: np.ndarray  # [N, k] int: the top-k classes, best first
  probabilities: np.ndarray  # [N, k]: their probabilities
  true_probability: np.ndarray  # [N]: the true class's probability

  @property
  def predicted(self) -> np.ndarray:
    return self.classes[:, 0]


@dataclasses.dataclass(frozen=True)
class Predictions:
  step: int
  split: str
  labels: np.ndarray  # [N]
  protocols: dict[str, ProtocolPredictions]


def write(
  workdir: pathlib.Path, step: int, split: str, per_protocol: Mapping[str, Mapping[str, np.ndarray]]
) -> pathlib.Path:
  """Saves what `evaluation.evaluate` returned for each protocol (each with the same `label`)."""
  labels = next(iter(per_protocol.values()))["label"]
  arrays = {"step": np.int64(step), "split": np.str_(split), "labels": labels.astype(np.int32)}
  for protocol, values in per_protocol.items():
    for field in FIELDS:
      arrays[f"{protocol}.{field}"] = values[field]
  path = workdir / FILE
  temporary = path.with_name(path.name + ".tmp")
  with open(temporary, "wb") as file:  # np.savez would add ".npz" to a name without it
    np.savez_compressed(file, **arrays)
  temporary.replace(path)  # a kill leaves the old file or the new one
  return path


def read(workdir: pathlib.Path) -> Predictions | None:
  """The saved predictions; None when there are none; a ValueError naming a damaged file."""
  path = workdir / FILE
  if not path.is_file():
    return None
  try:
    with np.load(path, allow_pickle=False) as saved:
      arrays = {name: saved[name] for name in saved.files}
    labels = arrays["labels"]
    protocols = {}
    for name in sorted({key.split(".")[0] for key in arrays if "." in key}):
      fields = ProtocolPredictions(*(arrays[f"{name}.{field}"] for field in FIELDS))
      count = len(labels)
      if (
        fields.classes.shape != fields.probabilities.shape
        or fields.classes.ndim != 2
        or len(fields.classes) != count
        or fields.true_probability.shape != (count,)
      ):
        raise ValueError(f"protocol {name!r}: arrays of mismatched shapes")
      protocols[name] = fields
    return Predictions(int(arrays["step"]), str(arrays["split"]), labels, protocols)
  except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
    raise ValueError(f"{path} cannot be read as saved predictions ({error})") from None


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
  """[true class, predicted class] counts."""
  flat = labels.astype(np.int64) * num_classes + predicted.astype(np.int64)
  return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalised(matrix: np.ndarray) -> np.ndarray:
  """Each true class's row as fractions of its examples (zeros for a class with none)."""
  totals = matrix.sum(axis=1, keepdims=True)
  return matrix / np.maximum(totals, 1)


def per_class_error(matrix: np.ndarray) -> np.ndarray:
  """Top-1 error (%) of each true class; NaN for a class with no examples."""
  totals = matrix.sum(axis=1).astype(np.float64)
  with np.errstate(invalid="ignore", divide="ignore"):
    return 100.0 * (1.0 - np.diag(matrix) / totals)


def confidently_wrong(labels: np.ndarray, protocol: ProtocolPredictions, count: int) -> np.ndarray:
  """Indices of up to `count` misclassified examples, most confident (top-1 probability) first;
  ties keep the split's order."""
  wrong = np.flatnonzero(protocol.predicted != labels)
  order = np.argsort(-protocol.probabilities[wrong, 0], kind="stable")
  return wrong[order[:count]]
