"""Shared pieces of the wake-EEG / ECG downstream datasets (SPEC section 2, "Downstream transfer").

Pure NumPy / standard library, no TFDS and no JAX, so that the TFDS builders in
`tfds_builders/{eegmmidb,bonn_eeg,mitdb,cinc2017}` and the evaluation code can share one
definition of each label map, window and split rule:

- AAMI beat classes (ANSI/AAMI EC57; de Chazal et al. 2004) from MIT-BIH beat symbols.
- Fixed-length crops with a valid-length field (CinC 2017 records last 9-61 s).
- Deterministic record-level stratified folds for datasets without subject ids
  (Bonn, CinC 2017): no random generator whose stream could change between NumPy versions.
- Safe extraction of the `.tar.xz` archives a user (or the project's shared data) provides.
- Electrode positions for the downstream montages (via `sleepjax.data.channels` when present).

Nothing here imports `tfds_builders`.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tarfile
import zipfile
from collections.abc import Iterable, Sequence

import numpy as np

from sleepjax.data import errors

# ---------------------------------------------------------------------------------------------
# AAMI beat classes (ANSI/AAMI EC57:1998/2012, as used by de Chazal, O'Dwyer & Reilly 2004,
# IEEE TBME 51(7):1196-1206, Table I).
# ---------------------------------------------------------------------------------------------

AAMI_CLASSES = ("N", "S", "V", "F", "Q")

# MIT-BIH beat annotation symbol -> AAMI class. Symbols not listed here (rhythm changes "+",
# noise "~", artefacts "|", non-conducted P waves "x", flutter waves "!", "[", "]", comments
# '"', "=") are not beats and are skipped.
MITBIH_TO_AAMI = {
    # N: normal and bundle branch block beats, atrial and nodal escape beats.
    "N": "N", "L": "N", "R": "N", "e": "N", "j": "N",
    # S: supraventricular ectopic beats (atrial / aberrated atrial / nodal premature, SVPB).
    "A": "S", "a": "S", "J": "S", "S": "S",
    # V: premature ventricular contractions and ventricular escape beats.
    "V": "V", "E": "V",
    # F: fusion of ventricular and normal beats.
    "F": "F",
    # Q: paced, fusion of paced and normal, unclassifiable beats.
    "/": "Q", "f": "Q", "Q": "Q",
}

# Records with paced beats, excluded from the inter-patient protocol (de Chazal 2004).
MITDB_PACED_RECORDS = ("102", "104", "107", "217")

# de Chazal et al. (2004) inter-patient split of the 44 non-paced MIT-BIH records.
MITDB_DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
             "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
MITDB_DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
             "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")


def aami_beats(symbols: Sequence[str], samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Keeps the beat annotations of a MIT-BIH record and maps them to AAMI classes.

  Args:
    symbols: (A,) annotation symbols as `wfdb.rdann(...).symbol` returns them.
    samples: (A,) int, annotation positions in samples (the R-peak fiducial for beats).

  Returns:
    `(beat_samples, labels, beat_symbols)`: (K,) int64 sample positions, (K,) int32 indices
    into `AAMI_CLASSES` and (K,) str original symbols, for the K annotations that are beats.

  Raises:
    ValueError: when `symbols` and `samples` differ in length.

  Source: ANSI/AAMI EC57; de Chazal et al. 2004, Table I.
  """
  samples = np.asarray(samples)
  if len(symbols) != len(samples):
    raise ValueError(f"{len(symbols)} annotation symbols but {len(samples)} sample positions")
  keep = np.array([s in MITBIH_TO_AAMI for s in symbols], dtype=bool)
  kept_symbols = np.array([s for s in symbols if s in MITBIH_TO_AAMI], dtype=object)
  labels = np.array([AAMI_CLASSES.index(MITBIH_TO_AAMI[s]) for s in kept_symbols], dtype=np.int32)
  return samples[keep].astype(np.int64), labels, kept_symbols


def aami_counts(labels: np.ndarray) -> dict[str, int]:
  """Counts beats per AAMI class.

  Args:
    labels: (K,) int indices into `AAMI_CLASSES`.

  Returns:
    dict AAMI class name -> count, every class present (0 when absent).
  """
  counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(AAMI_CLASSES))
  return {name: int(c) for name, c in zip(AAMI_CLASSES, counts)}


def beat_windows(signal: np.ndarray, beat_samples: np.ndarray, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
  """Cuts one window per beat around its R peak, zero-padding beyond the record's ends.

  Padding (instead of dropping the first and last beats) keeps every annotated beat, so the
  per-class counts of the dataset equal the published AAMI counts.

  Args:
    signal: (C, T) float32, the whole record (any unit; returned unchanged).
    beat_samples: (K,) int, R-peak positions in samples.
    pre: samples kept before the R peak.
    post: samples kept after the R peak (the peak itself is at index `pre`).

  Returns:
    `(windows, n_valid)`: (K, C, pre + post) float32 and (K,) int32 number of samples of each
    window that lie inside the record.

  Raises:
    ValueError: on negative `pre`/`post` or a beat outside the record.
  """
  if pre < 0 or post <= 0:
    raise ValueError(f"window must have pre >= 0 and post > 0 samples, got pre={pre}, post={post}")
  signal = np.asarray(signal, dtype=np.float32)
  n_chans, n_times = signal.shape
  beat_samples = np.asarray(beat_samples, dtype=np.int64)
  if beat_samples.size and (beat_samples.min() < 0 or beat_samples.max() >= n_times):
    raise ValueError(f"beat positions must lie in [0, {n_times}), got [{beat_samples.min()}, {beat_samples.max()}]")
  padded = np.pad(signal, ((0, 0), (pre, post)))
  idx = beat_samples[:, None] + np.arange(pre + post)[None, :]  # Offsets into `padded`.
  windows = padded[:, idx].transpose(1, 0, 2)  # (K, C, pre + post)
  starts = beat_samples - pre
  n_valid = np.minimum(starts + pre + post, n_times) - np.maximum(starts, 0)
  return np.ascontiguousarray(windows), n_valid.astype(np.int32)


def rr_intervals_s(beat_samples: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
  """Previous and next RR interval of each beat (the classic inter-patient rhythm features).

  Args:
    beat_samples: (K,) int, R-peak positions in samples, increasing.
    sfreq: sampling rate in Hz.

  Returns:
    `(rr_prev_s, rr_next_s)`: (K,) float32 seconds; NaN for the first beat's previous and
    the last beat's next interval.

  Source: de Chazal et al. 2004, section II-C (pre-RR and post-RR features).
  """
  t = np.asarray(beat_samples, dtype=np.float64) / sfreq
  rr = np.diff(t)
  rr_prev = np.concatenate([[np.nan], rr]).astype(np.float32)
  rr_next = np.concatenate([rr, [np.nan]]).astype(np.float32)
  return rr_prev, rr_next


# ---------------------------------------------------------------------------------------------
# Fixed-length crops, folds, archives.
# ---------------------------------------------------------------------------------------------


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


def _hash_key(record_id: str) -> str:
  return hashlib.sha256(record_id.encode("utf-8")).hexdigest()


def stratified_folds(record_ids: Sequence[str], strata: Sequence[str], n_folds: int) -> dict[str, int]:
  """Assigns records to folds, stratified by class, deterministically and without an RNG.

  Within each stratum the records are ordered by the SHA-256 of their id (a fixed pseudo-random
  order that does not depend on NumPy's generator or on the order the files were listed) and
  dealt round-robin: rank r goes to fold r mod n_folds. Every fold thus gets floor or ceil of
  n_s / n_folds records of each stratum s. Records, not subjects: use this only where subject
  ids do not exist (Bonn, CinC 2017), and say so.

  Args:
    record_ids: (R,) unique record ids.
    strata: (R,) class (or set) of each record.
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
  by_stratum: dict[str, list[str]] = {}
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
    errors.RecordingError: naming the archive when it is missing or not a readable tar file.
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


# ---------------------------------------------------------------------------------------------
# Electrode positions.
# ---------------------------------------------------------------------------------------------


def electrode_positions(names: Sequence[str]) -> np.ndarray:
  """3-D positions of EEG electrodes on the unit sphere, NaN where a name is not an electrode.

  Delegates to `sleepjax.data.channels.electrode_position` (MNE standard_1005, SPEC 2.3 axes:
  x left(-)/right(+), y posterior(-)/anterior(+), z inferior(-)/superior(+)).

  Args:
    names: (C,) channel names, e.g. "FC5", "Fpz", "T10".

  Returns:
    (C, 3) float32.
  """
  from sleepjax.data import channels  # Imported late: MNE's montage is loaded on first use.
  if not names:
    return np.zeros((0, 3), dtype=np.float32)
  return np.stack([np.asarray(channels.electrode_position(n), dtype=np.float32) for n in names])


def ecg_positions(n_leads: int) -> np.ndarray:
  """(n_leads, 3) float32 NaN: ECG leads are not scalp electrodes (docs/architecture.md)."""
  return np.full((n_leads, 3), np.nan, dtype=np.float32)


# WFDB headers give a physical unit per signal; the datasets store microvolts (SPEC section 1).
_WFDB_UNIT_TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


def wfdb_unit_to_microvolts(unit: str, path: str | os.PathLike, channel: str) -> float:
  """Factor that converts a WFDB physical unit to microvolts.

  Args:
    unit: the unit string of the header ("mV" for MIT-BIH and CinC 2017).
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
