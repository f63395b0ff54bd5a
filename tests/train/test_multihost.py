"""Pretraining over 2 processes x 4 CPU devices (jax.distributed, gloo) equals 1 process x 8 devices."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from sleepjax.data import pipeline
from sleepjax.train import pretrain
from tests.train.conftest import fake_source, tiny_pretrain_config
from tests.train.multihost_worker import RecordingSource

REPO = pathlib.Path(__file__).resolve().parents[2]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _run_two_processes(workdir, steps, out):
  port = _free_port()
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  procs = [subprocess.Popen([sys.executable, "-m", "tests.train.multihost_worker", str(i), str(port), str(workdir),
                             str(steps), str(out)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True) for i in range(2)]
  logs = [p.communicate(timeout=900)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-4000:]
  return logs


@pytest.mark.slow
def test_two_processes_equal_one_read_their_shards_and_share_one_checkpoint(tmp_path):
  assert jax.device_count() == 8, "conftest.py sets 8 simulated CPU devices"
  workdir, out = tmp_path / "work", tmp_path / "out"
  out.mkdir()
  _run_two_processes(workdir, 2, out)
  logs = _run_two_processes(workdir, 4, out)  # Resumes from the step-2 checkpoint.
  assert all("Resuming from checkpoint at step 2" in log for log in logs)
  # One checkpoint per step for the job (not one per process), one saved model.
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]
  assert (workdir / "model" / "final" / "config.json").exists()

  # The same 4 steps in one process over 8 devices.
  _, reference, _ = pretrain.train(tiny_pretrain_config(steps=4), str(tmp_path / "single"),
                                   train_source=RecordingSource(fake_source()))
  got = np.load(out / "params_4.npz")
  want = [np.asarray(x) for x in jax.tree.leaves(reference["params"])]
  assert len(got.files) == len(want)
  for i, w in enumerate(want):
    np.testing.assert_allclose(got[f"arr_{i}"], w, rtol=1e-4, atol=1e-6)

  # Each process read its slice of every global batch: the examples of its 4 rows of each of the
  # single-process pipeline's first two batches (grain prefetches further ahead, so more rows are
  # read too; that a shard reads nothing but its slices is tests/data/test_pipeline.py's
  # test_shards_read_only_their_slice_of_each_global_batch).
  examples = fake_source()
  row_of = {(ex["record_id"], int(ex["epoch_index"])): i for i, ex in enumerate(examples)}
  single = iter(pipeline.make_dataset(examples, batch_size=8, window_epochs=2, seed=0,
                                      modalities=pretrain.modality_groups(tiny_pretrain_config())))
  expected = [set(), set()]
  for _ in range(2):  # The two steps of the first run.
    batch = next(single)
    for row, (record, epochs) in enumerate(zip(batch["record_id"], batch["epoch_index"])):
      expected[row // 4] |= {row_of[(record, int(e))] for e in epochs}
  for pid in (0, 1):
    read = set(json.loads((out / f"read_{pid}_2.json").read_text()))
    assert expected[pid] <= read, pid
