"""Tests of the helpers shared by the downstream builders (tfds_builders/_downstream.py)."""

import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import channels
from sleepjax.data import errors
from tfds_builders import _downstream


def test_features_equal_the_hand_written_dict_of_docs_architecture_section_3():
  made = _downstream.features({"eeg": (19, 640)}, label_names=("normal", "abnormal"), record_doc="File stem.",
                              task_fields={"start_s": tfds.features.Scalar(dtype=np.float32)})
  by_hand = tfds.features.FeaturesDict({
      "signals": {"eeg": tfds.features.Tensor(shape=(19, 640), dtype=np.float32)},
      "channel_names": {"eeg": tfds.features.Tensor(shape=(19,), dtype=np.str_)},
      "positions": {"eeg": tfds.features.Tensor(shape=(19, 3), dtype=np.float32)},
      "label": tfds.features.ClassLabel(names=["normal", "abnormal"]),
      "subject_id": tfds.features.Text(),
      "record_id": tfds.features.Text(doc="File stem."),
      "start_s": tfds.features.Scalar(dtype=np.float32),
  })
  assert made.to_json() == by_hand.to_json()
  assert list(made) == ["signals", "channel_names", "positions", "label", "subject_id", "record_id", "start_s"]
  assert made["record_id"].doc.desc == "File stem." and made["label"].names == ["normal", "abnormal"]


def test_features_multilabel_and_several_modalities():
  made = _downstream.features({"ecg": (12, 5000), "eeg": (2, 5000)}, n_labels=6)
  assert "label" not in made and made["labels"].shape == (6,) and made["labels"].np_dtype == np.int32
  assert list(made["signals"].keys()) == ["ecg", "eeg"]
  assert made["positions"]["eeg"].shape == (2, 3) and made["channel_names"]["ecg"].shape == (12,)


@pytest.mark.parametrize("kwargs,match", [
    ({}, "exactly one of label_names"),
    ({"label_names": ("a",), "n_labels": 1}, "exactly one of label_names"),
    ({"label_names": ("a",), "task_fields": {"record_id": tfds.features.Text()}}, r"\['record_id'\] redefine"),
])
def test_features_refuses_ambiguous_labels_and_clashes(kwargs, match):
  with pytest.raises(ValueError, match=match):
    _downstream.features({"eeg": (1, 10)}, **kwargs)


def test_fold_to_split_last_is_test_then_validation():
  assert [_downstream.fold_to_split(f, 5) for f in range(5)] == ["train"] * 3 + ["validation", "test"]


def test_stratified_folds_balance_each_stratum():
  ids = [f"r{i:03d}" for i in range(40)]
  strata = [i % 2 for i in range(40)]  # Integer classes (CinC 2017 passes label indices).
  folds = _downstream.stratified_folds(ids, strata, 4)
  for s in (0, 1):
    per_fold = np.bincount([folds[r] for r, c in zip(ids, strata) if c == s], minlength=4)
    np.testing.assert_array_equal(per_fold, [5, 5, 5, 5])
  with pytest.raises(ValueError, match="unique"):
    _downstream.stratified_folds(["a", "a"], [0, 0], 2)


def test_wfdb_units_to_microvolts():
  assert _downstream.wfdb_unit_to_microvolts(" mV ", "100.hea", "MLII") == 1e3
  assert _downstream.wfdb_unit_to_microvolts("μV", "100.hea", "MLII") == 1.0
  with pytest.raises(errors.UnitError, match="100.hea: channel 'SpO2' has unit '%'"):
    _downstream.wfdb_unit_to_microvolts("%", "100.hea", "SpO2")


def test_positions_electrodes_derivations_and_unknown():
  pos = _downstream.electrode_positions(["C3", "C4", "FP1-F7", "ECG"])
  assert pos.shape == (4, 3) and pos.dtype == np.float32
  assert pos[0, 0] < 0 < pos[1, 0]  # C3 left, C4 right.
  np.testing.assert_allclose(pos[2], (channels.electrode_position("Fp1") + channels.electrode_position("F7")) / 2)
  assert np.isnan(pos[3]).all()
  assert _downstream.electrode_positions([]).shape == (0, 3)
  unknown = _downstream.unknown_positions(2)
  assert unknown.shape == (2, 3) and unknown.dtype == np.float32 and np.isnan(unknown).all()


def test_find_file_and_index_files_prefer_the_shallowest(tmp_path):
  (tmp_path / "a" / "b").mkdir(parents=True)
  (tmp_path / "a" / "b" / "REFERENCE.csv").write_text("deep")
  (tmp_path / "a" / "reference.CSV").write_text("shallow")
  (tmp_path / "a" / "b" / "N001.TXT").write_text("1")
  assert _downstream.find_file(tmp_path, "reference.csv").read_text() == "shallow"
  assert _downstream.find_file(tmp_path, "missing.csv") is None
  index = _downstream.index_files(tmp_path, (".txt",))
  assert list(index) == ["n001.txt"] and index["n001.txt"].name == "N001.TXT"


def test_extract_archive_once_and_refuses_unsafe_zip(tmp_path):
  src = tmp_path / "x.txt"
  src.write_text("data")
  archive = tmp_path / "a.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    tar.add(src, arcname="folder/x.txt")
  out = _downstream.extract_archive(archive, tmp_path / "out")
  assert (out / "folder" / "x.txt").read_text() == "data"
  (out / "folder" / "x.txt").unlink()
  _downstream.extract_archive(archive, tmp_path / "out")  # The marker makes it a no-op.
  assert not (out / "folder" / "x.txt").exists()
  bad = tmp_path / "bad.zip"
  with zipfile.ZipFile(bad, "w") as zf:
    zf.writestr("../evil.txt", "x")
  with pytest.raises(errors.RecordingError, match="unsafe member path"):
    _downstream.extract_archive(bad, tmp_path / "out2")
  with pytest.raises(errors.RecordingError, match="archive not found"):
    _downstream.extract_archive(tmp_path / "none.zip", tmp_path / "out3")


def test_crop_or_pad_refuses_bad_shapes():
  with pytest.raises(ValueError, match=r"\(C, T\)"):
    _downstream.crop_or_pad(np.zeros(5), 3)
  with pytest.raises(ValueError, match="positive"):
    _downstream.crop_or_pad(np.zeros((1, 5)), 0)


def test_resample_keeps_a_10hz_sine_and_refuses_irrational_ratios():
  t = np.arange(2500) / 250.0
  x = np.stack([np.sin(2 * np.pi * 10 * t), 50.0 * np.sin(2 * np.pi * 10 * t)])  # (2, 2500) at 250 Hz
  y = _downstream.resample(x, 250.0, 128.0)
  assert y.shape == (2, 1280) and y.dtype == np.float32
  t_out = np.arange(1280) / 128.0
  # Away from the edges (filter transients) the resampled sine is the sine at the new times.
  np.testing.assert_allclose(y[1, 100:-100], 50.0 * np.sin(2 * np.pi * 10 * t_out[100:-100]), atol=0.5)
  spectrum = np.abs(np.fft.rfft(y[0]))
  assert np.argmax(spectrum) * 128.0 / 1280 == 10.0
  same = _downstream.resample(x, 128.0, 128.0)
  assert same.dtype == np.float32 and np.array_equal(same, x.astype(np.float32))
  with pytest.raises(errors.SamplingRateError, match="rec.edf: cannot resample 173.61 Hz to 128.0 Hz"):
    _downstream.resample(x, 173.61, 128.0, path="rec.edf")
