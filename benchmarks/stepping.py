"""Timing a train step on one device-resident batch, shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax


def seconds_per_step(
  step: Callable, state: Any, batch: Any, steps: int, warmup: int
) -> tuple[Any, float]:
  """(the state after, seconds per call) of `state, _ = step(state, batch)`, timed after
  `warmup` calls (compilation included there)."""
  for _ in range(warmup):
    state, _ = step(state, batch)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(steps):
    state, _ = step(state, batch)
  jax.block_until_ready(state)
  return state, (time.perf_counter() - start) / steps
