"""Builds cinc2017 from dummy_data/ (WFDB .hea + MATLAB v4 .mat) into a tmp dir.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill, which the project does not
install; these tests run `download_and_prepare` with `manual_dir=dummy_data` and read the
result back with `tfds.data_source`.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _downstream
from tfds_builders.cinc2017 import cinc2017_dataset_builder as cinc

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _build(tmp_path, manual_dir=DUMMY, **kwargs):
  # Twelve dummy records, three per class: three folds -> one record per class in each split.
  kwargs.setdefault("n_folds", 3)
  config = cinc.Cinc2017Config(name="dummy", **kwargs)
  builder = cinc.Builder(config=config, data_dir=tmp_path / "data")
  builder.download_and_prepare(download_dir=tmp_path / "dl",
                               download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("cinc"))


def test_splits_are_stratified(built):
  assert {k: v.num_examples for k, v in built.info.splits.items()} == {"train": 4, "validation": 4, "test": 4}
  assert built.info.features["label"].names == ["normal", "af", "other", "noisy"]
  all_ids = []
  for split, fold in (("train", 0), ("validation", 1), ("test", 2)):
    ds = built.as_data_source(split=split)
    assert sorted(ex["label"] for ex in ds) == [0, 1, 2, 3]
    assert {ex["fold"] for ex in ds} == {fold}
    all_ids += [ex["record_id"].decode() for ex in ds]
  assert sorted(all_ids) == [f"A{i:05d}" for i in range(1, 13)]


def test_labels_units_crop_and_padding(built):
  examples = {ex["record_id"].decode(): ex
              for s in ("train", "validation", "test") for ex in built.as_data_source(split=s)}
  for i in range(1, 13):
    ex = examples[f"A{i:05d}"]
    assert ex["label"] == (i - 1) % 4 and ex["subject_id"] == ex["record_id"]
    x = ex["signals"]["ecg"]
    assert x.shape == (1, 9000) and x.dtype == np.float32
    assert list(ex["channel_names"]["ecg"]) == [b"ECG"] and np.isnan(ex["positions"]["ecg"]).all()
    # Dummy amplitude (0.5 + 0.1 i) mV -> microvolts.
    assert x.max() == pytest.approx(1000 * (0.5 + 0.1 * i), abs=1.0)
    duration_s = 35 if i == 3 else 9 + i % 4
    assert ex["duration_s"] == pytest.approx(duration_s)
    assert ex["length"] == min(duration_s, 30) * 300
    np.testing.assert_array_equal(x[:, ex["length"]:], 0.0)


def test_build_report(built):
  reports = built.info.metadata["build_report"]
  assert sum(r["n_cropped"] for r in reports.values()) == 1  # A00003 (35 s).
  assert sum(r["n_zero_padded"] for r in reports.values()) == 11
  assert all(r["n_failed"] == 0 for r in reports.values())


def test_max_records(tmp_path):
  builder = _build(tmp_path, max_records=4, n_folds=2)
  assert sum(v.num_examples for v in builder.info.splits.values()) == 4


def test_reference_parsing(tmp_path):
  ref = tmp_path / "REFERENCE.csv"
  ref.write_text("A00001,N\nA00002,~\n")  # PhysioNet's own files have no header line.
  assert cinc.read_reference(ref) == {"A00001": 0, "A00002": 3}
  ref.write_text("data_source,class\nA00001,N\nA00002,X\n")
  with pytest.raises(errors.AnnotationError, match=r"REFERENCE.csv: line 3: unknown label 'X'"):
    cinc.read_reference(ref)
  ref.write_text("A00001,N\nA00001,A\n")
  with pytest.raises(errors.AnnotationError, match="labelled twice"):
    cinc.read_reference(ref)


def test_crop_or_pad_and_folds_known_answer():
  x, n = _downstream.crop_or_pad(np.ones((1, 5), np.float32), 8)
  np.testing.assert_array_equal(x, [[1, 1, 1, 1, 1, 0, 0, 0]])
  assert n == 5
  x, n = _downstream.crop_or_pad(np.arange(10, dtype=np.float32)[None], 4)
  np.testing.assert_array_equal(x, [[0, 1, 2, 3]])
  assert n == 4
  ids = [f"r{i}" for i in range(100)]
  strata = ["a"] * 70 + ["b"] * 30
  folds = _downstream.stratified_folds(ids, strata, 10)
  per_fold = np.zeros((10, 2), int)
  for rid, s in zip(ids, strata):
    per_fold[folds[rid], int(s == "b")] += 1
  np.testing.assert_array_equal(per_fold, [[7, 3]] * 10)
  # Independent of the order the records were listed in.
  assert _downstream.stratified_folds(ids[::-1], strata[::-1], 10) == folds


def test_missing_reference_raises(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "A00001.hea").write_text("A00001 1 300 9000\n")
  with pytest.raises(errors.RecordingError, match="REFERENCE.csv not found"):
    _build(tmp_path, manual_dir=manual)


def test_download_branch_reads_the_zip(tmp_path, monkeypatch):
  # No network in tests: the "downloaded" training2017.zip is zipped from the dummy data.
  import zipfile

  archive = tmp_path / "fake_dl" / "training2017.zip"
  archive.parent.mkdir()
  with zipfile.ZipFile(archive, "w") as zf:
    for path in sorted((DUMMY / "training2017").iterdir()):
      zf.write(path, f"training2017/{path.name}")
  monkeypatch.setattr(tfds.download.DownloadManager, "download",
                      lambda self, url: archive if url == cinc.ZIP_URL else pytest.fail(url))
  config = cinc.Cinc2017Config(name="dummy_zip", n_folds=3)
  builder = cinc.Builder(config=config, data_dir=tmp_path / "data")
  builder.download_and_prepare(download_dir=tmp_path / "dl")
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 4, "validation": 4, "test": 4}
