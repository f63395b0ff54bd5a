"""Builds sleep_edf from dummy_data/ (native EDF + EDF+ hypnograms) into tmp and reads it back.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill, which the project does not
install; these tests do its checks (split sizes, features, keys) and more with
`download_and_prepare` + `as_data_source`. Dummy data: tfds_builders/sleep_edf/make_dummy_data.py.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data import pipeline
from tfds_builders import _common
from tfds_builders.sleep_edf import sleep_edf_dataset_builder as sleep_edf

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
KEPT_PER_NIGHT = 14  # 16 epochs in the signal, minus 1 "Movement time" and 1 "Sleep stage ?".


def _build(root: pathlib.Path, config):
  builder = sleep_edf.Builder(config=config, data_dir=root / "data")
  builder.download_and_prepare(
      download_dir=root / "dl", download_config=tfds.download.DownloadConfig(manual_dir=DUMMY))
  return builder


def _expected_sizes(nights_per_subject: dict[str, int], failed=()):
  split = pipeline.subject_split(list(nights_per_subject))
  sizes = {}
  for subject, n in nights_per_subject.items():
    if subject in failed:
      n -= 1
    sizes[split[subject]] = sizes.get(split[subject], 0) + KEPT_PER_NIGHT * n
  return split, sizes


@pytest.fixture(scope="module")
def cassette(tmp_path_factory):
  return _build(tmp_path_factory.mktemp("sc"), "sleep_cassette")


def test_registered_and_configs():
  assert sleep_edf.Builder.name == "sleep_edf"
  names = [c.name for c in sleep_edf.Builder.BUILDER_CONFIGS]
  assert names == ["sleep_cassette", "telemetry", "sleep_cassette_128hz"]
  assert "resp" not in sleep_edf.ST_MONTAGE.modalities
  assert "resp" in sleep_edf.SC_MONTAGE.modalities


def test_cassette_split_sizes_and_failed_recording(cassette):
  # SC4031E0 is truncated in the dummy data: logged, skipped, reported; its subject still
  # takes its place in the split rule (the split is decided from the file list).
  split, sizes = _expected_sizes({"SC400": 1, "SC401": 1, "SC402": 2, "SC403": 1},
                                 failed=("SC403",))
  got = {k: v.num_examples for k, v in cassette.info.splits.items()}
  assert got == {k: v for k, v in sizes.items() if v}
  # One shard per night (streamed; the failed night's shard is empty).
  nights = {"SC400": 1, "SC401": 1, "SC402": 2, "SC403": 1}
  for name, info in cassette.info.splits.items():
    assert info.num_shards == sum(n for s, n in nights.items() if split[s] == name)
  report = cassette.info.metadata["build_report"]
  failed_split = split["SC403"]
  assert report[failed_split]["failed_records"] == ["SC4031E0"]
  assert report[failed_split]["n_failed"] == 1
  assert "truncated" in report[failed_split]["failures"][0]
  for name, rep in report.items():
    assert rep["n_kept"] == got.get(name, 0)
    for entry in rep["recordings"].values():
      assert entry["dropped"]["movement"] == 1 and entry["dropped"]["unscored"] == 1
      assert entry["dropped"]["beyond_signal"] == 20  # the "?" annotation runs past the PSG


def test_cassette_features_and_order(cassette):
  seen_subjects = {}
  for split_name in cassette.info.splits:
    ds = cassette.as_data_source(split=split_name)
    previous = None
    for i in range(len(ds)):
      ex = ds[i]
      assert ex["signals"]["eeg"].shape == (2, 3000) and ex["signals"]["eeg"].dtype == np.float32
      assert ex["signals"]["resp"].shape == (1, 3000)
      assert list(ex["channel_names"]["eeg"]) == [b"EEG Fpz-Cz", b"EEG Pz-Oz"]
      assert list(ex["channel_names"]["emg"]) == [b"EMG submental"]
      assert np.isfinite(ex["positions"]["eeg"]).all()
      assert np.isnan(ex["positions"]["emg"]).all()
      assert 0 <= ex["stage"] <= 4
      rid, sid = ex["record_id"].decode(), ex["subject_id"].decode()
      assert sid == rid[:5]
      seen_subjects.setdefault(sid, set()).add(split_name)
      # Contiguous, in order within a recording (disable_shuffling).
      if previous is not None and previous[0] == rid:
        assert ex["epoch_index"] > previous[1]
      previous = (rid, int(ex["epoch_index"]))
    # Dummy hypnogram: W W W 1 1 2 2 2 3 4 M R R W W ? -> AASM.
    first = [int(ds[i]["stage"]) for i in range(KEPT_PER_NIGHT)]
    assert first == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 0, 0]
    assert [int(ds[i]["epoch_index"]) for i in range(KEPT_PER_NIGHT)] == \
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]
  assert all(len(s) == 1 for s in seen_subjects.values())  # subject-wise


def test_signals_are_microvolts(cassette):
  # The dummy Fpz-Cz noise has sd 28 uV (make_dummy_data.py), resampling 100 -> 100 Hz keeps it.
  ds = cassette.as_data_source(split="train")
  x = np.stack([ds[i]["signals"]["eeg"][0] for i in range(len(ds))])
  assert 20 < x.std() < 36


def test_pipeline_reads_the_build(cassette):
  ds = cassette.as_data_source(split="train")
  batch = next(iter(pipeline.make_dataset(ds, batch_size=2, window_epochs=3, num_epochs=1)))
  assert batch["signals"]["eeg"].shape == (2, 2, 9000)
  assert batch["mask"]["resp"].all()
  assert not batch["position_mask"]["emg"].any()


def test_telemetry_has_no_resp(tmp_path):
  builder = _build(tmp_path, "telemetry")
  _, sizes = _expected_sizes({"ST701": 1, "ST702": 1})
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == sizes
  ex = builder.as_data_source(split="train")[0]
  assert sorted(ex["signals"]) == ["eeg", "emg", "eog"]
  assert ex["record_id"].decode().startswith("ST7")


def test_wake_trimming(tmp_path):
  config = sleep_edf.SleepEdfConfig(name="trim1", study="SC", trim_wake_min=1.0)
  builder = _build(tmp_path, config)
  report = builder.info.metadata["build_report"]
  for rep in report.values():
    for entry in rep["recordings"].values():
      # First sleep epoch 3, last 12; 2 epochs of margin keep 1..14: epoch 0 and the "?"
      # epoch 15 are outside the window.
      assert entry["dropped"]["outside_trimmed_window"] == 2
      assert entry["n_kept"] == 13
  ds = builder.as_data_source(split="train")
  assert int(ds[0]["epoch_index"]) == 1


def test_sleepfm_config_128hz_zscored(tmp_path):
  builder = _build(tmp_path, "sleep_cassette_128hz")
  ds = builder.as_data_source(split="train")
  assert ds[0]["signals"]["eeg"].shape == (2, 3840)
  per_record = {}
  for i in range(len(ds)):
    per_record.setdefault(ds[i]["record_id"], []).append(ds[i]["signals"]["eeg"])
  for xs in per_record.values():
    x = np.stack(xs)  # (N, C, T)
    np.testing.assert_allclose(x.mean(axis=(0, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(x.std(axis=(0, 2)), 1.0, atol=1e-2)


def test_manual_records_pairing(tmp_path):
  for name in ("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf", "SC4002E0-PSG.edf",
               "SC4002EH-Hypnogram.edf", "ST7011J0-PSG.edf", "ST7011JP-Hypnogram.edf",
               "notes.edf"):
    (tmp_path / name).write_bytes(b"")
  records = sleep_edf.manual_records(tmp_path, "SC")
  assert [(r.record_id, r.subject_id) for r in records] == [("SC4001E0", "SC400"),
                                                            ("SC4002E0", "SC400")]
  assert records[1].hypnogram_path.endswith("SC4002EH-Hypnogram.edf")
  assert [r.record_id for r in sleep_edf.manual_records(tmp_path, "ST")] == ["ST7011J0"]
  (tmp_path / "SC4011E0-PSG.edf").write_bytes(b"")
  with pytest.raises(errors.AnnotationError, match="SC4011E0-PSG.edf.*no hypnogram"):
    sleep_edf.manual_records(tmp_path, "SC")


def test_checksums_list_every_physionet_file():
  sums = _common.read_commented_sha256(DUMMY.parent / "checksums.tsv")
  assert len(sums) == 394  # 197 PSG + 197 hypnograms
  url, sha = sums["SC4001EC-Hypnogram.edf"]
  assert url == "https://physionet.org/files/sleep-edfx/1.0.0/sleep-cassette/SC4001EC-Hypnogram.edf"
  assert len(sha) == 64
  psgs = [n for n in sums if n.endswith("-PSG.edf")]
  assert len(psgs) == 197 and all(sleep_edf._NAME.match(n) for n in sums)


def test_manual_dir_without_the_study_is_an_error(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  for name in ("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf"):
    (manual / name).write_bytes((DUMMY / name).read_bytes())
  builder = sleep_edf.Builder(config="telemetry", data_dir=tmp_path / "data")
  with pytest.raises(errors.RecordingError, match="manual_dir has no ST nights"):
    builder.download_and_prepare(
        download_dir=tmp_path / "dl", download_config=tfds.download.DownloadConfig(manual_dir=manual))
