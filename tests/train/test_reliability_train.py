"""Checkpoints that survive corruption, configs that cannot do nothing, resume (docs/reliability.md)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from sleepjax.train import checkpoint as checkpoint_lib
from sleepjax.train import pretrain
from tests.train.conftest import tiny_pretrain_config

REPO = pathlib.Path(__file__).resolve().parents[2]


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture
def saved(tmp_path):
  """A Checkpointer with steps 2 and 4 of a fresh (untrained) state; returns (ckpt, state_like, states)."""
  config = tiny_pretrain_config()
  _, state = pretrain.init_state(config, pretrain.encoder_modalities(config))
  ckpt = checkpoint_lib.Checkpointer(tmp_path / "checkpoints", keep=3)
  states = {}
  for step in (2, 4):
    s = dict(state, step=np.int32(step), params=jax.tree.map(lambda x, k=step: x + k, state["params"]))
    ckpt.save(s, {"position": step})
    states[step] = s
  return ckpt, state, states


def _restored_step(ckpt, state_like):
  restored = ckpt.restore_latest(state_like)
  assert restored is not None
  state, data = restored
  return int(state["step"]), state, data


def test_intact_checkpoint_restores_bit_identically(saved):
  ckpt, like, states = saved
  step, state, data = _restored_step(ckpt, like)
  assert step == 4 and data == {"position": 4}
  for a, b in zip(_leaves(state["params"]), _leaves(states[4]["params"])):
    np.testing.assert_array_equal(a, b)


def _largest_file(folder):
  """The largest data file of an orbax (OCDBT) array store: array bytes, not metadata."""
  return max(folder.glob("**/d/*"), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["metadata_json", "inverted_chunk_bytes", "missing_chunk", "digest"])
def test_corrupt_latest_checkpoint_falls_back_and_is_kept_aside(saved, damage, capsys):
  ckpt, like, states = saved
  state_dir = ckpt.directory / "4" / "state"
  if damage == "metadata_json":
    (state_dir / "_METADATA").write_text("{not json")
  elif damage == "inverted_chunk_bytes":
    # 64 inverted bytes in each data file (which file holds which array is orbax's business).
    for chunk in state_dir.glob("**/d/*"):
      data = bytearray(chunk.read_bytes())
      mid = len(data) // 2
      data[mid:mid + 64] = bytes(255 - b for b in data[mid:mid + 64])
      chunk.write_bytes(bytes(data))
  elif damage == "digest":
    # Values that read back fine but are not the ones saved (silent corruption) are caught by
    # the SHA-256 of each leaf: simulated by changing one recorded digest.
    meta = ckpt.directory / "4" / "integrity" / "metadata"
    digests = json.loads(meta.read_text())
    key = sorted(digests)[0]
    digests[key] = "0" * 64
    meta.write_text(json.dumps(digests))
  else:
    _largest_file(state_dir).unlink()
  step, state, data = _restored_step(ckpt, like)
  assert step == 2 and data == {"position": 2}
  for a, b in zip(_leaves(state["params"]), _leaves(states[2]["params"])):
    np.testing.assert_array_equal(a, b)
  lines = [line for line in capsys.readouterr().out.splitlines() if "corrupt" in line]
  assert len(lines) == 1 and "checkpoint step 4" in lines[0] and "falling back to step 2" in lines[0], lines
  assert (ckpt.directory / "4.corrupt").is_dir() and not (ckpt.directory / "4").exists()
  assert ckpt.all_steps() == [2]


def test_non_finite_checkpoint_is_not_restored(saved, capsys):
  ckpt, like, states = saved
  bad = dict(states[4], step=np.int32(6), params=jax.tree.map(lambda x: x * np.nan, states[4]["params"]))
  ckpt.save(bad)
  step, _, _ = _restored_step(ckpt, like)
  assert step == 4
  assert "checkpoint step 6" in capsys.readouterr().out and (ckpt.directory / "6.corrupt").is_dir()


def test_disk_full_is_one_line(saved, monkeypatch):
  ckpt, like, states = saved

  def full(*args, **kwargs):
    try:
      raise OSError(28, "No space left on device")
    except OSError as e:
      raise ValueError("RESOURCE_EXHAUSTED: Error writing local file: tensorstore ...\n  stack...") from e
  monkeypatch.setattr(ckpt._manager, "save", full)
  with pytest.raises(checkpoint_lib.CheckpointError, match=r"^disk full while saving the checkpoint of step 6 in "
                     r".*checkpoints: free space there \(older steps: \[2, 4\]\) and resume$"):
    ckpt.save(dict(states[4], step=np.int32(6)))


def test_resume_does_not_duplicate_metric_rows(tmp_path, fake_source):
  source = fake_source()
  workdir = tmp_path / "w"
  pretrain.train(tiny_pretrain_config(steps=3, checkpoint_every=2, log_every=1), str(workdir), train_source=source)
  # As if killed after logging step 3 but before its checkpoint was written.
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(workdir / "checkpoints" / "3")
  pretrain.train(tiny_pretrain_config(steps=3, checkpoint_every=2, log_every=1), str(workdir), train_source=source)
  steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert steps == [1, 2, 3]


@pytest.mark.parametrize("override, message", [
    ("--config.steps=-1", "config.steps must be an integer >= 1, got -1"),
    ("--config.keep_checkpoints=0", "config.keep_checkpoints must be an integer >= 1, got 0"),
    ("--config.checkpoint_every=0", "config.checkpoint_every must be an integer >= 1, got 0"),
    ("--config.log_every=0", "config.log_every must be an integer >= 1, got 0"),
    ("--config.eval_every=0", "config.eval_every must be an integer >= 1, got 0"),
    ("--config.loss=infonce", "config.loss='infonce' is not one of 'loo', 'pairwise'"),
])
def test_config_that_cannot_run_fails_in_one_line_before_any_work(override, message, tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
  cmd = [sys.executable, "-m", "sleepjax.main", f"--config={REPO / 'configs' / 'pretrain.py'}:tiny",
         f"--workdir={tmp_path / 'work'}", override]
  out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, (out.stdout[-2000:], out.stderr[-2000:])
  assert out.stderr.strip() == f"sleepjax: error: {message}"
  assert not (tmp_path / "tfds").exists() and not (tmp_path / "work").exists()


@pytest.mark.slow
def test_kill_9_through_the_cli_resumes_bit_identically(tmp_path):
  from sleepjax import models  # pylint: disable=g-import-not-at-top
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"),
             XLA_FLAGS=os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=2"))

  def cmd(workdir):
    return [sys.executable, "-m", "sleepjax.main", f"--config={REPO / 'configs' / 'pretrain.py'}:tiny",
            f"--workdir={workdir}", "--config.steps=40", "--config.checkpoint_every=4", "--config.log_every=1",
            "--config.progress_bar=False"]
  full = subprocess.run(cmd(tmp_path / "full"), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert full.returncode == 0, full.stderr[-3000:]
  killed = tmp_path / "killed"
  proc = subprocess.Popen(cmd(killed), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 900
  while not (killed / "checkpoints" / "8").is_dir() and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert not (killed / "model").exists(), "the run finished before it could be killed"
  resumed = subprocess.run(cmd(killed), cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resuming from checkpoint at step" in resumed.stdout
  a = _leaves(nnx_state(models.load(tmp_path / "full")))
  b = _leaves(nnx_state(models.load(killed)))
  assert "checkpoint step" not in resumed.stdout  # nothing was found corrupt
  assert len(a) == len(b) > 0
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  rows = {}
  for name in ("full", "killed"):
    lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
    rows[name] = [{k: v for k, v in json.loads(line).items() if "per_s" not in k and k != "time"} for line in lines]
  assert [r["step"] for r in rows["killed"]] == list(range(1, 41))
  assert rows["killed"] == rows["full"]


def nnx_state(module):
  """Parameters and BatchNorm statistics of a module (RNG keys are not arrays NumPy reads)."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  return (nnx.state(module, nnx.Param), nnx.state(module, nnx.BatchStat))


def test_nan_message_names_the_step_with_or_without_a_checkpoint(tmp_path):
  from sleepjax.train import loop  # pylint: disable=g-import-not-at-top

  def step_fn(state, batch, hparams):
    step = state["step"] + 1
    return {"step": step}, {"loss": np.float32(np.nan if step >= 3 else 1.0), "grad_norm": np.float32(1.0)}
  batches = iter(lambda: {}, None)
  with pytest.raises(loop.NonFiniteLossError, match=r"at step 3; stopping\. No checkpoint was saved\."):
    loop.train({"step": np.int32(0)}, step_fn, batches, steps=5, log_every=1, progress=False)

  class Saver:
    directory = tmp_path

    def __init__(self):
      self.saved = []

    def latest_step(self):
      return self.saved[-1] if self.saved else None

    def save(self, state, data_state=None):
      self.saved.append(int(state["step"]))
  with pytest.raises(loop.NonFiniteLossError, match=r"at step 3; stopping\. The last checkpoint \(step 2, "):
    loop.train({"step": np.int32(0)}, step_fn, batches, steps=5, log_every=1, progress=False,
               checkpointer=Saver(), checkpoint_every=2)
