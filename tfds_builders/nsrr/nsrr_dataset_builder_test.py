"""Builds every NSRR config from NSRR-layout dummy data (make_dummy_data.py: EDF + NSRR XML).

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill (not installed); these tests do
its checks (split sizes, features, keys) with `download_and_prepare` + `as_data_source`.
"""

import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data import pipeline
from tfds_builders.nsrr import make_dummy_data
from tfds_builders.nsrr import nsrr_dataset_builder as nsrr

COHORT_DIR = {"shhs1": "shhs", "shhs2": "shhs", "mesa": "mesa", "mros": "mros", "cfs": "cfs"}


@pytest.fixture(scope="module")
def dummy(tmp_path_factory):
  root = tmp_path_factory.mktemp("nsrr")
  return root, make_dummy_data.write(root / "manual")


def test_configs_and_instructions():
  assert nsrr.Builder.name == "nsrr"
  assert [c.name for c in nsrr.Builder.BUILDER_CONFIGS] == ["shhs1", "shhs2", "mesa", "mros", "cfs"]
  assert "data-use agreement" in nsrr.Builder.MANUAL_DOWNLOAD_INSTRUCTIONS
  for cfg in nsrr.Builder.BUILDER_CONFIGS:
    assert cfg.spec["hypnogram_format"] == "nsrr_xml" and cfg.spec_sha256


@pytest.mark.parametrize("config", ["shhs1", "shhs2", "mesa", "mros", "cfs"])
def test_builds_from_nsrr_layout(dummy, tmp_path, config):
  root, written = dummy
  builder = nsrr.Builder(config=config, data_dir=tmp_path / "data")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=root / "manual" / COHORT_DIR[config]))
  report = builder.info.metadata["build_report"]
  assert all(rep["n_failed"] == 0 for rep in report.values()), report
  recs = sorted(r for rep in report.values() for r in rep["recordings"])
  assert recs == sorted(written[config])
  # Subject ids from the NSRR file names; subject-wise splits.
  subjects = [nsrr.psg_folder.find_records(root / "manual" / COHORT_DIR[config], builder.builder_config.spec)[i].subject_id
              for i in range(3)]
  split_of = pipeline.subject_split(subjects)
  names = builder.info.features["stage"].names
  for split in builder.info.splits:
    ds = builder.as_data_source(split=split)
    counts = dict.fromkeys(names, 0)
    for i in range(len(ds)):
      ex = ds[i]
      assert split_of[ex["subject_id"].decode()] == split
      counts[names[int(ex["stage"])]] += 1
      assert ex["signals"]["eeg"].shape[-1] == 3000  # 100 Hz
    n_nights = len({ds[i]["record_id"] for i in range(len(ds))})
    assert counts == {k: v * n_nights for k, v in make_dummy_data.EXPECTED_STAGES.items()}
  if config == "shhs1":  # the site variant "EEG2" is typed; the night without AIRFLOW is masked
    missing = {r: v["missing_channels"] for rep in report.values() for r, v in rep["recordings"].items()}
    assert missing == {"shhs1-200001": [], "shhs1-200002": ["AIRFLOW"], "shhs1-200003": []}
  assert builder.info.metadata["units"]["ecg"] == "uV"


def test_missing_manual_dir_names_the_agreement(tmp_path):
  builder = nsrr.Builder(config="mesa", data_dir=tmp_path / "data")
  with pytest.raises(errors.RecordingError, match="data-use agreement"):
    builder.download_and_prepare(download_dir=tmp_path / "dl")
