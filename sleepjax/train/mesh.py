"""Devices, the data-parallel mesh, the shardings of the train state and of input batches."""

from __future__ import annotations

import os
from typing import Any, Mapping

from absl import logging
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def maybe_initialize_distributed() -> None:
  """Calls `jax.distributed.initialize()` when the environment describes a multi-process job.

  JAX auto-detects SLURM, Open MPI and Cloud TPU clusters; a plain multi-host GPU job sets
  JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID. Single-process runs (the
  common case, CI included) do nothing.
  """
  env = os.environ
  wants = ("JAX_COORDINATOR_ADDRESS" in env or "SLURM_NTASKS" in env
           or "OMPI_COMM_WORLD_SIZE" in env or "TPU_WORKER_HOSTNAMES" in env)
  if wants and int(env.get("JAX_NUM_PROCESSES", env.get("SLURM_NTASKS", "2"))) > 1:
    if env.get("JAX_PLATFORMS", "").split(",")[0] == "cpu":
      # CPU devices of several processes talk through gloo (JAX's default has no CPU collectives).
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()
    logging.info("jax.distributed initialised: process %d of %d", jax.process_index(), jax.process_count())


def make_data_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh with a `data` axis over all (or the first `num_devices`) devices.

  Axis types are Auto so that jit propagates shardings from `in_shardings` (make_mesh defaults to
  Explicit axes, which would require sharding-typed code everywhere).

  Raises:
    ValueError: `num_devices` is below 1 or above the number of devices.
  """
  devices = jax.devices()
  if num_devices is not None:
    if not 1 <= num_devices <= len(devices):
      raise ValueError(f"num_devices={num_devices}: this job has {len(devices)} device(s)")
    devices = devices[:num_devices]
  return jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the `data` mesh axis."""
  return NamedSharding(mesh, P("data"))


def state_sharding(state: Any, mesh: Mesh) -> Any:
  """The sharding tree of a train state: same structure, one `NamedSharding` per leaf.

  Data parallelism replicates the whole state (parameters, model state, optimizer state, step,
  RNG) on every device; a sharded-parameter strategy (FSDP) would change this function only.
  """
  rep = replicated(mesh)
  return jax.tree.map(lambda _: rep, state)


def put(tree: Any, shardings: Any) -> Any:
  """Places a host (or single-device) pytree on the mesh with its sharding tree.

  One process: `jax.device_put`. Several processes: every process holds the same whole values
  (a freshly initialised, replicated train state), so each contributes its local copy through
  `jax.make_array_from_process_local_data` (`device_put` accepts only addressable devices). PRNG
  key arrays travel as their key data.
  """
  if jax.process_count() == 1:
    return jax.device_put(tree, shardings)

  def place(x, sharding):
    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      data = jax.make_array_from_process_local_data(sharding, np.asarray(jax.random.key_data(x)))
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  return jax.tree.map(place, tree, shardings)


def global_batch(local_batch: Mapping[str, Any], mesh: Mesh) -> dict[str, Any]:
  """Turns this process's numpy batch into global jax.Arrays sharded over `data`.

  Non-numeric leaves (record ids) are dropped: the train step only sees arrays.
  """
  sharding = data_sharded(mesh)

  def to_global(x):
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  def keep(x):
    return isinstance(x, np.ndarray) and x.dtype != object

  numeric = jax.tree.map(lambda x: x if keep(x) else None, dict(local_batch))
  return jax.tree.map(to_global, numeric)
