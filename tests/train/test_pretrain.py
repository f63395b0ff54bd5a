"""Pretraining trainer: overfit, determinism, resume equivalence, sharding, non-finite stop, CLI."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from sleepjax import optim
from sleepjax.train import config as config_lib
from sleepjax.train import loop
from sleepjax.train import mesh as mesh_lib
from sleepjax.train import pretrain
from sleepjax.train import state as state_lib
from tests.train.conftest import tiny_pretrain_config

REPO = pathlib.Path(__file__).resolve().parents[2]


_config = tiny_pretrain_config


def _leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state["params"]))]


def test_overfit_one_batch(fake_source):
  config = _config(**{"optimizer.name": "adamw", "optimizer.learning_rate": 3e-3})
  source = fake_source(n_subjects=2, epochs_per_record=8)
  task, state = pretrain.init_state(config, pretrain.encoder_modalities(config))
  from sleepjax.data import pipeline
  batch = next(iter(pipeline.make_dataset(source, batch_size=8, window_epochs=2, seed=0,
                                          modalities=pretrain.modality_groups(config))))
  batch = {k: v for k, v in batch.items() if k != "record_id"}
  step = jax.jit(lambda s, b: state_lib.train_step(task, s, b, {}))
  losses = []
  for _ in range(60):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  # With s = exp(t) near 1 the loss cannot approach 0 in 60 steps (logits lie in [-s, s]); what a
  # memorised batch shows is a large drop and cross-modal retrieval far above chance (1/8). Two
  # windows of the fake data may share their stage sequence and so look alike: not always 1.0.
  assert losses[-1] < 0.6 * losses[0], losses[::10]
  assert float(metrics["retrieval_top1/bas"]) >= 0.75
  assert float(metrics["retrieval_top1/ecg"]) >= 0.75


def test_log_scale_kept_nonnegative(fake_source):
  # A large learning rate on t pushes it negative without the clamp.
  config = _config(**{"optimizer.learning_rate": 10.0, "optimizer.name": "sgd"})
  task, state = pretrain.init_state(config, pretrain.encoder_modalities(config))
  params = task.constrain(jax.tree.map(lambda x: x - 5.0, state["params"]))
  assert float(params["log_scale"][...]) == 0.0


def test_determinism(tmp_path, fake_source):
  source = fake_source()
  config = _config()
  _, s1, _ = pretrain.train(config, str(tmp_path / "a"), train_source=source)
  _, s2, _ = pretrain.train(config, str(tmp_path / "b"), train_source=source)
  for a, b in zip(_leaves(s1), _leaves(s2)):
    np.testing.assert_array_equal(a, b)


def test_resume_equals_uninterrupted(tmp_path, fake_source):
  source = fake_source()
  full = _config(steps=4)
  _, uninterrupted, _ = pretrain.train(full, str(tmp_path / "full"), train_source=source)
  half = _config(steps=2)
  pretrain.train(half, str(tmp_path / "resumed"), train_source=source)
  _, resumed, _ = pretrain.train(full, str(tmp_path / "resumed"), train_source=source)
  assert int(resumed["step"]) == 4
  for a, b in zip(_leaves(uninterrupted), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)


def test_sharded_step_matches_single_device(fake_source):
  assert jax.device_count() == 8, "conftest.py sets 8 simulated CPU devices"
  config = _config()
  source = fake_source()
  from sleepjax.data import pipeline
  batch = next(iter(pipeline.make_dataset(source, batch_size=8, window_epochs=2, seed=0,
                                          modalities=pretrain.modality_groups(config))))
  results = []
  for n in (1, 8):
    task, state = pretrain.init_state(config, pretrain.encoder_modalities(config))
    mesh = mesh_lib.make_data_mesh(n)
    state = jax.device_put(state, mesh_lib.state_sharding(state, mesh))
    step = state_lib.make_train_step(task, mesh, state)
    new_state, metrics = step(state, mesh_lib.global_batch(batch, mesh))
    results.append((float(metrics["loss"]), _leaves(new_state)))
  assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
  for a, b in zip(results[0][1], results[1][1]):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path, fake_source):
  source = fake_source()
  workdir = tmp_path / "w"
  pretrain.train(_config(steps=2), str(workdir), train_source=source)
  # Resume with an absurd learning rate: the parameters overflow and the loss becomes NaN. (The
  # pipeline zeroes non-finite samples, so poisoning the data would not do it.)
  diverging = _config(steps=4, **{"optimizer.learning_rate": 1e35})
  with pytest.raises(loop.NonFiniteLossError, match="last checkpoint \\(step 2, verified on resume\\)"):
    pretrain.train(diverging, str(workdir), train_source=source)
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [2]


@pytest.mark.slow
def test_cli_tiny(tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"), XLA_FLAGS=os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=2"))
  cmd = [sys.executable, "-m", "sleepjax.main", f"--config={REPO / 'configs' / 'pretrain.py'}:tiny",
         f"--workdir={tmp_path / 'work'}"]
  out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-4000:]
  assert "Linear probe on frozen embeddings" in out.stdout
  assert (tmp_path / "work" / "results.md").exists()
  assert (tmp_path / "work" / "metrics.jsonl").exists()
  # The saved encoder alone (no optimizer, no trainer) reproduces the reported probe metrics.
  import json  # pylint: disable=g-import-not-at-top
  from sleepjax import models  # pylint: disable=g-import-not-at-top
  from sleepjax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  from sleepjax.train import inputs  # pylint: disable=g-import-not-at-top
  reported = {r["encoder"]: r for r in json.loads((tmp_path / "work" / "results.json").read_text())}
  encoder = models.load(tmp_path / "work")
  assert models.load_info(tmp_path / "work")["metadata"]["step"] == 6
  from configs import pretrain as pretrain_config  # pylint: disable=g-import-not-at-top
  config = pretrain_config.get_config("tiny")
  config.data.data_dir = str(tmp_path / "tfds")
  sources = inputs.open_splits(config.data, ["train", "validation+test"])
  embedder = evaluators.WindowEmbedder(window_epochs=config.data.window_epochs,
                                       modalities=pretrain.modality_groups(config), channel_caps=None, batch_size=8)
  probe = evaluators.LinearProbe(sources["train"], sources["validation+test"], embedder, seed=0).run(encoder)[0]
  for key in ("accuracy", "macro_f1", "kappa"):
    assert probe[key] == pytest.approx(reported["pretrained"][key], abs=1e-12), key
  top1 = {r["modality"]: r["top1"] for r in evaluators.Retrieval(sources["validation+test"], embedder).run(encoder)}
  assert top1 == {m: reported["pretrained"][f"retrieval_top1/{m}"] for m in top1}
  # A second run resumes instead of restarting.
  out2 = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert out2.returncode == 0, out2.stderr[-4000:]
  assert "Resuming from checkpoint at step" in out2.stdout


def test_learning_rate_schedules():
  step = tiny_pretrain_config(**{"optimizer.learning_rate": 0.1, "optimizer.decay_steps": (5,)})
  lr = optim.learning_rate_schedule(config_lib.optimizer_config(step.optimizer, step.steps))
  assert float(lr(4)) == pytest.approx(0.1) and float(lr(5)) == pytest.approx(0.01)
  cosine = tiny_pretrain_config(**{"optimizer.learning_rate": 0.1, "optimizer.schedule": "cosine",
                                   "optimizer.warmup_steps": 10, "optimizer.final_fraction": 0.1,
                                   "steps": 110})
  lr = optim.learning_rate_schedule(config_lib.optimizer_config(cosine.optimizer, cosine.steps))
  assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.05)
  assert float(lr(10)) == pytest.approx(0.1)
  assert float(lr(60)) == pytest.approx(0.01 + 0.09 * 0.5, rel=1e-5)  # Half-way down the cosine.
  assert float(lr(110)) == pytest.approx(0.01)
  with pytest.raises(ValueError, match="schedule"):
    bad = tiny_pretrain_config(**{"optimizer.schedule": "linear"})
    config_lib.optimizer_config(bad.optimizer, bad.steps)


def test_log_scale_init_sets_t_and_rejects_negative():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from sleepjax.models import multimodal  # pylint: disable=g-import-not-at-top
  config = tiny_pretrain_config(**{"model.log_scale_init": 2.66})
  model = pretrain.build_model(config, ("bas", "ecg"))
  assert float(model.log_scale[...]) == pytest.approx(2.66)
  with pytest.raises(ValueError, match="log_scale_init"):
    multimodal.MultiModalEncoder(("bas", "ecg"), config_lib.encoder_config(config.model), log_scale_init=-1.0,
                                 rngs=nnx.Rngs(0))


def test_resume_converts_a_checkpoint_of_the_previous_layout_and_rejects_another_model(tmp_path, fake_source):
  # Checkpoints written before the trainer-core rewrite held "batch_stats" instead of "model_state".
  import json  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  source = fake_source()
  _, reference, _ = pretrain.train(_config(steps=4), str(tmp_path / "reference"), train_source=source)
  _, half, _ = pretrain.train(_config(steps=2), str(tmp_path / "new"), train_source=source)
  data_state = json.loads((tmp_path / "new" / "checkpoints" / "2" / "data" / "metadata").read_text())
  legacy = {k: v for k, v in half.items() if k != "model_state"}
  legacy["batch_stats"] = nnx.filter_state(half["model_state"], nnx.BatchStat)
  old = tmp_path / "old" / "checkpoints"
  old_manager = ocp.CheckpointManager(old.absolute(), options=ocp.CheckpointManagerOptions(create=True))
  old_manager.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(legacy),
                                              data=ocp.args.JsonSave(data_state)))
  old_manager.wait_until_finished()
  _, resumed, _ = pretrain.train(_config(steps=4), str(tmp_path / "old"), train_source=source)
  for a, b in zip(_leaves(reference), _leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  # A checkpoint of another architecture is refused, not half-restored into this one.
  with pytest.raises(ValueError, match="does not match this run's train state"):
    pretrain.train(_config(steps=6, **{"model.encoder.ff_dim": 64}), str(tmp_path / "new"), train_source=source)


def test_eval_every_saves_the_encoder_with_the_lowest_held_out_loss(tmp_path, fake_source):
  from sleepjax import models  # pylint: disable=g-import-not-at-top
  config = _config(steps=4, eval_every=2, **{"eval.max_validation_windows": 8})
  pretrain.train(config, str(tmp_path), train_source=fake_source(), validation_source=fake_source(seed=1))
  index = models.list_models(tmp_path)
  assert index["default"] == "best" and set(index["models"]) == {"best", "final"}
  best = index["models"]["best"]
  assert best["step"] in (2, 4) and np.isfinite(best["validation_loss"])
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = {r["step"]: r["eval/validation/loss"] for r in rows if "eval/validation/loss" in r}
  assert sorted(losses) == [2, 4] and best["validation_loss"] == pytest.approx(min(losses.values()))
  assert models.load_info(tmp_path)["metadata"]["step"] == best["step"]
