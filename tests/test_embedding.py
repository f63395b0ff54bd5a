"""sleepjax.embed and sleepjax-embed (docs/embeddings.md), on the real SC4001 excerpt.

The encoder is a tiny random `MultiModalEncoder` saved as the pretraining trainer saves it (these
tests check the plumbing: shapes, onsets, masking, file formats), with modality groups that include
ECG, which the excerpt lacks: the issue's ZeroDivisionError.
"""

import importlib.util

import mne
import numpy as np
import pytest
from flax import nnx

import sleepjax
from sleepjax import embed_cli
from sleepjax import embedding
from sleepjax import models as models_lib
from sleepjax import staging
from sleepjax.data import sample_data
from sleepjax.models import encoder as encoder_lib
from sleepjax.models import multimodal

GROUPS = {"bas": ["eeg", "eog"], "ecg": ["ecg"]}


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
  cfg = encoder_lib.tiny().replace(patch_size=500, sfreq=100.0, embed_dim=16, ff_dim=32,
                                   tokenizer_widths=(4, 8, 8, 8, 8, 8))
  model = multimodal.MultiModalEncoder(tuple(GROUPS), cfg, rngs=nnx.Rngs(0))
  model.eval()
  # What sleepjax.train.pretrain.model_metadata writes (a dataset whose builder cannot be imported:
  # the preprocessing falls back to SleepFM-Clinical's, with a warning).
  meta = {"task": "pretrain", "data": {"name": "not_a_builder", "builder_config": "x", "modality_groups": GROUPS,
                                       "channel_caps": None, "window_epochs": 2, "sfreq": 100.0}}
  return models_lib.save(model, tmp_path_factory.mktemp("enc") / "model", metadata=meta)


@pytest.fixture(scope="module")
def excerpt():
  return sample_data.sc4001_excerpt()[0]


@pytest.fixture(scope="module")
def emb(encoder_dir, excerpt):
  with pytest.warns(staging.StagingWarning) as rec:
    out = sleepjax.embed(excerpt, encoder_dir)
  messages = " ".join(str(w.message) for w in rec)
  assert "not importable" in messages and "['ecg'] absent" in messages
  return out


def test_shapes_and_onsets(emb):
  n, s = 10, 6  # 300 s of signal, 5-s tokens.
  np.testing.assert_array_equal(emb["epoch_onset_s"], 30.0 * np.arange(n))
  np.testing.assert_array_equal(emb["token_onset_s"], 5.0 * np.arange(n * s))
  assert emb["token/bas"].shape == (n * s, 16) and emb["token/bas"].dtype == np.float32
  assert emb["epoch/bas"].shape == (n, 16)
  np.testing.assert_allclose(emb["epoch/bas"], emb["token/bas"].reshape(n, s, 16).mean(1), rtol=1e-6)
  assert np.isfinite(emb["token/bas"]).all() and bool(emb["present/bas"])
  # The EEG and EOG file channels all joined the BAS set (the set-transformer takes any number).
  assert "EEG Fpz-Cz" in str(emb["channels"]) and "EOG horizontal" in str(emb["channels"])


def test_missing_modality_is_masked_not_crashed(emb):
  assert not bool(emb["present/ecg"])
  assert emb["token/ecg"].shape == emb["token/bas"].shape and np.isnan(emb["token/ecg"]).all()


def test_tokens_are_the_encoders(encoder_dir, emb, excerpt):
  """The first window's BAS tokens equal the encoder applied to the prepared signals directly."""
  with pytest.warns(staging.StagingWarning, match="not importable"):
    model = embedding.load_embedding_model(encoder_dir)
    prep = staging.prepare(excerpt, embedding._spec_for(model, staging._open(excerpt)[3]))
  x = np.concatenate([prep.signals["eeg"], prep.signals["eog"]], axis=1)[:2]  # (2 epochs, C, T)
  window = x.transpose(1, 0, 2).reshape(1, x.shape[1], -1)
  tokens, _ = model.model.encoder(window, train=False)
  np.testing.assert_allclose(emb["token/bas"][:12], np.asarray(tokens)[0], atol=1e-4)


def test_no_channel_of_the_modalities(encoder_dir):
  raw = mne.io.RawArray(np.zeros((1, 6000)), mne.create_info(["Temp rectal"], 100.0), verbose="error")
  with pytest.warns(staging.StagingWarning):
    with pytest.raises(staging.RecordingError, match="no channel of the model's modalities"):
      sleepjax.embed(raw, encoder_dir)


@pytest.mark.parametrize("fmt", ["npz", "parquet"])
def test_cli(encoder_dir, excerpt, tmp_path, fmt, capsys):
  if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
    pytest.skip("pyarrow is not installed")
  broken = tmp_path / "broken.edf"
  broken.write_bytes(b"0" * 300)
  out = tmp_path / "out"
  rc = embed_cli.main([str(excerpt), str(broken), "--model", str(encoder_dir), "--out", str(out),
                       "--format", fmt, "--no-progress"])
  assert rc == 0
  err = capsys.readouterr().err
  assert f"{broken}: skipped" in err and "['ecg'] absent" in err
  if fmt == "npz":
    with np.load(out / f"{excerpt.stem}.embeddings.npz") as z:
      assert z["token/bas"].shape == (60, 16) and not bool(z["present/ecg"])
  else:
    import pandas as pd
    tokens = pd.read_parquet(out / f"{excerpt.stem}.tokens.parquet")
    epochs = pd.read_parquet(out / f"{excerpt.stem}.epochs.parquet")
    assert len(tokens) == 2 * 60 and len(epochs) == 2 * 10
    assert list(tokens.columns[:3]) == ["onset_s", "modality", "present"] and tokens.shape[1] == 3 + 16
    assert set(tokens.loc[~tokens["present"], "modality"]) == {"ecg"}
  assert embed_cli.main([str(tmp_path / "typo.edf"), "--model", str(encoder_dir), "--out", str(out)]) == 2
  (tmp_path / "b").mkdir(exist_ok=True)
  twin = tmp_path / "b" / excerpt.name  # same stem: its outputs would overwrite the first night's
  twin.write_bytes(excerpt.read_bytes())
  assert embed_cli.main([str(excerpt), str(twin), "--model", str(encoder_dir), "--out", str(out)]) == 2
  assert "same file stem" in capsys.readouterr().err
  assert embed_cli.main([str(broken), "--model", str(encoder_dir), "--out", str(out), "--no-progress"]) == 1
