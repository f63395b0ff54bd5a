"""Checkpoints of the train state together with the input iterator's position (orbax)."""

from __future__ import annotations

import os
import pathlib
from typing import Any, Mapping

from flax import nnx
import jax
import orbax.checkpoint as ocp

from sleepjax.models import saving


class Checkpointer:
  """Saves and restores `(train state, data iterator state)` under `<directory>/<step>/`.

  The state is saved with orbax's StandardSave (bit-exact restore of parameters, optimizer state,
  BatchNorm statistics and PRNG keys); the input position (a grain iterator's `get_state()`) as
  JSON beside it, so that a resumed run sees exactly the batches an uninterrupted one would.

  Args:
    directory: the checkpoint folder (`<workdir>/checkpoints`), created.
    keep: how many of the newest checkpoints to keep (>= 1).

  Raises:
    ValueError: keep < 1.
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int):
    if keep < 1:
      raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
    self.directory = pathlib.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=1, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: Mapping[str, Any], data_state: Mapping[str, Any] | None = None) -> int:
    """Saves at the state's step (blocking until written); returns that step."""
    step = int(jax.device_get(state["step"]))
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(dict(state)),
                                                     data=ocp.args.JsonSave(dict(data_state or {}))))
    self._manager.wait_until_finished()
    return step

  def restore(self, state_like: Mapping[str, Any], shardings: Any = None,
              step: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restores (state, data iterator state) of `step` (default: the latest).

    Args:
      state_like: a train state of the right structure, shapes and dtypes (values unused).
      shardings: optional sharding tree of the state (`mesh.state_sharding`).
      step: which checkpoint.
    """
    step = self.latest_step() if step is None else step
    state_like = dict(state_like)
    if shardings is None:
      abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)
    else:
      abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state_like, shardings)
    stored = ocp.StandardCheckpointer().metadata(self.directory / str(step) / "state")
    stored = getattr(stored, "item_metadata", stored)
    stored_tree = getattr(stored, "tree", stored)
    legacy = "batch_stats" in stored_tree and "model_state" not in stored_tree
    if legacy:
      # Written before the trainer-core rewrite: BatchNorm statistics under "batch_stats" and no
      # RNG streams (they are reseeded every step, so the fresh ones are as good).
      rest = abstract.pop("model_state")
      abstract["batch_stats"] = nnx.filter_state(rest, nnx.BatchStat)
    # Orbax would restore an array of another shape than the target's without complaint.
    saving.check_same_arrays(stored, abstract, f"{self.directory}/{step}: does not match this run's train state "
                             "(another model or optimizer config? use another workdir)")
    restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                                                                   data=ocp.args.JsonRestore()))
    state = dict(restored["state"])
    if legacy:
      state["model_state"] = nnx.merge_state(nnx.filter_state(state_like["model_state"], nnx.Not(nnx.BatchStat)),
                                             state.pop("batch_stats"))
    return state, restored["data"]

  def close(self) -> None:
    self._manager.close()
