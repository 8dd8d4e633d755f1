"""Data parallelism: the one module that knows how a step is mapped over the devices.

Steps are written once, for one device's share of the global batch, and name the batch axis
only through `mean`, `total` and `example_offset` (and the model's `axis_name=AXIS`).
`DataParallel` maps them over the devices with `jax.pmap` and moves data to and from the
devices: replicated state, batches split along their first axis, and the way back to host
numpy for checkpoints and logs. Moving to `jax.shard_map` or `jax.jit` over the same `Mesh`
is a change to this module alone.

Across hosts (`jax.distributed.initialize`), the axis spans every device of every process;
each process feeds its local devices with its own slice of the global batch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "batch"
# Host CPU devices when the CPU is the accelerator: one per core, at most 8. XLA's CPU backend
# leaves cores idle in one large step, and splitting it recovers them, but more devices than
# cores only add collectives (benchmarks/devices.py on 2 cores: 2 devices beat 1 and 8 for
# LeNet-5, CIFAR ResNet-20 and AlexNet; figures in the README).
DEFAULT_CPU_DEVICES = min(os.cpu_count() or 1, 8)
CPU_DEVICES_ENV = "CONVZOO_CPU_DEVICES"
# XLA:CPU removes optimization barriers before fusion (its "cse_barrier_expander" pass), so
# the ones the models place (models/layers.py, Residual) would change nothing. Kept, they cut
# a CIFAR ResNet-56 step from 2.1x a plain-56's to the same (benchmarks/versus_pytorch.py).
CPU_COMPILER_OPTIONS = {"xla_disable_hlo_passes": "cse_barrier_expander"}


def mean(tree: Any) -> Any:
  """The mean over all devices of every leaf (inside a mapped step)."""
  return jax.lax.pmean(tree, AXIS)


def total(tree: Any) -> Any:
  """The sum over all devices of every leaf (inside a mapped step)."""
  return jax.lax.psum(tree, AXIS)


def example_offset(local_batch: int) -> jax.Array:
  """The global-batch position of this device's first example (inside a mapped step)."""
  return jax.lax.axis_index(AXIS) * local_batch


def configure_cpu_devices(count: int | None = None) -> None:
  """Splits the host CPU into `count` XLA devices (default: $CONVZOO_CPU_DEVICES, else one per
  core up to 8).

  Must run before JAX starts its backends; an explicit XLA_FLAGS device count wins.
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return
  text = os.environ.get(CPU_DEVICES_ENV, str(DEFAULT_CPU_DEVICES)) if count is None else str(count)
  count = int(text) if text.strip().isdigit() else 0
  if count < 1:
    raise ValueError(f"${CPU_DEVICES_ENV} must be a positive number of devices, got {text!r}")
  jax.config.update("jax_num_cpu_devices", count)


def initialize_distributed(config: Any) -> None:
  """Joins JAX's multi-host runtime when `config.distributed.enabled` (or $CONVZOO_DISTRIBUTED=1).

  Empty fields are left to JAX, which reads them from the cluster (SLURM, TPU pods, GKE, ...).
  The fields are checked even when unused, so a typo shows before the run that needs them.
  """
  settings = config.distributed
  address = settings.coordinator_address
  if address and not re.fullmatch(r"[^\s:]+:\d+", address):
    raise ValueError(
      f"distributed.coordinator_address must be HOST:PORT (e.g. 10.0.0.1:1234) or empty, "
      f"got {address!r}"
    )
  if settings.num_processes < 0:
    raise ValueError(
      "distributed.num_processes must be 0 (from the cluster) or more, "
      f"got {settings.num_processes}"
    )
  if not -1 <= settings.process_id < (settings.num_processes or np.inf):
    raise ValueError(
      f"distributed.process_id must be -1 (from the cluster) or in [0, num_processes), "
      f"got {settings.process_id}"
    )
  if not (settings.enabled or os.environ.get("CONVZOO_DISTRIBUTED") == "1"):
    return
  if jax.distributed.is_initialized():
    return
  jax.distributed.initialize(
    coordinator_address=settings.coordinator_address or None,
    num_processes=settings.num_processes if settings.num_processes > 0 else None,
    process_id=settings.process_id if settings.process_id >= 0 else None,
  )


def is_lead_process() -> bool:
  """Whether this process writes logs and results (process 0)."""
  return jax.process_index() == 0


def announce(message: str) -> None:
  """Prints `message` on the lead process only."""
  if is_lead_process():
    print(message, flush=True)


def any_process(flag: bool) -> bool:
  """True on every process when `flag` is true on any (call on all processes at once)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag, np.int32))))


def compiled_with(mapped: Callable, options: dict[str, str]) -> Callable:
  """`mapped` compiled with XLA `options`, once per argument structure, shapes and types."""
  executables = {}

  def call(*args):
    leaves, structure = jax.tree.flatten(args)
    key = (structure, tuple(jax.typeof(leaf) for leaf in leaves))
    if key not in executables:
      executables[key] = mapped.lower(*args).compile(compiler_options=options)
    return executables[key](*args)

  return call


class DataParallel:
  """Maps per-device steps over `num_devices` local devices (0: all; every device across hosts)."""

  def __init__(self, num_devices: int = 0):
    local = jax.local_devices()
    if num_devices < 0 or num_devices > len(local):
      raise ValueError(
        f"num_devices {num_devices} is not available: this process has "
        f"{len(local)} {local[0].platform.upper()} devices (0 uses all)"
      )
    if jax.process_count() > 1:
      if num_devices not in (0, len(local)):
        raise ValueError(f"num_devices {num_devices}: a multi-host run uses every device")
      self.devices: Sequence[jax.Device] = jax.devices()
    else:
      self.devices = local[: num_devices or len(local)]
    self.local_devices = [d for d in self.devices if d.process_index == jax.process_index()]
    self._sharding = NamedSharding(Mesh(np.array(self.devices), (AXIS,)), PartitionSpec(AXIS))

  @property
  def num_devices(self) -> int:
    return len(self.devices)

  def describe(self) -> str:
    hosts = f" on {jax.process_count()} hosts" if jax.process_count() > 1 else ""
    return f"{self.num_devices} {self.devices[0].platform.upper()} devices{hosts}"

  def check_batch_size(self, name: str, batch_size: int) -> None:
    """Refuses a global batch that does not split evenly into non-empty device batches."""
    if batch_size % self.num_devices:
      raise ValueError(
        f"{name} {batch_size} does not split across {self.describe()}: "
        f"it gives a per-device batch of {batch_size / self.num_devices:g}; "
        f"use a multiple of {self.num_devices}"
      )

  def process_part(self) -> tuple[int, int]:
    """(this process's index, number of processes): which slice of each global batch it reads."""
    return jax.process_index(), jax.process_count()

  def map(self, step: Callable, donate: Sequence[int] = ()) -> Callable:
    """`step` over the devices: every argument split on its first axis (replicated state, sharded
    batches)."""
    devices = self.devices if jax.process_count() == 1 else None
    mapped = jax.pmap(step, axis_name=AXIS, donate_argnums=tuple(donate), devices=devices)
    if self.devices[0].platform != "cpu":
      return mapped
    mapped = compiled_with(mapped, CPU_COMPILER_OPTIONS)
    if self.num_devices == 1:
      return mapped
    # XLA:CPU's host devices share the host's threads: with two multi-device steps in flight,
    # one step's all-reduce can wait forever for a device thread the other holds (measured
    # here: "only 7 of 8 threads arrived", and the same across processes with gloo). On the
    # CPU, where host and devices share the cores anyway, steps run one at a time.
    return lambda *args: jax.block_until_ready(mapped(*args))

  def replicate(self, tree: Any) -> Any:
    """A copy of every leaf on every device: leading axis = devices."""
    count = len(self.local_devices)
    return jax.tree.map(
      lambda x: self._place(np.broadcast_to(np.asarray(x), (count, *np.shape(x)))), tree
    )

  def shard(self, batch: Any) -> Any:
    """This process's slice of a global batch, split across its devices:
    [devices, B/devices, ...]."""
    count = len(self.local_devices)
    return jax.tree.map(
      lambda x: self._place(x.reshape(count, x.shape[0] // count, *x.shape[1:])), batch
    )

  def unreplicate(self, tree: Any) -> Any:
    """Host numpy copies of the first device's replica of every leaf."""
    return jax.tree.map(lambda x: np.array(x.addressable_data(0)[0]), tree)

  def gather(self, tree: Any) -> Any:
    """Host numpy of a mapped step's per-example outputs [devices, B/devices, ...] as the global
    batch [B, ...], in its order, on every process (a collective across hosts)."""

    def whole(x: jax.Array) -> np.ndarray:
      if x.is_fully_addressable:
        values = np.asarray(x)
      else:  # every process's devices, in the mesh's order: the order of the global batch
        values = np.asarray(multihost_utils.process_allgather(x, tiled=True))
      return values.reshape(-1, *values.shape[2:])

    return jax.tree.map(whole, tree)

  def _place(self, local: np.ndarray) -> jax.Array:
    return jax.make_array_from_process_local_data(self._sharding, np.ascontiguousarray(local))
