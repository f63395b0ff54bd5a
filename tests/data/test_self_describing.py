"""Issue 10 item 6: a PSG build describes itself (ClassLabel stages, rate, units, montage, stage codes).

sleep_edf's dummy data (tfds_builders/sleep_edf/dummy_data) is built once and reopened from its
folder with TFDS alone (`builder_from_directory`: no builder class, no sleepjax code involved).
"""

import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import pipeline
from tfds_builders.sleep_edf import sleep_edf_dataset_builder as sleep_edf

DUMMY = pathlib.Path(sleep_edf.__file__).resolve().parent / "dummy_data"


@pytest.fixture(scope="module")
def reopened(tmp_path_factory):
  root = tmp_path_factory.mktemp("self_describing")
  builder = sleep_edf.Builder(config="sleep_cassette", data_dir=root)
  builder.download_and_prepare(download_dir=root / "dl",
                               download_config=tfds.download.DownloadConfig(manual_dir=DUMMY))
  return tfds.builder_from_directory(builder.data_dir)


def test_stage_names_and_metadata(reopened):
  assert reopened.info.version == "1.2.0"
  assert reopened.info.features["stage"].names == ["W", "N1", "N2", "N3", "REM"]
  meta = reopened.info.metadata
  assert meta["sfreq"] == 100.0 and meta["epoch_s"] == 30.0
  assert meta["units"]["eeg"] == "uV" and "arbitrary" in meta["units"]["resp"]
  assert [c["name"] for c in meta["montage"]["eeg"]] == ["EEG Fpz-Cz", "EEG Pz-Oz"]
  assert {k: meta["stage_codes"][k] for k in meta["stage_names"]} == {
      "W": 0, "N1": 1, "N2": 2, "N3": 3, "REM": 4}
  ex = reopened.as_data_source("train")[0]
  assert ex["signals"]["eeg"].shape == (2, int(30 * meta["sfreq"]))
  assert reopened.info.features["stage"].int2str(int(ex["stage"])) in meta["stage_names"]


def test_pipeline_reads_the_classlabel_build(reopened):
  source = reopened.as_data_source("train")
  decoder = pipeline._EpochDecoder.for_source(source)
  assert decoder is not None  # the fast path still applies to ClassLabel stages
  for i in (0, len(source) - 1):
    fast = decoder(i)
    assert fast["stage"] == int(source[i]["stage"])
    np.testing.assert_array_equal(fast["signals"]["eeg"], source[i]["signals"]["eeg"])
  batch = next(iter(pipeline.make_dataset(source, batch_size=2, window_epochs=2, num_epochs=1)))
  assert batch["stage"].dtype == np.int32 and batch["mask"]["eeg"].all()
