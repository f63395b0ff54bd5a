"""Apache Beam builds of the PSG builders (tfds_builders._beam) against the single-process build.

synthetic_psg/tiny is built twice, in this process and through Beam's DirectRunner with two
worker processes; every feature of every example of every split, the keys' order, the shard
lengths and the build report must be identical. A night that fails to read in a worker must be
reported exactly as in the single-process build.
"""

import os
import pathlib

import numpy as np
import pytest

pytest.importorskip("apache_beam")

import tensorflow_datasets as tfds  # noqa: E402
from array_record.python import array_record_module  # noqa: E402
from tensorflow_datasets.proto import tf_example_pb2  # noqa: E402

from sleepjax.data import pipeline  # noqa: E402
from tfds_builders.synthetic_psg import synthetic_psg_dataset_builder as synthetic_psg  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MULTI_PROCESS = "direct_num_workers=2,direct_running_mode=multi_processing"


def _build(builder_cls, root, beam_options=None, config="tiny", download_dir=None):
  builder = builder_cls(config=config, data_dir=root / "data")
  options = None if beam_options is None else pipeline.beam_pipeline_options(beam_options)
  builder.download_and_prepare(download_dir=download_dir or root / "dl",
                               download_config=tfds.download.DownloadConfig(beam_options=options))
  return builder


def _assert_same_example(a, b, where):
  assert a.keys() == b.keys(), where
  for k in a:
    if isinstance(a[k], dict):
      _assert_same_example(a[k], b[k], f"{where}/{k}")
    else:
      x, y = np.asarray(a[k]), np.asarray(b[k])
      assert x.dtype == y.dtype and x.shape == y.shape, f"{where}/{k}"
      np.testing.assert_array_equal(x, y, err_msg=f"{where}/{k}")


def _assert_same_build(plain, beam_built):
  assert plain.info.splits.keys() == beam_built.info.splits.keys()
  for split, info in plain.info.splits.items():
    assert info.shard_lengths == beam_built.info.splits[split].shard_lengths, split
  assert plain.info.metadata["build_report"] == beam_built.info.metadata["build_report"]
  for split in plain.info.splits:
    a, b = plain.as_data_source(split=split), beam_built.as_data_source(split=split)
    assert len(a) == len(b)
    for i in range(len(a)):
      _assert_same_example(a[i], b[i], f"{split}[{i}]")
  # The shard files themselves, record by record. Not byte for byte: protobuf serializes the
  # map of an Example's features in an order that differs between processes.
  paths = sorted(p.name for p in pathlib.Path(plain.data_dir).glob("*.array_record-*"))
  assert paths and paths == sorted(
      p.name for p in pathlib.Path(beam_built.data_dir).glob("*.array_record-*"))
  for name in paths:
    a, b = (array_record_module.ArrayRecordReader(os.fspath(pathlib.Path(d) / name)).read_all()
            for d in (plain.data_dir, beam_built.data_dir))
    assert len(a) == len(b), name
    for i, (x, y) in enumerate(zip(a, b)):
      ex, ey = tf_example_pb2.Example(), tf_example_pb2.Example()
      ex.ParseFromString(x)
      ey.ParseFromString(y)
      assert ex == ey, f"{name} record {i}"


@pytest.mark.slow
def test_beam_direct_runner_two_processes_equals_plain_build(tmp_path, monkeypatch):
  # The worker processes import sleepjax and tfds_builders from this checkout.
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
      [os.fspath(REPO_ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
  plain = _build(synthetic_psg.Builder, tmp_path / "plain")
  beam_built = _build(synthetic_psg.Builder, tmp_path / "beam", MULTI_PROCESS)
  assert sorted(plain.info.splits) == ["test", "train", "validation"]
  assert all(info.num_examples > 0 for info in plain.info.splits.values())
  report = beam_built.info.metadata["build_report"]
  assert sum(r["n_recordings"] for r in report.values()) == 3
  _assert_same_build(plain, beam_built)
  # No outcome file left in the prepared folder.
  assert not list(pathlib.Path(beam_built.data_dir).glob("*.pkl"))


class _OneTruncatedNight(synthetic_psg.Builder, skip_registration=True):
  """synthetic_psg whose first training night's PSG file loses its last bytes after writing."""

  def _split_records(self, dl_manager):
    records = super()._split_records(dl_manager)
    psg = records["train"][0].psg_path
    with open(psg, "r+b") as f:
      f.truncate(os.path.getsize(psg) - 100)
    return records


def test_beam_build_reports_a_failed_night_as_the_plain_build(tmp_path):
  # 5 short nights: the training split keeps nights besides the truncated one.
  config = synthetic_psg.SyntheticPsgConfig(name="five_short", n_subjects=5, duration_h=0.25,
                                            wake_before_min=1.0, wake_after_min=1.0)
  # In-memory DirectRunner: the builder subclass of this test module unpickles in-process.
  # One download dir: the failure messages name the same file.
  plain = _build(_OneTruncatedNight, tmp_path / "plain", config=config,
                 download_dir=tmp_path / "dl")
  beam_built = _build(_OneTruncatedNight, tmp_path / "beam", "direct_running_mode=in_memory",
                      config=config, download_dir=tmp_path / "dl")
  train = beam_built.info.metadata["build_report"]["train"]
  assert train["n_recordings"] >= 2
  assert train["n_failed"] == 1 and "truncated" in train["failures"][0]
  lengths = beam_built.info.splits["train"].shard_lengths
  assert lengths[0] == 0 and all(n > 0 for n in lengths[1:])
  _assert_same_build(plain, beam_built)


def test_beam_pipeline_options_parsing():
  opts = pipeline.beam_pipeline_options(MULTI_PROCESS).get_all_options()
  assert opts["direct_num_workers"] == 2 and opts["direct_running_mode"] == "multi_processing"
  for bad in ("", " , ", "--direct_num_workers=2", "=2"):
    with pytest.raises(ValueError):
      pipeline.beam_pipeline_options(bad)


def test_build_cli_beam_pipeline_options(tmp_path, shared_data):
  """`python -m sleepjax.data.build --beam_pipeline_options` builds the real excerpt through Beam
  (in-memory DirectRunner), with the same summary as the plain command (test_build_cli.py)."""
  import shutil
  import subprocess
  import sys
  excerpt = shared_data / "sleep_edf_sc4001_excerpt"
  manual = tmp_path / "manual"
  manual.mkdir()
  shutil.copy(excerpt / "short_psg.edf", manual / "SC4001E0-PSG.edf")
  shutil.copy(excerpt / "SC4001EC-Hypnogram.edf", manual / "SC4001EC-Hypnogram.edf")
  cmd = [sys.executable, "-m", "sleepjax.data.build", "tfds_builders/sleep_edf", "--config",
         "sleep_cassette", "--manual_dir", str(manual), "--data_dir", str(tmp_path / "tfds"),
         "--beam_pipeline_options", "direct_running_mode=in_memory"]
  out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "| train | 1 | 1 | 10 | 10 | 0 | 0 | 0 | 0 | 0 |" in out.stdout
  assert '"beyond_signal": 2870' in out.stdout
  bad = subprocess.run(cmd[:-2] + ["--beam_pipeline_options=--direct_num_workers=2"],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "without leading dashes" in bad.stderr
