"""Builds dreams from dummy_data/ (synthetic bytes in the native DREAMS format) and reads it back.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill (not installed); these tests do
its checks with `download_and_prepare` + `as_data_source`. Dummy data: make_dummy_data.py.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data import pipeline
from tfds_builders.dreams import dreams_dataset_builder as dreams

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
STAGES = [0, 1, 2, 3]  # the dummy 5-s R&K hypnogram after the 30-s majority vote


def _build(root, config, manual_dir):
  builder = dreams.Builder(config=config, data_dir=root / "data")
  builder.download_and_prepare(
      download_dir=root / "dl", download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def test_registered_and_configs():
  assert dreams.Builder.name == "dreams"
  assert [c.name for c in dreams.Builder.BUILDER_CONFIGS] == ["spindles_eeg", "excerpt3_psg"]


@pytest.mark.parametrize("manual", ["folder", "archive"])
def test_spindles_eeg(tmp_path, manual):
  manual_dir = DUMMY if manual == "folder" else DUMMY / "dreams_spindles.tar.xz"
  builder = _build(tmp_path, "spindles_eeg", manual_dir)
  subjects = [f"dreams_s{n}" for n in (1, 2, 3, 4)]
  split = pipeline.subject_split(subjects)
  expected = {}
  for s in subjects[:3]:  # excerpt 4 has a non-numeric sample: skipped
    expected[split[s]] = expected.get(split[s], 0) + 4
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == expected
  report = builder.info.metadata["build_report"]
  assert report[split["dreams_s4"]]["failed_records"] == ["excerpt4"]
  assert "excerpt4.txt" in report[split["dreams_s4"]]["failures"][0]
  by_record = {}
  for name in expected:
    ds = builder.as_data_source(split=name)
    for i in range(len(ds)):
      ex = ds[i]
      by_record.setdefault(ex["record_id"].decode(), []).append(ex)
  assert sorted(by_record) == ["excerpt1", "excerpt2", "excerpt3"]
  for rid, exs in by_record.items():
    assert [int(e["stage"]) for e in exs] == STAGES
    assert [int(e["epoch_index"]) for e in exs] == [0, 1, 2, 3]
    label = b"CZ-A1" if rid == "excerpt2" else b"C3-A1"
    assert all(list(e["channel_names"]["eeg"]) == [label] for e in exs)
    assert exs[0]["signals"]["eeg"].shape == (1, 3000)
    # The dummy noise has sd 25 uV at 100/200/50 Hz; resampling to 100 Hz keeps most of it.
    sd = np.stack([e["signals"]["eeg"] for e in exs]).std()
    assert 10 < sd < 30, (rid, sd)
  # C3 is left of the midline, Cz on it: positions follow the real derivation.
  x_c3 = by_record["excerpt1"][0]["positions"]["eeg"][0, 0]
  x_cz = by_record["excerpt2"][0]["positions"]["eeg"][0, 0]
  assert x_c3 < x_cz


def test_excerpt3_psg(tmp_path):
  builder = _build(tmp_path, "excerpt3_psg", DUMMY)
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 4}
  ds = builder.as_data_source(split="train")
  ex = ds[0]
  assert {m: ex["signals"][m].shape for m in ex["signals"]} == {
      "eeg": (3, 3000), "eog": (2, 3000), "emg": (1, 3000), "ecg": (1, 3000), "resp": (3, 3000)}
  assert list(ex["channel_names"]["eeg"]) == [b"FP1-A1", b"C3-A1", b"O1-A1"]
  assert [int(ds[i]["stage"]) for i in range(4)] == STAGES


def test_read_text_excerpt_errors(tmp_path):
  bad = tmp_path / "excerpt9.txt"
  bad.write_text("C3-A1\n1\n2\n")
  with pytest.raises(errors.RecordingError, match="excerpt9.txt.*header"):
    dreams.read_text_excerpt(bad, 100.0)
  bad.write_text("[C3-A1]\n" + "1.0\n" * 100)
  with pytest.raises(errors.RecordingError, match="excerpt9.txt.*less than one 30-s epoch"):
    dreams.read_text_excerpt(bad, 100.0)
  raw = dreams.read_text_excerpt(DUMMY / "dreams_spindles" / "excerpt1.txt", 100.0)
  assert raw.ch_names == ["C3-A1"] and raw.n_times == 12000
  first = float((DUMMY / "dreams_spindles" / "excerpt1.txt").read_text().split("\n")[1])
  np.testing.assert_allclose(raw.get_data()[0, 0] * 1e6, first, rtol=1e-9)


def test_missing_manual_dir_is_a_clear_error(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "readme.txt").write_text("nothing")
  with pytest.raises(errors.RecordingError, match="no DREAMS files"):
    _build(tmp_path, "spindles_eeg", empty)
