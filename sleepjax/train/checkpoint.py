"""Checkpoints of the train state together with the input iterator's position (orbax).

Integrity (docs/reliability.md): every checkpoint also stores the SHA-256 of each state leaf's
bytes ("integrity" item). `restore_latest` verifies a checkpoint as far as orbax and tensorstore
allow (the metadata and every array read back without error), then recomputes the digests and
checks every floating-point leaf is finite. A checkpoint that fails is moved aside to
`<step>.corrupt` (never deleted; orbax ignores the name) with one printed line, and the next
older one is tried.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from typing import Any, Mapping

from flax import nnx
import jax
import numpy as np
import orbax.checkpoint as ocp

from sleepjax.models import saving


class CheckpointError(RuntimeError):
  """A checkpoint cannot be written (e.g. the disk is full) or none can be restored."""


class CorruptCheckpointError(CheckpointError):
  """A checkpoint that orbax cannot read, whose digests differ, or with non-finite values."""


def _host(x) -> np.ndarray | None:
  """A leaf's bytes on this host (None when this process holds no full copy)."""
  if isinstance(x, jax.Array):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    if x.is_fully_addressable:
      return np.asarray(jax.device_get(x))
    shard = x.addressable_shards[0].data
    return np.asarray(shard) if shard.shape == x.shape else None
  return np.asarray(x)


def digests(state: Mapping[str, Any]) -> dict[str, str]:
  """{leaf path: SHA-256 of its dtype, shape and bytes} of a train state."""
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(dict(state))[0]:
    host = _host(leaf)
    if host is None:
      continue
    h = hashlib.sha256(f"{host.dtype}{host.shape}".encode())
    h.update(np.ascontiguousarray(host).tobytes())
    out[jax.tree_util.keystr(path)] = h.hexdigest()
  return out


def _non_finite(state: Mapping[str, Any]) -> list[str]:
  bad = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(dict(state))[0]:
    host = _host(leaf)
    if host is not None and np.issubdtype(host.dtype, np.floating) and not np.isfinite(host).all():
      bad.append(jax.tree_util.keystr(path))
  return bad


def _disk_full(error: BaseException) -> bool:
  seen = error
  while seen is not None:
    text = str(seen)
    if "RESOURCE_EXHAUSTED" in text or "No space left" in text or getattr(seen, "errno", None) == 28:
      return True
    seen = seen.__cause__ or seen.__context__
  return False


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
    self._options = ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=1, create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=self._options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, state: Mapping[str, Any], data_state: Mapping[str, Any] | None = None) -> int:
    """Saves at the state's step (blocking until written) with its digests; returns that step.

    Raises:
      CheckpointError: the write failed; a full disk (RESOURCE_EXHAUSTED / ENOSPC) is said in
        one line instead of orbax's and tensorstore's nested tracebacks.
    """
    step = int(jax.device_get(state["step"]))
    try:
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(dict(state)), data=ocp.args.JsonSave(dict(data_state or {})),
          integrity=ocp.args.JsonSave(digests(state))))
      self._manager.wait_until_finished()
    except Exception as e:  # orbax re-raises tensorstore/asyncio errors of many types.
      if _disk_full(e):
        raise CheckpointError(f"disk full while saving the checkpoint of step {step} in "
                              f"{self.directory}: free space there (older steps: "
                              f"{self.all_steps()}) and resume") from None
      raise CheckpointError(f"saving the checkpoint of step {step} in {self.directory} failed: "
                            f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from e
    return step

  def restore_latest(self, state_like: Mapping[str, Any], shardings: Any = None
                     ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Restores the newest intact checkpoint, moving corrupt newer ones aside.

    Each step, newest first, is restored and verified (see the module docstring); one that
    fails is renamed `<step>.corrupt` with one printed line naming the step and the reason.

    Args:
      state_like, shardings: as in `restore`.

    Returns:
      (state, data iterator state) of the newest intact step, or None when there is no
      checkpoint (or none intact: then every one was moved aside, said in one line).

    Raises:
      ValueError: a readable checkpoint of another train state (another model or optimizer).
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    for i, step in enumerate(steps):
      try:
        return self.restore(state_like, shardings, step=step)
      except CorruptCheckpointError as e:
        aside = self._move_aside(step)
        rest = steps[i + 1:]
        then = f"falling back to step {rest[0]}" if rest else "no intact checkpoint left: starting from step 0"
        print(f"checkpoint step {step} in {self.directory} is corrupt ({e}); moved to {aside.name}; "
              f"{then}", flush=True)
    return None

  def _move_aside(self, step: int) -> pathlib.Path:
    src = self.directory / str(step)
    dst = self.directory / f"{step}.corrupt"
    n = 1
    while dst.exists():
      dst = self.directory / f"{step}.corrupt{n}"
      n += 1
    src.rename(dst)
    # The manager caches the steps it found; a fresh one sees the folder without this step.
    self._manager.close()
    self._manager = ocp.CheckpointManager(self.directory, options=self._options)
    return dst

  def restore(self, state_like: Mapping[str, Any], shardings: Any = None,
              step: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restores (state, data iterator state) of `step` (default: the latest).

    Args:
      state_like: a train state of the right structure, shapes and dtypes (values unused).
      shardings: optional sharding tree of the state (`mesh.state_sharding`).
      step: which checkpoint.

    Raises:
      ValueError: the checkpoint holds another train state (another model or optimizer).
      CorruptCheckpointError: orbax/tensorstore cannot read it, a digest differs, or a
        floating-point value is NaN/inf.
    """
    step = self.latest_step() if step is None else step
    state_like = dict(state_like)
    if shardings is None:
      abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state_like)
    else:
      abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state_like, shardings)
    try:
      stored = ocp.StandardCheckpointer().metadata(self.directory / str(step) / "state")
    except Exception as e:  # JSON, tensorstore and orbax errors alike.
      raise CorruptCheckpointError(f"metadata unreadable: {type(e).__name__}: "
                                   f"{' '.join(str(e).split())[:200]}") from e
    stored = getattr(stored, "item_metadata", stored)
    stored_tree = getattr(stored, "tree", stored)
    if stored_tree is None:  # orbax returns no tree for a metadata file it cannot parse
      raise CorruptCheckpointError("metadata unreadable (orbax returned none)")
    legacy = "batch_stats" in stored_tree and "model_state" not in stored_tree
    if legacy:
      # Written before the trainer-core rewrite: BatchNorm statistics under "batch_stats" and no
      # RNG streams (they are reseeded every step, so the fresh ones are as good).
      rest = abstract.pop("model_state")
      abstract["batch_stats"] = nnx.filter_state(rest, nnx.BatchStat)
    # Orbax would restore an array of another shape than the target's without complaint.
    saving.check_same_arrays(stored, abstract, f"{self.directory}/{step}: does not match this run's train state "
                             "(another model or optimizer config? use another workdir)")
    items = {"state": ocp.args.StandardRestore(abstract), "data": ocp.args.JsonRestore()}
    has_digests = (self.directory / str(step) / "integrity").exists()
    if has_digests:
      items["integrity"] = ocp.args.JsonRestore()
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:  # tensorstore, orbax, JSON and asyncio errors alike.
      raise CorruptCheckpointError(f"unreadable: {type(e).__name__}: {' '.join(str(e).split())[:200]}") from e
    state = dict(restored["state"])
    if has_digests and not legacy:
      expected = dict(restored["integrity"])
      got = digests(state)
      differ = sorted(k for k in expected if k in got and got[k] != expected[k])
      if differ:
        raise CorruptCheckpointError(f"{len(differ)} array(s) differ from their saved SHA-256, e.g. "
                                     f"{differ[:2]}")
    bad = _non_finite(state)
    if bad:
      raise CorruptCheckpointError(f"non-finite values in {bad[:2]}")
    if legacy:
      state["model_state"] = nnx.merge_state(nnx.filter_state(state_like["model_state"], nnx.Not(nnx.BatchStat)),
                                             state.pop("batch_stats"))
    return state, restored["data"]

  def close(self) -> None:
    self._manager.close()
