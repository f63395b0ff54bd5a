"""Issue 10 acceptance: a clinic folder -> `python -m sleepjax.data.build` with a spec -> read back
by a process that does not import sleepjax (plain TFDS + numpy).

The folder (tfds_builders/psg_folder/make_dummy_data.py): clinic file names and channel labels,
a CSV hypnogram with AASM labels, an NSRR XML one, an EDF+ one with R&K labels, a recording
without two montage channels, a truncated PSG that must be reported and skipped, and the real
Sleep-EDF SC4001E0 excerpt renamed as the clinic names its files (its EDF+ R&K hypnogram).
"""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from sleepjax.data import pipeline
from sleepjax.data import sample_data
from tfds_builders.psg_folder import make_dummy_data

REPO = pathlib.Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: TFDS and numpy only.
_READER = r"""
import json, sys
import numpy as np
import tensorflow_datasets as tfds

builder = tfds.builder_from_directory(sys.argv[1])
names = builder.info.features["stage"].names
meta = builder.info.metadata
out = {"stage_names": names, "sfreq": meta["sfreq"], "units": meta["units"],
       "n_times": builder.info.features["signals"]["eeg"].shape[-1], "stages": {}, "subjects": {},
       "spec_sha256": meta["spec_sha256"], "failures": []}
for split in builder.info.splits:
  # By name from the data_dir, as a project without sleepjax's builders would.
  ds = tfds.data_source("psg_folder/clinic_demo", split=split, data_dir=sys.argv[2])
  out["failures"] += meta["build_report"][split]["failures"]
  subjects = set()
  for i in range(len(ds)):
    ex = ds[i]
    rec = ex["record_id"].decode()
    counts = out["stages"].setdefault(rec, dict.fromkeys(names, 0))
    counts[names[int(ex["stage"])]] += 1
    subjects.add(ex["subject_id"].decode())
    assert np.isfinite(ex["signals"]["eeg"]).all()
  out["subjects"][split] = sorted(subjects)
assert not any(m == "sleepjax" or m.startswith("sleepjax.") for m in sys.modules), "imported sleepjax"
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
  root = tmp_path_factory.mktemp("own_recordings")
  manual = root / "manual"
  expected = make_dummy_data.write_folder(manual)
  # The real night, renamed the clinic's way; the montage gains its Fpz-Cz derivation.
  psg, hyp = sample_data.sc4001_excerpt()
  real = manual / "clinic" / "2022"
  real.mkdir(parents=True)
  shutil.copy(psg, real / "PSG_0005_N1.edf")
  shutil.copy(hyp, real / "PSG_0005_N1-Hypnogram.edf")
  expected["PSG_0005_N1"] = {"subject": "0005", "stages": {"W": 10, "N1": 0, "N2": 0, "N3": 0, "REM": 0}}
  spec = dict(make_dummy_data.SPEC)
  spec["montage"] = {**spec["montage"], "eeg": spec["montage"]["eeg"] + [["Fpz-Cz", "EEG Fpz-Cz"]]}
  spec["max_mismatch_s"] = None  # the 300-s excerpt's hypnogram scores the whole 22-h night
  (root / "spec.json").write_text(json.dumps(spec, indent=2))
  data_dir = root / "tfds"
  cmd = [sys.executable, "-m", "sleepjax.data.build", str(REPO / "tfds_builders" / "psg_folder"),
         "--spec", str(root / "spec.json"), "--manual_dir", str(manual), "--data_dir", str(data_dir)]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  built = data_dir / "psg_folder" / "clinic_demo" / "1.0.0"
  read = subprocess.run([sys.executable, "-c", _READER, str(built), str(data_dir)],
                        cwd=root, capture_output=True, text=True, timeout=600)
  assert read.returncode == 0, read.stderr[-3000:]
  return json.loads(read.stdout), expected, out.stdout


def test_stage_names_and_epochs_per_stage_equal_the_hypnograms(clinic):
  got, expected, _ = clinic
  assert got["stage_names"] == ["W", "N1", "N2", "N3", "REM"]
  assert got["stages"] == {rec: e["stages"] for rec, e in expected.items()}


def test_sfreq_and_units_from_the_metadata(clinic):
  got, _, _ = clinic
  assert got["sfreq"] == 32.0 and got["n_times"] == 30 * 32
  assert got["units"]["eeg"] == got["units"]["ecg"] == "uV"


def test_subject_wise_split(clinic):
  got, expected, _ = clinic
  split_of = pipeline.subject_split([f"{k:04d}" for k in range(1, 6)])
  seen = [s for subjects in got["subjects"].values() for s in subjects]
  assert len(seen) == len(set(seen)) == len(expected)  # no subject in two splits
  for split, subjects in got["subjects"].items():
    assert all(split_of[s] == split for s in subjects)


def test_the_truncated_recording_is_reported_and_skipped(clinic):
  got, _, stdout = clinic
  assert len(got["failures"]) == 1 and "PSG_0004_N1.edf: truncated" in got["failures"][0]
  assert "PSG_0004_N1" not in got["stages"]
  assert '"n_failed": 1' in stdout  # the CLI's build report says so too


def test_a_folder_of_bdf_recordings(tmp_path):
  """BDF (24-bit) PSGs go through the same spec and build (files written by make_bdf_files.py)."""
  from tests.data import make_bdf_files  # pylint: disable=g-import-not-at-top
  from tfds_builders.psg_folder import psg_folder_dataset_builder as psg_folder

  manual = tmp_path / "manual"
  manual.mkdir()
  for k in range(2):
    make_bdf_files.write_bdf(manual / f"night_{k}.bdf", make_bdf_files.example_signals(120, seed=k),
                             n_records=120)
    (manual / f"night_{k}.csv").write_text("stage\nW\nN1\nN2\nN2\n")
  spec = {"name": "bdf_clinic", "recordings": "*.bdf", "hypnogram": "{stem}.csv",
          "hypnogram_format": "csv", "subject": r"night_(\d)", "sfreq": 64,
          "montage": {"eeg": [["C4-M1", "C4:M1"]], "eog": [["E1-M2"]], "emg": [["Chin", "Chin1-Chin2"]],
                      "ecg": [["ECG", "ECG II"]]}}
  builder = psg_folder.builder(spec, tmp_path / "tfds")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
  report = builder.info.metadata["build_report"]
  assert sum(rep["n_kept"] for rep in report.values()) == 8
  assert all(rep["n_failed"] == 0 for rep in report.values())
  ex = builder.as_data_source(split=next(iter(builder.info.splits)))[0]
  assert ex["signals"]["eeg"].shape == (1, 30 * 64) and ex["channel_mask"]["ecg"].all()
