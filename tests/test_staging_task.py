"""The staging task (configs/staging.py, sleepjax.train.staging) end to end, and its window logic.

One module-scoped run of `configs/staging.py:tiny` on a freshly built `synthetic_psg/sleepmg_tiny`
(seconds), then `sleepjax-stage` on the real SC4001 excerpt that ships with the package.
"""

import json

import mne
import numpy as np
import pandas as pd
import pytest

from configs import staging as staging_config
from sleepjax import models as models_lib
from sleepjax import staging
from sleepjax import staging_cli
from sleepjax.data import sample_data
from sleepjax.train import config as config_lib
from sleepjax.train import staging as staging_train


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp("staging_task")
  config = staging_config.get_config("tiny")
  config.data.data_dir = str(root / "tfds")
  out = staging_train.train_and_evaluate(config, str(root / "work"))
  return root / "work", out


def test_tiny_run_writes_results_and_models(workdir):
  work, out = workdir
  rows = json.loads((work / "results.json").read_text())
  assert [r["split"] for r in rows] == ["validation", "test"]
  test = rows[1]
  assert test["epochs"] == out["test"]["epochs"] > 0
  assert np.asarray(test["confusion"]).sum() == test["epochs"]
  assert 0.0 <= test["accuracy"] <= 1.0 and "kappa" in test and "f1/REM" in test
  assert (work / "confusion.png").is_file()
  index = models_lib.list_models(work)
  assert index["default"] == "best" and set(index["models"]) == {"best", "final"}
  info = models_lib.load_info(work)
  meta = info["metadata"]
  assert info["architecture"] == "SequenceStager" and meta["task"] == "staging"
  assert info["label_names"] == ["W", "N1", "N2", "N3", "REM"]
  assert meta["input"]["sfreq"] == 100.0 and set(meta["input"]["montage"]) == {"eeg", "eog", "emg", "ecg"}
  # Held-out subjects: none of the test subjects was trained on.
  assert not set(meta["test_subjects"]) & set(meta["train_subjects"])


def test_cli_stages_the_real_excerpt(workdir, tmp_path):
  work, _ = workdir
  edf, _ = sample_data.sc4001_excerpt()
  out = tmp_path / "out"
  rc = staging_cli.main([str(edf), "--model", str(work), "--out", str(out), "--no-progress"])
  assert rc == 0
  stem = edf.stem
  assert {p.name for p in out.iterdir()} == {f"{stem}.hypnogram.csv", f"{stem}.hypnogram.edf", f"{stem}.png",
                                             f"{stem}.stats.json"}
  table = pd.read_csv(out / f"{stem}.hypnogram.csv")
  raw = mne.io.read_raw_edf(edf, preload=False, verbose="error")
  assert len(table) == int(raw.n_times / raw.info["sfreq"] // 30)
  proba = table[["p_W", "p_N1", "p_N2", "p_N3", "p_REM"]].to_numpy()
  np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
  assert set(table["stage"]) <= {"W", "N1", "N2", "N3", "REM"}
  ann = mne.read_annotations(out / f"{stem}.hypnogram.edf")
  assert abs(sum(ann.duration) - 30.0 * len(table)) < 1e-6


def test_masked_modality_equals_zero_input_and_mask(workdir):
  """The runner masks absent channels: a night without ECG gives the model's own masked output."""
  work, _ = workdir
  runner = staging.load_stager(work)
  rng = np.random.default_rng(0)
  n = 13  # Not a multiple of the window: the last window is padded.
  signals = {m: (20 * rng.standard_normal((n, len(ch), 3000))).astype(np.float32)
             for m, ch in runner.input.montage.items()}
  mask = {m: np.ones(len(ch), bool) for m, ch in runner.input.montage.items()}
  mask["ecg"][:] = False
  p = runner.predict_proba(signals, mask)
  assert p.shape == (n, 5)
  np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
  # What the ECG channel holds does not matter once it is masked.
  other = dict(signals, ecg=signals["ecg"] * 100 + 5)
  np.testing.assert_allclose(runner.predict_proba(other, mask), p, atol=1e-5)
  # ... but it does when it is real.
  full = {m: np.ones_like(v) for m, v in mask.items()}
  assert not np.allclose(runner.predict_proba(other, full), runner.predict_proba(signals, full), atol=1e-4)


def _night(index, stages=None):
  index = np.asarray(index, np.int32)
  stages = np.zeros(index.size, np.int32) if stages is None else np.asarray(stages, np.int32)
  return staging_train.Night("R", "S", {"eeg": np.arange(index.size, dtype=np.float32)[:, None, None] * np.ones((1, 1, 4))},
                             stages, index)


def test_windows_split_at_gaps_and_pad_the_end():
  night = _night([0, 1, 2, 3, 4, 10, 11, 12])
  assert staging_train.window_starts(night, 3, 3) == [0, 2, 5]
  batch = staging_train.window_batch([night], [(0, 5), (0, 2)], ("eeg",), 4)
  np.testing.assert_array_equal(batch["epoch_mask"], [[1, 1, 1, 0], [1, 1, 1, 0]])
  np.testing.assert_array_equal(batch["signals"]["eeg"][0, :, 0, 0], [5, 6, 7, 0])
  np.testing.assert_array_equal(batch["stage"][1], [0, 0, 0, -1])


def test_class_weights_balanced():
  night = _night(range(6), [0, 0, 0, 2, 2, 4])
  w = staging_train.class_weights([night], "balanced")
  np.testing.assert_allclose(w, [6 / 15, 0, 6 / 10, 0, 6 / 5])
  np.testing.assert_allclose(staging_train.class_weights([night], "none"), np.ones(5))


def test_config_variants_and_errors():
  for v in ("default", "tiny", "clinical", "tiny,frozen"):
    staging_train.validate_config(staging_config.get_config(v))
  with pytest.raises(config_lib.ConfigError, match="variant"):
    staging_config.get_config("huge")
  c = staging_config.get_config("tiny")
  c.model.encoder.patch_size = 700
  with pytest.raises(config_lib.ConfigError, match="whole number"):
    staging_train.validate_config(c)


CHANNELS = {"eeg": 2, "eog": 1, "emg": 1, "ecg": 1}


def test_encoder_from_a_saved_model_and_rate_check(tmp_path):
  """`model.pretrained` copies a saved set-transformer's weights; an encoder at another rate is refused."""
  from flax import nnx
  from sleepjax.models import encoder as encoder_lib
  c = staging_config.get_config("tiny")
  enc_cfg = config_lib.encoder_config(c.model)
  saved = encoder_lib.SetTransformerEncoder(enc_cfg, rngs=nnx.Rngs(123))
  models_lib.save(saved, tmp_path / "enc")
  c.model.pretrained = str(tmp_path / "enc")
  model = staging_train.build_model(c, CHANNELS, 100.0)
  want = nnx.to_pure_dict(nnx.state(saved, nnx.Param))
  got = nnx.to_pure_dict(nnx.state(model.encoder, nnx.Param))
  import jax
  assert jax.tree.structure(got) == jax.tree.structure(want)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)
  fresh = staging_train.build_model(staging_config.get_config("tiny"), CHANNELS, 100.0)
  assert not all(np.array_equal(a, b) for a, b in zip(
      jax.tree.leaves(nnx.to_pure_dict(nnx.state(fresh.encoder, nnx.Param))), jax.tree.leaves(want)))
  with pytest.raises(ValueError, match="reads 100 Hz"):
    staging_train.build_model(c, CHANNELS, 128.0)
