"""CHB-MIT Scalp EEG (PhysioNet chbmit 1.0.0) as fixed-length windows labelled seizure / non-seizure.

CHB-MIT (Shoeb 2009) holds long scalp EEG recordings of 22 paediatric subjects with intractable
seizures (24 cases: chb21 is chb01 recorded 1.5 years later), in EDF files with bipolar
"double banana" labels ("FP1-F7") at 256 Hz, and one `chbNN-summary.txt` per case giving each
file's seizure onsets and offsets in seconds from the file start.

Examples: non-overlapping windows (the transfer paper's EEG protocol, docs/specification.md §3.2: 60 s at 128 Hz) of the 18 bipolar
channels present in (nearly) every file: the 16 double-banana chains plus FZ-CZ and CZ-PZ. A
window is labelled `seizure` when it overlaps any seizure interval at all (the overlap in
seconds is stored in `seizure_s`, so a stricter rule can be applied downstream without
rebuilding). The tail shorter than a window is dropped. Files whose montage lacks one of the
18 channels (some chb12/chb13 files use other montages) are logged and skipped.

Splits: subject-wise by `sleepjax.data.pipeline.subject_split` (10% test, 10% validation,
subjects ranked by SHA-256), with chb21 merged into subject chb01.
"""

from __future__ import annotations

import collections
import os
import pathlib
import re
from typing import Iterator

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import channels
from sleepjax.data import errors
from sleepjax.data import pipeline
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _eeg
from tfds_builders import _report

LABELS = ("non_seizure", "seizure")
VALIDATION_FRACTION = 0.1
TEST_FRACTION = 0.1
BASE_URL = "https://physionet.org/files/chbmit/1.0.0/"

# The 18 bipolar derivations used here (PhysioNet chbmit channel list, first 16 + midline).
CHANNELS = ("FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1",
            "FP2-F4", "F4-C4", "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2",
            "FZ-CZ", "CZ-PZ")

# PhysioNet chbmit notes: "Case chb21 was obtained 1.5 years after case chb01, from the same
# female subject." Subject-wise splits must keep them together.
SAME_SUBJECT = {"chb21": "chb01"}

_FILE = re.compile(r"^File Name:\s*(\S+)", re.IGNORECASE)
_COUNT = re.compile(r"^Number of Seizures in File:\s*(\d+)", re.IGNORECASE)
_START = re.compile(r"^Seizure\s*\d*\s*Start Time:\s*([\d.]+)\s*sec", re.IGNORECASE)
_END = re.compile(r"^Seizure\s*\d*\s*End Time:\s*([\d.]+)\s*sec", re.IGNORECASE)


def subject_of(case: str) -> str:
  """Subject id of a case folder / file prefix ("chb21" -> "chb01", "chb05" -> "chb05")."""
  case = case.lower()
  return SAME_SUBJECT.get(case, case)


def parse_summary(path: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
  """Reads a `chbNN-summary.txt` into {edf file name: [(onset_s, offset_s), ...]}.

  Accepts both spellings PhysioNet uses ("Seizure Start Time: 2996 seconds" and
  "Seizure 1 Start Time: 1862 seconds"); channel-list and "Channels changed" blocks are ignored.

  Args:
    path: the summary file.

  Returns:
    Mapping file name -> seizure intervals in seconds from that file's start (empty list for a
    file without seizures), in file order.

  Raises:
    AnnotationError: the number of intervals differs from "Number of Seizures in File", an
      end time precedes its start, or a seizure line appears before any "File Name" line.
  """
  path = os.fspath(path)
  out: dict[str, list[tuple[float, float]]] = {}
  declared: dict[str, int] = {}
  starts: dict[str, list[float]] = collections.defaultdict(list)
  ends: dict[str, list[float]] = collections.defaultdict(list)
  current = None
  with open(path, encoding="latin-1") as f:
    for n, raw in enumerate(f, start=1):
      line = raw.strip()
      if m := _FILE.match(line):
        current = m.group(1)
        out[current] = []
        continue
      for regex, target in ((_START, starts), (_END, ends)):
        if m := regex.match(line):
          if current is None:
            raise errors.AnnotationError(path, f"line {n}: seizure time before any 'File Name' line")
          target[current].append(float(m.group(1)))
      if (m := _COUNT.match(line)) and current is not None:
        declared[current] = int(m.group(1))
  for name in out:
    s, e = starts.get(name, []), ends.get(name, [])
    if len(s) != len(e) or (name in declared and declared[name] != len(s)):
      raise errors.AnnotationError(
          path, f"{name}: {declared.get(name)} seizures declared but {len(s)} start / {len(e)} end times")
    for onset, offset in zip(s, e):
      if offset <= onset:
        raise errors.AnnotationError(path, f"{name}: seizure end {offset} s <= start {onset} s")
    out[name] = list(zip(s, e))
  return out


def seizure_overlap_s(start_s: float, stop_s: float, seizures) -> float:
  """Seconds of [start_s, stop_s) covered by the (non-overlapping) seizure intervals."""
  return float(sum(max(0.0, min(stop_s, b) - max(start_s, a)) for a, b in seizures))


def chbmit_montage() -> channels.Montage:
  """The 18 bipolar EEG derivations (labels as in the EDF headers, e.g. "FP1-F7")."""
  return channels.Montage([channels.ChannelSpec(name, "eeg") for name in CHANNELS])


class Chbmit(_common.ArrayRecordBuilder):
  """CHB-MIT Scalp EEG: 18 bipolar channels, seizure vs non-seizure windows, subject-wise splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: 18 bipolar channels, any-overlap seizure labels, subject-wise splits."}
  BUILDER_CONFIGS = [
      _eeg.EEGWindowConfig(name="128hz_60s", description="Transfer-paper protocol: 128 Hz, 60-s windows.",
                          sfreq=128.0, window_s=60.0),
      _eeg.EEGWindowConfig(name="128hz_10s", description="10-s windows at 128 Hz (BIOT-style).",
                          sfreq=128.0, window_s=10.0),
  ]
  DEFAULT_CONFIG_NAME = "128hz_60s"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Optional (without manual_dir the builder downloads every file listed in {BASE_URL}RECORDS, ~43 GB):
  `wget -r -N -c -np {BASE_URL}` (or the zip from https://physionet.org/content/chbmit/1.0.0/) and pass
  the folder holding the chbNN/ case folders (each with its .edf files and chbNN-summary.txt) as --manual_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    c = len(CHANNELS)
    return self.dataset_info_from_configs(
        description=__doc__,
        features=_downstream.features(
            {"eeg": (c, self.builder_config.n_times)}, label_names=LABELS,
            task_fields={"seizure_s": tfds.features.Scalar(dtype=np.float32),
                         "window_index": tfds.features.Scalar(dtype=np.int32),
                         "start_s": tfds.features.Scalar(dtype=np.float32)}),
        supervised_keys=None,
        homepage="https://physionet.org/content/chbmit/1.0.0/",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      root = pathlib.Path(os.fspath(dl_manager.manual_dir))
      edfs = {p.name.lower(): p for p in sorted(root.rglob("*.edf"))}
      summaries = {p.name.lower(): p for p in sorted(root.rglob("*-summary.txt"))}
    except AssertionError:  # No manual_dir: download from PhysioNet (see checksums.tsv).
      edfs, summaries = _download(dl_manager)
    seizures: dict[str, list[tuple[float, float]]] = {}
    for name, path in summaries.items():
      try:
        seizures.update({k.lower(): v for k, v in parse_summary(path).items()})
      except errors.RecordingError as e:
        logging.warning("chbmit: ignoring summary %s: %s", name, e)
    files = []
    for name, path in sorted(edfs.items()):
      if name not in seizures:
        # Without its summary entry the file's seizures are unknown: a "non-seizure" label could be wrong.
        logging.warning("chbmit: skipping %s: not listed in any chbNN-summary.txt", name)
        continue
      files.append((path, subject_of(name.split("_")[0]), name[:-len(".edf")], seizures[name]))
    if not files:
      raise errors.RecordingError(None, "chbmit: no EDF file with a summary entry found")
    assign = pipeline.subject_split([f[1] for f in files], validation_fraction=VALIDATION_FRACTION,
                                    test_fraction=TEST_FRACTION)
    by_split = collections.defaultdict(list)
    for f in files:
      by_split[assign[f[1]]].append(f)
    return {split: self._generate_examples(split, by_split[split]) for split in ("train", "validation", "test")
            if by_split[split]}

  def _generate_examples(self, split, files) -> Iterator[tuple[str, dict]]:
    cfg = self.builder_config
    montage = chbmit_montage()
    names = np.array(CHANNELS, dtype=object)
    pos = _downstream.electrode_positions(CHANNELS)
    failures, n_examples = [], 0
    for path, subject, record, seizures in files:
      try:
        data = _eeg.read_eeg(path, montage, cfg.sfreq)
      except errors.RecordingError as e:
        logging.warning("chbmit: skipping %s: %s", record, e)
        failures.append(f"{record}: {e}")
        continue
      for w, start in enumerate(_eeg.window_starts(data.shape[1], cfg.n_times)):
        start_s = start / cfg.sfreq
        overlap = seizure_overlap_s(start_s, start_s + cfg.window_s, seizures)
        n_examples += 1
        yield f"{record}_{w:05d}", {
            "signals": {"eeg": data[:, start:start + cfg.n_times]},
            "channel_names": {"eeg": names},
            "positions": {"eeg": pos},
            "label": int(overlap > 0),
            "seizure_s": overlap,
            "subject_id": subject,
            "record_id": record,
            "window_index": w,
            "start_s": start_s,
        }
    _report.write(self, split, _report.example_report(len(files), failures, n_examples))


def _download(dl_manager) -> tuple[dict[str, pathlib.Path], dict[str, pathlib.Path]]:
  """Downloads RECORDS, the case summaries and the EDFs; returns {file name: local path} maps."""
  records_path = dl_manager.download(BASE_URL + "RECORDS")
  rel_edfs = [line.strip() for line in pathlib.Path(os.fspath(records_path)).read_text().splitlines()
              if line.strip().endswith(".edf")]
  cases = sorted({rel.split("/")[0] for rel in rel_edfs})
  rel_summaries = [f"{case}/{case}-summary.txt" for case in cases]
  # TFDS stores downloads under hashed names: keep the PhysioNet name as the key.
  local = dl_manager.download({rel: BASE_URL + rel for rel in rel_edfs + rel_summaries})
  edfs = {rel.split("/")[-1].lower(): pathlib.Path(os.fspath(local[rel])) for rel in rel_edfs}
  summaries = {rel.split("/")[-1].lower(): pathlib.Path(os.fspath(local[rel])) for rel in rel_summaries}
  return edfs, summaries
