"""SleepMG trainer: GRL wiring, one step per method, determinism, the tiny CV end to end.

Every test uses the same small layout (EEG 1 + EMG 1 channel, batch 8, 2 training subjects) so
that the jitted steps compiled by one test are reused by the next (compilation dominates on CPU).
"""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.metrics
from flax import nnx

from configs import sleepmg as sleepmg_config
from sleepjax import losses
from sleepjax.models import sleepmg as sleepmg_model
from sleepjax.train import mesh as mesh_lib
from sleepjax.train import sleepmg
from sleepjax.train import state as state_lib

CHANNELS = {"eeg": 1, "emg": 1}


def _config(*variants):
  c = sleepmg_config.get_config(",".join(("tiny", "toy") + variants))
  c.data.modalities = tuple(CHANNELS)
  c.data.toy.channels = dict(CHANNELS)
  return c


@pytest.fixture(scope="module")
def data():
  return sleepmg.make_toy_data(num_subjects=3, epochs_per_subject=20, channels=CHANNELS, seed=0)


def _state(method, config, seed=0, key=0):
  spec = sleepmg.method_spec(method, config)
  model = sleepmg.build_model(config, spec, CHANNELS, 2, seed)
  task, state = sleepmg.init_state(config, spec, model, tuple(CHANNELS), CHANNELS,
                                   key=jax.random.key(key, impl="rbg"))
  step = state_lib.make_train_step(task, mesh_lib.make_data_mesh(1), state)
  return spec, task, state, lambda st, batch: step(st, batch, sleepmg.hparams(config, spec))


def _batch(data):
  return sleepmg._batch(data, np.arange(8), tuple(CHANNELS), batch_size=8,
                        domain_index={"TOY000": 0, "TOY001": 1})


def test_gradient_reversal_wiring_on_the_domain_loss():
  model = sleepmg_model.SleepMGModel({"eeg": 1}, num_domains=2, rngs=nnx.Rngs(0))
  model.eval()  # Deterministic forward; the GRL is active in both modes.
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = {"eeg": jax.random.normal(jax.random.key(0), (4, 1, 3000)) * 20.0}
  subject = jnp.array([0, 1, 0, 1])

  @jax.jit
  def grad_d(params, ratio):
    def loss_d(p):
      out = nnx.merge(graphdef, p, rest, copy=True)(x, grl_ratio=ratio)
      return losses.cross_entropy(out["logits_d"], subject)
    return jax.grad(loss_d)(params)

  lam = 0.1
  g_rev = grad_d(params, jnp.float32(lam))
  g_plain = grad_d(params, jnp.float32(-1.0))  # ratio -1: backward +g, the ordinary gradient.
  # G_d descends L_d; the extractor receives -lambda times the ordinary gradient.
  for leaf in ("kernel", "bias"):
    np.testing.assert_allclose(g_rev["head_d"][leaf][...], g_plain["head_d"][leaf][...], rtol=1e-6)
  ext_rev = jax.tree.leaves(g_rev["extractors"])
  ext_plain = jax.tree.leaves(g_plain["extractors"])
  assert any(np.abs(np.asarray(a)).max() > 0 for a in ext_plain)
  for a, b in zip(ext_rev, ext_plain):
    b = -lam * np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
  # G_y gets no gradient from L_d.
  assert float(jnp.abs(g_rev["head_y"]["kernel"][...]).max()) == 0.0


@pytest.mark.parametrize("method", sleepmg.METHODS)
def test_one_train_step_per_method_changes_parameters(method, data):
  config = _config()
  spec, _, state, step = _state(method, config)
  before = jax.tree.map(np.array, state["params"])
  state, m = step(state, _batch(data))
  params = state["params"]
  assert np.isfinite(float(m["loss"])) and np.isfinite(float(m["imbalance_y"]))
  assert m["rho_y"].shape == (2,) and m["s_y"].shape == (2,)
  np.testing.assert_allclose(float(jnp.sum(m["s_y"])), 1.0, rtol=1e-5)
  assert np.isfinite(float(m["loss_d"]))
  if spec.domain_head:
    assert np.isfinite(float(m["imbalance_d"]))
  else:
    assert math.isnan(float(m["imbalance_d"])) and float(m["loss_d"]) == 0.0
  if spec.ogm_ge:
    assert np.all(np.asarray(m["ogm_coeff"]) <= 1.0)
  changed = jax.tree.map(lambda a, b: not np.array_equal(a, np.asarray(b)), before, params)
  assert all(jax.tree.leaves(changed["head_y"]))
  assert any(jax.tree.leaves(changed["extractors"]))
  if spec.domain_head:
    assert all(jax.tree.leaves(changed["head_d"]))


def test_train_step_is_deterministic_and_naivemg_ignores_rho(data):
  config = _config()

  def run(method):
    _, _, state, step = _state(method, config, key=3)
    history = []
    for _ in range(2):
      state, _ = step(state, _batch(data))
      history.append(jax.tree.map(np.array, state["params"]))
    return history

  a, b = run("sleepmg"), run("sleepmg")
  jax.tree.map(np.testing.assert_array_equal, a[-1], b[-1])
  naive = run("naivemg")
  # Same init, data and keys: after one step only the head kernels can differ (rho scales their
  # gradients alone); by the second step the two runs have really diverged there.
  jax.tree.map(np.testing.assert_array_equal, naive[0]["extractors"], a[0]["extractors"])
  np.testing.assert_array_equal(naive[0]["head_y"]["bias"], a[0]["head_y"]["bias"])
  np.testing.assert_array_equal(naive[0]["head_d"]["bias"], a[0]["head_d"]["bias"])
  assert not np.allclose(naive[1]["head_y"]["kernel"], a[1]["head_y"]["kernel"], rtol=1e-6, atol=0)


def test_subject_folds_and_split_are_subject_wise(data):
  folds = sleepmg.subject_folds(data.subject, 3, seed=0)
  assert sorted(s for f in folds for s in f) == ["TOY000", "TOY001", "TOY002"]
  split = sleepmg.split_fold(data, folds[0], val_fraction=0.2, val_by_subject=False, seed=0)
  test_subj = set(data.subject[split["test"]])
  assert test_subj == set(folds[0])
  assert not test_subj & (set(data.subject[split["train"]]) | set(data.subject[split["validation"]]))
  assert split["validation"].size == round(0.2 * (split["train"].size + split["validation"].size))
  by_subject = sleepmg.split_fold(data, folds[0], val_fraction=0.5, val_by_subject=True, seed=0)
  assert len(set(data.subject[by_subject["validation"]])) == 1
  assert not set(data.subject[by_subject["validation"]]) & set(data.subject[by_subject["train"]])
  with pytest.raises(ValueError, match="subjects"):
    sleepmg.subject_folds(data.subject, 4, seed=0)


def _reject_nan(token):
  raise AssertionError(f"imbalance.jsonl is not strict JSON: {token}")


def test_imbalance_log_is_strict_json_with_null_for_missing_heads(tmp_path, data):
  config = _config()
  config.methods = ("featurenet",)  # No domain head: its imbalance degree is undefined.
  config.num_folds = 2
  sleepmg.train_and_evaluate(config, str(tmp_path), data=data)
  rows = [json.loads(line, parse_constant=_reject_nan)
          for line in (tmp_path / "imbalance.jsonl").read_text().splitlines()]
  assert rows and all(r["imbalance_d"] is None for r in rows)
  assert all(isinstance(r["imbalance_y"], float) for r in rows)


def test_tiny_cross_validation_end_to_end(tmp_path, data):
  config = _config()
  config.methods = ("naivemg", "sleepmg")
  out = sleepmg.train_and_evaluate(config, str(tmp_path), data=data)
  for name in ("results.md", "results.csv", "results.json", "imbalance.jsonl", "imbalance.png",
               "confusion_naivemg.png", "confusion_sleepmg.png"):
    assert (tmp_path / name).stat().st_size > 0, name
  table = (tmp_path / "results.md").read_text()
  cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
  assert [c[:2] for c in cells] == [["toy", "NaiveMG"], ["toy", "SleepMG"]]
  assert len((tmp_path / "results.csv").read_text().strip().splitlines()) == 3
  rows = [json.loads(line, parse_constant=_reject_nan)
          for line in (tmp_path / "imbalance.jsonl").read_text().splitlines()]
  # One row per step, fold and method; imbalance degrees logged for both heads.
  assert len(rows) == 2 * config.num_folds * config.steps
  assert all(np.isfinite(r["imbalance_y"]) and np.isfinite(r["imbalance_d"]) for r in rows)
  # Pooled metrics agree with scikit-learn on the pooled predictions.
  for run in out["runs"]:
    y, p = np.asarray(run["y_true"]), np.asarray(run["y_pred"])
    assert y.size == len(data)  # Every epoch is tested exactly once over the folds.
    m = run["metrics"]
    assert m["accuracy"] == pytest.approx(sklearn.metrics.accuracy_score(y, p))
    labels = list(range(5))
    assert m["macro_f1"] == pytest.approx(sklearn.metrics.f1_score(y, p, labels=labels, average="macro",
                                                                   zero_division=0))
    assert m["kappa"] == pytest.approx(sklearn.metrics.cohen_kappa_score(y, p), abs=1e-9)
    f1 = sklearn.metrics.f1_score(y, p, labels=labels, average=None, zero_division=0)
    for name, value in zip(("W", "N1", "N2", "N3", "REM"), f1):
      assert m[f"f1/{name}"] == pytest.approx(value)


def test_load_tfds_data_reads_the_example_contract(monkeypatch, fake_source):
  # Examples as docs/architecture.md §3 (strings come back as bytes from TFDS).
  examples = fake_source(n_subjects=2, epochs_per_record=3, samples_per_epoch=3000)
  for ex in examples:
    ex["subject_id"] = ex["subject_id"].encode()
    ex["record_id"] = ex["record_id"].encode()
  examples[0]["stage"] = -1  # Unscored epochs are never trained or tested on.
  from sleepjax.train import inputs
  calls = []

  class FakeBuilder:
    builder_config = None  # No PSG builder config: the saved models' "input" block is None.

    def as_data_source(self, split):
      calls.append(split)
      return examples if split == "train" else []

  monkeypatch.setattr(inputs, "open_dataset", lambda data: FakeBuilder())
  config = sleepmg_config.get_config()
  config.data.builder_module = None
  config.data.modalities = ("eeg", "emg")
  data = sleepmg.load_data(config)
  assert calls == ["train", "validation", "test"]
  assert data.input is None
  assert len(data) == 5 and data.channels == {"eeg": 3, "emg": 1}
  assert list(data.subject) == ["FK000"] * 2 + ["FK001"] * 3
  np.testing.assert_array_equal(data.stage, [ex["stage"] for ex in examples[1:]])
  np.testing.assert_array_equal(data.signals["emg"][0], examples[1]["signals"]["emg"])
  config.data.modalities = ("eeg", "eye")
  with pytest.raises(ValueError, match="has no 'eye' signals"):
    sleepmg.load_data(config)


def test_unknown_method_and_variant():
  with pytest.raises(ValueError, match="unknown SleepMG method"):
    sleepmg.method_spec("attnsleep")
  with pytest.raises(ValueError, match="unknown configs/sleepmg.py variant"):
    sleepmg_config.get_config("huge")
  assert sleepmg_config.get_config("naivemg").methods == ("naivemg",)
  assert sleepmg_config.get_config().task == "sleepmg"


@pytest.mark.slow
def test_cli_tiny_writes_the_table(tmp_path):
  """`python -m sleepjax.main --config=configs/sleepmg.py:tiny` on the synthetic_psg/sleepmg_tiny dataset."""
  import os
  import pathlib
  import subprocess
  import sys
  repo = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
  cmd = [sys.executable, "-m", "sleepjax.main", f"--config={repo / 'configs' / 'sleepmg.py'}:tiny",
         f"--workdir={tmp_path / 'work'}"]
  out = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)
  assert out.returncode == 0, out.stderr[-4000:]
  assert "Subject-wise cross-validation" in out.stdout
  table = (tmp_path / "work" / "results.md").read_text()
  for method in ("FeatureNet", "NaiveMG", "SleepMG"):
    assert method in table, table
  assert (tmp_path / "work" / "results.csv").exists()
  assert (tmp_path / "work" / "imbalance.png").exists()
  # The saved fold models alone (no optimizer, no trainer) reproduce the reported pooled metrics.
  from sleepjax import models  # pylint: disable=g-import-not-at-top
  from sleepjax.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  config = sleepmg_config.get_config("tiny")
  config.data.data_dir = str(tmp_path / "tfds")
  data = sleepmg.load_data(config)
  report = json.loads((tmp_path / "work" / "results.json").read_text())
  index = models.list_models(tmp_path / "work")
  assert index["default"] == "featurenet/seed0/all/best"
  for run in report["runs"]:
    cm = metrics_lib.ConfusionMatrix(5)
    for fold in run["folds"]:
      name = fold["model"].removeprefix("model/")
      assert name in index["models"]
      model, info = models.load(tmp_path / "work", name), models.load_info(tmp_path / "work", name)
      assert info["label_names"] == ["W", "N1", "N2", "N3", "REM"]
      idx = np.flatnonzero(np.isin(data.subject, fold["test_subjects"]))
      pred = sleepmg.saved_model_stages(model, info, data, idx)
      assert float(np.mean(pred == data.stage[idx])) == pytest.approx(fold["accuracy"], abs=1e-12)
      cm.add(data.stage[idx], pred)
    reproduced = metrics_lib.summarize(cm, ("W", "N1", "N2", "N3", "REM"))
    for key in ("accuracy", "macro_f1", "kappa"):
      assert reproduced[key] == pytest.approx(run["metrics"][key], abs=1e-12), (run["method"], key)
  # The all-subjects model stages every epoch.
  model = models.load(tmp_path / "work")
  pred = sleepmg.saved_model_stages(model, models.load_info(tmp_path / "work"), data, np.arange(len(data)))
  assert pred.shape == (len(data),) and set(np.unique(pred)) <= set(range(5))
  # What sleepjax.stage needs to prepare a new recording: the builder's montage and preprocessing.
  block = models.load_info(tmp_path / "work")["metadata"]["input"]
  assert [c["name"] for c in block["montage"]["eeg"]] == ["EEG F3-M2", "EEG F4-M1", "EEG C3-M2", "EEG C4-M1",
                                                         "EEG O1-M2", "EEG O2-M1"]
  assert list(block["montage"]) == ["eeg", "eog", "emg", "ecg"]
  assert (block["sfreq"], block["zscore"], block["lowpass_at_nyquist"]) == (100.0, False, False)
