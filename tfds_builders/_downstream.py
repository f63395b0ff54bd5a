"""Helpers shared by the downstream (wake EEG / ECG) builders.

bonn_eeg, eegmmidb, mitdb, cinc2017, ptbxl, tuab, tuev and chbmit write one example per window,
beat or record (docs/architecture.md §4, "Downstream"). What they share lives here:

- `features`: their FeaturesDict (signals / channel_names / positions per modality, subject_id,
  record_id, `label` or multilabel `labels`, and each task's own fields).
- `resample`: the one resampler of builder signals (scipy.signal.resample_poly).
- Electrode positions, WFDB units, fixed-length crops.
- Deterministic record-level stratified folds for datasets without subject ids (Bonn,
  CinC 2017): no random generator whose stream could change between NumPy versions.
- Finding files in user layouts and safely extracting the archives a user provides.
"""

from __future__ import annotations

import fractions
import hashlib
import os
import pathlib
import tarfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import signal as sps
import tensorflow_datasets as tfds

from sleepjax.data import channels
from sleepjax.data import errors

# ---------------------------------------------------------------------------------------------
# Features.
# ---------------------------------------------------------------------------------------------


def features(
    shapes: Mapping[str, tuple[int, int]],
    *,
    label_names: Sequence[str] | None = None,
    n_labels: int | None = None,
    task_fields: Mapping[str, tfds.features.FeatureConnector] | None = None,
    subject_doc: str | None = None,
    record_doc: str | None = None,
) -> tfds.features.FeaturesDict:
  """The FeaturesDict of a downstream dataset (docs/architecture.md §4).

  Args:
    shapes: {modality: (C, T)}: channels and samples per example, e.g. {"ecg": (2, 252)}.
    label_names: class names of a single-label task: `label` is a ClassLabel over them.
    n_labels: number of labels of a multilabel task: `labels` is an (n_labels,) int32 0/1
      Tensor (a ClassLabel holds one class only; names go in info.metadata["label_names"]).
    task_fields: the task's own features (e.g. {"fold": Scalar(int32)}), added as given.
    subject_doc: documentation of `subject_id` (e.g. how it is derived).
    record_doc: documentation of `record_id`.

  Returns:
    FeaturesDict with signals/{m} (C, T) float32 uV, channel_names/{m} (C,) str,
    positions/{m} (C, 3) float32 (NaN = no scalp position), label or labels, subject_id and
    record_id text, then `task_fields`.

  Raises:
    ValueError: not exactly one of label_names / n_labels, no modality, or a task field that
      redefines a common feature.
  """
  if (label_names is None) == (n_labels is None):
    raise ValueError("give exactly one of label_names (single-label) and n_labels (multilabel)")
  if not shapes:
    raise ValueError("a downstream dataset needs at least one modality")
  out: dict[str, tfds.features.FeatureConnector | dict] = {
      "signals": {m: tfds.features.Tensor(shape=tuple(s), dtype=np.float32) for m, s in shapes.items()},
      "channel_names": {m: tfds.features.Tensor(shape=(s[0],), dtype=np.str_) for m, s in shapes.items()},
      "positions": {m: tfds.features.Tensor(shape=(s[0], 3), dtype=np.float32) for m, s in shapes.items()},
  }
  if label_names is not None:
    out["label"] = tfds.features.ClassLabel(names=list(label_names))
  else:
    out["labels"] = tfds.features.Tensor(shape=(int(n_labels),), dtype=np.int32)
  out["subject_id"] = tfds.features.Text(doc=subject_doc)
  out["record_id"] = tfds.features.Text(doc=record_doc)
  clash = sorted(set(task_fields or {}) & set(out))
  if clash:
    raise ValueError(f"task fields {clash} redefine common downstream features")
  out.update(task_fields or {})
  return tfds.features.FeaturesDict(out)


# ---------------------------------------------------------------------------------------------
# Signals.
# ---------------------------------------------------------------------------------------------


def resample(data: np.ndarray, sfreq_in: float, sfreq_out: float, *, path=None) -> np.ndarray:
  """Resamples (C, T) signals with an anti-aliasing polyphase filter.

  Args:
    data: (C, T) float, any unit, at `sfreq_in` Hz.
    sfreq_in: input rate, Hz (> 0).
    sfreq_out: output rate, Hz (> 0).
    path: the source file, only for the error.

  Returns:
    (C, T') float32 with T' = ceil(T * sfreq_out / sfreq_in) (scipy's resample_poly length);
    the input unchanged (as float32) when the rates are equal.

  Raises:
    SamplingRateError: when the ratio is not a fraction with a denominator <= 1000
      (e.g. 173.61 Hz) -- better to fail than to resample to a slightly wrong rate.

  Source: scipy.signal.resample_poly (Kaiser-windowed FIR low-pass at the lower Nyquist).
  """
  if sfreq_in == sfreq_out:
    return np.asarray(data, np.float32)
  ratio = fractions.Fraction(sfreq_out / sfreq_in).limit_denominator(1000)
  if abs(float(ratio) - sfreq_out / sfreq_in) > 1e-9:
    raise errors.SamplingRateError(path, f"cannot resample {sfreq_in} Hz to {sfreq_out} Hz by a rational factor")
  return sps.resample_poly(np.asarray(data, np.float64), ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def electrode_positions(names: Sequence[str]) -> np.ndarray:
  """3-D positions of EEG electrodes or bipolar derivations, NaN where a name is not an electrode.

  Delegates to `sleepjax.data.channels.electrode_position` (MNE standard_1005 on the unit
  sphere; x left(-)/right(+), y posterior(-)/anterior(+), z inferior(-)/superior(+); a
  derivation "A-B" gets the midpoint of A and B).

  Args:
    names: (C,) channel names, e.g. "FC5", "Fpz", "T3", "FP1-F7".

  Returns:
    (C, 3) float32.
  """
  if not names:
    return np.zeros((0, 3), dtype=np.float32)
  return np.stack([np.asarray(channels.electrode_position(n), dtype=np.float32) for n in names])


def unknown_positions(n_chans: int) -> np.ndarray:
  """(n_chans, 3) float32 NaN: channels without a scalp position (ECG leads, Bonn's unnamed electrode)."""
  return np.full((n_chans, 3), np.nan, dtype=np.float32)


# WFDB headers give a physical unit per signal; the datasets store microvolts.
_WFDB_UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


def wfdb_unit_to_microvolts(unit: str, path: str | os.PathLike, channel: str) -> float:
  """Factor that converts a WFDB physical unit to microvolts.

  Args:
    unit: the unit string of the header ("mV" for MIT-BIH, CinC 2017 and PTB-XL).
    path: the record (for the error message).
    channel: the signal name (for the error message).

  Returns:
    the multiplicative factor (float).

  Raises:
    errors.UnitError: for any unit that is not a voltage.
  """
  factor = _WFDB_UNIT_TO_UV.get(unit.strip().lower())
  if factor is None:
    raise errors.UnitError(path, f"channel {channel!r} has unit {unit!r}, which is not a voltage")
  return factor


def crop_or_pad(signal: np.ndarray, n_times: int) -> tuple[np.ndarray, int]:
  """Keeps the first `n_times` samples of a record, zero-padding shorter records at the end.

  Args:
    signal: (C, T) float32, any unit.
    n_times: output length in samples (> 0).

  Returns:
    `(out, length)`: (C, n_times) float32 and the number of real samples, min(T, n_times);
    a model masks `out[:, length:]`.

  Raises:
    ValueError: when `n_times` is not positive or the signal is not 2-D.
  """
  if n_times <= 0:
    raise ValueError(f"n_times must be positive, got {n_times}")
  signal = np.asarray(signal, dtype=np.float32)
  if signal.ndim != 2:
    raise ValueError(f"signal must be (C, T), got shape {signal.shape}")
  length = min(signal.shape[1], n_times)
  out = np.zeros((signal.shape[0], n_times), dtype=np.float32)
  out[:, :length] = signal[:, :length]
  return out, length


# ---------------------------------------------------------------------------------------------
# Folds.
# ---------------------------------------------------------------------------------------------


def _hash_key(record_id: str) -> str:
  return hashlib.sha256(record_id.encode("utf-8")).hexdigest()


def stratified_folds(record_ids: Sequence[str], strata: Sequence, n_folds: int) -> dict[str, int]:
  """Assigns records to folds, stratified by class, deterministically and without an RNG.

  Within each stratum the records are ordered by the SHA-256 of their id (a fixed pseudo-random
  order that does not depend on NumPy's generator or on the order the files were listed) and
  dealt round-robin: rank r goes to fold r mod n_folds. Every fold thus gets floor or ceil of
  n_s / n_folds records of each stratum s. Records, not subjects: use this only where subject
  ids do not exist (Bonn, CinC 2017), and say so.

  Args:
    record_ids: (R,) unique record ids.
    strata: (R,) class (or set) of each record; any sortable values.
    n_folds: number of folds (>= 2).

  Returns:
    dict record id -> fold in [0, n_folds).

  Raises:
    ValueError: on duplicate ids, mismatched lengths or n_folds < 2.
  """
  if n_folds < 2:
    raise ValueError(f"n_folds must be >= 2, got {n_folds}")
  if len(record_ids) != len(strata):
    raise ValueError(f"{len(record_ids)} record ids but {len(strata)} strata")
  if len(set(record_ids)) != len(record_ids):
    raise ValueError("record ids must be unique")
  by_stratum: dict = {}
  for rid, s in zip(record_ids, strata):
    by_stratum.setdefault(s, []).append(rid)
  folds = {}
  for s in sorted(by_stratum):
    for rank, rid in enumerate(sorted(by_stratum[s], key=lambda r: (_hash_key(r), r))):
      folds[rid] = rank % n_folds
  return folds


def fold_to_split(fold: int, n_folds: int = 10) -> str:
  """Maps a fold to a split: the last fold is test, the one before validation, the rest train."""
  if fold == n_folds - 1:
    return "test"
  if fold == n_folds - 2:
    return "validation"
  return "train"


# ---------------------------------------------------------------------------------------------
# Files and archives.
# ---------------------------------------------------------------------------------------------


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> pathlib.Path:
  """Extracts a tar (.tar, .tar.gz, .tar.xz) or zip archive into `dest`, once.

  A marker file makes a second call a no-op, so a re-run of a build does not unpack again.
  Members that would land outside `dest` (absolute paths, "..") are refused (tarfile's
  "data" filter).

  Args:
    archive: the archive file.
    dest: the folder to extract into (created).

  Returns:
    `dest` as a Path.

  Raises:
    errors.RecordingError: naming the archive when it is missing or not a readable archive.
  """
  archive = pathlib.Path(archive)
  dest = pathlib.Path(dest)
  marker = dest / f".extracted_{archive.name}"
  if marker.exists():
    return dest
  if not archive.is_file():
    raise errors.RecordingError(archive, "archive not found")
  dest.mkdir(parents=True, exist_ok=True)
  try:
    if zipfile.is_zipfile(archive):
      with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
          # zipfile already strips ".." and absolute prefixes; refuse them anyway, loudly.
          if member.startswith(("/", "\\")) or ".." in pathlib.PurePosixPath(member).parts:
            raise errors.RecordingError(archive, f"unsafe member path {member!r} in archive")
        zf.extractall(dest)
    else:
      with tarfile.open(archive, mode="r:*") as tar:
        tar.extractall(dest, filter="data")
  except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
    raise errors.RecordingError(archive, f"cannot extract archive ({e})") from e
  marker.touch()
  return dest


def find_file(root: str | os.PathLike, name: str) -> pathlib.Path | None:
  """Finds `name` (case-insensitive) anywhere under `root`; the shallowest match wins.

  Users unpack PhysioNet downloads into different layouts (`S001/S001R04.edf`,
  `files/eegmmidb/1.0.0/S001/...`, flat folders); matching by file name keeps keys and
  behaviour independent of the layout.
  """
  root = pathlib.Path(root)
  matches = sorted((p for p in root.rglob("*") if p.name.lower() == name.lower()),
                   key=lambda p: (len(p.parts), str(p)))
  return matches[0] if matches else None


def index_files(root: str | os.PathLike, suffixes: Iterable[str]) -> dict[str, pathlib.Path]:
  """Maps lower-case file name -> path for every file under `root` with one of `suffixes`.

  The shallowest path wins when a name occurs twice. Suffixes compare case-insensitively
  (Bonn's set C is named `N001.TXT`).
  """
  suffixes = tuple(s.lower() for s in suffixes)
  index: dict[str, pathlib.Path] = {}
  for p in sorted(pathlib.Path(root).rglob("*"), key=lambda p: (len(p.parts), str(p))):
    if p.is_file() and p.name.lower().endswith(suffixes):
      index.setdefault(p.name.lower(), p)
  return index
