"""`python -m sleepjax.data.build` misbehaviours of issue 10 item 7, each with a test.

In-process through `build.main(argv)` on the small psg_folder clinic folder (make_dummy_data.py),
plus the library path of sleep_edf's "mistyped manual_dir -> 8 GB download" fallback.
"""

import json
import pathlib
import shutil

import pytest
import tensorflow_datasets as tfds

from sleepjax.data import build
from sleepjax.data import errors
from tfds_builders.psg_folder import make_dummy_data
from tfds_builders.sleep_edf import sleep_edf_dataset_builder as sleep_edf

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """A clinic folder of two good recordings (the EDF+ and the NSRR-XML one dropped for speed)."""
  root = tmp_path_factory.mktemp("clinic")
  make_dummy_data.write_folder(root / "src")
  manual = root / "manual"
  shutil.copytree(root / "src" / "clinic" / "2021", manual / "clinic" / "2021")
  (manual / "clinic" / "2021" / "PSG_0004_N1.edf").unlink()
  (manual / "clinic" / "2021" / "PSG_0004_N1.csv").unlink()
  shutil.copy(root / "src" / "spec.json", root / "spec.json")
  return root


def _argv(root, data_dir, *extra, builder=None):
  return [builder or str(REPO / "tfds_builders" / "psg_folder"), "--spec", str(root / "spec.json"),
          "--manual_dir", str(root / "manual"), "--data_dir", str(data_dir), *extra]


def _last_line(capsys):
  err = capsys.readouterr().err.strip().splitlines()
  return err[-1] if err else ""


def test_missing_manual_dir_is_a_one_line_error_not_a_download(tmp_path, capsys):
  # sleep_edf would otherwise fall back to the PhysioNet download.
  rc = build.main(["tfds_builders/sleep_edf", "--manual_dir", str(tmp_path / "typo"),
                   "--data_dir", str(tmp_path / "tfds")])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 1 and len(err) == 1, err
  assert str(tmp_path / "typo") in err[0] and "manual_dir does not exist" in err[0]
  assert "SC4001E0-PSG.edf" in err[0]  # the expected names
  # The library path (pipeline.prepare / a builder) refuses it as well.
  builder = sleep_edf.Builder(config="sleep_cassette", data_dir=tmp_path / "tfds")
  with pytest.raises(errors.RecordingError, match="manual_dir does not exist"):
    builder.download_and_prepare(download_dir=tmp_path / "dl", download_config=
                                 tfds.download.DownloadConfig(manual_dir=tmp_path / "typo"))


def test_manual_dir_without_matching_files_names_the_expected_ones(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  rc = build.main(["tfds_builders/sleep_edf", "--manual_dir", str(tmp_path / "empty"),
                   "--data_dir", str(tmp_path / "tfds")])
  line = _last_line(capsys)
  assert rc == 1 and str(tmp_path / "empty") in line and "SC*-PSG.edf" in line
  (tmp_path / "spec.json").write_text(json.dumps(make_dummy_data.SPEC))
  rc = build.main([str(REPO / "tfds_builders" / "psg_folder"), "--spec", str(tmp_path / "spec.json"),
                   "--manual_dir", str(tmp_path / "empty"), "--data_dir", str(tmp_path / "tfds")])
  line = _last_line(capsys)
  assert rc == 1 and "no PSG file matching '**/PSG_*.edf'" in line and str(tmp_path / "empty") in line


def test_errors_are_one_line_and_verbose_adds_the_traceback(tmp_path, capsys):
  argv = ["tfds_builders/psg_folder", "--spec", str(tmp_path / "none.json"),
          "--manual_dir", str(tmp_path)]
  assert build.main(argv) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f"python -m sleepjax.data.build: error: {tmp_path / 'none.json'}: dataset spec "
                 "file does not exist"]
  assert build.main(argv + ["--verbose"]) == 1
  err = capsys.readouterr().err
  assert "Traceback (most recent call last)" in err and err.strip().endswith("does not exist")


def test_relative_and_absolute_builder_paths(folder, tmp_path, capsys, monkeypatch):
  assert build.module_name(str(REPO / "tfds_builders" / "psg_folder")) == (
      "tfds_builders.psg_folder", "psg_folder")
  monkeypatch.chdir(REPO)
  assert build.module_name("tfds_builders/psg_folder") == ("tfds_builders.psg_folder", "psg_folder")
  monkeypatch.chdir(tmp_path)  # absolute path from elsewhere: builds
  assert build.main(_argv(folder, tmp_path / "tfds")) == 0
  assert "psg_folder/clinic_demo/1.0.0" in capsys.readouterr().out


def test_added_night_is_reported_and_overwrite_rebuilds(folder, tmp_path, capsys):
  data_dir = tmp_path / "tfds"
  assert build.main(_argv(folder, data_dir)) == 0
  out = capsys.readouterr().out
  assert '"n_recordings": 1' in out
  # A night added to manual_dir: never silently served the old build.
  src = folder / "src" / "clinic" / "2019"
  dst = folder / "manual" / "clinic" / "2019"
  dst.mkdir(exist_ok=True)
  for name in ("PSG_0001_N1.edf", "PSG_0001_N1.csv"):
    shutil.copy(src / name, dst / name)
  try:
    assert build.main(_argv(folder, data_dir)) == 1
    line = _last_line(capsys)
    assert "2 added (clinic/2019/PSG_0001_N1.csv, clinic/2019/PSG_0001_N1.edf)" in line
    assert "--overwrite" in line
    assert build.main(_argv(folder, data_dir, "--overwrite")) == 0
    out = capsys.readouterr().out
    assert "PSG_0001_N1" in open(next((data_dir / "psg_folder" / "clinic_demo").glob(
        "*/metadata.json"))).read()
    assert build.main(_argv(folder, data_dir)) == 0  # the rebuilt one matches the folder
  finally:
    shutil.rmtree(dst)
