"""Bonn University EEG database (Andrzejak et al. 2001): sets Z, O, N, F, S as a TFDS dataset.

Five sets of 100 single-channel segments, 4097 samples at 173.61 Hz (23.6 s):

| set | folder | who | state / site |
|---|---|---|---|
| Z | setA | 5 healthy volunteers | surface EEG, eyes open |
| O | setB | 5 healthy volunteers | surface EEG, eyes closed |
| N | setC | 5 epilepsy patients | intracranial, interictal, hippocampus opposite the focus |
| F | setD | 5 epilepsy patients | intracranial, interictal, epileptogenic zone |
| S | setE | 5 epilepsy patients | intracranial, ictal (seizure) |

Configs: `seizure` (S vs Z+O+N+F, binary, the role CHB-MIT plays in the transfer paper) and
`five_class` (Z/O/N/F/S). One example per segment.

SPLITS ARE SEGMENT-LEVEL, NOT SUBJECT-WISE. The files carry no subject ids, so no subject-wise
split is possible inside a set; segments of one person appear in train, validation and test.
The split is a deterministic stratified 10-fold assignment per set
(`tfds_builders._downstream.stratified_folds`: files ordered by SHA-256 of their id, dealt
round-robin): fold 9 -> test, fold 8 -> validation, folds 0-7 -> train, i.e. 80/10/10 of every
set. Each example carries its `fold`, for 10-fold cross-validation. Numbers on this dataset
measure within-subject generalisation and overstate what a new patient would see.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _report

SFREQ = 173.61  # Hz (Andrzejak et al. 2001).
N_TIMES = 4097  # Samples per segment (23.6 s).
SETS = ("Z", "O", "N", "F", "S")
SET_FOLDERS = {"Z": "setA", "O": "setB", "N": "setC", "F": "setD", "S": "setE"}
SET_DESCRIPTIONS = {
    "Z": "healthy, surface, eyes open",
    "O": "healthy, surface, eyes closed",
    "N": "patient, intracranial, interictal, hippocampal formation opposite the focus",
    "F": "patient, intracranial, interictal, epileptogenic zone",
    "S": "patient, intracranial, ictal",
}
# The source does not say which single electrode each segment comes from (surface segments were
# cut from 10-20 recordings "after visual inspection", intracranial from depth/strip electrodes),
# so the channel has a generic name and no position.
CHANNEL_NAME = "EEG"

_DESCRIPTION = """
Bonn University EEG database (Andrzejak et al. 2001): 500 single-channel EEG segments of 23.6 s
(4097 samples at 173.61 Hz) in five sets of 100: Z (healthy, eyes open), O (healthy, eyes closed),
N and F (epilepsy patients, interictal, intracranial) and S (ictal). Amplitudes are the files'
integers, taken as microvolts (the convention of every published use of the data).
WARNING: no subject ids exist; splits are deterministic stratified SEGMENT-level folds, not
subject-wise (see README.md).
"""

_CITATION = """
@article{andrzejak2001indications,
  title={Indications of nonlinear deterministic and finite-dimensional structures in time series of brain electrical activity: Dependence on recording region and brain state},
  author={Andrzejak, Ralph G and Lehnertz, Klaus and Mormann, Florian and Rieke, Christoph and David, Peter and Elger, Christian E},
  journal={Physical Review E},
  volume={64},
  number={6},
  pages={061907},
  year={2001}
}
"""


@dataclasses.dataclass
class BonnEegConfig(tfds.core.BuilderConfig):
  """Config of the Bonn builder.

  Attributes:
    task: "seizure" (S vs rest) or "five_class" (Z/O/N/F/S).
    n_folds: number of stratified folds; the last is test, the one before validation.
  """

  task: str = "five_class"
  n_folds: int = 10


def label_names(task: str) -> tuple[str, ...]:
  """Class names of a task, in ClassLabel order.

  Raises:
    ValueError: for a task other than "seizure" or "five_class".
  """
  if task == "seizure":
    return ("non_seizure", "seizure")
  if task == "five_class":
    return SETS
  raise ValueError(f"unknown Bonn task {task!r}; expected 'seizure' or 'five_class'")


def read_segment(path: pathlib.Path) -> np.ndarray:
  """Reads one Bonn text file.

  Args:
    path: a `Z001.txt`-style file: one integer per line (CRLF), 4097 lines.

  Returns:
    (1, 4097) float32, microvolts.

  Raises:
    errors.RecordingError: when the file does not parse, has another length or non-finite values.
  """
  try:
    x = np.loadtxt(path, dtype=np.float64, ndmin=1)
  except ValueError as e:
    raise errors.RecordingError(path, f"not a Bonn EEG text file (one number per line): {e}") from e
  if x.ndim != 1 or x.shape[0] != N_TIMES:
    raise errors.RecordingError(path, f"expected {N_TIMES} samples (one per line), found shape {x.shape}")
  if not np.all(np.isfinite(x)):
    raise errors.BadSignalError(path, "segment contains non-finite values")
  return x.astype(np.float32)[None, :]


def find_segments(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Maps record id ("Z001" ... "S100") -> file, for every segment file under `root`.

  Accepts the project's layout (`setA/Z001.txt`, ..., `setC/N001.TXT`) and the original zips'
  flat layout (`Z001.txt`); file-name case is ignored.
  """
  found = {}
  for name, path in _downstream.index_files(root, (".txt",)).items():
    stem = name.rsplit(".", 1)[0].upper()
    if len(stem) == 4 and stem[0] in SETS and stem[1:].isdigit():
      found[stem] = path
  return dict(sorted(found.items()))


class Builder(_common.ArrayRecordBuilder):
  """Bonn EEG: one example per 23.6-s single-channel segment."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: configs seizure and five_class, stratified segment folds."}
  BUILDER_CONFIGS = [
      BonnEegConfig(name="seizure", description="Ictal (set S) vs the rest (Z, O, N, F).", task="seizure"),
      BonnEegConfig(name="five_class", description="Sets Z, O, N, F, S as five classes.", task="five_class"),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the Bonn EEG files in `manual_dir`, in any of these forms:
  - the five original zips Z.zip, O.zip, N.zip, F.zip, S.zip (from the University of Bonn
    Epileptology page, https://www.ukbonn.de/epileptologie/arbeitsgruppen/ag-lehnertz-neurophysik/downloads/),
  - or their extracted files (Z001.txt ... S100.txt, any sub-folders),
  - or an archive bonn_eeg_ZONFS.tar.xz holding bonn_eeg/setA..setE/.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=_downstream.features(
            {"eeg": (1, N_TIMES)}, label_names=label_names(self.builder_config.task),
            subject_doc="Always 'unknown': the database publishes no subject ids.",
            record_doc="File stem, e.g. 'Z001', 'N042'.",
            task_fields={
                "set": tfds.features.Text(
                    doc="Bonn set letter: " + "; ".join(f"{k}={v}" for k, v in SET_DESCRIPTIONS.items())),
                "subject_group": tfds.features.Text(doc="'healthy' (sets Z, O) or 'patient' (sets N, F, S)."),
                "fold": tfds.features.Scalar(dtype=np.int32, doc="Stratified segment-level fold (per set)."),
            }),
        supervised_keys=None,
        homepage="https://www.ukbonn.de/epileptologie/arbeitsgruppen/ag-lehnertz-neurophysik/downloads/",
        citation=_CITATION,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual = pathlib.Path(dl_manager.manual_dir)
    root = manual
    for archive in sorted(manual.iterdir()):
      if archive.is_file() and archive.name.lower().endswith((".tar.xz", ".tar.gz", ".tar", ".zip")):
        root = _downstream.extract_archive(archive, pathlib.Path(dl_manager.download_dir) / "bonn_eeg_manual")
    # Files already extracted in manual_dir and files from archives are both looked for.
    segments = find_segments(manual)
    if root != manual:
      segments = {**find_segments(root), **segments}
    if not segments:
      raise errors.RecordingError(manual, "no Bonn EEG segment files (Z001.txt ... S100.txt) found")
    missing_sets = [s for s in SETS if not any(r.startswith(s) for r in segments)]
    if missing_sets:
      logging.warning("bonn_eeg: sets %s are absent from %s", missing_sets, manual)
    n_folds = self.builder_config.n_folds
    folds = _downstream.stratified_folds(list(segments), [r[0] for r in segments], n_folds)
    splits: dict[str, list[str]] = {}
    for rid in segments:
      splits.setdefault(_downstream.fold_to_split(folds[rid], n_folds), []).append(rid)
    return {
        split: self._generate_examples(split, {rid: segments[rid] for rid in rids}, folds)
        for split, rids in sorted(splits.items())
    }

  def _generate_examples(self, split: str, segments: dict[str, pathlib.Path], folds: dict[str, int]):
    task = self.builder_config.task
    failures = []
    for rid, path in segments.items():
      try:
        x = read_segment(path)
      except errors.RecordingError as e:
        logging.warning("bonn_eeg: skipping %s", e)
        failures.append(str(e))
        continue
      set_letter = rid[0]
      label = int(set_letter == "S") if task == "seizure" else SETS.index(set_letter)
      yield rid, {
          "signals": {"eeg": x},
          "channel_names": {"eeg": np.array([CHANNEL_NAME], dtype=object)},
          "positions": {"eeg": _downstream.unknown_positions(1)},
          "label": label,
          "set": set_letter,
          "subject_id": "unknown",
          "subject_group": "healthy" if set_letter in ("Z", "O") else "patient",
          "record_id": rid,
          "fold": np.int32(folds[rid]),
      }
    _report.write(self, split, _report.example_report(len(segments), failures, len(segments) - len(failures)))
