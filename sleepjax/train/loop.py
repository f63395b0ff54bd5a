"""The training loop every trainer runs, with its hooks.

Hooks, at the steps their period names (and always at the last step): log (metrics fetched to the
host, written, checked for NaN/inf), checkpoint (state + input position), evaluate (a callable of
the state returning scalars; early stopping on one of them with a patience, keeping a host copy of
the best state). The progress bar counts steps that have finished on the device, not steps
dispatched: JAX dispatches asynchronously, so counting dispatches would show the host's rate.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
import tqdm

from sleepjax.train import state as state_lib


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN/inf loss or gradient norm; the run stopped, the last good checkpoint is kept."""


@dataclasses.dataclass
class Result:
  """What `train` returns.

  Attributes:
    state: the train state after the last step run.
    steps: steps done (the state's step).
    best: host copy of {"params", "model_state"} at the best evaluation (None without evaluation,
      or when no evaluation improved on the first, e.g. a NaN validation loss throughout).
    best_step: the step of `best` (0 if none).
    best_metric: the selected metric's value there (None if none).
    stopped_early: True when patience ran out before `steps`.
    evaluations: every evaluation's scalars, with "step".
  """
  state: dict[str, Any]
  steps: int
  best: dict[str, Any] | None = None
  best_step: int = 0
  best_metric: float | None = None
  stopped_early: bool = False
  evaluations: list[dict[str, Any]] = dataclasses.field(default_factory=list)

  def best_or_final(self) -> dict[str, Any]:
    """`best`, or a host copy of the final parameters and model state when there is none."""
    if self.best is not None:
      return self.best
    return state_lib.host_copy({k: self.state[k] for k in ("params", "model_state")})


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
  return {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}


def _improved(value: float, best: float | None, mode: str) -> bool:
  if not math.isfinite(value):
    return False
  if best is None:
    return True
  return value < best if mode == "min" else value > best


def train(state: dict[str, Any], step_fn: Callable, batches: Iterator[Mapping[str, Any]], *, steps: int,
          log_every: int, to_device: Callable[[Mapping[str, Any]], Any] = lambda b: b,
          hparams: Mapping[str, Any] | None = None, writer=None, prefix: str = "",
          on_log: Callable[[list[tuple[int, dict[str, Any]]]], None] | None = None,
          checkpointer=None, checkpoint_every: int | None = None, data_iterator=None,
          evaluate: Callable[[dict[str, Any]], Mapping[str, float]] | None = None, eval_every: int | None = None,
          select: tuple[str, str] | None = None, patience: int | None = None,
          progress: bool = True, desc: str = "train", items_per_step: int | None = None,
          items: str = "windows") -> Result:
  """Runs `step_fn` from the state's step to `steps`, with the hooks of the module docstring.

  Args:
    state: the train state (its "step" says where to start; a restored state resumes).
    step_fn: `state.make_train_step(...)`: (state, batch, hparams) -> (state, metrics).
    batches: an iterator of host batches.
    steps: the step to stop at.
    log_every: fetch, check and write the metrics every this many steps (>= 1).
    to_device: turns a host batch into the step's input (e.g. `mesh.global_batch`).
    hparams: traced scalars passed to every step.
    writer: a `MetricWriter`; rows are "<prefix>train/<metric>" and "<prefix>eval/<metric>".
    prefix: namespace of this run's metrics (e.g. "scratch/ce0/seed1/").
    on_log: called with every step's host metrics [(step, metrics)] since the previous fetch.
    checkpointer: a `Checkpointer` (None: no checkpoints).
    checkpoint_every: its period in steps.
    data_iterator: saved with each checkpoint through `get_state()` (a grain iterator).
    evaluate: state -> scalars (e.g. {"validation/loss": ...}), every `eval_every` steps.
    eval_every: its period in steps.
    select: (metric of `evaluate`, "min" or "max") kept best; None: no best state.
    patience: stop after this many evaluations without improvement (None: never).
    progress: show a tqdm bar (process 0 only).
    desc: the bar's label.
    items_per_step: e.g. windows per step, for an items/s rate beside steps/s.
    items: the items' name in the metric ("train/windows_per_s").

  Returns:
    A `Result`.

  Raises:
    NonFiniteLossError: a fetched loss or gradient norm is NaN/inf; nothing after the last good
      checkpoint is saved (the message names its step).
    ValueError: a period below 1, or an unknown selection mode.
  """
  for name, value in (("log_every", log_every), ("checkpoint_every", checkpoint_every), ("eval_every", eval_every)):
    if value is not None and value < 1:
      raise ValueError(f"{name} must be >= 1, got {value}")
  if checkpointer is not None and checkpoint_every is None:
    raise ValueError("a checkpointer needs checkpoint_every")
  if evaluate is not None and eval_every is None:
    raise ValueError("evaluate needs eval_every")
  if select is not None and select[1] not in ("min", "max"):
    raise ValueError(f"select mode must be 'min' or 'max', got {select[1]!r}")
  start = int(jax.device_get(state["step"]))
  result = Result(state=state, steps=start)
  bar = tqdm.tqdm(total=steps, initial=start, desc=desc, unit="step", leave=False,
                  disable=not progress or jax.process_index() != 0)
  t_last, step_last = time.perf_counter(), start
  pending: list[tuple[int, Any]] = []
  previous = None
  bad = 0
  try:
    for step in range(start, steps):
      state, metrics = step_fn(state, to_device(next(batches)), hparams)
      done = step + 1
      if previous is not None:
        # The previous step must finish before this one can run (its state is donated): waiting
        # for it costs nothing and makes the bar count finished steps.
        jax.block_until_ready(previous)
      previous = metrics["loss"]
      bar.update(1)
      pending.append((done, metrics))
      last = done == steps
      is_log = done % log_every == 0 or last
      is_ckpt = checkpointer is not None and (done % checkpoint_every == 0 or last)
      is_eval = evaluate is not None and (done % eval_every == 0 or last)
      if not (is_log or is_ckpt or is_eval):
        continue
      # Host fetches only here (every N steps) keep the device busy.
      rows = [(s, jax.device_get(m)) for s, m in pending]
      pending.clear()
      for s, m in rows:
        if not (np.isfinite(m["loss"]) and np.isfinite(m["grad_norm"])):
          saved = checkpointer.latest_step() if checkpointer is not None else None
          # "verified": its digests and finiteness are checked again when it is restored.
          kept = (f"The last checkpoint (step {saved}, verified on resume) is kept in "
                  f"{checkpointer.directory}." if saved is not None else "No checkpoint was saved.")
          raise NonFiniteLossError(
              f"{prefix}non-finite loss ({float(m['loss'])}) or gradient norm ({float(m['grad_norm'])}) at "
              f"step {s}; stopping. {kept} Lower the learning rate or enable optimizer.grad_clip_norm.")
      if on_log is not None:
        on_log(rows)
      scalars = {f"train/{k}": v for k, v in _scalars(rows[-1][1]).items()}
      now = time.perf_counter()
      rate = (done - step_last) / max(now - t_last, 1e-9)
      t_last, step_last = now, done
      scalars["train/steps_per_s"] = rate
      postfix = {"loss": f"{scalars['train/loss']:.3f}", "steps_s": f"{rate:.2f}"}
      if items_per_step:
        scalars[f"train/{items}_per_s"] = rate * items_per_step
        postfix[f"{items}_s"] = f"{rate * items_per_step:.1f}"
      stop = False
      if is_eval:
        evaluation = dict(evaluate(state))
        result.evaluations.append({"step": done, **evaluation})
        scalars.update({f"eval/{k}": float(v) for k, v in evaluation.items()})
        if select is not None:
          value = float(evaluation[select[0]])
          if _improved(value, result.best_metric, select[1]):
            # A host copy: the device state is donated to the next step.
            result.best = state_lib.host_copy({k: state[k] for k in ("params", "model_state")})
            result.best_step, result.best_metric, bad = done, value, 0
          else:
            bad += 1
            stop = patience is not None and bad >= patience
      if writer is not None:
        writer.write_scalars(done, {f"{prefix}{k}": v for k, v in scalars.items()})
      bar.set_postfix(postfix)
      if is_ckpt:
        checkpointer.save(state, data_iterator.get_state() if data_iterator is not None else None)
      if stop:
        result.stopped_early = True
        break
  finally:
    bar.close()
  result.state = state
  result.steps = int(jax.device_get(state["step"]))
  return result
