"""One PSG night -> validated 30-s epochs per modality (docs/architecture.md §2).

Pipeline of `epoch_recording`, in order:
1. Resolve the montage's channels in the file (MissingChannelError for a required one).
2. Units: voltage channels to float32 microvolts from the EDF header's physical dimension
   (see sleepjax.data.edf); a resp channel whose dimension is not a voltage ("", "%",
   thermistor counts) keeps its physical unit; any other non-voltage channel is a UnitError.
3. Whole-night checks: a required channel that is entirely NaN/inf or flat (peak-to-peak <=
   `flat_tol_uv`) raises BadSignalError; such an optional channel is dropped with a warning.
4. Epoch grid = the hypnogram's: epoch i covers [onset_s + 30 i, onset_s + 30 (i+1)) s of the
   PSG, its start rounded to the nearest sample (at the file's rate for the checks, at `sfreq`
   for the output). Epochs not fully inside the signal are dropped as "beyond_signal".
   Mismatch rule: let overhang be how far the SCORED epochs (stage != UNSCORED) beyond the
   signal reach past its end (or before its start). overhang > `max_mismatch_s` (default 30 s,
   one epoch) raises HypnogramMismatchError: a hypnogram that scores sleep the signal does not
   contain belongs to another night or to a cut file. An unscored tail ("Sleep stage ?" after
   the PSG ends, as in Sleep-EDF) never counts. `max_mismatch_s=None` accepts any overhang and
   only counts the epochs: use it for excerpts such as the 300-s Sleep-EDF test file scored
   for 22 h. No overlap at all between the hypnogram and the signal is always an error.
   A signal longer than the hypnogram is fine: the tail has no epochs (a warning says how long).
5. Wake trimming (Sleep-EDF protocol, e.g. Supratak et al. 2017): keep epochs from
   `trim_wake_min` minutes before the first sleep epoch (N1..REM) to `trim_wake_min` after
   the last; no sleep epoch at all -> nothing trimmed, with a warning.
6. Movement and unscored epochs are dropped unless `keep_unscored` (then kept with label -1).
7. Per-epoch bad signal, at the channel's rate: any NaN/inf in any channel, or, in a channel of
   `flat_check_modalities`, a flat epoch (peak-to-peak <= `flat_tol_uv`) or one clipped for
   the whole epoch (every sample at the channel's night minimum or maximum).
8. Resampling of the whole night per channel to `sfreq` (scipy.signal.resample_poly, which
   low-pass filters as it resamples). With `lowpass_at_nyquist` (SleepFM-Clinical) a 4th-order
   Butterworth low-pass at the new Nyquist is applied zero-phase (sosfiltfilt) first, when
   downsampling. NaN samples are set to 0 before filtering (their epochs are already dropped).
   `load_recording` reads each channel at its own rate and resamples it once, from that rate
   (a 100 Hz EEG next to a 200 Hz ECG goes 100 -> 128 Hz by polyphase upsampling, without the
   low-pass, which only applies when a channel is downsampled). `epoch_recording` takes an MNE
   raw, whose channels MNE already brought to the file's highest rate at read time (FFT, see
   edf.read_raw_edf); these are resampled from that rate.
9. Optional per-night z-score per channel over the kept epochs (SleepFM-Clinical).

Every 30-s epoch of the hypnogram is counted once in the EpochReport (sleepjax.data.report).
"""

from __future__ import annotations

import dataclasses
import fractions
import inspect
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.signal

from sleepjax.data import edf as edf_lib
from sleepjax.data import stages as stages_lib
from sleepjax.data.channels import Montage
from sleepjax.data.channels import _norm_label
from sleepjax.data.channels import electrode_position
from sleepjax.data.errors import BadSignalError
from sleepjax.data.errors import EDFHeaderError
from sleepjax.data.errors import HypnogramMismatchError
from sleepjax.data.errors import MissingChannelError
from sleepjax.data.errors import RecordingError
from sleepjax.data.errors import SamplingRateError
from sleepjax.data.errors import UnitError
from sleepjax.data.hypnogram import EPOCH_S
from sleepjax.data.hypnogram import Hypnogram
from sleepjax.data.hypnogram import read_hypnogram
from sleepjax.data.report import EpochReport

_VOLTAGE_MODALITIES = ("eeg", "eog", "emg", "ecg")
_POSITION_MODALITIES = ("eeg", "eog")


@dataclasses.dataclass(frozen=True)
class Recording:
  """One night after epoching (docs/architecture.md §2).

  Attributes:
    record_id: e.g. "SC4001E0"; never a local path.
    subject_id: e.g. "SC4001" + subject number; the SleepMG "domain".
    sfreq: Hz, common to every channel after resampling.
    signals: {modality: (N, C, T) float32}, microvolts (z-scored if asked; resp channels in
      their physical unit), T = 30 * sfreq. A modality with no channel present is absent.
    channel_names: {modality: C names as in the montage (ChannelSpec.name)}.
    positions: {modality: (C, 3) float32} electrode (x, y, z) on the unit sphere (bipolar ->
      midpoint), NaN when not an electrode or unknown (EMG, ECG, resp, "EOG horizontal").
    stages: (N,) int32, AASM W=0..REM=4 (UNSCORED=-1 only with keep_unscored).
    epoch_index: (N,) int32, 0-based index of each epoch on the hypnogram timeline.
    report: the EpochReport.
  """

  record_id: str
  subject_id: str
  sfreq: float
  signals: dict[str, np.ndarray]
  channel_names: dict[str, tuple[str, ...]]
  positions: dict[str, np.ndarray]
  stages: np.ndarray
  epoch_index: np.ndarray
  report: EpochReport

  @property
  def n_epochs(self) -> int:
    """Number of kept epochs N."""
    return int(self.stages.shape[0])


def _edf_header(raw, path):
  """The validated header of the EDF/BDF file `raw` was read from, or None for another raw."""
  if type(raw).__name__ not in ("RawEDF", "RawBDF"):
    return None
  filenames = [os.fspath(f) for f in (getattr(raw, "filenames", None) or ()) if f]
  # MNE keeps the file name even when edf.read_raw_edf passes a file object (*.rec).
  found = [p for p in (filenames[:1] + [path]) if p is not None and os.path.isfile(p)]
  header_path = found[0] if found else None
  if header_path is None:
    raise RecordingError(path, "EDF raw without a readable file: sleepjax reads EDF samples and "
                         "their calibration from the file itself (pass source_path= if it moved)")
  return edf_lib.validate_edf(header_path)


def _to_unit(data, label, modality, dim, raw_unit_is_volt, path, dim_bytes=None):
  """float64 channel -> microvolts (or the physical unit for resp).

  `dim` None: a non-EDF raw in MNE's convention (volts for FIFF unit V); otherwise `data` is in
  the EDF header's physical unit (edf.read_physical).
  """
  if dim is None:
    return data * 1e6 if raw_unit_is_volt else data
  if edf_lib.is_voltage(dim):
    return data * edf_lib.to_microvolts_factor(dim, path=path, channel=label)
  odd = edf_lib.looks_like_voltage(dim)
  if modality in _VOLTAGE_MODALITIES or odd:
    # A voltage spelled oddly (e.g. "uV" + no-break space) is never taken as another unit.
    kind = "an unknown spelling of a voltage" if odd else "not a voltage"
    raw = f" (header bytes {dim_bytes!r})" if dim_bytes is not None else ""
    raise UnitError(path, f"{modality} channel {label!r}: physical dimension {dim!r} is {kind}"
                    f"{raw}; cannot convert to microvolts")
  return data


def _resample(x: np.ndarray, fs_in: float, fs_out: float, lowpass_at_nyquist: bool,
              path) -> np.ndarray:
  if fs_in == fs_out:
    return x
  ratio = fractions.Fraction(fs_out / fs_in).limit_denominator(10000)
  if abs(float(ratio) * fs_in - fs_out) > 1e-6 * fs_out:
    raise SamplingRateError(path, f"cannot resample {fs_in} Hz to {fs_out} Hz by a rational "
                            "factor")
  if lowpass_at_nyquist and fs_out < fs_in:
    sos = scipy.signal.butter(4, fs_out / 2.0, btype="low", fs=fs_in, output="sos")
    x = scipy.signal.sosfiltfilt(sos, x)
  return scipy.signal.resample_poly(x, ratio.numerator, ratio.denominator)


def epoch_recording(raw, hypnogram: Hypnogram, montage: Montage, *, record_id: str,
                    subject_id: str, source_path: str | os.PathLike | None = None,
                    sfreq: float = 100.0, lowpass_at_nyquist: bool = False,
                    zscore: bool = False, trim_wake_min: float | None = 30.0,
                    keep_unscored: bool = False, max_mismatch_s: float | None = 30.0,
                    flat_tol_uv: float = 1e-3,
                    flat_check_modalities=("eeg", "eog", "emg", "ecg"),
                    physical_dims: Mapping[str, str] | None = None) -> Recording:
  """Cuts one PSG night into validated 30-s epochs per modality (steps in the module doc).

  Args:
    raw: an `mne.io.BaseRaw` (preloaded or not), e.g. from `edf.read_raw_edf`.
    hypnogram: the night's Hypnogram (30-s epochs on the PSG timeline).
    montage: which channels to take, per modality.
    record_id: recording id for the output (never a path).
    subject_id: subject id (the SleepMG domain).
    source_path: the PSG file, for error messages and the report; defaults to the raw's file.
    sfreq: output rate in Hz (100 for SleepMG, 128 for SleepFM-Clinical); 30 * sfreq must be
      an integer.
    lowpass_at_nyquist: 4th-order zero-phase Butterworth low-pass at sfreq / 2 before
      downsampling (SleepFM-Clinical).
    zscore: z-score each channel over the night's kept epochs (SleepFM-Clinical).
    trim_wake_min: minutes of wake kept before the first and after the last sleep epoch
      (Sleep-EDF protocol: 30); None keeps the whole night.
    keep_unscored: keep unscored and movement epochs with label -1 instead of dropping them.
    max_mismatch_s: how far (s) scored hypnogram epochs may reach beyond the signal; None =
      unlimited (excerpts). See the module doc for the rule.
    flat_tol_uv: peak-to-peak (uV, or physical unit) at or below which a channel is flat.
    flat_check_modalities: modalities whose channels are checked for flat/clipped epochs
      (resp is excluded by default: 1 Hz thermistor traces may be legitimately constant).
    physical_dims: {file label: EDF physical dimension}, overriding the header's (rarely
      needed); for an EDF raw the samples and their calibration are always read from the file
      (edf.read_physical), never from MNE's rescaled data; non-EDF raws follow MNE's
      convention (FIFF unit V means volts).

  Returns:
    A Recording (see its docstring), with its EpochReport.

  Raises:
    MissingChannelError: a required channel is absent.
    UnitError: a non-resp channel's physical dimension is not a voltage, or any channel's is an
      odd spelling of one (e.g. "uV" followed by a no-break space).
    RecordingError: an EDF raw whose file is no longer readable.
    BadSignalError: a required channel is all-NaN/inf or flat over the night.
    SamplingRateError: 30 * sfreq is not an integer, or no rational resampling factor.
    HypnogramMismatchError: the hypnogram's scored epochs overhang the signal by more than
      max_mismatch_s, or the two do not overlap at all.
  """
  path = os.fspath(source_path) if source_path is not None else None
  if path is None:
    filenames = [f for f in (getattr(raw, "filenames", None) or ()) if f]
    path = os.fspath(filenames[0]) if filenames else None
  _check_output_rate(sfreq, path)
  notes = list(hypnogram.notes)

  # 1. Channels: an EDF's own header labels (MNE keeps e.g. NUL padding in its channel names).
  header = _edf_header(raw, path)
  file_labels = ([header.labels[i] for i in header.signal_indices] if header is not None
                 else list(raw.ch_names))
  resolved = montage.resolve(file_labels, path)
  specs = [s for s in montage if s.name in resolved]
  labels = [resolved[s.name] for s in specs]
  fs_raw = float(raw.info["sfreq"])
  import mne  # Only for the FIFF unit constant; raw is already an MNE object.

  unit_is_volt = {ch["ch_name"]: ch["unit"] == mne.io.constants.FIFF.FIFF_UNIT_V
                  for ch in raw.info["chs"]}

  # 2. Units (whole night, float64 until the end).
  data = {}
  if header is not None:
    notes.extend(header.notes)
    index = {}
    for label in labels:
      hits = [i for i in header.signal_indices if header.labels[i] == label.strip(" \x00")]
      if len(hits) != 1:
        raise MissingChannelError(path, f"channel {label!r} is {'absent from' if not hits else 'repeated in'} "
                                  f"the EDF header (signals {hits}); labels: {list(header.labels)}")
      index[label] = hits[0]
    per_record = fs_raw * header.record_duration_s
    if abs(per_record - round(per_record)) > 1e-6:
      raise SamplingRateError(path, f"the Raw's rate {fs_raw} Hz is not a rate of the EDF file "
                              "(resampled after reading?); epoch the file as read")
    physical = edf_lib.read_physical(header.path, [index[lab] for lab in labels], header=header,
                                     samples_per_record=round(per_record))
    physical = physical[:, raw.first_samp:raw.first_samp + raw.n_times]
    for row, (spec, label) in enumerate(zip(specs, labels)):
      i = index[label]
      dim = (physical_dims or {}).get(label, header.physical_dims[i])
      data[spec.name] = _to_unit(physical[row], label, spec.modality, dim, True, path,
                                 header.physical_dim_bytes[i] if header.physical_dim_bytes else None)
  else:
    for spec, label in zip(specs, labels):
      x = raw.get_data(picks=[label])[0].astype(np.float64)
      data[spec.name] = _to_unit(x, label, spec.modality, None, unit_is_volt[label], path)
  chans = [_Channel(spec, label, fs_raw, data[spec.name]) for spec, label in zip(specs, labels)]
  return _epoch_channels(
      chans, hypnogram, montage, resolved, path=path, fs_ref=fs_raw, n_ref=raw.n_times,
      first_s=raw.first_samp / fs_raw, record_id=record_id, subject_id=subject_id, sfreq=sfreq,
      lowpass_at_nyquist=lowpass_at_nyquist, zscore=zscore, trim_wake_min=trim_wake_min,
      keep_unscored=keep_unscored, max_mismatch_s=max_mismatch_s, flat_tol_uv=flat_tol_uv,
      flat_check_modalities=flat_check_modalities, notes=notes)


@dataclasses.dataclass
class _Channel:
  """One montage channel of a night, whole, in microvolts (resp: its physical unit)."""
  spec: Any
  label: str
  sfreq: float
  data: np.ndarray  # (T_c,) float64 at `sfreq`
  all_finite: bool = True  # Set by step 3, with the night's min / max over finite samples.
  lo: float = np.nan
  hi: float = np.nan


def _segments(x: np.ndarray, starts: np.ndarray, idx: np.ndarray, length: int) -> np.ndarray:
  """x[starts[:, None] + arange(length)] for the epochs `idx` of a grid (starts[k] of epoch
  idx[k]): a strided view, no copy, when the grid is regular (start = s0 + idx * length)."""
  if starts.size and starts[0] >= 0 and starts[-1] + length <= x.shape[0] and np.array_equal(
      starts, starts[0] + length * (idx - idx[0])):
    span = int(idx[-1] - idx[0] + 1)
    return x[starts[0]:starts[0] + span * length].reshape(span, length)[idx - idx[0]] if (
        span != idx.size) else x[starts[0]:starts[0] + span * length].reshape(span, length)
  return x[starts[:, None] + np.arange(length)]


def _bad_epochs(x: np.ndarray, starts: np.ndarray, idx: np.ndarray, length: int, ch: _Channel,
                check_flat: bool, flat_tol_uv: float) -> np.ndarray:
  """Step 7 on the epochs `idx` starting at `starts`: (n,) bool, True for a bad epoch.

  Bad: a NaN/inf sample; with `check_flat`, peak-to-peak <= flat_tol_uv, or every sample at
  the channel's night minimum or maximum (ch.lo, ch.hi).
  """
  bad = np.zeros(starts.shape, bool)
  if ch.all_finite and not check_flat:
    return bad
  # Chunks of epochs bound the (epochs, samples) arrays to ~64 MB at 256 Hz.
  for c0 in range(0, starts.size, 1024):
    segs = _segments(x, starts[c0:c0 + 1024], idx[c0:c0 + 1024], length)  # (n, length)
    b = np.zeros(segs.shape[0], bool) if ch.all_finite else ~np.isfinite(segs).all(axis=1)
    if check_flat:
      with np.errstate(invalid="ignore"):
        lo, hi = segs.min(axis=1), segs.max(axis=1)
        b |= (hi - lo) <= flat_tol_uv
        # Clipped throughout: only possible when the epoch's extremes are night extremes.
        maybe = np.flatnonzero(((lo == ch.lo) | (lo == ch.hi)) & ((hi == ch.lo) | (hi == ch.hi)))
        if maybe.size:
          seg = segs[maybe]
          b[maybe] |= ((seg == ch.lo) | (seg == ch.hi)).all(axis=1)
    bad[c0:c0 + 1024] = b
  return bad


def _check_output_rate(sfreq: float, path) -> None:
  n_t = round(EPOCH_S * sfreq)
  if sfreq <= 0 or abs(n_t - EPOCH_S * sfreq) > 1e-6:
    raise SamplingRateError(path, f"output sfreq {sfreq} Hz does not give an integer number "
                            "of samples per 30-s epoch")


def _epoch_channels(chans: list[_Channel], hypnogram: Hypnogram, montage: Montage,
                    resolved: Mapping[str, str], *, path, fs_ref: float, n_ref: int,
                    first_s: float, record_id: str, subject_id: str, sfreq: float,
                    lowpass_at_nyquist: bool, zscore: bool, trim_wake_min: float | None,
                    keep_unscored: bool, max_mismatch_s: float | None, flat_tol_uv: float,
                    flat_check_modalities, notes=()) -> Recording:
  """Steps 3-9 of the module doc on channels that may each have their own rate.

  The epoch grid and the "inside the signal" test are computed at `fs_ref` over `n_ref`
  samples (the rate and length of the file's fastest montage channel, as MNE reads it); the
  per-epoch checks of step 7 and the resampling of step 8 at each channel's own rate.
  `first_s`: seconds between the PSG start (the hypnogram's origin) and the first sample.
  """
  _check_output_rate(sfreq, path)
  n_t = round(EPOCH_S * sfreq)
  report = EpochReport(record_id=record_id,
                       paths=tuple(p for p in (path, hypnogram.path) if p is not None))
  report.warnings.extend(notes)  # e.g. an assumed hypnogram offset, header notes
  for s in montage:
    if s.name not in resolved:
      report.warnings.append(f"optional {s.modality} channel {s.name!r} absent")
  chans = list(chans)

  # 3. Whole-night checks (and each channel's night minimum / maximum, for step 7).
  for ch in list(chans):
    x, spec = ch.data, ch.spec
    ch.all_finite = bool(np.isfinite(x).all())
    finite = None if ch.all_finite else np.isfinite(x)
    problem = None
    if not ch.all_finite and not finite.any():
      problem = "is entirely NaN/inf"
    else:
      ch.lo, ch.hi = (x.min(), x.max()) if ch.all_finite else (x[finite].min(), x[finite].max())
      if ch.hi - ch.lo <= flat_tol_uv:
        problem = f"is flat over the whole night (constant {ch.lo:.6g})"
    if problem is None:
      continue
    label = resolved[spec.name]
    if spec.required:
      raise BadSignalError(path, f"required {spec.modality} channel {label!r} {problem}")
    report.warnings.append(f"optional {spec.modality} channel {label!r} {problem}; dropped")
    chans.remove(ch)

  # 4. Epoch grid and the signal/hypnogram mismatch rule.
  n_samples = n_ref
  fs_raw = fs_ref
  duration_s = n_samples / fs_raw
  stages = hypnogram.stages
  n_total = hypnogram.n_epochs
  report.n_epochs_total = n_total
  # Seconds from the first sample held: a cropped raw starts `first_s` after the PSG start
  # that the hypnogram's onset refers to.
  starts_s = hypnogram.onset_s - first_s + EPOCH_S * np.arange(n_total)
  raw_len = round(EPOCH_S * fs_raw)
  raw_starts = np.round(starts_s * fs_raw).astype(np.int64)
  inside = (raw_starts >= 0) & (raw_starts + raw_len <= n_samples)
  if not inside.any():
    raise HypnogramMismatchError(
        path, f"hypnogram {hypnogram.path} ({n_total} epochs from {hypnogram.onset_s} s) does "
        f"not overlap the {duration_s:.1f}-s signal")
  scored_out = (~inside) & (stages != stages_lib.UNSCORED)
  if scored_out.any():
    overhang = max(float(np.max(starts_s[scored_out] + EPOCH_S - duration_s)),
                   float(np.max(-starts_s[scored_out])))
    if max_mismatch_s is not None and overhang > max_mismatch_s:
      raise HypnogramMismatchError(
          path, f"hypnogram {hypnogram.path} scores {int(scored_out.sum())} epochs beyond the "
          f"{duration_s:.1f}-s signal, reaching {overhang:.1f} s past it (tolerance "
          f"{max_mismatch_s} s): wrong hypnogram or cut recording?")
  tail_s = duration_s - (starts_s[-1] + EPOCH_S)
  if tail_s > EPOCH_S:
    report.warnings.append(f"signal extends {tail_s:.0f} s beyond the hypnogram (unscored, "
                           "not epoched)")

  # 5.-6. Label-based selection, in DROP_REASONS precedence.
  reason = np.full((n_total,), "", dtype=object)
  reason[~inside] = "beyond_signal"
  if trim_wake_min is not None:
    sleep = np.flatnonzero((stages >= stages_lib.N1) & (stages <= stages_lib.REM))
    if sleep.size:
      margin = int(round(trim_wake_min * 60.0 / EPOCH_S))
      idx = np.arange(n_total)
      outside = (idx < sleep[0] - margin) | (idx > sleep[-1] + margin)
      reason[(reason == "") & outside] = "outside_trimmed_window"
    else:
      report.warnings.append("no sleep epoch in the hypnogram: wake trimming skipped")
  if not keep_unscored:
    reason[(reason == "") & (stages == stages_lib.MOVEMENT)] = "movement"
    reason[(reason == "") & (stages == stages_lib.UNSCORED)] = "unscored"

  # 7. Per-epoch bad signal, at each channel's own rate.
  candidates = np.flatnonzero(reason == "")
  for ch in chans:
    if not candidates.size:
      break
    x = ch.data
    if ch.sfreq == fs_raw:
      c_len, c_starts = raw_len, raw_starts
    else:
      c_len = round(EPOCH_S * ch.sfreq)
      c_starts = np.clip(np.round(starts_s * ch.sfreq).astype(np.int64), 0,
                         max(x.shape[0] - c_len, 0))
    check_flat = ch.spec.modality in flat_check_modalities
    bad = _bad_epochs(x, c_starts[candidates], candidates, c_len, ch, check_flat,
                      flat_tol_uv)
    reason[candidates[bad]] = "bad_signal"
    candidates = candidates[~bad]

  for r in report.dropped:
    report.dropped[r] = int(np.sum(reason == r))
  kept = np.flatnonzero(reason == "")
  report.n_kept = int(kept.size)

  # 8. Resample and cut.
  out_starts = np.round(starts_s[kept] * sfreq).astype(np.int64)
  by_modality: dict[str, list] = {}
  for ch in chans:
    spec = ch.spec
    x = ch.data if ch.all_finite else np.nan_to_num(ch.data, nan=0.0, posinf=0.0, neginf=0.0)
    y = _resample(x, ch.sfreq, sfreq, lowpass_at_nyquist, path)
    # Rounding of the epoch start can reach one sample past the end after resampling.
    short = int(out_starts.max(initial=0)) + n_t - y.shape[0]
    if short > 0:
      y = np.pad(y, (0, short), mode="edge")
    epochs = _segments(y, out_starts, kept, n_t).astype(np.float32)  # (N, T)
    # 9. Per-night z-score over the kept epochs.
    if zscore and epochs.size:
      mu, sd = epochs.mean(dtype=np.float64), epochs.std(dtype=np.float64)
      epochs = ((epochs - mu) / (sd if sd > 0 else 1.0)).astype(np.float32)
    by_modality.setdefault(spec.modality, []).append((spec, epochs))

  signals, names, positions = {}, {}, {}
  for modality, items in by_modality.items():
    signals[modality] = np.stack([e for _, e in items], axis=1)  # (N, C, T)
    names[modality] = tuple(s.name for s, _ in items)
    pos = []
    for s, _ in items:
      p = np.full((3,), np.nan, np.float32)
      if modality in _POSITION_MODALITIES:
        p = electrode_position(s.name)
        if not np.isfinite(p).all():
          p = electrode_position(resolved[s.name])
      pos.append(p)
    positions[modality] = np.stack(pos).astype(np.float32)  # (C, 3)

  out_stages = stages[kept].astype(np.int32)
  out_stages[out_stages == stages_lib.MOVEMENT] = stages_lib.UNSCORED
  return Recording(record_id=record_id, subject_id=subject_id, sfreq=float(sfreq),
                   signals=signals, channel_names=names, positions=positions,
                   stages=out_stages, epoch_index=kept.astype(np.int32), report=report)


def read_aligned_hypnogram(psg_header: edf_lib.EDFHeader, hypnogram_path: str | os.PathLike, *,
                           assume_offset_s: float | None = None, **kwargs) -> Hypnogram:
  """Reads an EDF+ hypnogram placed on its PSG's timeline by the two files' start times.

  Args:
    psg_header: the PSG's `edf.validate_edf` header.
    hypnogram_path: the EDF+ annotation file.
    assume_offset_s: opt-in for a start date/time that does not parse on either file: the
      hypnogram is placed this many seconds after the PSG start, and the report says so.
      None: such a start is an error (never a silent offset of 0).
    **kwargs: passed to `hypnogram.read_edf_hypnogram` (e.g. ignore_texts=).

  Returns:
    The Hypnogram (onset_s on the PSG timeline; `notes` states an assumed offset).

  Raises:
    AlignmentError: a start date/time does not parse and assume_offset_s is None.
    The reader's errors (AnnotationError, EDFHeaderError, ...).
  """
  from sleepjax.data.errors import AlignmentError  # pylint: disable=g-import-not-at-top
  from sleepjax.data.hypnogram import read_edf_hypnogram  # pylint: disable=g-import-not-at-top

  if psg_header.start is None:
    if assume_offset_s is None:
      raise AlignmentError(psg_header.path, f"start date/time {psg_header.start_fields} does not "
                           "parse (dd.mm.yy hh.mm.ss): cannot place hypnogram "
                           f"{os.fspath(hypnogram_path)} on its timeline; fix the header or pass "
                           "assume_offset_s= (stated in the report)")
    hyp = read_edf_hypnogram(hypnogram_path, psg_start=None, assume_offset_s=assume_offset_s,
                             **kwargs)
    return dataclasses.replace(hyp, notes=(
        f"assumed hypnogram offset {float(assume_offset_s):g} s after the PSG start (the PSG's "
        f"start date/time {psg_header.start_fields} does not parse; assume_offset_s)",))
  return read_edf_hypnogram(hypnogram_path, psg_start=psg_header.start,
                            assume_offset_s=assume_offset_s, **kwargs)


def load_recording(psg_path: str | os.PathLike, hypnogram: Hypnogram | str | os.PathLike,
                   montage: Montage, *, hypnogram_kwargs: Mapping | None = None,
                   **kwargs) -> Recording:
  """Reads a PSG EDF and its hypnogram and epochs them (the steps of `epoch_recording`).

  Only the montage's channels are read from the file (`edf.read_physical`: the header's own
  calibration), each at its own sampling rate, and each is resampled once, from its own rate to
  `sfreq` (steps 7-8 of the module doc). This is what
  `epoch_recording(edf.read_raw_edf(psg_path, include=...), ...)` computes, except for channels
  stored below the fastest montage channel's rate, which MNE would first upsample to that rate
  by FFT (docs/building.md: where the two differ, and by how much). Discontinuous EDF+D files are
  refused; a montage label used by two signals is an error.

  Args:
    psg_path: the PSG .edf or .bdf (BDF/BDF+, 24-bit) file.
    hypnogram: a Hypnogram, or the path of a hypnogram file (EDF+ annotations are placed on
      the PSG timeline with the PSG's start time; CSV, NSRR XML and text files by their own
      onsets; hypnogram_kwargs={"format": "csv", "stage_mapping": {...}} or, for a dataset's
      text codes, {"epoch_s": ..., "mapping": ...}).
    montage: the channels to take.
    hypnogram_kwargs: extra arguments for `hypnogram.read_hypnogram` (for an EDF+ hypnogram
      e.g. assume_offset_s=, see `read_aligned_hypnogram`).
    **kwargs: passed to `epoch_recording` (subject_id is required; record_id defaults to the
      PSG file name without extension and a "-PSG" suffix).

  Returns:
    The Recording.

  Raises:
    EDFHeaderError: an EDF+D (discontinuous) PSG; AlignmentError: a start date/time does not
    parse (see `read_aligned_hypnogram`); other RecordingError subclasses, each
    naming the offending file (see `epoch_recording`, `edf.validate_edf`,
    `hypnogram.read_hypnogram`).
  """
  psg_path = os.fspath(psg_path)
  header = edf_lib.validate_edf(psg_path)
  if header.is_discontinuous:
    # Data records of EDF+D / BDF+D are not contiguous in time: a 30-s grid over the samples
    # would silently misalign the hypnogram.
    raise EDFHeaderError(psg_path, f"discontinuous {header.format} recording: data records have "
                         "time gaps, so 30-s epochs cannot be placed on the hypnogram timeline")
  if not isinstance(hypnogram, Hypnogram):
    hkw = dict(hypnogram_kwargs or {})
    fmt = hkw.pop("format", None)
    is_edf = fmt == "edf+" or (fmt is None and os.fspath(hypnogram).lower().endswith(".edf"))
    if is_edf and "psg_start" not in hkw:
      hypnogram = read_aligned_hypnogram(header, hypnogram, **hkw)
    else:
      hypnogram = read_hypnogram(hypnogram, fmt, **hkw)
  labels = [header.labels[i] for i in header.signal_indices]
  wanted = {_norm_label(c) for spec in montage for c in spec.candidates}
  for label in dict.fromkeys(labels):
    hits = [i for i in header.signal_indices if header.labels[i] == label]
    if len(hits) > 1 and _norm_label(label) in wanted:
      raise MissingChannelError(psg_path, f"label {label!r} is used by {len(hits)} signals "
                                f"({hits}), so which one is the montage's channel is ambiguous")
  if "record_id" not in kwargs:
    stem = os.path.splitext(os.path.basename(psg_path))[0]
    kwargs["record_id"] = stem[:-4] if stem.upper().endswith("-PSG") else stem
  if "subject_id" not in kwargs:
    raise RecordingError(psg_path, "load_recording needs subject_id= (the SleepMG domain)")
  # epoch_recording's defaults (one definition), then the caller's arguments.
  kwargs = {**{k: p.default for k, p in inspect.signature(epoch_recording).parameters.items()
               if k in _EPOCH_ARGS}, **kwargs}
  _check_output_rate(kwargs["sfreq"], psg_path)
  dims = dict(zip(header.labels, header.physical_dims))
  dims.update(kwargs.pop("physical_dims", None) or {})
  ordinary = [header.labels[i] for i in header.signal_indices]
  resolved = montage.resolve(ordinary, psg_path)
  chans = []
  for spec, label, i, x in _read_native(psg_path, header, montage, resolved):
    dim_bytes = header.physical_dim_bytes[i] if header.physical_dim_bytes else None
    chans.append(_Channel(spec, label, float(header.sfreqs[i]),
                          _to_unit(x, label, spec.modality, dims.get(label), True, psg_path, dim_bytes)))
  # The grid of MNE's reading (the fastest montage channel's rate), so that the epochs and
  # the mismatch rule are those of `epoch_recording` on `edf.read_raw_edf(include=...)`.
  picked = [header.labels.index(ch.label) for ch in chans] or list(header.signal_indices)
  fs_ref = max(header.sfreqs[i] for i in picked)
  n_ref = header.n_records * max(header.n_samples_per_record[i] for i in picked)
  return _epoch_channels(chans, hypnogram, montage, resolved, path=psg_path, fs_ref=fs_ref,
                         n_ref=n_ref, first_s=0.0, notes=(*hypnogram.notes, *header.notes), **kwargs)


_EPOCH_ARGS = ("sfreq", "lowpass_at_nyquist", "zscore", "trim_wake_min", "keep_unscored",
               "max_mismatch_s", "flat_tol_uv", "flat_check_modalities")


def _read_native(psg_path: str, header, montage: Montage, resolved: Mapping[str, str]):
  """Yields (spec, file label, signal index, (T_c,) float64 physical values) per montage channel.

  Only these signals are read (`edf.read_physical`, from the header's calibration, one signal
  at a time), each at its own rate: no upsampling to the file's highest rate.
  """
  for spec in montage:
    if spec.name not in resolved:
      continue
    label = resolved[spec.name]
    i = next(j for j in header.signal_indices if header.labels[j] == label)
    x = edf_lib.read_physical(psg_path, [i], header=header,
                              samples_per_record=int(header.n_samples_per_record[i]))[0]
    yield spec, label, i, x
