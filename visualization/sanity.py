"""The model-randomisation sanity check (Adebayo et al. 2018): a map that explains the network
must change when the network's weights do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from models.layers import layer_of_parameter
from visualization.network import Network

Array = jax.Array


def rank_correlation(a: Array, b: Array) -> np.ndarray:
  """Spearman's rank correlation of each pair of maps [N, ...] → [N] (ties ranked by position)."""
  a, b = np.asarray(a).reshape(len(a), -1), np.asarray(b).reshape(len(b), -1)
  ranks_a = np.argsort(np.argsort(a, axis=1), axis=1).astype(np.float64)
  ranks_b = np.argsort(np.argsort(b, axis=1), axis=1).astype(np.float64)
  ranks_a -= ranks_a.mean(1, keepdims=True)
  ranks_b -= ranks_b.mean(1, keepdims=True)
  norms = np.sqrt((ranks_a**2).sum(1) * (ranks_b**2).sum(1))
  return (ranks_a * ranks_b).sum(1) / np.maximum(norms, 1e-12)


def cascading_randomization(
  network: Network,
  explain: Callable[[Network], Array],
  fresh_params: Any,
) -> list[tuple[str, float]]:
  """Re-initialises the layers one at a time from the top, cumulatively, and reports after
  each the mean rank correlation of `explain(network)` with the trained network's map: (the
  last layer re-initialised, correlation) rows, top first."""
  trained = explain(network)
  params = dict(network.variables["params"])
  with_params = [
    l.name for l in network.model.layers if any(layer_of_parameter(key) == l.name for key in params)
  ]
  rows = []
  for layer in reversed(with_params):
    for key in params:
      if layer_of_parameter(key) == layer:
        params[key] = fresh_params[key]
    randomized = explain(network.with_params(jax.tree.map(jnp.asarray, params)))
    rows.append((layer, float(np.mean(rank_correlation(trained, randomized)))))
  return rows
