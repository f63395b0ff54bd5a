"""Builds synthetic_psg/tiny into tmp (the generator IS its dummy data) and reads it back.

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow and dill (not installed); these tests do
its checks with `download_and_prepare` + `as_data_source`.
"""

import collections

import numpy as np
import pytest

from sleepjax.data import pipeline
from sleepjax.data import synthetic
from tfds_builders.synthetic_psg import synthetic_psg_dataset_builder as synthetic_psg


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("synthetic_psg")
  builder = synthetic_psg.Builder(config="tiny", data_dir=root / "data")
  builder.download_and_prepare(download_dir=root / "dl")
  return builder


def test_configs():
  names = [c.name for c in synthetic_psg.Builder.BUILDER_CONFIGS]
  assert names == ["default", "sleepmg", "tiny", "sleepmg_tiny", "large"]
  for name in ("sleepmg", "sleepmg_tiny"):
    features = synthetic_psg.Builder(config=name, data_dir="/nonexistent").info.features
    shapes = {m: features["signals"][m].shape for m in features["signals"].keys()}
    assert shapes == {"eeg": (6, 3000), "eog": (2, 3000), "emg": (1, 3000), "ecg": (1, 3000)}
  cfg = {c.name: c for c in synthetic_psg.Builder.BUILDER_CONFIGS}
  assert cfg["sleepmg"].n_subjects >= 10  # SleepMG: >= 10 subjects (domains).
  # The main job's probe is scored on validation+test: at least 4 held-out subjects.
  from sleepjax.data import pipeline  # pylint: disable=g-import-not-at-top
  split = pipeline.subject_split([f"SN{i:03d}" for i in range(cfg["default"].n_subjects)])
  assert sum(v != "train" for v in split.values()) >= 4
  assert cfg["default"].sfreq == 128.0 and cfg["default"].zscore


def test_tiny_splits_are_subject_wise_and_match_report(tiny):
  sizes = {k: v.num_examples for k, v in tiny.info.splits.items()}
  assert sorted(sizes) == ["test", "train", "validation"]  # 3 subjects: one per split
  report = tiny.info.metadata["build_report"]
  subjects = {}
  for split, n in sizes.items():
    assert report[split]["n_kept"] == n and report[split]["n_failed"] == 0
    ds = tiny.as_data_source(split=split)
    subjects[split] = {ds[i]["subject_id"] for i in range(len(ds))}
    assert len(subjects[split]) == 1
  assert len(set().union(*subjects.values())) == 3
  expected = pipeline.subject_split(["SN000", "SN001", "SN002"])
  for split, subs in subjects.items():
    assert expected[next(iter(subs)).decode()] == split


def test_tiny_features(tiny):
  ds = tiny.as_data_source(split="train")
  ex = ds[0]
  assert {m: ex["signals"][m].shape for m in ex["signals"]} == {
      "eeg": (6, 3840), "eog": (2, 3840), "emg": (1, 3840), "ecg": (1, 3840), "resp": (3, 3840)}
  assert [n.decode() for n in ex["channel_names"]["eeg"]] == list(synthetic.EEG_CHANNELS)
  assert [n.decode() for n in ex["channel_names"]["resp"]] == list(synthetic.RESP_CHANNELS)
  assert np.isfinite(ex["positions"]["eeg"]).all() and np.isnan(ex["positions"]["ecg"]).all()
  # Bipolar derivations sit at the midpoint of their electrodes (docs/specification.md §2.3.1): F3-M2 is anterior
  # of O1-M2 (y > 0 is anterior); C3-M2 and C4-M1 differ (contralateral mastoids).
  assert ex["positions"]["eeg"][0, 1] > ex["positions"]["eeg"][4, 1]
  assert not np.allclose(ex["positions"]["eeg"][2], ex["positions"]["eeg"][3])
  stages = collections.Counter(int(ds[i]["stage"]) for i in range(len(ds)))
  assert set(stages) <= {0, 1, 2, 3, 4} and len(stages) >= 3
  epochs = [int(ds[i]["epoch_index"]) for i in range(len(ds))]
  assert epochs == sorted(epochs)
  # SleepFM-Clinical preprocessing: every channel z-scored over the night.
  eeg = np.stack([ds[i]["signals"]["eeg"] for i in range(len(ds))])
  np.testing.assert_allclose(eeg.mean(axis=(0, 2)), 0.0, atol=1e-3)
  np.testing.assert_allclose(eeg.std(axis=(0, 2)), 1.0, atol=1e-2)


def test_tiny_feeds_the_pipeline_with_clinical_caps(tiny):
  ds = tiny.as_data_source(split="train")
  batches = pipeline.make_dataset(
      ds, batch_size=2, window_epochs=10, num_epochs=1,
      modalities={"bas": ("eeg", "eog"), "ecg": ("ecg",), "emg": ("emg",), "resp": ("resp",)},
      channel_caps={"bas": 10, "ecg": 2, "emg": 4, "resp": 7})
  b = next(iter(batches))
  assert b["signals"]["bas"].shape == (2, 10, 38400)
  assert b["mask"]["bas"].sum(axis=1).tolist() == [8, 8]
  assert b["mask"]["resp"].sum(axis=1).tolist() == [3, 3]
  # Known electrode positions: the EEG derivations (E1/E2 EOG sites are not in standard_1005).
  known = np.concatenate([np.isfinite(ds[0]["positions"][m]).all(axis=1) for m in ("eeg", "eog")])
  assert b["position_mask"]["bas"][:, :8].tolist() == [known.tolist()] * 2
  assert not b["position_mask"]["bas"][:, 8:].any()
  assert (np.diff(b["epoch_index"], axis=1) == 1).all()
