"""Tests for the ISRUC-Sleep subgroup III builder on native-format dummy data (.rec EDF + scorer .txt).

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow (and dill), absent here, so the builder is
built with download_and_prepare into a tmp dir and read back with `as_data_source`. The dummy
nights last 4 epochs, so the tests use `drop_last_epochs=1` instead of ISRUC's standard 30.
"""

import pathlib
import shutil

import edfio
import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import isruc_s3

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"


def _build(tmp_path, scorer=1, manual_dir=DUMMY):
  cfg = isruc_s3.IsrucConfig(name=f"test_scorer{scorer}", scorer=scorer, drop_last_epochs=1)
  builder = isruc_s3.IsrucS3(config=cfg, data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder, builder.as_data_source()


def test_read_hypnogram_maps_aasm_codes_and_drops_the_tail(tmp_path):
  txt = tmp_path / "7_1.txt"
  txt.write_text("0\n1\n2\n3\n5\n5\n0\n\n\n")  # Trailing blank lines are padding.
  hyp = isruc_s3.read_isruc_hypnogram(txt, drop_last_epochs=2)
  np.testing.assert_array_equal(hyp.stages, [0, 1, 2, 3, 4])
  assert hyp.onset_s == 0.0
  np.testing.assert_array_equal(isruc_s3.read_isruc_hypnogram(txt, drop_last_epochs=0).stages, [0, 1, 2, 3, 4, 4, 0])
  with pytest.raises(errors.AnnotationError, match="7_1.txt: 7 epochs, not more than the 30"):
    isruc_s3.read_isruc_hypnogram(txt, drop_last_epochs=30)
  txt.write_text("0\n4\n2\n")  # 4 is not an AASM code.
  with pytest.raises(errors.AnnotationError, match="7_1.txt: line 2: unknown stage label '4'"):
    isruc_s3.read_isruc_hypnogram(txt, drop_last_epochs=0)


def test_find_records(tmp_path):
  records = isruc_s3.find_records(DUMMY, scorer=2)
  assert [r.record_id for r in records] == ["S3_01", "S3_02", "S3_03"]
  assert records[0].subject_id == "S3_01" and records[0].hypnogram_path.endswith("1_2.txt")
  assert records[0].psg_path.endswith("1.rec")
  # A converted 1.edf next to 1.rec does not replace the original.
  shutil.copytree(DUMMY, tmp_path / "m")
  shutil.copy(tmp_path / "m/1/1.rec", tmp_path / "m/1/1.edf")
  (tmp_path / "m/3/3_1.txt").unlink()
  assert isruc_s3.find_records(tmp_path / "m", scorer=2)[0].psg_path.endswith("1.rec")
  with pytest.raises(errors.AnnotationError, match="3.rec: no scorer-1 hypnogram 3_1.txt"):
    isruc_s3.find_records(tmp_path / "m", scorer=1)
  (tmp_path / "rar").mkdir()
  (tmp_path / "rar/1.rar").write_bytes(b"Rar!\x1a\x07\x00")
  with pytest.raises(errors.RecordingError, match="extract them first"):
    isruc_s3.find_records(tmp_path / "rar", scorer=1)


def test_builds_scorer1_from_dummy_data(tmp_path):
  builder, source = _build(tmp_path, scorer=1)
  assert set(source) == {"train"} and len(source["train"]) == 9  # 3 subjects x (4 - 1) epochs.
  exs = [source["train"][i] for i in range(9)]
  assert [(e["record_id"], int(e["epoch_index"]), int(e["stage"])) for e in exs] == [
      (b"S3_01", 0, 0), (b"S3_01", 1, 1), (b"S3_01", 2, 2),
      (b"S3_02", 0, 0), (b"S3_02", 1, 2), (b"S3_02", 2, 4),  # ISRUC code 5 -> REM = 4.
      (b"S3_03", 0, 2), (b"S3_03", 1, 3), (b"S3_03", 2, 3)]
  ex = exs[0]
  assert {m: x.shape for m, x in ex["signals"].items()} == {"eeg": (6, 3000), "eog": (2, 3000),
                                                            "emg": (1, 3000), "ecg": (1, 3000)}
  assert list(ex["channel_names"]["eeg"]) == [b"C3_A2", b"C4_A1", b"F3_A2", b"F4_A1", b"O1_A2", b"O2_A1"]
  assert list(ex["channel_names"]["eog"]) == [b"LOC_A2", b"ROC_A1"]
  assert np.isfinite(ex["positions"]["eeg"]).all() and np.isnan(ex["positions"]["ecg"]).all()
  # Microvolts and the right channel: the N3 epoch carries the 120-uV 2-Hz delta, wake does not.
  n3 = exs[7]["signals"]["eeg"][0]
  assert 110.0 < np.abs(n3).max() < 160.0 and np.abs(exs[6]["signals"]["eeg"][0]).max() < 70.0
  spectrum = np.abs(np.fft.rfft(n3))
  assert np.argmax(spectrum[1:]) + 1 == 2 * 30  # 2 Hz after 200 -> 100 Hz resampling.
  # Chin EMG (X1) loud in wake, quiet in REM; the 47/61 Hz content above 50 Hz is removed by the
  # anti-aliasing filter, so compare RMS rather than peaks.
  assert exs[3]["signals"]["emg"].std() > 5 * exs[5]["signals"]["emg"].std()
  report = builder.info.metadata["build_report"]["train"]
  assert report["n_kept"] == 9 and report["n_failed"] == 0


def test_builds_scorer2_with_other_labels(tmp_path):
  _, source = _build(tmp_path, scorer=2)
  stages = [int(source["train"][i]["stage"]) for i in range(9)]
  assert stages == [0, 2, 2, 0, 1, 4, 2, 2, 3]


def test_bad_night_is_skipped_and_named(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  # Subject 3 without its ECG channel X2.
  edf = edfio.read_edf(manual / "3/3.rec")
  edf.drop_signals(["X2"])
  (manual / "3/3.rec").unlink()
  edf.write(manual / "3/3.edf")
  (manual / "3/3.edf").rename(manual / "3/3.rec")
  records = isruc_s3.find_records(manual, scorer=1)
  cfg = isruc_s3.IsrucConfig(name="t", drop_last_epochs=1)
  with pytest.raises(errors.MissingChannelError, match=r"3\.rec.*'X2'"):
    isruc_s3.load_night(records[2], cfg)
  # Subject 2 truncated: validate_edf names the .rec.
  data = (manual / "2/2.rec").read_bytes()
  (manual / "2/2.rec").write_bytes(data[:-5000])
  with pytest.raises(errors.EDFTruncatedError, match=r"2\.rec"):
    isruc_s3.load_night(records[1], cfg)
  builder, source = _build(tmp_path, manual_dir=manual)
  assert len(source["train"]) == 3
  assert builder.info.metadata["build_report"]["train"]["failed_records"] == ["S3_02", "S3_03"]
