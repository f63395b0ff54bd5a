"""Builds eegmmidb from dummy_data/ (EDF+ written by make_dummy_data.py) into a tmp dir.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill, which the project does not
install; these tests run `download_and_prepare` with `manual_dir=dummy_data` and read the
result back with `tfds.data_source`.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders.eegmmidb import eegmmidb_dataset_builder as mmi

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _build(tmp_path, config_name, manual_dir=DUMMY, **kwargs):
  config = mmi.EegmmidbConfig(name=config_name + "_custom", **kwargs) if kwargs else config_name
  builder = mmi.Builder(config=config, data_dir=tmp_path / "data")
  builder.download_and_prepare(download_dir=tmp_path / "dl",
                               download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def test_subject_split_rule():
  splits = {s: mmi.subject_split(s) for s in range(1, 13)}
  assert [s for s, v in splits.items() if v == "test"] == [6, 12]
  assert [s for s, v in splits.items() if v == "validation"] == [5, 11]
  assert len([s for s, v in splits.items() if v == "train"]) == 8
  assert mmi.parse_record_name("S001R04.edf") == (1, 4) and mmi.parse_record_name("s109r14.EDF") == (109, 14)
  assert mmi.parse_record_name("S001R04.edf.event") is None


@pytest.fixture(scope="module")
def motor_imagery(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("mi"), "motor_imagery")


def test_motor_imagery_splits_keys_labels(motor_imagery):
  # One run per subject, 3 cues each; the third (T1 at 8.3 s in a 9-s run) runs past the end.
  assert {k: v.num_examples for k, v in motor_imagery.info.splits.items()} == {"train": 2, "validation": 2, "test": 2}
  assert motor_imagery.info.features["label"].names == ["rest", "left_fist", "right_fist"]
  ds = motor_imagery.as_data_source(split="validation")
  got = [(ex["record_id"].decode(), ex["window_index"], ex["label"], float(ex["onset_s"])) for ex in ds]
  assert got == [("S005R08", 0, 0, 0.0), ("S005R08", 1, 2, pytest.approx(4.2))]
  assert {ex["subject_id"] for ex in motor_imagery.as_data_source(split="test")} == {b"S006"}
  report = motor_imagery.info.metadata["build_report"]
  assert report["validation"] == {"n_recordings": 1, "n_failed": 0, "failures": [], "n_examples": 2,
                                  "n_windows_past_end": 1}


def test_motor_imagery_signals_channels_positions(motor_imagery):
  ex = motor_imagery.as_data_source(split="train")[1]
  x = ex["signals"]["eeg"]
  assert x.shape == (64, 640) and x.dtype == np.float32
  names = [n.decode() for n in ex["channel_names"]["eeg"]]
  assert names[:4] == ["FC5", "FC3", "FC1", "FCz"] and names[-1] == "Iz" and len(set(names)) == 64
  # Dummy channel i is a (10 + i) uV sine: order and microvolt scaling survive the build.
  peak = np.abs(x).max(axis=1)
  np.testing.assert_allclose(peak, 10.0 + np.arange(64), rtol=0.02)
  pos = ex["positions"]["eeg"]
  assert pos.shape == (64, 3) and np.isfinite(pos).all()
  np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 1.0, atol=0.05)
  c3, c4 = names.index("C3"), names.index("C4")
  assert pos[c3, 0] < 0 < pos[c4, 0]


def test_eyes_config_from_physionet_tree(tmp_path):
  builder = _build(tmp_path, "eyes")
  # S001 only -> train only; 9-s runs -> two 4-s windows each, the 1-s tail dropped.
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 4}
  ds = builder.as_data_source(split="train")
  assert [(ex["record_id"].decode(), ex["label"]) for ex in ds] == [
      ("S001R01", 0), ("S001R01", 0), ("S001R02", 1), ("S001R02", 1)]
  # Eyes-closed dummy runs are a 10 Hz sine: its spectrum peaks at 10 Hz.
  x = ds[2]["signals"]["eeg"][10]
  freqs = np.fft.rfftfreq(x.size, 1 / mmi.SFREQ)
  assert freqs[np.argmax(np.abs(np.fft.rfft(x)))] == pytest.approx(10.0)


def test_subject_subset(tmp_path):
  builder = _build(tmp_path, "motor_imagery", task="motor_imagery", subjects=(6,))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"test": 2}


def test_unknown_annotation_raises(tmp_path):
  eeg = np.zeros((64, 1600), np.float32)
  with pytest.raises(errors.AnnotationError, match="S009R04.edf.*'T3'"):
    list(mmi.motor_imagery_windows(eeg, [(0.0, "T0"), (4.0, "T3")], 640, path="S009R04.edf"))


def test_no_files_raises(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "notes.txt").write_text("x")
  with pytest.raises(errors.RecordingError, match="no eegmmidb EDF files"):
    _build(tmp_path, "motor_imagery", manual_dir=manual)


def test_checksums_cover_the_staged_runs():
  # checksums.tsv: the 36 imagery runs of S001-S012, at the URLs the builder downloads.
  urls = {mmi.URL_TEMPLATE.format(s=s, r=r) for s in range(1, 13) for r in (4, 8, 12)}
  assert set(mmi.Builder.url_infos) == urls
  assert mmi.Builder.url_infos[mmi.URL_TEMPLATE.format(s=1, r=4)].checksum.startswith("3d161f88")
