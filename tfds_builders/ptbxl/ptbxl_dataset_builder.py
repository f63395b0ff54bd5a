"""PTB-XL (PhysioNet ptb-xl 1.0.3) as a multilabel 12-lead ECG dataset with the CODE-15 labels.

The transfer paper trains its ECG models on CODE-15 (6 labels: 1dAVb, RBBB, LBBB, SB, AF, ST) and
tests on PTB-XL (docs/specification.md §3.3). This builder reads PTB-XL's own bytes
(WFDB `records500/` or `records100/` + `ptbxl_database.csv`) and maps the SCP-ECG statements onto
those six labels; statements without a CODE-15 counterpart are kept only as the raw `scp_codes`
text, so every record appears (an all-zero target is a valid "none of the six" example).

Splits follow the PTB-XL authors' recommendation (Wagner et al. 2020, Strodthoff et al. 2021):
`strat_fold` 1-8 train, 9 validation, 10 test. The folds are patient-wise (all records of a
patient share a fold), so no subject appears in two splits.

Source: Wagner P. et al., "PTB-XL, a large publicly available electrocardiography dataset",
Scientific Data 7:154 (2020); PhysioNet https://physionet.org/content/ptb-xl/1.0.3/.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import os
from typing import Iterator, Mapping

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _report

# CODE-15 label order used by the transfer paper's ECG head (Ribeiro et al. 2020 abbreviations).
CODE15_LABELS = ("1dAVb", "RBBB", "LBBB", "SB", "AF", "ST")

# SCP-ECG statement (PTB-XL `scp_statements.csv` index) -> CODE-15 label.
# Only COMPLETE bundle-branch blocks map: CODE-15's RBBB/LBBB are complete blocks, so IRBBB/ILBBB
# (incomplete) do not. Atrial flutter (AFLT) is not AF. ST is sinus tachycardia (STACH), not an
# ST-segment statement. A statement counts whatever its likelihood value: PTB-XL stores 0.0 for
# all rhythm statements (SR, AFIB, STACH, SBRAD), so a likelihood threshold would drop them.
SCP_TO_CODE15 = {
    "1AVB": "1dAVb",
    "CRBBB": "RBBB",
    "CLBBB": "LBBB",
    "SBRAD": "SB",
    "AFIB": "AF",
    "STACH": "ST",
}

# PTB-XL lead order as stored in every WFDB header.
LEADS = ("I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6")

_RECORD_S = 10.0  # Every PTB-XL record is 10 s long.
_DATABASE_CSV = "ptbxl_database.csv"
_ZIP_URL = ("https://physionet.org/static/published-projects/ptb-xl/"
            "ptb-xl-a-large-publicly-available-electrocardiography-dataset-1.0.3.zip")


def code15_targets(scp_codes: Mapping[str, float] | str, *, path: str | None = None) -> np.ndarray:
  """Maps one record's SCP-ECG statements onto the six CODE-15 labels.

  Args:
    scp_codes: the `scp_codes` column of `ptbxl_database.csv`, either as the dict
      {statement: likelihood in %} or as its Python-literal text (e.g. "{'NORM': 100.0}").
    path: the CSV file, only to name it in errors.

  Returns:
    (6,) int32 multi-hot target in `CODE15_LABELS` order (1 = statement present).

  Raises:
    AnnotationError: the text is not a dict literal.

  Source: mapping table `SCP_TO_CODE15` (this module); statement names from PTB-XL
  `scp_statements.csv` (Wagner et al. 2020).
  """
  if isinstance(scp_codes, str):
    try:
      scp_codes = ast.literal_eval(scp_codes)
    except (ValueError, SyntaxError) as e:
      raise errors.AnnotationError(path, f"scp_codes is not a dict literal: {scp_codes!r} ({e})") from e
  if not isinstance(scp_codes, Mapping):
    raise errors.AnnotationError(path, f"scp_codes is not a dict: {scp_codes!r}")
  target = np.zeros(len(CODE15_LABELS), np.int32)
  for statement in scp_codes:
    label = SCP_TO_CODE15.get(str(statement).upper())
    if label is not None:
      target[CODE15_LABELS.index(label)] = 1
  return target


def split_of_fold(strat_fold: int) -> str:
  """Returns the split of a PTB-XL `strat_fold` (1-8 train, 9 validation, 10 test; Wagner et al. 2020)."""
  if strat_fold == 10:
    return "test"
  if strat_fold == 9:
    return "validation"
  return "train"


def _find_root(base: epath.Path) -> epath.Path:
  """The folder holding ptbxl_database.csv: `base` itself or one sub-folder (the zip's top folder)."""
  if (base / _DATABASE_CSV).exists():
    return base
  for child in sorted(base.iterdir()):
    if child.is_dir() and (child / _DATABASE_CSV).exists():
      return child
  raise errors.RecordingError(
      os.fspath(base), f"{_DATABASE_CSV} not found here nor in a direct sub-folder; see MANUAL_DOWNLOAD_INSTRUCTIONS")


def read_ptbxl_record(record_path: epath.Path, *, expected_sfreq: float, record_s: float = _RECORD_S) -> np.ndarray:
  """Reads one PTB-XL WFDB record as 12 leads in microvolts.

  Args:
    record_path: path without extension (e.g. `.../records500/00000/00001_hr`).
    expected_sfreq: 500.0 for `records500`, 100.0 for `records100`.
    record_s: expected duration in seconds (10 for every PTB-XL record).

  Returns:
    (12, T) float32 in uV, leads in `LEADS` order, T = record_s * expected_sfreq.

  Raises:
    RecordingError: the record cannot be read. SamplingRateError: wrong rate or length.
    MissingChannelError: a lead is absent. UnitError: a lead's unit is not a voltage.
    BadSignalError: non-finite samples.
  """
  import wfdb  # pylint: disable=g-import-not-at-top  # Only this builder needs it.

  path = os.fspath(record_path)
  try:
    record = wfdb.rdrecord(path)
  except Exception as e:  # wfdb raises bare ValueError/OSError/FileNotFoundError.
    raise errors.RecordingError(path + ".hea", f"wfdb cannot read the record: {e}") from e
  if abs(float(record.fs) - expected_sfreq) > 1e-6:
    raise errors.SamplingRateError(path + ".hea", f"sampling rate {record.fs} Hz, expected {expected_sfreq} Hz")
  n_times = int(round(record_s * expected_sfreq))
  if record.p_signal is None or record.p_signal.shape[0] != n_times:
    got = None if record.p_signal is None else record.p_signal.shape[0]
    raise errors.SamplingRateError(path + ".hea", f"{got} samples, expected {n_times} ({record_s} s)")
  names = [n.upper() for n in record.sig_name]
  rows = []
  for lead in LEADS:
    if lead not in names:
      raise errors.MissingChannelError(path + ".hea", f"lead {lead} missing; file has {record.sig_name}")
    i = names.index(lead)
    rows.append(record.p_signal[:, i] * _downstream.wfdb_unit_to_microvolts(str(record.units[i]), path + ".hea", lead))
  signal = np.stack(rows).astype(np.float32)
  if not np.all(np.isfinite(signal)):
    raise errors.BadSignalError(path + ".dat", "non-finite samples")
  return signal


@dataclasses.dataclass(kw_only=True)
class PtbxlConfig(tfds.core.BuilderConfig):
  """Which WFDB record set to read.

  Attributes:
    sfreq: 500.0 (`records500`, `filename_hr`) or 100.0 (`records100`, `filename_lr`), Hz.
  """
  sfreq: float = 500.0


class Ptbxl(_common.ArrayRecordBuilder):
  """PTB-XL 12-lead 10-s ECGs with CODE-15 multilabel targets; strat_fold splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: PTB-XL 1.0.3, CODE-15 labels, strat_fold 1-8/9/10 splits."}
  BUILDER_CONFIGS = [
      PtbxlConfig(name="500hz", description="records500 (native 500 Hz), 5000 samples per lead.", sfreq=500.0),
      PtbxlConfig(name="100hz", description="records100 (PTB-XL's 100 Hz copy), 1000 samples per lead.", sfreq=100.0),
  ]
  DEFAULT_CONFIG_NAME = "500hz"
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
  Optional (the builder downloads the zip itself when no manual_dir is given): download
  {_ZIP_URL}
  (or `wget -r -N -c -np https://physionet.org/files/ptb-xl/1.0.3/`) and extract it; pass the folder
  holding ptbxl_database.csv (or its parent) as --manual_dir. Only ptbxl_database.csv and the
  records500/ (or records100/) tree are read.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    n_times = int(round(_RECORD_S * self.builder_config.sfreq))
    return self.dataset_info_from_configs(
        description=__doc__,
        # Multilabel: one 0/1 per CODE15_LABELS entry (names in metadata["label_names"]).
        features=_downstream.features(
            {"ecg": (len(LEADS), n_times)}, n_labels=len(CODE15_LABELS),
            task_fields={"scp_codes": tfds.features.Text(), "strat_fold": tfds.features.Scalar(dtype=np.int32)}),
        supervised_keys=None,
        homepage="https://physionet.org/content/ptb-xl/1.0.3/",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(label_names=list(CODE15_LABELS), leads=list(LEADS),
                                        scp_to_code15=dict(SCP_TO_CODE15)),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      base = dl_manager.manual_dir
    except AssertionError:  # No manual_dir: fetch the official zip (checksum: see checksums.tsv).
      base = dl_manager.download_and_extract(_ZIP_URL)
    root = _find_root(epath.Path(base))
    rows = _read_database(root / _DATABASE_CSV)
    by_split = {"train": [], "validation": [], "test": []}
    for row in rows:
      by_split[split_of_fold(row["strat_fold"])].append(row)
    return {split: self._generate_examples(split, root, split_rows) for split, split_rows in by_split.items()
            if split_rows}

  def _generate_examples(self, split: str, root: epath.Path, rows) -> Iterator[tuple[str, dict]]:
    sfreq = self.builder_config.sfreq
    column = "filename_hr" if sfreq == 500.0 else "filename_lr"
    positions = _downstream.unknown_positions(len(LEADS))  # ECG leads are not scalp electrodes.
    failures, n_examples = [], 0
    for row in rows:
      record_id = f"{row['ecg_id']:05d}"
      try:
        signal = read_ptbxl_record(root / row[column], expected_sfreq=sfreq)
        labels = code15_targets(row["scp_codes"], path=os.fspath(root / _DATABASE_CSV))
      except errors.RecordingError as e:
        logging.warning("ptbxl: skipping record %s: %s", record_id, e)
        failures.append(f"{record_id}: {e}")
        continue
      n_examples += 1
      yield record_id, {
          "signals": {"ecg": signal},
          "channel_names": {"ecg": np.array(LEADS, dtype=object)},
          "positions": {"ecg": positions},
          "labels": labels,
          "scp_codes": row["scp_codes"],
          "strat_fold": row["strat_fold"],
          "subject_id": row["patient_id"],
          "record_id": record_id,
      }
    _report.write(self, split, _report.example_report(len(rows), failures, n_examples))


def _read_database(path: epath.Path) -> list[dict]:
  """Parses ptbxl_database.csv into dicts with typed ecg_id, patient_id (str), strat_fold."""
  required = ("ecg_id", "patient_id", "scp_codes", "strat_fold", "filename_lr", "filename_hr")
  with path.open() as f:
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or ())]
    if missing:
      raise errors.AnnotationError(os.fspath(path), f"missing columns {missing}")
    rows = []
    for line, row in enumerate(reader, start=2):
      try:
        fold = int(float(row["strat_fold"]))
        ecg_id = int(float(row["ecg_id"]))
        # patient_id is written as a float ("15709.0"); subject ids are its integer text.
        patient = str(int(float(row["patient_id"])))
      except ValueError as e:
        raise errors.AnnotationError(os.fspath(path), f"line {line}: bad ecg_id/patient_id/strat_fold ({e})") from e
      if not 1 <= fold <= 10:
        raise errors.AnnotationError(os.fspath(path), f"line {line}: strat_fold {fold} outside 1..10")
      rows.append({"ecg_id": ecg_id, "patient_id": patient, "scp_codes": row["scp_codes"], "strat_fold": fold,
                   "filename_lr": row["filename_lr"], "filename_hr": row["filename_hr"]})
  return sorted(rows, key=lambda r: r["ecg_id"])
