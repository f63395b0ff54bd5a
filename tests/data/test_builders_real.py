"""The PSG builders on the project's real recordings ($SLEEPJAX_TEST_DATA; skipped when absent)."""

import collections
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import pipeline
from tfds_builders import _common
from tfds_builders.dreams import dreams_dataset_builder as dreams
from tfds_builders.sleep_edf import sleep_edf_dataset_builder as sleep_edf


def _build(builder_cls, config, root: pathlib.Path, manual_dir):
  builder = builder_cls(config=config, data_dir=root / "data")
  builder.download_and_prepare(
      download_dir=root / "dl",
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def test_sleep_edf_sc4001_excerpt(shared_data, tmp_path):
  src = shared_data / "sleep_edf_sc4001_excerpt"
  manual = tmp_path / "manual"
  manual.mkdir()
  shutil.copy(src / "short_psg.edf", manual / "SC4001E0-PSG.edf")
  shutil.copy(src / "SC4001EC-Hypnogram.edf", manual / "SC4001EC-Hypnogram.edf")
  # The hypnogram is PhysioNet's own file: its SHA-256 is the one checksums.tsv lists.
  sums = _common.read_commented_sha256(pathlib.Path(sleep_edf.__file__).parent / "checksums.tsv")
  assert _common.sha256_of(manual / "SC4001EC-Hypnogram.edf") == sums["SC4001EC-Hypnogram.edf"][1]

  builder = _build(sleep_edf.Builder, "sleep_cassette", tmp_path, manual)
  # One subject -> everything in train (subject_split's small-set rule).
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 10}
  ds = builder.as_data_source(split="train")
  assert [int(ds[i]["stage"]) for i in range(10)] == [0] * 10  # before lights-off: wake
  assert [int(ds[i]["epoch_index"]) for i in range(10)] == list(range(10))
  ex = ds[0]
  assert ex["record_id"] == b"SC4001E0" and ex["subject_id"] == b"SC400"
  assert list(ex["channel_names"]["eeg"]) == [b"EEG Fpz-Cz", b"EEG Pz-Oz"]
  assert list(ex["channel_names"]["eog"]) == [b"EOG horizontal"]
  assert list(ex["channel_names"]["emg"]) == [b"EMG submental"]
  assert list(ex["channel_names"]["resp"]) == [b"Resp oro-nasal"]
  for m in ("eeg", "eog", "emg", "resp"):
    assert ex["signals"][m].shape[-1] == 3000  # 100 Hz (EMG/resp upsampled from 1 Hz)
  fpz = np.stack([ds[i]["signals"]["eeg"][0] for i in range(10)])
  assert 15 < fpz.std() < 45  # README: Fpz-Cz sd about 28 uV
  report = builder.info.metadata["build_report"]["train"]
  entry = report["recordings"]["SC4001E0"]
  assert entry["n_kept"] == 10
  # The 22-h hypnogram runs past the 300-s excerpt: counted, not an error; no sleep inside the
  # signal, so wake trimming keeps the recording whole.
  assert entry["dropped"]["beyond_signal"] == entry["n_epochs_total"] - 10
  assert entry["dropped"]["outside_trimmed_window"] == 0
  assert any("not trimmed" in w for w in entry["warnings"])


@pytest.fixture(scope="module")
def dreams_archive(shared_data):
  return shared_data / "dreams_spindles" / "dreams_spindles_8excerpts.tar.xz"


def test_dreams_spindles_from_archive(dreams_archive, tmp_path):
  builder = _build(dreams.Builder, "spindles_eeg", tmp_path, dreams_archive)
  sizes = {k: v.num_examples for k, v in builder.info.splits.items()}
  assert sum(sizes.values()) == 8 * 60  # 8 excerpts x 30 min, all scored
  report = builder.info.metadata["build_report"]
  assert sum(r["n_recordings"] for r in report.values()) == 8
  assert sum(r["n_failed"] for r in report.values()) == 0
  stages = collections.Counter()
  rem_records = set()
  names = set()
  for split in sizes:
    ds = builder.as_data_source(split=split)
    for i in range(len(ds)):
      ex = ds[i]
      stages[int(ex["stage"])] += 1
      if ex["stage"] == 4:
        rem_records.add(ex["record_id"])
      names.add(ex["channel_names"]["eeg"][0])
      assert ex["signals"]["eeg"].shape == (1, 3000)
      assert np.isfinite(ex["positions"]["eeg"]).all()
  assert names == {b"C3-A1", b"CZ-A1"}
  assert stages[2] > 0.4 * sum(stages.values())  # README: mostly S2
  assert rem_records == {b"excerpt7"}  # README: REM only in excerpt 7


def test_dreams_excerpt3_psg(dreams_archive, tmp_path):
  builder = _build(dreams.Builder, "excerpt3_psg", tmp_path, dreams_archive)
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 60}
  ex = builder.as_data_source(split="train")[0]
  assert sorted(ex["signals"]) == ["ecg", "eeg", "emg", "eog", "resp"]
  assert ex["signals"]["eeg"].shape == (3, 3000)
  assert list(ex["channel_names"]["resp"]) == [b"NAF1", b"VTH", b"VAB"]
  batch = next(pipeline.iterate_windows(builder.as_data_source(split="train"), batch_size=4,
                                        window_epochs=10))
  assert batch["signals"]["eeg"].shape == (4, 3, 30000)
