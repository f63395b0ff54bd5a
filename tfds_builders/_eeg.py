"""Windowed EEG from EDF files, shared by the tuab, tuev and chbmit builders.

- `EEGWindowConfig`: the builder config of the transfer paper's EEG protocol (128 Hz, 60-s
  windows).
- `read_eeg(path, montage, sfreq)`: validated EDF -> (C, T) float32 microvolts at `sfreq`,
  anti-aliased (`tfds_builders._downstream.resample`).
- `window_starts` / `centred_start`: where the fixed-length windows of a recording start.

The transfer paper's amplitude clipping (+-50 uV, then / 10 uV) is NOT applied here: examples
stay in microvolts like every other sleepjax dataset, and the clipping belongs to the
fine-tuning input transform (`sleepjax.data.downstream_pipeline.scale_signals`), where it can be
ablated without rebuilding the data.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import channels
from sleepjax.data import edf
from sleepjax.data import errors
from tfds_builders import _downstream


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
  # Only the montage channels, at their own rate, calibrated from the header (a repeated label,
  # e.g. "T8-P8" in CHB-MIT, means its first signal).
  index = [header.labels.index(lab) for lab in labels]
  data = edf.read_physical(path, index, header=header,
                           samples_per_record=header.n_samples_per_record[index[0]])
  rows = [edf.channel_to_microvolts(data[k], header.physical_dims[i], path=path, channel=lab,
                                    dim_bytes=header.physical_dim_bytes[i])
          for k, (i, lab) in enumerate(zip(index, labels))]
  out = np.stack(rows)
  for spec, row in zip(montage, out):
    finite = np.isfinite(row)
    if not finite.any() or np.ptp(row[finite]) == 0:
      raise errors.BadSignalError(path, f"channel {spec.name} is entirely non-finite or flat")
  return _downstream.resample(np.nan_to_num(out), sfreq_in, sfreq, path=path)


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
