"""Input pipeline for the downstream (wake EEG / ECG) transfer tasks (docs/specification.md §3.2, §3.3).

The transfer datasets (tfds_builders/{eegmmidb,bonn_eeg,mitdb,cinc2017}, docs/architecture.md §4
"Downstream examples") store one example per window at the recording's own rate, in microvolts:
`signals/{modality}` (C, T) float32, `positions/{modality}` (C, 3) (NaN = unknown), `label` and
`subject_id`. A multilabel dataset (tfds_builders/ptbxl: the six CODE-15 ECG labels) has `labels`, an
(L,) int32 0/1 vector, instead of `label`; its arrays then carry a 2-D `label` (N, L). This module
turns a split into in-memory arrays the fine-tuning trainer batches:

0. optionally (`bandpass_hz`, the `eegmmidb` variant) detrend and band-pass at the dataset's rate;
1. resample to the encoder's rate (128 Hz in the transfer paper) with `scipy.signal.resample_poly`
   (polyphase FIR low-pass, so no aliasing);
2. crop or zero-pad to a whole number of encoder patches (the encoder needs T = S * P);
3. scale: EEG clipped at +-50 uV then divided by 10 uV (the transfer paper's EEG protocol); ECG
   divided by 1000 (uV -> mV) then clipped at +-5 mV. ECG has no scaling in the paper's sleep
   encoder protocol; mV puts a QRS complex (about 1 mV) at the same order of magnitude as the
   scaled EEG (+-5), and the clip only touches artefacts and baseline jumps.

Numpy only (no JAX): the datasets here are small enough to hold in memory on a CPU, and
`max_examples` draws a seeded random subset of a large split (MIT-BIH has ~100k beats).
"""

from __future__ import annotations

import fractions
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import scipy.signal

from sleepjax.data import errors
from sleepjax.data import pipeline

# The transfer paper's EEG protocol: clip at +-50 uV, divide by 10 uV.
EEG_CLIP_UV = 50.0
EEG_SCALE_UV = 10.0
# Our ECG choice (not in the paper, see the module docstring): uV -> mV, clip at +-5 mV.
ECG_SCALE_UV = 1000.0
ECG_CLIP_MV = 5.0


def resample_ratio(sfreq: float, target_sfreq: float, *, max_denominator: int = 200) -> tuple[int, int]:
  """(up, down) integers with up / down ~= target_sfreq / sfreq for `scipy.signal.resample_poly`.

  Bonn's 173.61 Hz has no small exact ratio to 128 Hz; the ratio is approximated with a
  denominator <= `max_denominator` (relative rate error below 1e-4 there), which keeps the FIR
  filter short.

  Raises:
    ValueError: a rate is not positive.
  """
  if sfreq <= 0 or target_sfreq <= 0:
    raise ValueError(f"sampling rates must be positive, got sfreq={sfreq} target_sfreq={target_sfreq}")
  frac = fractions.Fraction(target_sfreq / sfreq).limit_denominator(max_denominator)
  return frac.numerator, frac.denominator


def scale_signals(x: np.ndarray, modality: str) -> np.ndarray:
  """Amplitude scaling of the transfer protocol.

  Args:
    x: (..., T) float signals in microvolts.
    modality: "eeg" (clip +-50 uV, / 10 uV: the transfer paper) or "ecg" (/ 1000 -> mV, clip +-5 mV).

  Returns:
    float32 array of the same shape, dimensionless (EEG) or in mV (ECG).

  Raises:
    ValueError: unknown modality.
  """
  x = np.asarray(x, np.float32)
  if modality == "eeg":
    return np.clip(x, -EEG_CLIP_UV, EEG_CLIP_UV) / np.float32(EEG_SCALE_UV)
  if modality == "ecg":
    return np.clip(x / np.float32(ECG_SCALE_UV), -ECG_CLIP_MV, ECG_CLIP_MV)
  raise ValueError(f"no transfer scaling for modality {modality!r}; expected 'eeg' or 'ecg'")


def target_length(n_times: int, sfreq: float, target_sfreq: float, patch_size: int) -> int:
  """Samples after resampling, rounded down to whole patches (at least one patch).

  A window shorter than one patch (MIT-BIH's 0.7-s `beat` config at 128 Hz) is zero-padded to one.
  """
  up, down = resample_ratio(sfreq, target_sfreq)
  n = int(np.ceil(n_times * up / down))
  return max(patch_size, (n // patch_size) * patch_size)


def bandpass(x: np.ndarray, sfreq: float, band_hz: Sequence[float]) -> np.ndarray:
  """Zero-phase 4th-order Butterworth band-pass (`scipy.signal.sosfiltfilt`) after a linear detrend.

  Unfiltered wake EEG (EEGMMIDB: DC offsets up to 300 uV and slow drifts) would otherwise be
  clipped by the +-50 uV scaling on a third of its samples (docs/transfer.md, "EEGMMIDB diagnosis").

  Args:
    x: (..., T) float signals at `sfreq` Hz.
    band_hz: (low, high) edges in Hz; high is capped at 0.45 sfreq.

  Returns:
    float32 array of the same shape and unit.

  Raises:
    ValueError: band_hz is not two increasing positive edges.
  """
  lo, hi = (float(f) for f in band_hz)
  hi = min(hi, 0.45 * sfreq)
  if not 0 < lo < hi:
    raise ValueError(f"band-pass edges must satisfy 0 < low < high (< 0.45 sfreq), got {tuple(band_hz)} at {sfreq} Hz")
  sos = scipy.signal.butter(4, (lo, hi), btype="bandpass", fs=sfreq, output="sos")
  return scipy.signal.sosfiltfilt(sos, scipy.signal.detrend(x, axis=-1), axis=-1).astype(np.float32)


def preprocess(x: np.ndarray, *, sfreq: float, target_sfreq: float, patch_size: int, modality: str,
               scale: bool = True, bandpass_hz: Sequence[float] = ()) -> np.ndarray:
  """Resamples, crops/pads to whole patches and scales a batch of windows.

  Args:
    x: (N, C, T) float32 microvolts at `sfreq` Hz.
    sfreq: the dataset's rate in Hz (eegmmidb 160, Bonn 173.61, MIT-BIH 360, CinC 2017 300).
    target_sfreq: the encoder's rate in Hz (128).
    patch_size: encoder patch size P in samples at `target_sfreq`.
    modality: "eeg" or "ecg" (see `scale_signals`).
    scale: False leaves the amplitudes in uV (the classic baselines, `sleepjax.evaluation.baselines`).
    bandpass_hz: () or (low, high) Hz: `bandpass` first, at `sfreq` (before resampling and clipping).

  Returns:
    (N, C, T') float32 with T' = `target_length(T, ...)`, a multiple of P. Cropping keeps the start
    of the window (the annotation onset / cue in eegmmidb).

  Raises:
    ValueError: x is not 3-D, or a rate/modality is invalid.
  """
  x = np.asarray(x, np.float32)
  if x.ndim != 3:
    raise ValueError(f"signals must be (N, C, T), got shape {x.shape}")
  if len(bandpass_hz):
    x = bandpass(x, sfreq, bandpass_hz)
  up, down = resample_ratio(sfreq, target_sfreq)
  if (up, down) != (1, 1):
    x = scipy.signal.resample_poly(x, up, down, axis=-1).astype(np.float32)
  n = max(patch_size, (x.shape[-1] // patch_size) * patch_size)
  if x.shape[-1] >= n:
    x = x[..., :n]
  else:
    x = np.pad(x, ((0, 0), (0, 0), (0, n - x.shape[-1])))
  if not scale:
    return x
  return scale_signals(x, modality)


def load_split(source: Sequence[Mapping[str, Any]], *, modality: str, sfreq: float, target_sfreq: float,
               patch_size: int, max_examples: int | None = None, seed: int = 0,
               name: str = "downstream split", chunk: int = 256, scale: bool = True,
               bandpass_hz: Sequence[float] = ()) -> dict[str, np.ndarray]:
  """Reads a downstream split into memory, preprocessed for the encoder.

  Args:
    source: random-access examples (a `tfds.data_source` split or a list of dicts) with
      `signals[modality]` (C, T) float32 uV, `positions[modality]` (C, 3), `subject_id`, and either
      `label` (int class index) or, for a multilabel task, `labels` ((L,) 0/1 vector).
    modality: "eeg" or "ecg".
    sfreq, target_sfreq, patch_size: see `preprocess`.
    max_examples: keep a seeded random subset of this many examples (None: all).
    seed: seed of that subset.
    name: used in error messages (dataset/config/split).
    chunk: examples resampled at once (bounds peak memory).
    scale: False keeps the signals in uV (see `preprocess`).
    bandpass_hz: () or (low, high) Hz band-pass before resampling (see `preprocess`).

  Returns:
    {"signals": (N, C, T') float32, "mask": (N, C) bool (all True: the montage is fixed),
     "positions": (N, C, 3) float32 (NaN -> 0), "position_mask": (N, C) bool (finite position),
     "label": (N,) int32 class indices, or (N, L) int32 0/1 for a multilabel split (examples with
     `labels`), "subject_id": (N,) object str}.

  Raises:
    errors.RecordingError: the split is empty, lacks the modality, has neither `label` nor
      `labels`, mixes the two, or has a `labels` vector that is not 0/1 or changes length.
  """
  n_total = len(source)
  if n_total == 0:
    raise errors.RecordingError(name, "the split has no examples")
  indices = np.arange(n_total)
  if max_examples is not None and max_examples < n_total:
    indices = np.sort(np.random.default_rng(seed).choice(n_total, size=max_examples, replace=False))
  signals, positions, labels, subjects = [], [], [], []
  for start in range(0, len(indices), chunk):
    raw = []
    for i in indices[start:start + chunk]:
      ex = source[int(i)]
      if modality not in ex.get("signals", {}):
        raise errors.RecordingError(name, f"example {int(i)} has no signals/{modality} "
                                          f"(has {sorted(ex.get('signals', {}))})")
      labels.append(_example_label(ex, int(i), name))
      raw.append(np.asarray(ex["signals"][modality], np.float32))
      positions.append(np.asarray(ex["positions"][modality], np.float32))
      subjects.append(pipeline.as_str(ex["subject_id"]))
    signals.append(preprocess(np.stack(raw), sfreq=sfreq, target_sfreq=target_sfreq, patch_size=patch_size,
                              modality=modality, scale=scale, bandpass_hz=bandpass_hz))
  x = np.concatenate(signals)
  pos = np.stack(positions)
  kinds = {np.ndim(y) for y in labels}
  if len(kinds) > 1:
    raise errors.RecordingError(name, "examples mix a single `label` and a multilabel `labels` vector")
  if kinds == {1} and len({len(y) for y in labels}) > 1:
    raise errors.RecordingError(name, f"`labels` vectors of different lengths {sorted({len(y) for y in labels})}")
  finite = np.all(np.isfinite(pos), axis=-1)
  return {
      "signals": x,
      "mask": np.ones(x.shape[:2], bool),
      "positions": np.where(finite[..., None], pos, 0.0).astype(np.float32),
      "position_mask": finite,
      "label": np.asarray(labels, np.int32),
      "subject_id": np.asarray(subjects, dtype=object),
  }


def _example_label(ex: Mapping[str, Any], index: int, name: str) -> int | np.ndarray:
  """An example's class index (int) or multilabel 0/1 vector ((L,) int32)."""
  if "label" in ex:
    return int(ex["label"])
  if "labels" in ex:
    y = np.asarray(ex["labels"])
    if y.ndim != 1 or not np.all(np.isin(y, (0, 1))):
      raise errors.RecordingError(name, f"example {index}: `labels` must be an (L,) 0/1 vector, got {y!r}")
    return y.astype(np.int32)
  raise errors.RecordingError(name, f"example {index} has neither 'label' (a class) nor 'labels' (multilabel); "
                                    f"keys: {sorted(ex)}")


def class_names(info) -> list[str] | None:
  """Class names of a downstream TFDS dataset, from its `tfds.core.DatasetInfo`.

  Single-label builders name their classes in the `label` ClassLabel; multilabel ones (a (L,) 0/1
  `labels` Tensor, which has no names) keep them in `info.metadata["label_names"]`, else
  "label_0".."label_{L-1}".

  Returns:
    The K class (or L label) names, or None when the dataset has neither feature (a sleep dataset).
  """
  features = info.features
  if "label" in features and hasattr(features["label"], "names"):
    return list(features["label"].names)
  if "labels" in features:
    n_labels = features["labels"].shape[0]
    return list((info.metadata or {}).get("label_names") or [f"label_{i}" for i in range(n_labels)])
  return None


def is_multilabel(arrays: Mapping[str, np.ndarray]) -> bool:
  """True when `arrays` (the output of `load_split`) hold a multilabel (N, L) `label`."""
  return np.ndim(arrays["label"]) == 2


def drop_channels(arrays: Mapping[str, np.ndarray], keep: Sequence[int]) -> dict[str, np.ndarray]:
  """Masks every channel not in `keep` (the channel-ablation input; shapes stay static).

  The encoder zeroes masked channels and leaves them out of attention, BatchNorm statistics and
  the channel mean, so a masked channel is equivalent to an absent one.

  Args:
    arrays: the output of `load_split`.
    keep: channel indices to keep.

  Returns:
    A copy with `mask` and `position_mask` False outside `keep`.
  """
  keep_mask = np.zeros(arrays["mask"].shape[1], bool)
  keep_mask[np.asarray(keep, int)] = True
  out = dict(arrays)
  out["mask"] = arrays["mask"] & keep_mask[None]
  out["position_mask"] = arrays["position_mask"] & keep_mask[None]
  return out


def batches(arrays: Mapping[str, np.ndarray], batch_size: int, *, shuffle: bool, seed: int = 0,
            drop_remainder: bool = False) -> Iterator[dict[str, np.ndarray]]:
  """One pass over in-memory examples in batches of static shape.

  Args:
    arrays: the output of `load_split` (or `drop_channels`).
    batch_size: B.
    shuffle: permute the examples with `seed` first.
    seed: permutation seed (the trainer passes seed + pass number, so each pass differs).
    drop_remainder: drop the last incomplete batch (training); otherwise it is zero-padded to B
      and `valid` (B,) bool marks the real rows (evaluation).

  Yields:
    {"signals": (B, C, T), "mask": (B, C), "positions": (B, C, 3), "position_mask": (B, C),
     "label": (B,) int32 or (B, L) int32 (multilabel), "valid": (B,) bool}.
  """
  n = len(arrays["label"])
  order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
  keys = ("signals", "mask", "positions", "position_mask", "label")
  for start in range(0, n, batch_size):
    idx = order[start:start + batch_size]
    if len(idx) < batch_size and drop_remainder:
      return
    batch = {k: arrays[k][idx] for k in keys}
    valid = np.ones(len(idx), bool)
    if len(idx) < batch_size:
      pad = batch_size - len(idx)
      batch = {k: np.concatenate([v, np.zeros((pad,) + v.shape[1:], v.dtype)]) for k, v in batch.items()}
      valid = np.concatenate([valid, np.zeros(pad, bool)])
    batch["valid"] = valid
    yield batch
