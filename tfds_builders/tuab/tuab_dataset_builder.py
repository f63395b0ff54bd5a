"""TUH EEG Abnormal Corpus (TUAB) as fixed-length windows labelled normal / abnormal.

TUAB (Lopez de Diego 2017; Obeid & Picone 2016) holds clinical EEG sessions, each judged
normal or abnormal by a neurologist, in TUH's EDF files with referential labels such as
"EEG FP1-REF". The corpus ships a train and an eval partition with no patient in both.

Layout read (v2.0.x and v3.0.x alike; only the folder names matter):

  <manual_dir>/.../{train,eval}/{normal,abnormal}/.../<subject>_<session>_<token>.edf

e.g. `edf/train/normal/01_tcp_ar/aaaaaaav_s004_t000.edf` (v3.0.1) or
`edf/train/normal/01_tcp_ar/101/00010194/s001_2013_01_09/00010194_s001_t000.edf` (v2.0.0).
The subject id is the file name up to the first "_"; the record id is the file stem.

Examples: non-overlapping windows (docs/specification.md §3.2: 60 s at 128 Hz) of the 19
10-20 channels in microvolts, each carrying its session's label. The tail shorter than a
window is dropped. Splits: TUAB `eval` -> `test`; TUAB `train` -> `train` / `validation` by
`sleepjax.data.pipeline.subject_split` (10% of the training subjects, hash-ranked).
"""

from __future__ import annotations

import collections
import os
import pathlib
from typing import Iterator

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _eeg
from tfds_builders import _report
from tfds_builders import _tuh_eeg

LABELS = ("normal", "abnormal")
VALIDATION_FRACTION = 0.1


def parse_tuab_path(path: str | os.PathLike) -> tuple[str, str, str, str]:
  """Reads partition, label, subject and record id from a TUAB file path.

  Args:
    path: an .edf path inside the TUAB tree.

  Returns:
    (partition "train"|"eval", label "normal"|"abnormal", subject_id, record_id).

  Raises:
    RecordingError: the path has no train/eval or normal/abnormal folder.
  """
  parts = [p.lower() for p in epath.Path(path).parts[:-1]]
  partition = next((p for p in reversed(parts) if p in ("train", "eval")), None)
  label = next((p for p in reversed(parts) if p in LABELS), None)
  if partition is None or label is None:
    raise errors.RecordingError(path, "TUAB file not under .../{train,eval}/{normal,abnormal}/")
  stem = epath.Path(path).stem
  return partition, label, stem.split("_")[0], stem


class Tuab(_common.ArrayRecordBuilder):
  """TUH EEG Abnormal Corpus: 19-channel EEG windows, normal vs abnormal."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: windows of the 19 10-20 channels, subject-wise validation split."}
  BUILDER_CONFIGS = [
      _eeg.EEGWindowConfig(name="128hz_60s", description="Transfer-paper protocol: 128 Hz, 60-s windows.",
                          sfreq=128.0, window_s=60.0),
      _eeg.EEGWindowConfig(name="128hz_10s", description="10-s windows at 128 Hz (BIOT/LaBraM-style).",
                          sfreq=128.0, window_s=10.0),
  ]
  DEFAULT_CONFIG_NAME = "128hz_60s"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  TUAB needs a (free) registration: request access at
  https://isip.piconepress.com/projects/nedc/html/tuh_eeg/ (form "TUH EEG Corpus"), then
  rsync -auxvL nedc-tuh-eeg@www.isip.piconepress.com:data/tuh_eeg/tuh_eeg_abnormal/v3.0.1/ tuab/
  and pass the folder (it must contain .../train/{normal,abnormal}/ and .../eval/{normal,abnormal}/
  with the .edf files) as --manual_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    c = len(_tuh_eeg.TUH_CHANNELS)
    return self.dataset_info_from_configs(
        description=__doc__,
        features=_downstream.features(
            {"eeg": (c, self.builder_config.n_times)}, label_names=LABELS,
            task_fields={"window_index": tfds.features.Scalar(dtype=np.int32),
                         "start_s": tfds.features.Scalar(dtype=np.float32)}),
        supervised_keys=None,
        homepage="https://isip.piconepress.com/projects/nedc/html/tuh_eeg/",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    files = collections.defaultdict(list)
    # pathlib, not epath: epath refuses recursive globs (a guard for GCS); manual_dir is local.
    for path in sorted(pathlib.Path(os.fspath(dl_manager.manual_dir)).rglob("*.edf")):
      try:
        partition, label, subject, record = parse_tuab_path(path)
      except errors.RecordingError as e:
        logging.warning("tuab: ignoring %s", e)
        continue
      files[partition].append((path, label, subject, record))
    by_split = _tuh_eeg.partition_splits(files, lambda f: f[2], dl_manager.manual_dir, "TUAB",
                                        validation_fraction=VALIDATION_FRACTION)
    # TFDS refuses an empty split; a partial tree (e.g. no eval/ folder) simply lacks that split.
    return {split: self._generate_examples(split, f) for split, f in by_split.items()}

  def _generate_examples(self, split, files) -> Iterator[tuple[str, dict]]:
    cfg = self.builder_config
    montage = _tuh_eeg.tuh_montage()
    names = np.array(_tuh_eeg.TUH_CHANNELS, dtype=object)
    pos = _downstream.electrode_positions(_tuh_eeg.TUH_CHANNELS)
    failures, n_examples = [], 0
    for path, label, subject, record in files:
      try:
        data = _eeg.read_eeg(path, montage, cfg.sfreq)
      except errors.RecordingError as e:
        logging.warning("tuab: skipping %s: %s", record, e)
        failures.append(f"{record}: {e}")
        continue
      for w, start in enumerate(_eeg.window_starts(data.shape[1], cfg.n_times)):
        n_examples += 1
        yield f"{record}_{w:05d}", {
            "signals": {"eeg": data[:, start:start + cfg.n_times]},
            "channel_names": {"eeg": names},
            "positions": {"eeg": pos},
            "label": label,
            "subject_id": subject,
            "record_id": record,
            "window_index": w,
            "start_s": start / cfg.sfreq,
        }
    if failures:
      logging.warning("tuab: split %s: %d of %d recordings skipped", split, len(failures), len(files))
    _report.write(self, split, _report.example_report(len(files), failures, n_examples))
