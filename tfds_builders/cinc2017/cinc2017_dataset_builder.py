"""PhysioNet/Computing in Cardiology Challenge 2017 (AF classification) as a TFDS dataset.

8,528 single-lead ECG records (AliveCor, lead I equivalent) at 300 Hz, 9-61 s long (median
30 s), WFDB header + MATLAB v4 `.mat` signal files (Clifford et al. 2017). One example per
record, labelled from `REFERENCE.csv`: N -> normal, A -> af, O -> other rhythm, ~ -> noisy.

Fixed length: the first `crop_s` seconds (30 s = 9000 samples by default, the median duration)
are kept and shorter records are zero-padded at the end; `length` gives the real samples
(mask the rest) and `duration_s` the record's full duration. Nothing after `crop_s` is used.

Labels: the project's copy has the challenge's final (v2) labels, N 5050, O 2456, A 738,
~ 284 (Clifford et al. 2017, Table 1); `REFERENCE-original.csv` (first release) differs in 294
records. A header line ("data_source,class") is skipped when present.

SPLITS ARE RECORD-LEVEL: the challenge publishes no patient ids, and a person may have several
records, so no patient-wise split is possible. Records get deterministic stratified 10-fold
assignments (`tfds_builders._downstream.stratified_folds`): fold 9 -> test, fold 8 ->
validation, folds 0-7 -> train; `fold` is stored for cross-validation. `subject_id` repeats
the record id for want of a patient id.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _report

SFREQ = 300.0  # Hz.
LABELS = ("normal", "af", "other", "noisy")
CODE_TO_LABEL = {"N": 0, "A": 1, "O": 2, "~": 3}
ZIP_URL = "https://physionet.org/files/challenge-2017/1.0.0/training2017.zip"

_DESCRIPTION = """
PhysioNet/CinC Challenge 2017: single-lead ECG (300 Hz, microvolts) labelled normal / AF / other
rhythm / noisy. Each record is cropped to its first 30 s (zero-padded when shorter; `length` gives
the real samples). Record-level stratified folds (no patient ids exist): fold 9 test, fold 8
validation, folds 0-7 train.
"""

_CITATION = """
@inproceedings{clifford2017af,
  title={{AF} classification from a short single lead {ECG} recording: the {PhysioNet}/Computing in Cardiology Challenge 2017},
  author={Clifford, Gari D and Liu, Chengyu and Moody, Benjamin and Lehman, Li-wei H and Silva, Ikaro and Li, Qiao and Johnson, AE and Mark, Roger G},
  booktitle={2017 Computing in Cardiology (CinC)},
  pages={1--4},
  year={2017}
}
"""


@dataclasses.dataclass
class Cinc2017Config(tfds.core.BuilderConfig):
  """Config of the CinC 2017 builder.

  Attributes:
    crop_s: kept duration from the start of each record, seconds.
    n_folds: stratified folds; the last is test, the one before validation.
    max_records: read only the first N labelled records in id order (None = all); for tests.
    reference: label file name looked for under the data folder.
  """

  crop_s: float = 30.0
  n_folds: int = 10
  max_records: int | None = None
  reference: str = "REFERENCE.csv"


def read_reference(path: pathlib.Path) -> dict[str, int]:
  """Reads a CinC 2017 label file ("A00001,N" per line; an optional header line).

  Args:
    path: REFERENCE.csv.

  Returns:
    dict record id -> index into `LABELS`, in file order.

  Raises:
    errors.AnnotationError: naming the file and line for an unknown label, a malformed line or
      a duplicated record.
  """
  labels: dict[str, int] = {}
  with open(path, newline="") as f:
    for line_no, row in enumerate(csv.reader(f), start=1):
      if not row or not "".join(row).strip():
        continue
      if len(row) != 2:
        raise errors.AnnotationError(path, f"line {line_no}: expected 'record,label', got {row}")
      record, code = row[0].strip(), row[1].strip()
      if line_no == 1 and code not in CODE_TO_LABEL:
        continue  # Header ("data_source,class") added by some copies.
      if code not in CODE_TO_LABEL:
        raise errors.AnnotationError(path, f"line {line_no}: unknown label {code!r} for {record}; "
                                     f"expected one of {sorted(CODE_TO_LABEL)}")
      if record in labels:
        raise errors.AnnotationError(path, f"line {line_no}: record {record} labelled twice")
      labels[record] = CODE_TO_LABEL[code]
  return labels


def read_ecg(base: pathlib.Path) -> tuple[np.ndarray, str]:
  """Reads one CinC 2017 record.

  Args:
    base: record path without extension (`.../A00001`); `.hea` and `.mat` beside it.

  Returns:
    `(ecg, lead_name)`: (1, T) float32 microvolts at 300 Hz and the header's signal name.

  Raises:
    errors.RecordingError: wfdb cannot read it; errors.SamplingRateError: not 300 Hz;
    errors.MissingChannelError: not one signal; errors.UnitError: not a voltage;
    errors.BadSignalError: non-finite samples.
  """
  import wfdb  # Heavy import, only when a build runs.

  hea = base.with_suffix(".hea")
  try:
    record = wfdb.rdrecord(str(base))
  except Exception as e:  # wfdb raises ValueError, OSError, struct errors alike.
    raise errors.RecordingError(hea, f"wfdb could not read the record: {type(e).__name__}: {e}") from e
  if record.fs != SFREQ:
    raise errors.SamplingRateError(hea, f"sampling rate {record.fs} Hz, expected {SFREQ} Hz")
  if record.n_sig != 1:
    raise errors.MissingChannelError(hea, f"{record.n_sig} signals {record.sig_name}, expected one ECG lead")
  factor = _downstream.wfdb_unit_to_microvolts(record.units[0], hea, record.sig_name[0])
  ecg = (record.p_signal[:, 0] * factor).astype(np.float32)[None, :]
  if not np.all(np.isfinite(ecg)):
    raise errors.BadSignalError(hea, f"{int((~np.isfinite(ecg)).sum())} non-finite samples")
  return ecg, record.sig_name[0]


class Builder(_common.ArrayRecordBuilder):
  """CinC 2017: one example per single-lead ECG record, first 30 s, four rhythm classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: first 30 s zero-padded, record-level stratified folds."}
  BUILDER_CONFIGS = [Cinc2017Config(name="first_30s", description="First 30 s of each record, zero-padded.")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional. Without a manual_dir, training2017.zip is downloaded from PhysioNet
  (https://physionet.org/files/challenge-2017/1.0.0/training2017.zip). To build from local files
  put in manual_dir the extracted training2017/ folder (A00001.hea, A00001.mat, ..., REFERENCE.csv),
  or training2017.zip, or a tar archive of the folder. A REFERENCE.csv found directly in
  manual_dir takes precedence over the one inside the folder/archive.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    n_times = int(round(self.builder_config.crop_s * SFREQ))
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=_downstream.features(
            {"ecg": (1, n_times)}, label_names=LABELS,
            subject_doc="The record id: the challenge publishes no patient ids.", record_doc="e.g. 'A00001'.",
            task_fields={
                "length": tfds.features.Scalar(dtype=np.int32, doc="Real (unpadded) samples in `signals`."),
                "duration_s": tfds.features.Scalar(dtype=np.float32, doc="Full record duration, seconds."),
                "fold": tfds.features.Scalar(dtype=np.int32, doc="Record-level stratified fold."),
            }),
        homepage="https://physionet.org/content/challenge-2017/1.0.0/",
        citation=_CITATION,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    manual = _common.manual_dir_or_none(dl_manager)  # None: download from PhysioNet.
    roots = []
    if manual is not None:
      roots.append(manual)
      archives = [p for p in sorted(manual.iterdir())
                  if p.is_file() and p.name.lower().endswith((".tar.xz", ".tar.gz", ".tar", ".zip"))]
    else:
      archives = [pathlib.Path(dl_manager.download(ZIP_URL))]
    for archive in archives:
      stem = archive.name.split(".")[0]
      roots.append(_downstream.extract_archive(archive, pathlib.Path(dl_manager.download_dir) / f"cinc2017_{stem}"))
    reference = None
    for root in roots:
      reference = reference or _downstream.find_file(root, config.reference)
    if reference is None:
      raise errors.RecordingError(manual or archives[0], f"label file {config.reference} not found")
    labels = read_reference(reference)
    index: dict[str, pathlib.Path] = {}
    for root in roots:
      for name, path in _downstream.index_files(root, (".hea",)).items():
        index.setdefault(name[:-4].upper(), path.with_suffix(""))
    records = sorted(r for r in labels if r in index)
    missing = len(labels) - len(records)
    if missing:
      logging.warning("cinc2017: %d labelled records have no .hea file; left out", missing)
    if config.max_records is not None:
      records = records[:config.max_records]
    if not records:
      raise errors.RecordingError(reference, "no labelled record with a .hea/.mat file found")
    folds = _downstream.stratified_folds(records, [labels[r] for r in records], config.n_folds)
    by_split: dict[str, list[str]] = {}
    for r in records:
      by_split.setdefault(_downstream.fold_to_split(folds[r], config.n_folds), []).append(r)
    return {
        split: self._generate_examples(split, {r: (index[r], labels[r], folds[r]) for r in rs})
        for split, rs in sorted(by_split.items())
    }

  def _generate_examples(self, split: str, records: dict[str, tuple[pathlib.Path, int, int]]):
    n_times = int(round(self.builder_config.crop_s * SFREQ))
    positions = _downstream.unknown_positions(1)
    failures, n_cropped, n_padded = [], 0, 0
    for record, (base, label, fold) in records.items():
      try:
        ecg, lead = read_ecg(base)
      except errors.RecordingError as e:
        logging.warning("cinc2017: skipping %s", e)
        failures.append(str(e))
        continue
      x, length = _downstream.crop_or_pad(ecg, n_times)
      n_cropped += ecg.shape[1] > n_times
      n_padded += ecg.shape[1] < n_times
      yield record, {
          "signals": {"ecg": x},
          "channel_names": {"ecg": np.array([lead], dtype=object)},
          "positions": {"ecg": positions},
          "label": label,
          "subject_id": record,
          "record_id": record,
          "length": np.int32(length),
          "duration_s": np.float32(ecg.shape[1] / SFREQ),
          "fold": np.int32(fold),
      }
    _report.write(self, split, _report.example_report(len(records), failures, len(records) - len(failures),
                                                      n_cropped=n_cropped, n_zero_padded=n_padded))
