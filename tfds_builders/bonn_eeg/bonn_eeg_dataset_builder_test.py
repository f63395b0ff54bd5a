"""Builds bonn_eeg from dummy_data/ (native text format) into a tmp dir and reads it back.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill, which the project does not
install; these tests do the same checks (split sizes, feature shapes/dtypes, keys, labels) with
`download_and_prepare` + `tfds.data_source`.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _downstream
from tfds_builders.bonn_eeg import bonn_eeg_dataset_builder as bonn

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _build(tmp_path, task, n_folds=3, manual_dir=DUMMY):
  # Three segments per set in the dummy data: three folds -> one segment per set in each split.
  config = bonn.BonnEegConfig(name=f"{task}_{n_folds}fold", task=task, n_folds=n_folds)
  builder = bonn.Builder(config=config, data_dir=tmp_path / "data")
  builder.download_and_prepare(download_dir=tmp_path / "dl",
                               download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def test_registered_name():
  assert bonn.Builder.name == "bonn_eeg"
  assert [c.name for c in bonn.Builder.BUILDER_CONFIGS] == ["seizure", "five_class"]


def test_five_class_splits_and_features(tmp_path):
  builder = _build(tmp_path, "five_class")
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 5, "validation": 5, "test": 5}
  assert builder.info.features["label"].names == ["Z", "O", "N", "F", "S"]
  seen = set()
  for split in ("train", "validation", "test"):
    ds = builder.as_data_source(split=split)
    sets = sorted(ex["set"].decode() for ex in ds)
    assert sets == sorted(bonn.SETS)  # Stratified: one segment of every set per split.
    for ex in ds:
      assert ex["signals"]["eeg"].shape == (1, 4097) and ex["signals"]["eeg"].dtype == np.float32
      assert list(ex["channel_names"]["eeg"]) == [b"EEG"]
      assert np.isnan(ex["positions"]["eeg"]).all()
      rid = ex["record_id"].decode()
      assert rid[0] == ex["set"].decode() and bonn.SETS[ex["label"]] == rid[0]
      assert ex["subject_id"] == b"unknown"
      assert ex["subject_group"].decode() == ("healthy" if rid[0] in "ZO" else "patient")
      seen.add(rid)
  assert len(seen) == 15


def test_seizure_labels_and_amplitude(tmp_path):
  builder = _build(tmp_path, "seizure")
  ds = builder.as_data_source(split="train")
  labels = {ex["record_id"].decode(): ex["label"] for ex in ds}
  assert sum(labels.values()) == 1 and [r for r, l in labels.items() if l][0].startswith("S")
  # The dummy ictal segment is ~6x larger: the values are carried through unscaled (uV).
  sd = {ex["set"].decode(): ex["signals"]["eeg"].std() for ex in ds}
  assert sd["S"] > 4 * sd["Z"]


def test_read_segment_matches_text(tmp_path):
  x = bonn.read_segment(DUMMY / "setC" / "N002.TXT")
  expected = np.array([int(v) for v in (DUMMY / "setC" / "N002.TXT").read_text().split()], dtype=np.float32)
  np.testing.assert_array_equal(x[0], expected)


def test_bad_segment_raises_naming_the_file(tmp_path):
  short = tmp_path / "Z001.txt"
  short.write_text("1\r\n2\r\n3\r\n")
  with pytest.raises(errors.RecordingError, match="Z001.txt.*expected 4097 samples"):
    bonn.read_segment(short)
  junk = tmp_path / "O001.txt"
  junk.write_text("abc\n" * 4097)
  with pytest.raises(errors.RecordingError, match="O001.txt"):
    bonn.read_segment(junk)


def test_bad_file_is_skipped_and_reported(tmp_path):
  import shutil

  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  (manual / "setA" / "Z004.txt").write_text("1\r\n2\r\n")  # A truncated fourth Z segment.
  builder = _build(tmp_path, "five_class", manual_dir=manual)
  reports = builder.info.metadata["build_report"]
  failed = [f for r in reports.values() for f in r["failures"]]
  assert len(failed) == 1 and "Z004.txt" in failed[0] and "expected 4097 samples" in failed[0]
  n_written = sum(v.num_examples for v in builder.info.splits.values())
  assert sum(r["n_examples"] for r in reports.values()) == n_written == 15


def test_empty_manual_dir_raises(tmp_path):
  empty = tmp_path / "manual"
  empty.mkdir()
  (empty / "readme.md").write_text("nothing here")
  with pytest.raises(errors.RecordingError, match="no Bonn EEG segment files"):
    _build(tmp_path, "five_class", manual_dir=empty)


def test_original_zips(tmp_path):
  # The University of Bonn distributes one zip per set with the files at its root (Z.zip: Z001.txt, ...).
  import zipfile

  manual = tmp_path / "manual"
  manual.mkdir()
  for letter, folder in bonn.SET_FOLDERS.items():
    with zipfile.ZipFile(manual / f"{letter}.zip", "w") as zf:
      for path in sorted((DUMMY / folder).iterdir()):
        zf.write(path, path.name)
  builder = _build(tmp_path, "five_class", manual_dir=manual)
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 5, "validation": 5, "test": 5}


def test_corrupt_archive_raises_naming_it(tmp_path):
  bad = tmp_path / "bonn_eeg_ZONFS.tar.xz"
  bad.write_bytes(b"\xfd7zXZ\x00 not really xz")
  with pytest.raises(errors.RecordingError, match="bonn_eeg_ZONFS.tar.xz: cannot extract archive"):
    _downstream.extract_archive(bad, tmp_path / "out")
