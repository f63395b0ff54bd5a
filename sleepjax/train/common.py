"""Pieces every trainer shares: devices and mesh, metric writers, checkpoints, progress.

Trainers (pretrain, sleepmg, finetune) are the only place that owns the mesh, jit, RNG streams,
checkpoints and metric writers (HOUSE_STYLE). This module keeps the plumbing they have in common so
that each trainer reads as its algorithm.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
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
    jax.distributed.initialize()
    logging.info("jax.distributed initialised: process %d of %d", jax.process_index(), jax.process_count())


def make_data_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh with a `data` axis over all (or the first `num_devices`) devices.

  Axis types are Auto so that jit propagates shardings from `in_shardings` (make_mesh defaults to
  Explicit axes, which would require sharding-typed code everywhere).
  """
  devices = jax.devices()
  if num_devices is not None:
    devices = devices[:num_devices]
  return jax.make_mesh((len(devices),), ("data",), axis_types=(AxisType.Auto,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the `data` mesh axis."""
  return NamedSharding(mesh, P("data"))


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


class MetricWriter:
  """Writes scalar metrics to `<workdir>/metrics.jsonl` and TensorBoard event files.

  Only process 0 writes. TensorBoard files are written with tensorboardX (no TensorFlow needed).
  """

  def __init__(self, workdir: str | os.PathLike, *, tensorboard: bool = True):
    self._active = jax.process_index() == 0
    self._jsonl = None
    self._tb = None
    if not self._active:
      return
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    self._jsonl = open(workdir / "metrics.jsonl", "a", encoding="utf-8")
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(str(workdir / "tensorboard"))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if not self._active:
      return
    record = {"step": int(step), "time": time.time(), **{k: float(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(record) + "\n")
    self._jsonl.flush()
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(k, float(v), int(step))

  def close(self) -> None:
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN/inf loss; the run stops and keeps the last good checkpoint."""
