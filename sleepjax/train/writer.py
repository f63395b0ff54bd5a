"""Scalar metrics to `<workdir>/metrics.jsonl` and TensorBoard event files."""

from __future__ import annotations

import json
import os
import pathlib
import time
from typing import Mapping

import jax


class MetricWriter:
  """Writes scalar metrics to `<workdir>/metrics.jsonl` and, optionally, TensorBoard event files.

  Only process 0 writes. TensorBoard files are written with tensorboardX (no TensorFlow needed).

  Args:
    workdir: output folder (created).
    tensorboard: also write `<workdir>/tensorboard/` event files.
    resume_step: when a run resumes from a checkpoint at this step, rows of metrics.jsonl logged
      after it (by the interrupted run) are dropped first, so that each step appears once.
  """

  def __init__(self, workdir: str | os.PathLike, *, tensorboard: bool = True, resume_step: int | None = None):
    self._active = jax.process_index() == 0
    self._jsonl = None
    self._tb = None
    if not self._active:
      return
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "metrics.jsonl"
    if resume_step is not None and path.exists():
      kept = [line for line in path.read_text(encoding="utf-8").splitlines()
              if line.strip() and json.loads(line).get("step", 0) <= resume_step]
      path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    self._jsonl = open(path, "a", encoding="utf-8")
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(str(workdir / "tensorboard"))

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Appends one row {"step", "time", **scalars} (floats)."""
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
      self._jsonl = None
    if self._tb is not None:
      self._tb.close()
      self._tb = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
