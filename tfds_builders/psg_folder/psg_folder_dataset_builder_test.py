"""Builds the psg_folder clinic folder (make_dummy_data.py, written into tmp) and reads it back.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill (not installed); these tests do
its checks with `download_and_prepare` + `as_data_source`, as the other PSG builders' tests.
"""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data import pipeline
from tfds_builders.psg_folder import make_dummy_data
from tfds_builders.psg_folder import psg_folder_dataset_builder as psg_folder
from tfds_builders.psg_folder import spec as spec_lib


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("psg_folder")
  expected = make_dummy_data.write_folder(root / "manual")
  builder = psg_folder.builder(root / "manual" / "spec.json", root / "data")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=root / "manual"))
  return builder, expected, root


def _all(builder):
  return {split: builder.as_data_source(split=split) for split in builder.info.splits}


def test_spec_errors_name_the_file_and_key(tmp_path):
  good = dict(make_dummy_data.SPEC)
  assert spec_lib.validate(good)["sfreq"] == 32.0
  assert spec_lib.validate({**good, "stage_mapping": {"0": "W", "5": "REM", "9": -1}})["stage_mapping"]["5"] == "REM"
  for broken, match in (({k: v for k, v in good.items() if k != "montage"}, "missing key"),
                        ({**good, "subject": "PSG_"}, "needs a group"),
                        ({**good, "hypnogram_format": "xls"}, "hypnogram_format"),
                        ({**good, "montage": {"brain": ["C4"]}}, "montage"),
                        ({**good, "colour": 1}, "unknown key"),
                        ({**good, "stage_mapping": {"5": "deep"}}, r"spec\.json: dataset spec: stage_mapping value 'deep'")):
    with pytest.raises(errors.RecordingError, match=match):
      spec_lib.validate(broken, tmp_path / "spec.json")
  (tmp_path / "bad.json").write_text("{not json")
  with pytest.raises(errors.RecordingError, match="bad.json: dataset spec is not valid JSON"):
    spec_lib.load(tmp_path / "bad.json")
  # The hash ignores key order and whitespace.
  assert spec_lib.sha256(good) == spec_lib.sha256(dict(reversed(list(good.items()))))


def test_find_records_pairs_hypnograms_and_subjects(built):
  _, _, root = built
  spec = spec_lib.load(root / "manual" / "spec.json")
  records = psg_folder.find_records(root / "manual", spec)
  assert [r.record_id for r in records] == ["PSG_0001_N1", "PSG_0002_N1", "PSG_0003_N1",
                                            "PSG_0004_N1"]
  assert [r.subject_id for r in records] == ["0001", "0002", "0003", "0004"]
  # "**/PSG_*.edf" also matches no hypnogram: PSG_0003_N1-Hypnogram.edf is its PSG's hypnogram.
  assert records[2].hypnogram_path.endswith("PSG_0003_N1-Hypnogram.edf")
  assert records[1].hypnogram_path.endswith("PSG_0002_N1-nsrr.xml")
  with pytest.raises(errors.RecordingError, match="no PSG file matching"):
    psg_folder.find_records(root, {**spec, "recordings": "*.bdf"})
  with pytest.raises(errors.RecordingError, match="does not exist"):
    psg_folder.find_records(root / "nowhere", spec)
  with pytest.raises(errors.RecordingError, match=r"PSG_0001_N1.edf: file stem .* no subject id"):
    psg_folder.find_records(root / "manual", {**spec, "subject": r"pat(\d+)"})


def test_build_skips_the_truncated_recording_and_keeps_the_others(built):
  builder, expected, _ = built
  report = builder.info.metadata["build_report"]
  failed = [f for rep in report.values() for f in rep["failures"]]
  assert len(failed) == 1 and "PSG_0004_N1.edf: truncated" in failed[0]
  built_ids = sorted({r for rep in report.values() for r in rep["recordings"]})
  assert built_ids == sorted(expected)
  # Subject-wise: every recording's split is the one subject_split gives its subject.
  split_of = pipeline.subject_split(["0001", "0002", "0003", "0004"])
  for split, ds in _all(builder).items():
    subjects = {ds[i]["subject_id"].decode() for i in range(len(ds))}
    assert all(split_of[s] == split for s in subjects)


def test_masked_channels_and_report(built):
  builder, expected, _ = built
  report = builder.info.metadata["build_report"]
  missing = {r: v["missing_channels"] for rep in report.values() for r, v in rep["recordings"].items()}
  assert missing == {r: e["missing"] for r, e in expected.items()}
  untyped = set().union(*(rep.get("untyped_labels", []) for rep in report.values()))
  assert "DC7" in untyped
  for ds in _all(builder).values():
    for i in (0, len(ds) - 1):
      ex = ds[i]
      rec = ex["record_id"].decode()
      absent = [n.decode() for m in ex["channel_names"] for n, ok in
                zip(ex["channel_names"][m], ex["channel_mask"][m]) if not ok]
      assert absent == expected[rec]["missing"]
      for m in ex["signals"]:
        assert not ex["signals"][m][~ex["channel_mask"][m]].any()
        assert ex["signals"][m][ex["channel_mask"][m]].std() > 0


def test_stages_per_recording_equal_the_hypnograms(built):
  builder, expected, _ = built
  names = builder.info.features["stage"].names
  assert names == ["W", "N1", "N2", "N3", "REM"]
  got = {}
  for ds in _all(builder).values():
    for i in range(len(ds)):
      ex = ds[i]
      counts = got.setdefault(ex["record_id"].decode(), dict.fromkeys(names, 0))
      counts[names[int(ex["stage"])]] += 1
  assert got == {r: e["stages"] for r, e in expected.items()}


def test_metadata_describes_the_dataset(built):
  builder, _, root = built
  meta = builder.info.metadata
  spec = json.loads((root / "manual" / "spec.json").read_text())
  assert meta["spec"]["montage"] == spec["montage"]
  assert meta["spec_sha256"] == spec_lib.sha256(spec_lib.validate(spec))
  assert meta["sfreq"] == 32.0 and meta["units"]["eeg"] == "uV"
  assert [c["name"] for c in meta["montage"]["eeg"]] == ["C4-M1", "C3-M2", "O2-M1"]
  assert meta["stage_codes"]["REM"] == 4


def test_pipeline_reads_the_channel_mask(built):
  builder, expected, _ = built
  for split, ds in _all(builder).items():
    batch = next(pipeline.iterate_windows(ds, batch_size=2, window_epochs=2))
    for b, rec in enumerate(batch["record_id"]):
      n_missing = len(expected[rec]["missing"])
      n_channels = sum(batch["mask"][m][b].sum() for m in batch["mask"])
      assert n_channels == 9 - n_missing
      assert not batch["position_mask"]["eeg"][b][~batch["mask"]["eeg"][b]].any()
    # The fast decoder and TFDS's own decoding agree on the mask.
    decoder = pipeline._EpochDecoder.for_source(ds)
    assert decoder is not None
    fast = decoder(0)
    for m in fast["channel_mask"]:
      np.testing.assert_array_equal(fast["channel_mask"][m], ds[0]["channel_mask"][m])
    assert fast["stage"] == int(ds[0]["stage"])

