"""Builds mitdb from dummy_data/ (WFDB records written by make_dummy_data.py) into a tmp dir.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill, which the project does not
install; these tests run `download_and_prepare` with `manual_dir=dummy_data` and read the
result back with `tfds.data_source`.
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders.mitdb import aami
from tfds_builders.mitdb import mitdb_dataset_builder as mitdb

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"


@pytest.fixture(scope="module")
def beat(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("mitdb")
  builder = mitdb.Builder(config="beat", data_dir=tmp / "data")
  builder.download_and_prepare(download_dir=tmp / "dl",
                               download_config=tfds.download.DownloadConfig(manual_dir=DUMMY))
  return builder


def test_protocol_constants():
  assert len(aami.DS1) == len(aami.DS2) == 22
  assert not set(aami.DS1) & set(aami.DS2)
  assert set(mitdb.VALIDATION_RECORDS) <= set(aami.DS1)
  assert mitdb.record_split("102") is None and mitdb.record_split("232") == "test"
  assert mitdb.subject_of("202") == mitdb.subject_of("201") == "201"


def test_splits_exclude_paced_and_skip_non_beats(beat):
  # 100: 9 beats (+ and ~ skipped); 101: 9 beats (| skipped); 124: 5 beats; 102 (paced) excluded.
  assert {k: v.num_examples for k, v in beat.info.splits.items()} == {"train": 9, "validation": 5, "test": 9}
  test = beat.as_data_source(split="test")
  assert "".join(ex["symbol"].decode() for ex in test) == "NNANVFNQN"
  assert [aami.AAMI_CLASSES[ex["label"]] for ex in test] == list("NNSNVFNQN")
  train = beat.as_data_source(split="train")
  assert [aami.AAMI_CLASSES[ex["label"]] for ex in train] == list("NNNSSVNNS")
  assert {ex["record_id"] for ex in beat.as_data_source(split="validation")} == {b"124"}


def test_windows_leads_units(beat):
  train = beat.as_data_source(split="train")
  ex = train[0]
  x = ex["signals"]["ecg"]
  assert x.shape == (2, 252) and x.dtype == np.float32
  # 101 stores V1 first: the builder puts MLII first. R peak at index pre = 90, 1 mV = 1000 uV.
  assert [n.decode() for n in ex["channel_names"]["ecg"]] == ["MLII", "V1"]
  assert int(np.argmax(x[0])) == 90
  np.testing.assert_allclose(x[:, 90], [1000.0, 500.0], rtol=0.01)
  assert np.isnan(ex["positions"]["ecg"]).all()
  assert ex["r_peak"] == 200 and ex["beat_index"] == 0 and ex["n_valid"] == 252
  assert np.isnan(ex["rr_prev_s"]) and ex["rr_next_s"] == pytest.approx(400 / 360)


def test_edge_beats_are_zero_padded(beat):
  test = beat.as_data_source(split="test")
  first, last = test[0], test[len(test) - 1]
  assert first["r_peak"] == 10 and first["n_valid"] == 252 - 80
  np.testing.assert_array_equal(first["signals"]["ecg"][:, :80], 0.0)
  assert last["r_peak"] == 3580 and last["n_valid"] == 90 + 20
  np.testing.assert_array_equal(last["signals"]["ecg"][:, 110:], 0.0)
  report = beat.info.metadata["build_report"]["test"]
  assert report["n_examples"] == 9 and report["n_zero_padded_beats"] == 2 and report["n_failed"] == 0


def test_record_subset_and_context_config(tmp_path):
  config = mitdb.MitdbConfig(name="context_subset", pre_s=2.0, post_s=2.0, records=("100", "102"))
  builder = mitdb.Builder(config=config, data_dir=tmp_path / "data")
  builder.download_and_prepare(download_dir=tmp_path / "dl",
                               download_config=tfds.download.DownloadConfig(manual_dir=DUMMY))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"test": 9}
  ex = builder.as_data_source(split="test")[2]  # Beat at 800; neighbours at 400 and 1200.
  x = ex["signals"]["ecg"]
  assert x.shape == (2, 1440) and ex["r_peak"] == 800
  # The context window holds the beat at its centre (index 720) and both neighbouring beats.
  np.testing.assert_allclose(x[0, [320, 720, 1120]], 1000.0, rtol=0.01)
  assert x[0, 520] < 1.0


def test_aami_beats_and_windows_known_answer():
  samples, labels, symbols = aami.aami_beats(["N", "+", "V", "~", "/", "A"], np.array([5, 6, 10, 11, 15, 19]))
  np.testing.assert_array_equal(samples, [5, 10, 15, 19])
  assert [aami.AAMI_CLASSES[l] for l in labels] == ["N", "V", "Q", "S"] and list(symbols) == ["N", "V", "/", "A"]
  assert aami.aami_counts(labels) == {"N": 1, "S": 1, "V": 1, "F": 0, "Q": 1}
  sig = np.arange(20, dtype=np.float32)[None]
  w, n_valid = aami.beat_windows(sig, np.array([1, 10, 19]), pre=2, post=3)
  np.testing.assert_array_equal(w[:, 0], [[0, 0, 1, 2, 3], [8, 9, 10, 11, 12], [17, 18, 19, 0, 0]])
  np.testing.assert_array_equal(n_valid, [4, 5, 3])


def test_unreadable_record_raises_naming_the_file(tmp_path):
  (tmp_path / "100.hea").write_text("this is not a header\n")
  with pytest.raises(errors.RecordingError, match="100.hea"):
    mitdb.read_record(tmp_path / "100")


def test_checksums_cover_all_48_records():
  urls = {mitdb.URL_TEMPLATE.format(record=r, ext=e) for r in mitdb.RECORDS for e in mitdb.EXTENSIONS}
  assert len(mitdb.RECORDS) == 48 and set(mitdb.Builder.url_infos) == urls


def test_download_branch_without_manual_dir(tmp_path, monkeypatch):
  # No network in tests: the download manager hands back the dummy files under TFDS-style
  # names, and the builder must lay them out under their PhysioNet names for wfdb.
  requested = {}

  def fake_download(self, url_or_urls):
    requested.update(url_or_urls)
    out = {}
    for name, url in url_or_urls.items():
      dest = tmp_path / "fake_dl" / ("physionet.org_" + url.rsplit("/", 1)[1] + "_sha")
      dest.parent.mkdir(exist_ok=True)
      dest.write_bytes((DUMMY / url.rsplit("/", 1)[1]).read_bytes())
      out[name] = dest
    return out

  monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
  config = mitdb.MitdbConfig(name="beat_download", records=("100", "124"))
  builder = mitdb.Builder(config=config, data_dir=tmp_path / "data")
  builder.download_and_prepare(download_dir=tmp_path / "dl")
  assert sorted(requested.values()) == sorted(
      f"https://physionet.org/files/mitdb/1.0.0/{r}.{e}" for r in ("100", "124") for e in ("hea", "dat", "atr"))
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"validation": 5, "test": 9}
