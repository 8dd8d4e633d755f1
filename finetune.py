"""Fine-tuning: start from another run's checkpoint, freeze layers, scale their learning rates.

Parameters are named by their path, `layer/param` (`fc8/kernel`, `stage1_block1/conv1/kernel`);
a pattern (fnmatch: `fc*`, `conv?`) matches a path or its layer. `optimizer.frozen` lists
patterns of parameters that never change, `optimizer.lr_multipliers` `pattern=factor` pairs (the
first match wins, others ×1), `optimizer.linear_probe` freezes all but the head.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import ml_collections
import numpy as np
import optax
from flax import traverse_util

import checkpoints
import config_values

FROZEN = "frozen"


def non_negative(text: str) -> float:
  value = float(text)
  if not value >= 0:  # NaN too
    raise ValueError(text)
  return value


def parse_multipliers(text: str) -> list[tuple[str, float]]:
  """ "fc8=1,fc*=0.1" → [("fc8", 1.0), ("fc*", 0.1)]; a ValueError names a bad entry."""
  return config_values.parse_pairs(
    text,
    "optimizer.lr_multipliers",
    non_negative,
    "PATTERN=FACTOR with FACTOR ≥ 0, e.g. \"fc8=1,fc*=0.1,*=0.01\"",
  )


def matches(path: str, pattern: str) -> bool:
  return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path.split("/")[0], pattern)


def parameter_paths(params: Any) -> list[str]:
  return ["/".join(key) for key in traverse_util.flatten_dict(params)]


def group_of(path: str, optimizer: ml_collections.ConfigDict, head: str) -> str:
  """The optimizer group of a parameter: "frozen", or its learning-rate multiplier."""
  if optimizer.linear_probe and path.split("/")[0] != head:
    return FROZEN
  if any(matches(path, pattern) for pattern in config_values.split_list(optimizer.frozen)):
    return FROZEN
  for pattern, factor in parse_multipliers(optimizer.lr_multipliers):
    if matches(path, pattern):
      return repr(factor)
  return repr(1.0)


def check(config: ml_collections.ConfigDict, params: Any) -> None:
  """Every pattern must name some parameter (a typo would silently train everything)."""
  paths = parameter_paths(params)
  optimizer = config.optimizer
  patterns = (
    config_values.split_list(optimizer.frozen)
    + config_values.split_list(config.init_reset)
    + [p for p, _ in parse_multipliers(optimizer.lr_multipliers)]
  )
  for pattern in patterns:
    if not any(matches(path, pattern) for path in paths):
      layers = dict.fromkeys(path.split("/")[0] for path in paths)  # in network order
      raise ValueError(
        f"layer pattern {pattern!r} matches no parameter; layers: {', '.join(layers)}"
      )


def grouped(
  optimizer: ml_collections.ConfigDict, head: str, make: Callable[[], optax.GradientTransformation]
) -> optax.GradientTransformation:
  """`make()` per learning-rate group (scaled by its multiplier), zero updates for frozen ones."""
  if not (optimizer.frozen or optimizer.lr_multipliers or optimizer.linear_probe):
    return make()
  factors = {1.0} | {factor for _, factor in parse_multipliers(optimizer.lr_multipliers)}
  transforms = {repr(f): optax.chain(make(), optax.scale(f)) for f in factors}
  transforms[FROZEN] = optax.set_to_zero()
  labels = lambda params: traverse_util.unflatten_dict(
    {key: group_of("/".join(key), optimizer, head) for key in traverse_util.flatten_dict(params)}
  )
  return optax.multi_transform(transforms, labels)


def initialize_from(
  source: str, variables: dict[str, Any], report: Callable[[str], None], reset: str = ""
) -> dict[str, Any]:
  """`variables` ({"params", "batch_stats"}) with the values of `source`'s newest checkpoint.

  Layers whose shapes differ (a new head) and layers matching the `reset` patterns keep their
  fresh values and are listed; parameters present in only one of the two are an error.
  """
  step, saved = checkpoints.read_newest(source, "init_from", report)
  merged, reinitialised = {}, set()
  for collection in ("params", "batch_stats"):
    new = traverse_util.flatten_dict(variables[collection]) if variables[collection] else {}
    old = traverse_util.flatten_dict(saved.get(collection) or {})
    if set(new) != set(old):
      only_new = sorted("/".join(k) for k in set(new) - set(old))
      only_old = sorted("/".join(k) for k in set(old) - set(new))
      raise ValueError(
        f"init_from {source}: the networks differ in {collection} beyond their "
        f"shapes (only here: {', '.join(only_new) or 'none'}; only there: "
        f"{', '.join(only_old) or 'none'})"
      )
    values = {}
    for key, value in new.items():
      fresh = any(matches("/".join(key), pattern) for pattern in config_values.split_list(reset))
      if np.shape(old[key]) == np.shape(value) and not fresh:
        values[key] = np.asarray(old[key], np.asarray(value).dtype)
      else:
        values[key] = value
        reinitialised.add(key[0])
    merged[collection] = traverse_util.unflatten_dict(values) if values else {}
  report(
    f"initialised from {checkpoints.step_folder(source, step)}"
    + (
      f"; re-initialised (new shape or init_reset): {', '.join(sorted(reinitialised))}"
      if reinitialised
      else ""
    )
  )
  return merged
