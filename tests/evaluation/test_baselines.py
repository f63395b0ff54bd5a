"""Classic transfer baselines: known-answer features, learning on separable data, the builders' dummy data."""

import warnings

import numpy as np
import pytest

from configs import transfer as transfer_config
from sleepjax.evaluation import baselines
from sleepjax.evaluation import evaluators
from sleepjax.train import finetune

SFREQ = 160.0


def _sines(freqs_hz, n_per_class=12, n_ch=4, n_times=640, seed=0):
  """(N, C, T) uV sinusoids whose frequency is the class, with noise; (N,) labels."""
  rng = np.random.default_rng(seed)
  t = np.arange(n_times) / SFREQ
  x, y = [], []
  for label, f in enumerate(freqs_hz):
    for _ in range(n_per_class):
      sig = 20.0 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
      x.append(sig[None] * rng.uniform(0.5, 1.5, (n_ch, 1)) + rng.normal(0, 3.0, (n_ch, n_times)))
      y.append(label)
  return {"signals": np.asarray(x, np.float32), "mask": np.ones((len(x), n_ch), bool), "label": np.asarray(y)}


def test_band_power_puts_a_10_hz_sine_in_the_alpha_band():
  x = _sines([10.0], n_per_class=2)["signals"]
  z = baselines.band_power_features(x, SFREQ).reshape(2, 4, len(baselines.EEG_BANDS))
  assert np.all(np.argmax(z, axis=-1) == 2)  # (8, 13) Hz.


def test_r_peaks_and_rr_features_recover_a_known_rhythm():
  sfreq, rr_s = 360.0, 0.8
  t = np.arange(int(10 * sfreq)) / sfreq
  beats = np.arange(0.4, 10.0, rr_s)
  ecg = sum(1000.0 * np.exp(-0.5 * ((t - b) / 0.012) ** 2) for b in beats)  # uV, Gaussian QRS.
  peaks = baselines.r_peaks(ecg, sfreq)
  np.testing.assert_allclose(peaks / sfreq, beats, atol=3 / sfreq)
  z = baselines.ecg_rhythm_features(ecg[None, None], sfreq)
  assert z.shape == (1, 9 + 21)
  assert z[0, 1] == pytest.approx(rr_s, abs=0.01) and z[0, 2] < 0.01  # Mean and std of RR.
  window = ecg[None, None, :int(4 * sfreq)]
  beat = baselines.ecg_beat_features(window, sfreq)
  assert beat.shape == (1, 5 + 19)
  assert beat[0, 0] == pytest.approx(rr_s, abs=0.01) and beat[0, 1] == pytest.approx(rr_s, abs=0.01)


@pytest.mark.parametrize("name", ["band_power", "csp_lda"])
def test_eeg_baselines_learn_separable_classes_and_are_scored_like_networks(name):
  train, test = _sines([6.0, 11.0, 22.0], seed=0), _sines([6.0, 11.0, 22.0], seed=1)
  if name == "csp_lda":  # CSP separates spatial patterns: give each class its own channel weights.
    for d in (train, test):
      for k in range(3):
        d["signals"][d["label"] == k, k] *= 4.0
  logits = baselines.fit_predict(name, train, {"test": test}, SFREQ, 3)["test"]
  assert logits.shape == (36, 3)
  m = evaluators.logits_metrics(test["label"], logits, ["a", "b", "c"])
  assert m["balanced_accuracy"] > 0.8


def test_one_training_class_gives_its_constant_prediction():
  train = _sines([6.0], n_per_class=3)
  train["label"][:] = 2
  logits = baselines.fit_predict("band_power", train, {"test": train}, SFREQ, 3)["test"]
  assert np.all(np.argmax(logits, -1) == 2) and logits[0, 2] == 0.0
  with pytest.raises(ValueError, match="unknown baseline"):
    baselines.features("fft_magic", train["signals"], SFREQ)


@pytest.mark.parametrize("variant,expected", [("tiny", ["band_power", "csp_lda"]), ("ptbxl_tiny", ["ecg_rhythm"])])
def test_baselines_run_on_the_builders_dummy_data(variant, expected, tmp_path_factory):
  config = transfer_config.get_config(variant)
  config.unlock()
  config.data.data_dir = str(tmp_path_factory.getbasetemp() / "tfds_dummy")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # 2 test windows: per-class metrics are partly undefined.
    rows = finetune.run_baselines(config)
  assert [r["strategy"] for r in rows] == [f"baseline:{n}" for n in expected]
  for r in rows:
    assert r["task"] == config.name and r["n_seeds"] == 1 and r["encoder"] == baselines.DESCRIPTIONS[r["strategy"][9:]]
    assert 0.0 <= r["auroc"] <= 1.0
  if variant == "ptbxl_tiny":
    assert rows[0]["task_type"] == "multilabel" and rows[0]["kappa"] == finetune.NOT_APPLICABLE
  else:
    assert 0.0 <= rows[0]["balanced_accuracy"] <= 1.0
