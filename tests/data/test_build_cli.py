"""`python -m sleepjax.data.build` (the TF-free `tfds build`) on the real Sleep-EDF excerpt."""

import pathlib
import shutil
import subprocess
import sys

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
