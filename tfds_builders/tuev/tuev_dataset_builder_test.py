"""Tests for the TUEV builder on native-format dummy data (TUH-style EDF + .rec files).

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow (and dill), absent here, so the builder
is built with download_and_prepare into a tmp dir and read back with `as_data_source`.
"""

import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import tuev

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
SPSW, GPED, PLED, EYEM, ARTF, BCKG = range(6)


def _build(tmp_path, manual_dir=DUMMY, config="128hz_5s"):
  builder = tuev.Tuev(config=config, data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder, builder.as_data_source()


def test_read_rec_numeric_and_named_classes(tmp_path):
  rec = tmp_path / "a.rec"
  rec.write_text("14,19.0,20.0,6\n\n3,5.0,6.0,spsw\n 2 , 7 , 8 , 2.0 \n")
  assert tuev.read_rec(rec) == [(14, 19.0, 20.0, BCKG), (3, 5.0, 6.0, SPSW), (2, 7.0, 8.0, GPED)]


@pytest.mark.parametrize("line,problem", [
    ("14,19.0,20.0,7", "unknown event class '7'"),
    ("14,19.0,20.0", "expected 'channel,start,stop,class'"),
    ("22,19.0,20.0,6", "outside the 22-channel TCP montage"),
    ("1,20.0,19.0,6", "bad interval"),
    ("1,abc,19.0,6", "non-numeric"),
])
def test_read_rec_rejects_bad_lines(tmp_path, line, problem):
  rec = tmp_path / "bad.rec"
  rec.write_text("0,1.0,2.0,6\n" + line + "\n")
  with pytest.raises(errors.AnnotationError, match=f"bad.rec: line 2: .*{problem}"):
    tuev.read_rec(rec)


def test_merge_events_rule():
  rows = [(0, 2.0, 3.0, BCKG), (1, 2.0, 3.0, BCKG),
          (14, 5.0, 6.0, SPSW), (16, 5.0, 6.0, BCKG), (15, 5.0, 6.0, BCKG), (17, 5.0, 6.0, BCKG),
          (3, 9.0, 10.0, ARTF), (4, 9.0, 10.0, EYEM),
          (3, 1.0, 2.0, PLED), (4, 1.0, 2.0, ARTF), (5, 1.0, 2.0, ARTF)]
  assert tuev.merge_events(rows) == [
      (1.0, 2.0, ARTF, (4, 5)),      # Most channels among event classes.
      (2.0, 3.0, BCKG, (0, 1)),      # Only background.
      (5.0, 6.0, SPSW, (14,)),       # One spike channel beats three background channels.
      (9.0, 10.0, EYEM, (4,)),       # Tie -> lower class number.
  ]


def test_parse_tuev_path():
  assert tuev.parse_tuev_path("v2.0.1/edf/train/aaaaaaar/aaaaaaar_00000001.edf") == (
      "train", "aaaaaaar", "aaaaaaar_00000001")
  # Flat layout: the subject comes from the file name.
  assert tuev.parse_tuev_path("tuev/eval/00000254_00000002.edf") == ("eval", "00000254", "00000254_00000002")
  with pytest.raises(errors.RecordingError, match="not under"):
    tuev.parse_tuev_path("x/aaaaaaar_00000001.edf")


def test_builds_from_dummy_data(tmp_path):
  builder, source = _build(tmp_path)
  # 3 training subjects -> 1 validation subject; 1 event of aaaaaaat lies beyond the recording.
  sizes = {k: len(v) for k, v in source.items()}
  assert sizes["test"] == 2 and sizes["train"] + sizes["validation"] == 3 + 2 + 1
  val_subjects = {source["validation"][i]["subject_id"] for i in range(sizes["validation"])}
  train_subjects = {source["train"][i]["subject_id"] for i in range(sizes["train"])}
  assert len(val_subjects) == 1 and len(train_subjects) == 2 and not val_subjects & train_subjects
  all_train = [source[s][i] for s in ("train", "validation") for i in range(sizes[s])]
  by_key = {(ex["record_id"].decode(), int(ex["event_index"])): ex for ex in all_train}
  assert {k: int(v["label"]) for k, v in by_key.items()} == {
      ("aaaaaaar_00000001", 0): BCKG, ("aaaaaaar_00000001", 1): SPSW, ("aaaaaaar_00000001", 2): EYEM,
      ("aaaaaaas_00000001", 0): GPED, ("aaaaaaas_00000001", 1): PLED, ("aaaaaaat_00000002", 0): ARTF}
  spike = by_key[("aaaaaaar_00000001", 1)]
  assert spike["signals"]["eeg"].shape == (19, 640)
  assert spike["start_s"] == pytest.approx(5.5 - 2.5)  # Centred on the 1-s event.
  assert spike["event_start_s"] == 5.0 and spike["event_stop_s"] == 6.0
  np.testing.assert_array_equal(np.flatnonzero(spike["event_channels"]), [14, 15])
  # The synthetic 150-uV spike sits in the window's centre second, in microvolts.
  centre = spike["signals"]["eeg"][:, 2 * 128:3 * 128]
  assert np.abs(centre).max() > 120.0 > np.abs(spike["signals"]["eeg"][:, :2 * 128]).max()
  first = by_key[("aaaaaaar_00000001", 0)]
  assert first["start_s"] == 0.0  # Event at 2-3 s: the window is shifted inside the recording.
  assert [source["test"][i]["label"] for i in range(2)] == [SPSW, BCKG]
  assert builder.info.features["label"].names == list(tuev.LABELS)


def test_session_without_rec_is_skipped(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  (manual / "edf/train/aaaaaaar/aaaaaaar_00000001.rec").unlink()
  builder, source = _build(tmp_path, manual)
  assert len(source["test"]) == 2
  assert len(source["train"]) + len(source["validation"]) == 2 + 1
  reports = builder.info.metadata["build_report"]
  assert sum(r["n_failed"] for r in reports.values()) == 1
  assert sum(r["n_events_skipped"] for r in reports.values()) == 1  # The event beyond the recording.


def test_tree_without_eval_has_no_test_split(tmp_path):
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY / "edf/train", manual / "edf/train")
  builder, source = _build(tmp_path, manual)
  assert set(source) == {"train", "validation"}
