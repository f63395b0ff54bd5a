"""`python -m sleepjax.data.build` (the TF-free `tfds build`) on the real Sleep-EDF excerpt."""

import pathlib
import shutil
import subprocess
import sys

import pytest

from sleepjax.data import summary

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_build_cli_real_sleep_edf_excerpt(shared_data, tmp_path):
  excerpt = shared_data / "sleep_edf_sc4001_excerpt"
  manual = tmp_path / "manual"
  manual.mkdir()
  # Named as on PhysioNet, as a user's download would be.
  shutil.copy(excerpt / "short_psg.edf", manual / "SC4001E0-PSG.edf")
  shutil.copy(excerpt / "SC4001EC-Hypnogram.edf", manual / "SC4001EC-Hypnogram.edf")
  cmd = [sys.executable, "-m", "sleepjax.data.build", "tfds_builders/sleep_edf", "--config", "sleep_cassette",
         "--manual_dir", str(manual), "--data_dir", str(tmp_path / "tfds")]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  # One subject, one recording, 10 epochs, all W; the 2870 hypnogram epochs past the 300-s
  # excerpt are reported, not silently lost.
  assert "| train | 1 | 1 | 10 | 10 | 0 | 0 | 0 | 0 | 0 |" in out.stdout
  assert '"beyond_signal": 2870' in out.stdout


def test_build_cli_unknown_dataset_is_a_clear_error(tmp_path):
  cmd = [sys.executable, "-m", "sleepjax.data.build", "tfds_builders.no_such_dataset"]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0
  assert "cannot import 'tfds_builders.no_such_dataset'" in out.stderr


def test_build_cli_downstream_dataset_counts_classes(tmp_path):
  # A wake-EEG builder has `label`, not `stage`: the summary counts its classes by name.
  cmd = [sys.executable, "-m", "sleepjax.data.build", "tfds_builders/bonn_eeg", "--config", "five_class",
         "--manual_dir", str(REPO / "tfds_builders" / "bonn_eeg" / "dummy_data"),
         "--data_dir", str(tmp_path / "tfds")]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  header = next(line for line in out.stdout.splitlines() if line.startswith("| split |"))
  assert "| examples |" in header and "stage" not in header


def test_split_summary_kinds():
  sleep = [{"stage": s, "subject_id": b"A", "record_id": b"A1"} for s in (0, 2, 2, -1)]
  got = summary.split_summary(sleep)
  assert got["epochs"] == 4 and got["stages"]["N2"] == 2 and got["stages"]["unscored"] == 1
  single = [{"label": k, "subject_id": f"S{k}"} for k in (0, 1, 1)]
  got = summary.split_summary(single, class_names=["rest", "left", "right"])
  assert got == {"subjects": 2, "recordings": 0, "examples": 3, "classes": {"rest": 1, "left": 2, "right": 0}}
  multi = [{"labels": [1, 0, 1]}, {"labels": [1, 1, 0]}]
  got = summary.split_summary(multi, class_names=["AF", "RBBB", "ST"])
  assert got["examples"] == 2 and got["classes"] == {"AF": 2, "RBBB": 1, "ST": 1}
  table = summary.format_summary("t", {"train": got})
  assert "| train | 0 | 0 | 2 | 2 | 1 | 1 |" in table
  with pytest.raises(ValueError, match="stage/label/labels"):
    summary.split_summary([{"x": 1}])
