"""MIT-BIH beats as AAMI classes, and de Chazal's inter-patient record split.

- AAMI beat classes (ANSI/AAMI EC57; de Chazal et al. 2004) from MIT-BIH beat symbols.
- The inter-patient DS1 / DS2 record lists and the paced records they exclude.
- One window per beat, and the RR intervals around each beat.

Source: de Chazal, O'Dwyer & Reilly 2004, "Automatic classification of heartbeats using ECG
morphology and heartbeat interval features", IEEE TBME 51(7):1196-1206.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# AAMI classes (ANSI/AAMI EC57:1998/2012, as used by de Chazal et al. 2004, Table I).
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
PACED_RECORDS = ("102", "104", "107", "217")

# de Chazal et al. (2004) inter-patient split of the 44 non-paced MIT-BIH records.
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
       "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
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
