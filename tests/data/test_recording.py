"""Epoching one night: units, resampling, alignment, trimming, reports (sleepjax.data.recording)."""

import datetime

import edfio
import mne
import numpy as np
import pytest
import scipy.signal

from sleepjax.data import channels
from sleepjax.data import recording
from sleepjax.data import report as report_lib
from sleepjax.data import edf
from sleepjax.data.errors import BadSignalError
from sleepjax.data.hypnogram import Hypnogram

W, N1, N2, N3, REM, U, M = 0, 1, 2, 3, 4, -1, -2
MONTAGE = channels.Montage([
    channels.ChannelSpec("C3-M2", "eeg", ("EEG C3-M2",)),
    channels.ChannelSpec("E1-M2", "eog"),
    channels.ChannelSpec("Chin", "emg", ("EMG chin",)),
    channels.ChannelSpec("Flow", "resp", ("Resp flow",), required=False),
])


def _write_psg(path, n_epochs, rng):
  """Small EDF: EEG 100 Hz, EOG 100 Hz in mV, EMG 200 Hz, resp 1 Hz without a unit."""
  t100 = np.arange(n_epochs * 3000) / 100.0
  eeg = 20.0 * np.sin(2 * np.pi * 10 * t100) + rng.normal(0, 1, t100.size)  # uV
  eog_mv = 1e-3 * 50.0 * np.sin(2 * np.pi * 0.5 * t100)                      # 50 uV in mV
  t200 = np.arange(n_epochs * 6000) / 200.0
  emg = 5.0 * np.sin(2 * np.pi * 30 * t200)                                   # uV
  resp = 500 + 300 * np.sin(2 * np.pi * 0.25 * np.arange(n_epochs * 30))       # thermistor
  edfio.Edf([
      edfio.EdfSignal(eeg, 100, label="EEG C3-M2", physical_dimension="uV",
                      physical_range=(-200, 200)),
      edfio.EdfSignal(eog_mv, 100, label="E1-M2", physical_dimension="mV",
                      physical_range=(-1, 1)),
      edfio.EdfSignal(emg, 200, label="EMG chin", physical_dimension="uV",
                      physical_range=(-50, 50)),
      edfio.EdfSignal(resp, 1, label="Resp flow", physical_dimension="",
                      physical_range=(-2048, 2047)),
  ], starttime=datetime.time(22, 0, 0), data_record_duration=30).write(path)
  return path


@pytest.fixture(scope="module")
def psg(tmp_path_factory):
  return _write_psg(tmp_path_factory.mktemp("psg") / "night.edf", 8, np.random.default_rng(0))


def test_load_recording_units_shapes_positions(psg):
  hyp = Hypnogram(np.array([W, N1, N2, N2, M, U, N3, REM]), path="h.edf")
  rec = recording.load_recording(psg, hyp, MONTAGE, subject_id="S1", trim_wake_min=None)
  assert rec.record_id == "night" and rec.subject_id == "S1" and rec.sfreq == 100.0
  assert set(rec.signals) == {"eeg", "eog", "emg", "resp"}
  for sig in rec.signals.values():
    assert sig.shape == (6, 1, 3000) and sig.dtype == np.float32
  np.testing.assert_array_equal(rec.stages, [W, N1, N2, N2, N3, REM])
  np.testing.assert_array_equal(rec.epoch_index, [0, 1, 2, 3, 6, 7])
  assert rec.stages.dtype == np.int32 and rec.epoch_index.dtype == np.int32
  # Amplitudes in microvolts whatever the file's unit.
  np.testing.assert_allclose(rec.signals["eeg"].std(), np.sqrt(20**2 / 2 + 1), rtol=0.03)
  np.testing.assert_allclose(rec.signals["eog"].std(), 50 / np.sqrt(2), rtol=0.03)
  # 30 Hz EMG at 200 Hz survives resampling to 100 Hz (below the new Nyquist).
  np.testing.assert_allclose(rec.signals["emg"].std(), 5 / np.sqrt(2), rtol=0.05)
  # Resp keeps its physical unit (no voltage dimension): mean ~500, not scaled by 1e6.
  np.testing.assert_allclose(rec.signals["resp"].mean(), 500, rtol=0.05)
  assert rec.channel_names == {"eeg": ("C3-M2",), "eog": ("E1-M2",), "emg": ("Chin",),
                               "resp": ("Flow",)}
  np.testing.assert_allclose(rec.positions["eeg"][0], channels.electrode_position("C3-M2"))
  assert rec.positions["eeg"].shape == (1, 3) and rec.positions["eeg"].dtype == np.float32
  assert np.isnan(rec.positions["emg"]).all() and np.isnan(rec.positions["eog"]).all()
  rep = rec.report
  assert rep.n_epochs_total == 8 and rep.n_kept == 6
  assert rep.dropped == {"beyond_signal": 0, "outside_trimmed_window": 0, "movement": 1,
                         "unscored": 1, "bad_signal": 0}
  assert "kept 6/8" in str(rep) and "movement=1" in str(rep)


def test_keep_unscored_labels_minus_one(psg):
  hyp = Hypnogram(np.array([W, N1, N2, N2, M, U, N3, REM]))
  rec = recording.load_recording(psg, hyp, MONTAGE, subject_id="S1", trim_wake_min=None,
                                 keep_unscored=True)
  np.testing.assert_array_equal(rec.stages, [W, N1, N2, N2, U, U, N3, REM])
  assert rec.report.n_kept == 8


def test_sfreq_128_lowpass_and_zscore(psg):
  hyp = Hypnogram(np.array([N2] * 8))
  rec = recording.load_recording(psg, hyp, MONTAGE, subject_id="S1", sfreq=128.0,
                                 lowpass_at_nyquist=True, zscore=True)
  assert rec.signals["eeg"].shape == (8, 1, 3840)
  for sig in rec.signals.values():
    np.testing.assert_allclose(sig.mean(), 0.0, atol=1e-3)
    np.testing.assert_allclose(sig.std(), 1.0, atol=1e-3)


def _raw(data_v, sfreq, names, types):
  return mne.io.RawArray(np.asarray(data_v), mne.create_info(names, sfreq, types),
                         verbose="error")


def test_lowpass_at_nyquist_attenuates_near_nyquist():
  fs, n = 256.0, 30 * 256 * 4
  t = np.arange(n) / fs
  x = 1e-6 * (10 * np.sin(2 * np.pi * 10 * t) + 10 * np.sin(2 * np.pi * 60 * t))
  raw = _raw(x[None], fs, ["Cz"], ["eeg"])
  m = channels.Montage([channels.ChannelSpec("Cz", "eeg")])
  hyp = Hypnogram(np.array([N2] * 4))

  def amplitude(sig, f):
    spec = np.abs(np.fft.rfft(sig[1:3, 0].ravel())) / (sig[1:3, 0].size / 2)
    return spec[int(round(f * sig[1:3, 0].size / 128.0))]

  plain = recording.epoch_recording(raw, hyp, m, record_id="r", subject_id="s", sfreq=128.0)
  low = recording.epoch_recording(raw, hyp, m, record_id="r", subject_id="s", sfreq=128.0,
                                  lowpass_at_nyquist=True)
  np.testing.assert_allclose(amplitude(low.signals["eeg"], 10), 10, rtol=0.01)
  # A 4th-order Butterworth at 64 Hz applied forward and backward scales 60 Hz by |H(60)|^2.
  sos = scipy.signal.butter(4, 64.0, fs=fs, output="sos")
  _, h = scipy.signal.sosfreqz(sos, worN=[60.0], fs=fs)
  ratio = amplitude(low.signals["eeg"], 60) / amplitude(plain.signals["eeg"], 60)
  np.testing.assert_allclose(ratio, np.abs(h[0]) ** 2, rtol=0.02)


def test_alignment_to_hypnogram_onset():
  fs = 10.0
  t = np.arange(int(200 * fs)) / fs
  raw = _raw((t * 1e-6)[None], fs, ["Cz"], ["eeg"])  # value = time in seconds, as uV
  m = channels.Montage([channels.ChannelSpec("Cz", "eeg")])
  hyp = Hypnogram(np.array([W, N1, N2]), onset_s=15.0)
  rec = recording.epoch_recording(raw, hyp, m, record_id="r", subject_id="s", sfreq=10.0,
                                  trim_wake_min=None)
  np.testing.assert_allclose(rec.signals["eeg"][:, 0, 0], [15.0, 45.0, 75.0], atol=1e-4)
  np.testing.assert_allclose(rec.signals["eeg"][2, 0, -1], 104.9, atol=1e-4)
  assert "signal extends 95 s beyond the hypnogram" in " ".join(rec.report.warnings)
  # A cropped raw keeps the PSG timeline: epoch 1 (45-75 s) is still at value 45.
  cropped = raw.copy().crop(tmin=40.0)
  rec = recording.epoch_recording(cropped, hyp, m, record_id="r", subject_id="s", sfreq=10.0,
                                  trim_wake_min=None, max_mismatch_s=None)
  np.testing.assert_array_equal(rec.epoch_index, [1, 2])
  np.testing.assert_allclose(rec.signals["eeg"][:, 0, 0], [45.0, 75.0], atol=1e-4)


def test_wake_trimming_window():
  fs = 10.0
  stages = np.array([W] * 70 + [N1, N2, W, N3, REM] + [W] * 65 + [U] * 5)
  raw = _raw(np.random.default_rng(0).normal(0, 1e-5, (1, int(stages.size * 30 * fs))), fs,
             ["Cz"], ["eeg"])
  m = channels.Montage([channels.ChannelSpec("Cz", "eeg")])
  rec = recording.epoch_recording(raw, Hypnogram(stages), m, record_id="r", subject_id="s",
                                  sfreq=10.0)
  # First sleep epoch 70, last 74; 30 min = 60 epochs either side -> epochs 10..134.
  np.testing.assert_array_equal(rec.epoch_index, np.arange(10, 135))
  assert rec.report.dropped["outside_trimmed_window"] == 10 + 10
  assert rec.report.dropped["unscored"] == 0  # the unscored tail is outside the window first
  assert rec.report.n_kept + rec.report.n_dropped == stages.size


def test_no_sleep_skips_trimming_with_warning():
  raw = _raw(np.random.default_rng(0).normal(0, 1e-5, (1, 3 * 300)), 10.0, ["Cz"], ["eeg"])
  m = channels.Montage([channels.ChannelSpec("Cz", "eeg")])
  rec = recording.epoch_recording(raw, Hypnogram(np.array([W, W, W])), m, record_id="r",
                                  subject_id="s", sfreq=10.0)
  assert rec.report.n_kept == 3 and "no sleep epoch" in rec.report.warnings[0]


def test_optional_channel_absent_shrinks_modality():
  raw = _raw(np.random.default_rng(0).normal(0, 1e-5, (1, 600)), 10.0, ["Cz"], ["eeg"])
  m = channels.Montage([channels.ChannelSpec("Cz", "eeg"),
                        channels.ChannelSpec("ECG", "ecg", required=False)])
  rec = recording.epoch_recording(raw, Hypnogram(np.array([N2, N2])), m, record_id="r",
                                  subject_id="s", sfreq=10.0)
  assert set(rec.signals) == {"eeg"} and "'ECG' absent" in rec.report.warnings[0]


def test_isruc_style_rec_extension_uses_edf_header(tmp_path, psg):
  """ISRUC's EDF files end in .rec: units must still come from the EDF header."""
  rec_path = tmp_path / "1.rec"
  rec_path.write_bytes(psg.read_bytes())
  with pytest.raises(NotImplementedError):  # why edf.read_raw_edf goes through a file object
    mne.io.read_raw_edf(rec_path, verbose="error")
  raw = edf.read_raw_edf(rec_path)
  rec = recording.epoch_recording(raw, Hypnogram(np.array([N2] * 8)), MONTAGE, record_id="1",
                                  subject_id="1", trim_wake_min=None)
  np.testing.assert_allclose(rec.signals["eog"].std(), 50 / np.sqrt(2), rtol=0.03)  # mV file
  np.testing.assert_allclose(rec.signals["resp"].mean(), 500, rtol=0.05)
  rec2 = recording.load_recording(rec_path, Hypnogram(np.array([N2] * 8)), MONTAGE,
                                  subject_id="1", trim_wake_min=None)
  assert rec2.record_id == "1"
  np.testing.assert_allclose(rec2.signals["eog"], rec.signals["eog"], rtol=0.05, atol=2.0)
  # load_recording reads each channel at its own rate: its 100 Hz EEG is what MNE reads when
  # no faster channel is included (no upsampling to the EMG's 200 Hz).
  eeg_only = channels.Montage([MONTAGE.by_modality()["eeg"][0]])
  rec_eeg = recording.epoch_recording(edf.read_raw_edf(rec_path, include=["EEG C3-M2"]),
                                      Hypnogram(np.array([N2] * 8)), eeg_only, record_id="1",
                                      subject_id="1", trim_wake_min=None)
  np.testing.assert_allclose(rec2.signals["eeg"], rec_eeg.signals["eeg"], rtol=1e-6, atol=1e-4)


def test_merge_reports():
  a = report_lib.EpochReport("a", n_epochs_total=10, n_kept=7,
                             dropped={"unscored": 2, "bad_signal": 1})
  b = report_lib.EpochReport("b", n_epochs_total=5, n_kept=5, warnings=["x"])
  summary = report_lib.merge_reports([a, b], failures=[BadSignalError("c.edf", "flat")])
  assert summary["n_recordings"] == 2 and summary["n_failed"] == 1
  assert summary["n_epochs_total"] == 15 and summary["n_kept"] == 12
  assert summary["dropped"]["unscored"] == 2 and summary["dropped"]["movement"] == 0
  assert summary["n_warnings"] == 1 and summary["failures"] == ["c.edf: flat"]
  with pytest.raises(ValueError, match="unknown drop reasons"):
    report_lib.EpochReport("c", dropped={"tired": 1})


def test_load_recording_native_rates_against_mne_upsampling(psg):
  """load_recording resamples each channel once from its own rate; epoch_recording on MNE's raw
  (every channel FFT-upsampled to the file's 200 Hz first) must agree: exactly up to float32
  rounding on the 200 Hz channel, in band on the slower ones (docs/building.md)."""
  hyp = Hypnogram(np.array([N2] * 8))
  for kw in (dict(sfreq=100.0), dict(sfreq=128.0, lowpass_at_nyquist=True)):
    new = recording.load_recording(psg, hyp, MONTAGE, subject_id="S1", trim_wake_min=None, **kw)
    old = recording.epoch_recording(edf.read_raw_edf(psg), hyp, MONTAGE, record_id="night",
                                    subject_id="S1", trim_wake_min=None, **kw)
    np.testing.assert_array_equal(new.epoch_index, old.epoch_index)
    np.testing.assert_allclose(new.signals["emg"], old.signals["emg"], rtol=1e-5, atol=1e-5)
    # 100 Hz EEG (10 Hz sine + white noise) and EOG: the same below 40 Hz, away from the
    # night's edges (where MNE's FFT upsampling wraps around).
    sos = scipy.signal.butter(8, 40.0, fs=kw["sfreq"], output="sos")
    for m in ("eeg", "eog"):
      a, b = (scipy.signal.sosfiltfilt(sos, r.signals[m][:, 0].ravel())[1000:-1000]
              for r in (old, new))
      assert np.sqrt(np.mean((a - b) ** 2) / np.mean(a ** 2)) < 5e-3, (kw, m)
    assert not np.array_equal(new.signals["eeg"], old.signals["eeg"])  # the paths do differ
