"""EEG reading helpers shared by the wake-EEG builders (tuab, tuev, chbmit).

- The TUH EEG 19-channel 10-20 montage and its label aliases ("EEG FP1-REF", "EEG FP1-LE").
- `read_eeg(path, montage, sfreq)`: validated EDF -> (C, T) float32 microvolts at `sfreq`,
  anti-aliased (polyphase FIR, scipy.signal.resample_poly).
- `window_starts`: non-overlapping fixed-length windows of a recording.
- `EEGWindowConfig`: the builder config of the transfer paper's EEG protocol (SPEC section 2,
  "Downstream transfer": 128 Hz, 60-s windows).

The transfer paper's amplitude clipping (+-50 uV, then / 10 uV) is NOT applied here: examples
stay in microvolts like every other sleepjax dataset, and the clipping belongs to the
fine-tuning input transform, where it can be ablated without rebuilding the data.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
from typing import Callable, Sequence

import numpy as np
from scipy import signal as sps
import tensorflow_datasets as tfds

from sleepjax.data import channels
from sleepjax.data import edf
from sleepjax.data import errors
from sleepjax.data import pipeline

# The 19 electrodes of the international 10-20 system kept by TUAB/TUEV studies, in TUH's order
# and TUH's (old 10-20) names: T3/T4/T5/T6 are T7/T8/P7/P8 in 10-10 terms (positions handle
# the aliases).
TUH_CHANNELS = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T3", "C3", "Cz", "C4", "T4",
                "T5", "P3", "Pz", "P4", "T6", "O1", "O2")

# TUH EDF label suffixes: -REF (average-reference "AR" montage, 01_tcp_ar), -LE (linked ears,
# 02_tcp_le). The A-REF variant ("03_tcp_ar_a") uses -REF as well.
_TUH_SUFFIXES = ("REF", "LE")


def tuh_montage() -> channels.Montage:
  """The TUH 19-channel 10-20 EEG montage, accepting "EEG XX-REF" and "EEG XX-LE" labels."""
  specs = []
  for name in TUH_CHANNELS:
    aliases = tuple(f"EEG {name.upper()}-{s}" for s in _TUH_SUFFIXES) + (name.upper(),)
    specs.append(channels.ChannelSpec(name, "eeg", aliases=aliases))
  return channels.Montage(specs)


@dataclasses.dataclass(kw_only=True)
class EEGWindowConfig(tfds.core.BuilderConfig):
  """Sampling rate and window length of a windowed EEG dataset.

  Attributes:
    sfreq: output sampling rate in Hz (the transfer paper: 128).
    window_s: window length in seconds (the transfer paper: 60).
  """
  sfreq: float = 128.0
  window_s: float = 60.0

  @property
  def n_times(self) -> int:
    n = self.sfreq * self.window_s
    if abs(n - round(n)) > 1e-6:
      raise ValueError(f"window_s * sfreq must be an integer number of samples, got {n}")
    return int(round(n))


def resample(data: np.ndarray, sfreq_in: float, sfreq_out: float, *, path=None) -> np.ndarray:
  """Resamples (C, T) signals with an anti-aliasing polyphase filter.

  Args:
    data: (C, T) float, any unit, at `sfreq_in` Hz.
    sfreq_in: input rate, Hz (> 0).
    sfreq_out: output rate, Hz (> 0).
    path: the source file, only for the error.

  Returns:
    (C, T') float32 with T' = ceil(T * sfreq_out / sfreq_in) (scipy's resample_poly length).

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


def read_eeg(path: str | os.PathLike, montage: channels.Montage, sfreq: float) -> np.ndarray:
  """Reads the montage's channels of one EDF as microvolts at a common rate.

  Args:
    path: the .edf file.
    montage: which channels to read; output rows follow its order.
    sfreq: output rate, Hz.

  Returns:
    (C, T) float32 microvolts at `sfreq` Hz, C = len(montage).

  Raises:
    EDFHeaderError / EDFTruncatedError / SamplingRateError: bad header or size (validate_edf).
    MissingChannelError: a montage channel is absent. UnitError: a channel is not in volts.
    SamplingRateError: the selected channels have different rates, or cannot be resampled.
    BadSignalError: a channel is entirely non-finite or flat.
  """
  path = os.fspath(path)
  header = edf.validate_edf(path)
  mapping = montage.resolve(list(header.labels), path)
  labels = [mapping[spec.name] for spec in montage]
  rates = {header.sfreq_of(lab) for lab in labels}
  if len(rates) != 1:
    raise errors.SamplingRateError(path, f"montage channels have different rates {sorted(rates)} Hz")
  sfreq_in = rates.pop()
  # Reading only the montage channels keeps MNE from resampling unrelated slow channels.
  raw = edf.read_raw_edf(path, include=labels)
  # MNE de-duplicates repeated labels ("T8-P8" -> "T8-P8-0"); map back by position in `include`.
  picks = [_pick(raw.ch_names, lab, path) for lab in labels]
  data = raw.get_data(picks=picks)
  rows = [edf.channel_to_microvolts(data[i], header.physical_dim_of(lab), path=path, channel=lab)
          for i, lab in enumerate(labels)]
  out = np.stack(rows)
  for spec, row in zip(montage, out):
    finite = np.isfinite(row)
    if not finite.any() or np.ptp(row[finite]) == 0:
      raise errors.BadSignalError(path, f"channel {spec.name} is entirely non-finite or flat")
  return resample(np.nan_to_num(out), sfreq_in, sfreq, path=path)


def _pick(ch_names: Sequence[str], label: str, path: str) -> int:
  for candidate in (label, f"{label}-0"):
    if candidate in ch_names:
      return list(ch_names).index(candidate)
  raise errors.MissingChannelError(path, f"channel {label!r} not returned by MNE; got {list(ch_names)}")


def window_starts(n_times: int, window: int) -> np.ndarray:
  """Start samples of the non-overlapping windows that fit in a recording (tail dropped).

  Args:
    n_times: recording length in samples.
    window: window length in samples (> 0).

  Returns:
    (W,) int64 starts 0, window, 2 window, ...; empty when the recording is shorter than one window.
  """
  if window <= 0:
    raise ValueError(f"window must be positive, got {window}")
  return np.arange(0, n_times - window + 1, window, dtype=np.int64)


def centred_start(center_s: float, window: int, sfreq: float, n_times: int) -> int | None:
  """Start sample of a window centred on `center_s`, shifted to lie inside the recording.

  Returns None when the recording is shorter than the window.
  """
  if n_times < window:
    return None
  start = int(round(center_s * sfreq)) - window // 2
  return int(min(max(start, 0), n_times - window))


def positions(names: Sequence[str]) -> np.ndarray:
  """(C, 3) float32 electrode positions (SPEC 2.3) of channel names; bipolar -> midpoint."""
  return np.stack([channels.electrode_position(n) for n in names]).astype(np.float32)


def partition_splits(files: dict[str, list], subject_of: Callable[[tuple], str], manual_dir, dataset: str, *,
                     validation_fraction: float = 0.1) -> dict[str, list]:
  """TUH train/eval partitions -> train / validation / test file lists, subject-wise.

  TUH's official `eval` partition is the test split; validation subjects are drawn from `train` with
  `sleepjax.data.pipeline.subject_split`. Empty splits are left out (TFDS refuses them).

  Args:
    files: {"train": [...], "eval": [...]}, one tuple per EDF file.
    subject_of: the subject id of one tuple.
    manual_dir: the folder the files came from (for error messages).
    dataset: "TUAB" or "TUEV" (for error messages).
    validation_fraction: share of the train subjects used for validation.

  Raises:
    RecordingError: no file in either partition, or a subject in both (TUH's partitions are
      patient-disjoint; a mixed tree would leak subjects into the test set).
  """
  if not files["train"] and not files["eval"]:
    raise errors.RecordingError(os.fspath(manual_dir), f"no {dataset} .edf files found under train/ or eval/")
  overlap = {subject_of(f) for f in files["train"]} & {subject_of(f) for f in files["eval"]}
  if overlap:
    raise errors.RecordingError(os.fspath(manual_dir), f"subjects in both train and eval: {sorted(overlap)[:5]}")
  assign = pipeline.subject_split([subject_of(f) for f in files["train"]],
                                  validation_fraction=validation_fraction, test_fraction=0.0)
  by_split = {
      "train": [f for f in files["train"] if assign[subject_of(f)] == "train"],
      "validation": [f for f in files["train"] if assign[subject_of(f)] == "validation"],
      "test": files["eval"],
  }
  return {split: f for split, f in by_split.items() if f}
