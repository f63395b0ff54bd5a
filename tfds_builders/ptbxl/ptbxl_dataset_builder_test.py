"""Tests for the PTB-XL builder on native-format dummy data (WFDB + ptbxl_database.csv).

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow (and dill), which this project does not
install, so the equivalent is done by hand: download_and_prepare from dummy_data/ into a tmp
dir, then read back with `tfds.data_source` and check split sizes, shapes, labels and keys.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import ptbxl

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _build(tmp_path, config):
  builder = ptbxl.Ptbxl(config=config, data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY)))
  return builder, tfds.data_source(f"ptbxl/{config}", data_dir=str(tmp_path))


def test_code15_mapping():
  np.testing.assert_array_equal(ptbxl.code15_targets("{'NORM': 100.0, 'SR': 0.0}"), [0, 0, 0, 0, 0, 0])
  # Rhythm statements carry likelihood 0.0 in PTB-XL and must still count.
  np.testing.assert_array_equal(ptbxl.code15_targets({"AFIB": 0.0, "CLBBB": 100.0}), [0, 0, 1, 0, 1, 0])
  np.testing.assert_array_equal(ptbxl.code15_targets("{'1AVB': 50.0, 'SBRAD': 0.0, 'STACH': 0.0}"), [1, 0, 0, 1, 0, 1])
  # Incomplete RBBB and atrial flutter are not CODE-15 RBBB / AF.
  np.testing.assert_array_equal(ptbxl.code15_targets({"IRBBB": 100.0, "AFLT": 100.0}), [0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(ptbxl.code15_targets({"CRBBB": 100.0}), [0, 1, 0, 0, 0, 0])
  with pytest.raises(errors.AnnotationError, match="db.csv.*not a dict literal"):
    ptbxl.code15_targets("NORM=100", path="db.csv")


def test_split_of_fold():
  assert [ptbxl.ptbxl_dataset_builder.split_of_fold(k) for k in range(1, 11)] == ["train"] * 8 + ["validation", "test"]


def test_builds_500hz_from_dummy_data(tmp_path):
  builder, source = _build(tmp_path, "500hz")
  assert {k: len(v) for k, v in source.items()} == {"train": 3, "validation": 1, "test": 2}
  assert builder.info.splits["test"].num_examples == 2
  test = [source["test"][i] for i in range(2)]
  assert [ex["record_id"] for ex in test] == [b"00005", b"00006"]
  assert {ex["subject_id"] for ex in test} == {b"105"}
  ex = test[0]
  assert ex["signals"]["ecg"].shape == (12, 5000) and ex["signals"]["ecg"].dtype == np.float32
  assert list(ex["channel_names"]["ecg"]) == [n.encode() for n in ptbxl.ptbxl_dataset_builder.LEADS]
  assert np.isnan(ex["positions"]["ecg"]).all()
  np.testing.assert_array_equal(ex["labels"], [0, 0, 0, 0, 0, 1])  # IRBBB dropped, STACH -> ST.
  assert ex["strat_fold"] == 10
  # Microvolts: the synthetic QRS peaks at up to 1.2 mV, i.e. hundreds of uV, not ~1.
  assert 200.0 < np.abs(ex["signals"]["ecg"]).max() < 2000.0
  train = [source["train"][i] for i in range(3)]
  np.testing.assert_array_equal(train[2]["labels"], [0, 1, 0, 1, 0, 0])  # CRBBB + SBRAD.
  np.testing.assert_array_equal(source["validation"][0]["labels"], [0, 0, 1, 0, 1, 0])
  assert builder.info.metadata["label_names"] == list(ptbxl.CODE15_LABELS)


def test_builds_100hz_config(tmp_path):
  _, source = _build(tmp_path, "100hz")
  ex = source["train"][0]
  assert ex["signals"]["ecg"].shape == (12, 1000)
  assert ex["record_id"] == b"00001"


def test_bad_record_is_skipped_with_named_error(tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  (manual / "records500/00000/00002_hr.dat").write_bytes(b"\x00" * 10)  # Truncated signal file.
  with pytest.raises(errors.RecordingError, match="00002_hr"):
    ptbxl.ptbxl_dataset_builder.read_ptbxl_record(manual / "records500/00000/00002_hr", expected_sfreq=500.0)
  builder = ptbxl.Ptbxl(config="500hz", data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  assert builder.info.splits["train"].num_examples == 2
  report = builder.info.metadata["build_report"]["train"]
  assert report["n_failed"] == 1 and report["failures"][0].startswith("00002:")


def test_reader_on_real_ptb_wfdb_bytes(shared_data):
  """PhysioNet PTB Diagnostic record s0010_re (real WFDB bytes, lower-case lead names, mV, 1000 Hz, 38.4 s)."""
  record = shared_data / "wfdb_samples" / "s0010_re"
  if not record.with_suffix(".hea").exists():
    pytest.skip(f"{record}.hea not found in the shared data")
  signal = ptbxl.ptbxl_dataset_builder.read_ptbxl_record(record, expected_sfreq=1000.0, record_s=38.4)
  assert signal.shape == (12, 38400) and signal.dtype == np.float32
  # Real 12-lead ECG in microvolts: lead II peaks at hundreds of uV to a few mV, never ~1 (mV) or ~1e-3 (V).
  assert 200.0 < np.abs(signal[1]).max() < 5000.0
  with pytest.raises(errors.SamplingRateError, match="s0010_re.hea: sampling rate 1000"):
    ptbxl.ptbxl_dataset_builder.read_ptbxl_record(record, expected_sfreq=500.0)
