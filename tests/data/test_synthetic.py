"""Tests of the synthetic PSG generator (sleepjax.data.synthetic)."""

import hashlib

import edfio
import mne
import numpy as np
import pytest
import scipy.signal

from sleepjax.data import synthetic
from sleepjax.data.stages import N1, N2, N3, REM, W

# A short corpus: 15 min of sleep period, little padding. Cheap enough to write twice.
TINY = synthetic.SyntheticConfig(n_subjects=1, duration_h=0.25, wake_before_min=2, wake_after_min=1,
                                 unscored_tail_min=0.5)
# A fixed hypnogram with every stage in long blocks, for the spectral checks.
BLOCKS = np.repeat([W, N1, N2, N3, N2, REM, W], [24, 10, 30, 30, 6, 30, 10]).astype(np.int32)


def _sha(path):
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _params(seed=0):
  return synthetic.sample_subject_params(np.random.default_rng(seed))


@pytest.fixture(scope="module")
def block_night():
  config = synthetic.SyntheticConfig(movement_artefacts_per_h=0, electrode_pops_per_h=0)
  params = _params(3)
  signals = synthetic.synthesize_night(BLOCKS, params, np.random.default_rng(7), config)
  return signals, params


def _epochs(signals, label):
  x, fs = signals[label]
  return x.reshape(BLOCKS.size, int(30 * fs)), fs


def _band_power(epochs, fs, lo, hi, relative_to=None):
  freqs, psd = scipy.signal.welch(epochs, fs, nperseg=int(4 * fs), axis=-1)
  band = psd[:, (freqs >= lo) & (freqs < hi)].sum(axis=1)
  if relative_to is not None:
    band = band / psd[:, (freqs >= relative_to[0]) & (freqs < relative_to[1])].sum(axis=1)
  return band


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
  a = synthetic.write_corpus(tmp_path / "a", TINY)
  b = synthetic.write_corpus(tmp_path / "b", TINY)
  c = synthetic.write_corpus(tmp_path / "c", synthetic.SyntheticConfig(**{**TINY.__dict__, "seed": 1}))
  assert _sha(a[0].psg_path) == _sha(b[0].psg_path)
  assert _sha(a[0].hypnogram_path) == _sha(b[0].hypnogram_path)
  assert _sha(a[0].psg_path) != _sha(c[0].psg_path)


def test_subject_independent_of_corpus_size(tmp_path):
  two = synthetic.write_corpus(tmp_path / "two", synthetic.SyntheticConfig(**{**TINY.__dict__, "n_subjects": 2}))
  night = synthetic.generate_night(synthetic.SyntheticConfig(**{**TINY.__dict__, "n_subjects": 5}), 1)
  psg, hyp = synthetic.write_night(tmp_path / "five", night.record_id, night)
  assert [r.record_id for r in two] == ["SN0001E0", "SN0011E0"]
  assert [r.subject_id for r in two] == ["SN000", "SN001"]
  assert two[1].psg_path.name == "SN0011E0-PSG.edf" and two[1].hypnogram_path.name == "SN0011EH-Hypnogram.edf"
  assert _sha(two[1].psg_path) == _sha(psg) and _sha(two[1].hypnogram_path) == _sha(hyp)
  assert _sha(two[0].psg_path) != _sha(two[1].psg_path)


# ----------------------------------------------------------------------------- hypnogram


def _runs(mask):
  edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
  return list(zip(edges[::2], edges[1::2]))


def _rem_episodes(hyp, max_gap=10):
  """REM runs merged across interruptions of <= max_gap epochs (5 min), as episodes."""
  episodes = []
  for start, stop in _runs(hyp == REM):
    if episodes and start - episodes[-1][1] <= max_gap:
      episodes[-1] = (episodes[-1][0], stop)
    else:
      episodes.append((start, stop))
  return [(s, e, int(np.sum(hyp[s:e] == REM))) for s, e in episodes]


def test_full_night_hypnograms_have_adult_structure():
  props, n3_first_third, lengthening, n_episodes = [], [], [], []
  for seed in range(40):
    rng = np.random.default_rng(seed)
    hyp = synthetic.generate_hypnogram(rng, 7.5, synthetic.sample_subject_params(rng))
    assert hyp.dtype == np.int32 and hyp.shape == (900,)
    assert set(np.unique(hyp)) <= {W, N1, N2, N3, REM}
    assert hyp[0] == W and np.argmax(hyp != W) > 0  # Positive sleep-onset latency.
    props.append(np.bincount(hyp, minlength=5) / hyp.size)
    n3 = np.flatnonzero(hyp == N3)
    n3_first_third.append(np.mean(n3 < hyp.size / 3))
    episodes = _rem_episodes(hyp)
    n_episodes.append(len(episodes))
    lengthening.append(episodes[-1][2] > episodes[0][2])
  props = np.array(props)
  mean = props.mean(axis=0)
  assert 0.04 <= mean[W] <= 0.15, mean
  assert 0.02 <= mean[N1] <= 0.10, mean
  assert 0.42 <= mean[N2] <= 0.58, mean
  assert 0.13 <= mean[N3] <= 0.22, mean
  assert 0.18 <= mean[REM] <= 0.28, mean
  assert np.all(props[:, N3] > 0.05) and np.all(props[:, REM] > 0.10)
  assert np.mean(n3_first_third) > 0.6
  assert np.mean(lengthening) >= 0.8
  assert 3 <= np.median(n_episodes) <= 6


def test_short_night_keeps_every_stage_and_padding():
  rng = np.random.default_rng(0)
  hyp = synthetic.generate_hypnogram(rng, 1.5, _params(), wake_before_min=10, wake_after_min=5)
  assert hyp.size == 180 + 20 + 10
  assert set(np.unique(hyp)) == {W, N1, N2, N3, REM}
  assert np.all(hyp[:20] == W) and np.all(hyp[-10:] == W)


def test_scoring_uses_sleep_edf_vocabulary():
  config = synthetic.SyntheticConfig(movement_time_per_h=4.0)
  rng = np.random.default_rng(1)
  hyp = synthetic.generate_hypnogram(rng, 7.5, _params(1), wake_before_min=30, wake_after_min=20)
  movement, scoring = synthetic.score_night(hyp, rng, config)
  texts = set(scoring)
  assert {"Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage 4", "Sleep stage R",
          "Movement time", "Sleep stage ?"} == texts
  scoring = np.array(scoring)
  assert np.all(np.isin(scoring[hyp == N3], ["Sleep stage 3", "Sleep stage 4", "Movement time", "Sleep stage ?"]))
  assert np.all(scoring[movement] == "Movement time")
  assert np.all(scoring[-4:] == "Sleep stage ?")
  # Stage 4 sits inside N3 runs, where slow-wave depth peaks.
  depth = synthetic.n3_depth(hyp)
  assert depth[scoring == "Sleep stage 4"].min() > depth[scoring == "Sleep stage 3"].mean()


def test_bad_input_raises():
  with pytest.raises(ValueError, match="AASM"):
    synthetic.synthesize_night(np.array([0, 7]), _params(), np.random.default_rng(0), synthetic.SyntheticConfig())
  with pytest.raises(ValueError, match="resp_sfreq"):
    synthetic.SyntheticConfig(resp_sfreq=25.01).validate()
  with pytest.raises(ValueError, match="duration_h"):
    synthetic.generate_hypnogram(np.random.default_rng(0), 0.0, _params())


# ------------------------------------------------------------------------------ signals


def test_rates_lengths_and_units(block_night):
  signals, _ = block_night
  assert tuple(signals) == synthetic.ALL_CHANNELS
  rates = {label: fs for label, (_, fs) in signals.items()}
  assert rates["EEG C3-M2"] == 100 and rates["ECG"] == 200 and rates["Resp Thorax"] == 25
  for label, (x, fs) in signals.items():
    assert x.dtype == np.float64 and x.shape == (BLOCKS.size * 30 * int(fs),)
    assert np.all(np.isfinite(x))
  eeg_sd = np.std(signals["EEG C3-M2"][0])
  assert 5 < eeg_sd < 100  # Microvolts, not volts.


def test_alpha_posterior_in_wake_and_gone_in_n3(block_night):
  signals, params = block_night
  o1, fs = _epochs(signals, "EEG O1-M2")
  f3, _ = _epochs(signals, "EEG F3-M2")
  band = (params.alpha_hz - 1.5, params.alpha_hz + 1.5)
  rel_o1 = _band_power(o1, fs, *band, relative_to=(0.5, 30))
  rel_f3 = _band_power(f3, fs, *band, relative_to=(0.5, 30))
  assert np.mean(rel_o1[BLOCKS == W]) > 3 * np.mean(rel_o1[BLOCKS == N3])
  assert np.mean(rel_o1[BLOCKS == W]) > np.mean(rel_f3[BLOCKS == W])


def test_frontal_delta_in_n3(block_night):
  signals, _ = block_night
  f3, fs = _epochs(signals, "EEG F3-M2")
  delta = _band_power(f3, fs, 0.5, 2.0)
  assert np.mean(delta[BLOCKS == N3]) > 5 * np.mean(delta[BLOCKS == W])
  # AASM slow waves: >= 75 uV peak to peak in 0.5-2 Hz.
  sos = scipy.signal.butter(4, [0.5, 2.0], "bandpass", fs=fs, output="sos")
  slow = scipy.signal.sosfiltfilt(sos, signals["EEG F3-M2"][0]).reshape(f3.shape)
  p2p = np.percentile(slow, 99, axis=1) - np.percentile(slow, 1, axis=1)
  assert np.median(p2p[BLOCKS == N3]) > 75
  assert np.median(p2p[BLOCKS == W]) < 50


def test_sigma_in_n2_not_rem(block_night):
  signals, _ = block_night
  c3, fs = _epochs(signals, "EEG C3-M2")
  sigma = _band_power(c3, fs, 11, 16, relative_to=(0.5, 30))
  assert np.mean(sigma[BLOCKS == N2]) > 1.5 * np.mean(sigma[BLOCKS == REM])


def test_emg_tone_and_eog_polarity(block_night):
  signals, _ = block_night
  emg, _ = _epochs(signals, "EMG Chin")
  rms = np.sqrt(np.mean(emg ** 2, axis=1))
  assert np.median(rms[BLOCKS == W]) > np.median(rms[BLOCKS == N2]) > np.median(rms[BLOCKS == REM])
  e1, _ = _epochs(signals, "EOG E1-M2")
  e2, _ = _epochs(signals, "EOG E2-M1")
  corr = np.array([np.corrcoef(a, b)[0, 1] for a, b in zip(e1, e2)])
  assert np.median(corr[BLOCKS == REM]) < -0.3  # Eye movements: opposite polarity.
  assert np.median(corr[BLOCKS == N3]) > 0.3  # Frontal delta leaks into both in phase.


def test_heart_rate_and_breathing(block_night):
  signals, params = block_night
  ecg, fs = signals["ECG"]
  peaks, _ = scipy.signal.find_peaks(ecg, height=500, distance=int(0.3 * fs))
  epoch_of_peak = (peaks / fs // 30).astype(int)
  rr = np.diff(peaks) / fs
  hr = 60 / rr
  stage = BLOCKS[epoch_of_peak[1:]]
  assert 40 < np.median(hr) < 100
  assert np.median(hr[stage == W]) > np.median(hr[stage == N3]) + 4
  thorax, fs_r = signals["Resp Thorax"]
  abdomen, _ = signals["Resp Abdomen"]
  assert np.corrcoef(thorax, abdomen)[0, 1] > 0.7
  n3 = np.repeat(BLOCKS == N3, int(30 * fs_r))
  breaths = np.sum(np.diff(np.sign(thorax[n3] - np.median(thorax[n3]))) > 0)
  rate = breaths / (np.sum(n3) / fs_r / 60)
  assert abs(rate - 0.96 * params.breathing_per_min) < 2.5


# ------------------------------------------------------------------------------ EDF files


def test_written_edf_round_trips(tmp_path):
  night = synthetic.generate_night(TINY, 0)
  psg_path, hyp_path = synthetic.write_night(tmp_path, night.record_id, night)
  assert psg_path.name == "SN0001E0-PSG.edf" and hyp_path.name == "SN0001EH-Hypnogram.edf"
  edf = edfio.read_edf(psg_path)
  n_epochs = night.hypnogram.size
  assert edf.duration == n_epochs * 30
  assert [s.label for s in edf.signals] == list(synthetic.ALL_CHANNELS)
  for sig in edf.signals:
    x, fs = night.signals[sig.label]
    assert sig.sampling_frequency == fs
    assert sig.physical_dimension == "uV"
    lim = synthetic.PHYSICAL_RANGE_UV[synthetic.MODALITY_OF_CHANNEL[sig.label]]
    np.testing.assert_allclose(sig.data, x, atol=2 * lim / 65535)
  assert edf.patient.code == "SN000"
  assert edf.recording.startdate == night.start.date()
  raw = mne.io.read_raw_edf(psg_path, verbose=False)
  assert raw.ch_names == list(synthetic.ALL_CHANNELS)
  assert raw.info["meas_date"].replace(tzinfo=None) == night.start
  annotations = mne.read_annotations(hyp_path)
  expected = synthetic.merge_scoring(night.scoring)
  assert list(annotations.description) == [text for _, _, text in expected]
  np.testing.assert_allclose(annotations.onset, [o for o, _, _ in expected])
  np.testing.assert_allclose(annotations.duration, [d for _, d, _ in expected])
  assert np.all(np.mod(annotations.duration, 30) == 0)
  assert annotations.onset[0] == 0 and annotations.onset[-1] + annotations.duration[-1] == n_epochs * 30
  assert all(a != b for a, b in zip(annotations.description[:-1], annotations.description[1:]))
  assert annotations.description[-1] == "Sleep stage ?"


# --------------------------------------------------------------- between-subject variability


def test_variability_zero_gives_population_mean_signatures():
  p = synthetic.sample_subject_params(np.random.default_rng(0), variability=0.0)
  assert p.swa_scale == 1.0 and p.alpha_scale == 1.0 and p.hr_stage_scale == 1.0
  assert p.emg_stage_scale == (1.0,) * 5
  assert p.sweat_per_h == 0.0


def test_variability_spreads_the_stage_signatures_across_subjects():
  params = [synthetic.sample_subject_params(np.random.default_rng(s), variability=1.0) for s in range(40)]
  swa = np.array([p.swa_scale for p in params])
  ages = np.array([p.age_years for p in params])
  assert swa.std() > 0.15 and np.all(swa > 0)
  # Slow-wave amplitude declines with age (Carrier et al. 2001).
  assert np.corrcoef(ages, swa)[0, 1] < -0.3
  # The variability draws come after the original ones: the other fields do not move.
  base = synthetic.sample_subject_params(np.random.default_rng(0), variability=0.0)
  assert params[0].alpha_hz == base.alpha_hz and params[0].gains == base.gains


def test_sweat_artefacts_add_slow_power_to_eeg_only():
  hyp = np.full(60, N2, np.int32)
  params = synthetic.sample_subject_params(np.random.default_rng(1), variability=0.0)
  quiet = synthetic.SyntheticConfig(movement_artefacts_per_h=0, electrode_pops_per_h=0, subject_variability=0.0)
  clean = synthetic.synthesize_night(hyp, params, np.random.default_rng(5), quiet)
  sweaty_params = synthetic.SubjectParams(**{**params.__dict__, "sweat_per_h": 20.0})
  sweaty = synthetic.synthesize_night(hyp, sweaty_params, np.random.default_rng(5), quiet)

  def slow_power(signals, labels):
    return sum(float(np.sum(_band_power(signals[l][0].reshape(60, -1), signals[l][1], 0.05, 0.5)))
               for l in labels)
  assert slow_power(sweaty, synthetic.EEG_CHANNELS + synthetic.EOG_CHANNELS) > 1.5 * slow_power(
      clean, synthetic.EEG_CHANNELS + synthetic.EOG_CHANNELS)
  # Drawn after every other stream: the other modalities are untouched.
  for label in synthetic.EMG_CHANNELS + synthetic.ECG_CHANNELS + synthetic.RESP_CHANNELS:
    np.testing.assert_array_equal(sweaty[label][0], clean[label][0])


@pytest.mark.parametrize("field", ["sweat_artefacts_per_h", "subject_variability", "stage_fluctuation_sd"])
def test_negative_realism_settings_are_rejected(field):
  with pytest.raises(ValueError, match=field):
    synthetic.SyntheticConfig(**{field: -0.1}).validate()
