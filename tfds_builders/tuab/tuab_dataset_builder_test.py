"""Tests for the TUAB builder and the shared TUH EEG helpers, on native-format dummy data.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow (and dill), absent here, so the builder
is built with download_and_prepare into a tmp dir and read back with `as_data_source`. The dummy
files last 12 s; a 5-s window config keeps them small (2 windows per file, tail dropped).
"""

import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _downstream
from tfds_builders import _eeg
from tfds_builders import _tuh_eeg
from tfds_builders import tuab

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
CFG = _eeg.EEGWindowConfig(name="test_5s", sfreq=128.0, window_s=5.0)


def _build(tmp_path, manual_dir=DUMMY):
  builder = tuab.Tuab(config=CFG, data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder, builder.as_data_source()


def test_parse_tuab_path():
  assert tuab.parse_tuab_path("x/edf/train/normal/01_tcp_ar/aaaaaaav_s004_t000.edf") == (
      "train", "normal", "aaaaaaav", "aaaaaaav_s004_t000")
  assert tuab.parse_tuab_path(
      "v2/edf/eval/abnormal/01_tcp_ar/101/00010194/s001_2013_01_09/00010194_s001_t000.edf") == (
          "eval", "abnormal", "00010194", "00010194_s001_t000")
  with pytest.raises(errors.RecordingError, match="not under"):
    tuab.parse_tuab_path("somewhere/aaaaaaav_s004_t000.edf")


def test_montage_accepts_ref_and_le_labels():
  montage = _tuh_eeg.tuh_montage()
  resolved = montage.resolve([f"EEG {c.upper()}-LE" for c in _tuh_eeg.TUH_CHANNELS] + ["EEG EKG1-LE"])
  assert resolved["Fp1"] == "EEG FP1-LE" and resolved["T3"] == "EEG T3-LE" and len(resolved) == 19
  with pytest.raises(errors.MissingChannelError, match="f.edf.*O2"):
    montage.resolve([f"EEG {c.upper()}-REF" for c in _tuh_eeg.TUH_CHANNELS[:-1]], "f.edf")


def test_window_helpers():
  np.testing.assert_array_equal(_eeg.window_starts(1300, 640), [0, 640])
  assert _eeg.window_starts(600, 640).size == 0
  assert _eeg.centred_start(0.2, 640, 128.0, 6400) == 0  # Clamped at the start.
  assert _eeg.centred_start(49.9, 640, 128.0, 6400) == 6400 - 640  # Clamped at the end.
  assert _eeg.centred_start(25.0, 640, 128.0, 6400) == 25 * 128 - 320
  assert _eeg.centred_start(1.0, 640, 128.0, 600) is None
  with pytest.raises(errors.SamplingRateError):
    _downstream.resample(np.zeros((1, 100)), 173.61, 128.0)


def test_read_eeg_units_and_resampling():
  data = _eeg.read_eeg(DUMMY / "edf/train/normal/01_tcp_ar/aaaaaaab_s001_t000.edf", _tuh_eeg.tuh_montage(), 128.0)
  assert data.shape == (19, 12 * 128) and data.dtype == np.float32
  # 20 uV-amplitude 10 Hz sine + 5 uV noise: std sqrt(200 + 25) = 15 uV; in volts it would be 1e-5.
  assert 13.0 < data.std() < 17.0
  spectrum = np.abs(np.fft.rfft(data[0]))
  assert abs(np.argmax(spectrum[1:]) + 1 - 10 * 12) <= 1  # The alpha peak stays at 10 Hz after 256 -> 128 Hz.


def test_builds_from_dummy_data(tmp_path):
  builder, source = _build(tmp_path)
  # 4 training subjects -> 1 in validation (subject_split, 10% rounded up to 1); eval -> test.
  assert {k: len(v) for k, v in source.items()} == {"train": 6, "validation": 2, "test": 4}
  test = [source["test"][i] for i in range(4)]
  assert sorted({(ex["record_id"], ex["label"]) for ex in test}) == [
      (b"aaaaaaae_s001_t000", 0), (b"aaaaaaaf_s001_t000", 1)]
  train_subjects = {source["train"][i]["subject_id"] for i in range(6)}
  val_subjects = {source["validation"][i]["subject_id"] for i in range(2)}
  assert not train_subjects & val_subjects and len(train_subjects | val_subjects) == 4
  ex = source["train"][0]
  assert ex["signals"]["eeg"].shape == (19, 640) and ex["signals"]["eeg"].dtype == np.float32
  assert list(ex["channel_names"]["eeg"]) == [c.encode() for c in _tuh_eeg.TUH_CHANNELS]
  pos = ex["positions"]["eeg"]
  assert pos.shape == (19, 3) and np.isfinite(pos).all()
  assert pos[_tuh_eeg.TUH_CHANNELS.index("C3"), 0] < 0 < pos[_tuh_eeg.TUH_CHANNELS.index("C4"), 0]
  # Windows of one recording are contiguous and in order (disable_shuffling).
  rec = [(source["train"][i]["record_id"], source["train"][i]["window_index"], source["train"][i]["start_s"])
         for i in range(2)]
  assert rec[0][0] == rec[1][0] and (rec[0][1], rec[1][1]) == (0, 1) and rec[1][2] == pytest.approx(5.0)
  assert builder.info.features["label"].names == ["normal", "abnormal"]


def test_corrupt_recording_is_skipped(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  bad = manual / "edf/eval/abnormal/01_tcp_ar/aaaaaaaf_s001_t000.edf"
  bad.write_bytes(bad.read_bytes()[:-1000])  # A truncated download.
  with pytest.raises(errors.EDFTruncatedError):
    _eeg.read_eeg(bad, _tuh_eeg.tuh_montage(), 128.0)
  builder, source = _build(tmp_path, manual)
  assert len(source["test"]) == 2
  report = builder.info.metadata["build_report"]["test"]
  assert report["n_failed"] == 1 and "aaaaaaaf_s001_t000" in report["failures"][0] and report["n_examples"] == 2


def test_subject_in_train_and_eval_is_refused(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  shutil.copy(manual / "edf/train/normal/01_tcp_ar/aaaaaaaa_s001_t000.edf",
              manual / "edf/eval/normal/01_tcp_ar/aaaaaaaa_s009_t000.edf")
  with pytest.raises(errors.RecordingError, match="both train and eval.*aaaaaaaa"):
    _build(tmp_path, manual)


def test_read_eeg_on_real_edf_bytes(shared_data):
  """read_eeg on a real PhysioNet EDF+ (eegmmidb S001R01: 64 ch, 160 Hz, 60 s, eyes open)."""
  path = shared_data / "eegmmidb" / "S001R01.edf"
  if not path.exists():
    pytest.skip(f"{path} not found in the shared data")
  from sleepjax.data import channels  # pylint: disable=g-import-not-at-top
  montage = channels.Montage([channels.ChannelSpec(n, "eeg", (f"{n}..", f"{n}.")) for n in ("C3", "Cz", "O1")])
  data = _eeg.read_eeg(path, montage, 128.0)
  assert data.shape == (3, 60 * 128)  # 160 -> 128 Hz (ratio 4/5).
  # Real scalp EEG in microvolts (the README gives median channel SDs of 19-197 uV for this corpus).
  assert np.all((data.std(axis=1) > 5.0) & (data.std(axis=1) < 300.0))
