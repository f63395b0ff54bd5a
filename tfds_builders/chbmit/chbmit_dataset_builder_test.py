"""Tests for the CHB-MIT builder on native-format dummy data (EDF + chbNN-summary.txt).

`tfds.testing.DatasetBuilderTestCase` needs TensorFlow (and dill), absent here, so the builder
is built with download_and_prepare into a tmp dir and read back with `as_data_source`. The dummy
files last 12 s; a 4-s window config gives 3 windows per file.
"""

import pathlib

import edfio
import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _eeg
from tfds_builders import chbmit
from tfds_builders.chbmit import chbmit_dataset_builder

DUMMY = pathlib.Path(__file__).resolve().parent / "dummy_data"
CFG = _eeg.EEGWindowConfig(name="test_4s", sfreq=128.0, window_s=4.0)


def test_parse_summary_both_spellings():
  assert chbmit.parse_summary(DUMMY / "chb01/chb01-summary.txt") == {"chb01_01.edf": [], "chb01_03.edf": [(5.0, 7.0)]}
  assert chbmit.parse_summary(DUMMY / "chb02/chb02-summary.txt") == {"chb02_16.edf": [(1.0, 2.0), (9.0, 10.0)]}


def test_parse_summary_rejects_inconsistent_counts(tmp_path):
  bad = tmp_path / "chb09-summary.txt"
  bad.write_text("File Name: chb09_06.edf\nNumber of Seizures in File: 2\n"
                 "Seizure Start Time: 12231 seconds\nSeizure End Time: 12295 seconds\n")
  with pytest.raises(errors.AnnotationError, match="chb09-summary.txt: chb09_06.edf: 2 seizures declared but 1"):
    chbmit.parse_summary(bad)
  bad.write_text("File Name: chb09_06.edf\nNumber of Seizures in File: 1\n"
                 "Seizure Start Time: 300 seconds\nSeizure End Time: 200 seconds\n")
  with pytest.raises(errors.AnnotationError, match="end 200.0 s <= start 300.0 s"):
    chbmit.parse_summary(bad)


def test_overlap_and_subjects():
  seizures = [(5.0, 7.0), (30.0, 100.0)]
  assert chbmit.seizure_overlap_s(0.0, 4.0, seizures) == 0.0
  assert chbmit.seizure_overlap_s(4.0, 8.0, seizures) == 2.0
  assert chbmit.seizure_overlap_s(6.0, 66.0, seizures) == 1.0 + 36.0
  assert chbmit.subject_of("chb21") == "chb01" and chbmit.subject_of("CHB05") == "chb05"


def test_read_eeg_picks_first_duplicate_and_skips_dummy_channels():
  path = DUMMY / "chb02/chb02_16.edf"
  data = _eeg.read_eeg(path, chbmit_dataset_builder.chbmit_montage(), 256.0)  # Native rate: no resampling.
  assert data.shape == (18, 12 * 256)
  reference = {}
  for sig in edfio.read_edf(path).signals:
    reference.setdefault(sig.label, sig.data)  # First "T8-P8" wins, as in the builder.
  for i, name in enumerate(chbmit.CHANNELS):
    np.testing.assert_allclose(data[i], reference[name], atol=0.05)  # uV, to the EDF's quantisation step.


def test_builds_from_dummy_data(tmp_path):
  builder = chbmit.Chbmit(config=CFG, data_dir=str(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(DUMMY)))
  source = builder.as_data_source()
  sizes = {k: len(v) for k, v in source.items()}
  # 3 subjects (chb21 = chb01) -> one per split; 3 windows per 12-s file.
  assert sorted(sizes.values()) == [3, 3, 9] and sum(sizes.values()) == 15
  subjects = {split: {source[split][i]["subject_id"] for i in range(n)} for split, n in sizes.items()}
  assert sorted(len(s) for s in subjects.values()) == [1, 1, 1]
  assert set().union(*subjects.values()) == {b"chb01", b"chb02", b"chb03"}
  examples = {(ex["record_id"].decode(), int(ex["window_index"])): ex
              for split, n in sizes.items() for ex in (source[split][i] for i in range(n))}
  assert {k: (int(v["label"]), float(v["seizure_s"])) for k, v in examples.items() if v["label"] == 1} == {
      ("chb01_03", 1): (1, 2.0), ("chb02_16", 0): (1, 1.0), ("chb02_16", 2): (1, 1.0),
      ("chb21_19", 0): (1, 2.0), ("chb21_19", 1): (1, 2.0)}
  assert examples[("chb21_19", 0)]["subject_id"] == b"chb01"
  ex = examples[("chb01_03", 1)]
  assert ex["signals"]["eeg"].shape == (18, 512) and ex["start_s"] == 4.0
  # The 150-uV seizure rhythm (5-7 s) is in the window's second half-second range 1-3 s.
  seizure_part = ex["signals"]["eeg"][:, int(1.2 * 128):int(2.8 * 128)]
  assert np.abs(seizure_part).max() > 120.0 > np.abs(ex["signals"]["eeg"][:, :int(0.8 * 128)]).max()
  pos = ex["positions"]["eeg"]
  # Bipolar derivations take the electrode midpoint: FP1-F7 is left-frontal, FZ-CZ on the midline.
  assert pos[0, 0] < 0 and pos[0, 1] > 0 and abs(pos[chbmit.CHANNELS.index("FZ-CZ"), 0]) < 0.05


def test_edf_without_summary_entry_is_skipped(tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  manual = tmp_path / "manual"
  shutil.copytree(DUMMY, manual)
  (manual / "chb03/chb03-summary.txt").unlink()
  builder = chbmit.Chbmit(config=CFG, data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  records = {ex["record_id"] for split in builder.as_data_source().values() for ex in split}
  assert sum(r["n_examples"] for r in builder.info.metadata["build_report"].values()) == 12
  assert records == {b"chb01_01", b"chb01_03", b"chb02_16", b"chb21_19"}


class _FakeDownloadManager:
  """Serves PhysioNet URLs from dummy_data (what TFDS's DownloadManager.download returns: local paths)."""

  def __init__(self, tmp_dir):
    self._tmp_dir = tmp_dir

  @property
  def manual_dir(self):
    raise AssertionError("Manual directory not enabled.")

  def download(self, urls):
    def local(url):
      rel = url[len(chbmit_dataset_builder.BASE_URL):]
      if rel == "RECORDS":
        path = self._tmp_dir / "RECORDS"
        path.write_text("".join(f"{p.parent.name}/{p.name}\n" for p in sorted(DUMMY.rglob("*.edf"))))
        return path
      return DUMMY / rel
    if isinstance(urls, dict):
      return {k: local(v) for k, v in urls.items()}
    return local(urls)


def test_download_path_maps_physionet_names(tmp_path):
  builder = chbmit.Chbmit(config=CFG, data_dir=str(tmp_path))
  edfs, summaries = chbmit_dataset_builder._download(_FakeDownloadManager(tmp_path))
  assert sorted(edfs) == ["chb01_01.edf", "chb01_03.edf", "chb02_16.edf", "chb03_01.edf", "chb21_19.edf"]
  assert sorted(summaries) == [f"chb{n}-summary.txt" for n in ("01", "02", "03", "21")]
  assert builder.builder_config.n_times == 512
