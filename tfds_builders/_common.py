"""Helpers shared by the PSG builders (sleep_edf, dreams, synthetic_psg).

One code path turns a recording into TFDS examples, whatever the dataset:

  files (PSG EDF + hypnogram)  --load_fn-->  sleepjax.data.recording.Recording
                               --recording_examples-->  one example per kept 30-s epoch

`PsgBuilder` (one array_record shard per recording; `generate_examples` for a
GeneratorBasedBuilder) runs that path over a split's recordings, logs each recording's
`EpochReport`, logs and skips a recording that raises `RecordingError` (a corrupted file, a
missing channel...), and stores a summary in the builder's `info.metadata["build_report"]`
(saved by TFDS as metadata.json next to the data; written by `tfds_builders._report`), so users
see the epochs dropped by reason:

  builder.info.metadata["build_report"][split] == {
      "n_recordings", "n_failed", "n_epochs_total", "n_kept",
      "dropped": {reason: count}, "n_warnings", "failures": [message, ...],
      "recordings": {record_id: {"n_kept": int, "n_epochs_total": int, "dropped": {...}}},
      "failed_records": [record_id, ...],
      "index": {"record_id": [...], "subject_id": [...], "epoch_index": [[int, ...], ...]}}

Reliability (docs/reliability.md): a build is keyed to its inputs (`build_inputs`: the manual
files with sizes and modification times, and the builder config, stored as
`info.metadata["build_inputs"]`); a finished build whose inputs differ from the ones given now is
refused with a StaleBuildError that says how to rebuild. Builds of one dataset version wait for
each other on a lock file beside it (the second then reuses the first's result). A build in which
no recording is usable raises NoUsableRecordingError (one line, reasons counted) and caches
nothing; a split left without examples is not stored.

"index" lists the stored rows in order (one entry per recording, its kept epochs' indices):
`sleepjax.data.pipeline.WindowIndex.from_source` uses it instead of decoding every example.

Features follow docs/architecture.md §3 exactly; keys are f"{record_id}_{epoch_index:05d}".
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data.channels import Montage
from tfds_builders import _report

EPOCH_S = 30.0
_log = logging.getLogger(__name__)


class ArrayRecordBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A GeneratorBasedBuilder that writes array_record by default (no TensorFlow needed).

  TFDS's default file format, tfrecord, needs TensorFlow to write; array_record is what
  `tfds.data_source` + grain read. Caveat: GeneratorBasedBuilder's writer keeps a whole split
  in memory and needs TensorFlow past 1 GB per split (see `PsgBuilder`).
  """

  def __init__(self, **kwargs):
    if kwargs.get("file_format") is None:
      kwargs["file_format"] = "array_record"
    super().__init__(**kwargs)


class PsgBuilder(tfds.core.ShardBasedBuilder, skip_registration=True):
  """Base of the PSG builders: one array_record shard per recording, streamed to disk.

  Why not `GeneratorBasedBuilder`: its writer buffers a whole split in memory and, past 1 GB,
  spills to temporary buckets through `tf.io.gfile` (TensorFlow, which this project does not
  install) and sorts them back in memory. A full Sleep-EDF split is several GB. TFDS's
  `ShardBasedBuilder` writes each shard as it is generated, in the given order, so memory stays
  at one recording and no TensorFlow is needed. Shuffling is off by construction (the pipeline
  builds windows from contiguous epochs); `disable_shuffling=True` is still declared in the info.

  Subclasses implement `_split_records(dl_manager) -> {split: [RecordFiles]}`,
  `_load(files) -> Recording` and the `montage` property of their config.
  array_record is the default file format (tfrecord would need TensorFlow to write).
  With Beam options or a Beam runner in the DownloadConfig, the nights are built as the
  elements of an Apache Beam pipeline instead, one shard each (`tfds_builders._beam`): the same
  files and build report, on several worker processes or a cluster.
  """

  def __init__(self, **kwargs):
    if kwargs.get("file_format") is None:
      kwargs["file_format"] = "array_record"
    super().__init__(**kwargs)


  def _example_writer(self):
    return UncompressedArrayRecordWriter(file_format=self.info.file_format)

  def _split_records(self, dl_manager) -> dict[str, list[RecordFiles]]:
    raise NotImplementedError

  def _load(self, files: RecordFiles):
    raise NotImplementedError

  def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
    """TFDS's, under a lock file, refusing a finished build made from other inputs.

    Raises:
      StaleBuildError: the data_dir holds a build of other manual files or another config.
      NoUsableRecordingError: no recording of the inputs could be used (nothing is stored).
    """
    # As given (TFDS's dl_manager.manual_dir insists on a folder; DREAMS takes an archive).
    self._manual_given = getattr(download_config, "manual_dir", None)
    with build_lock(self.data_path):
      existed = self.data_path.exists()
      mode = getattr(download_config, "download_mode", None)
      if existed and not (mode is not None and mode.overwrite_dataset):
        check_inputs(self, getattr(download_config, "manual_dir", None))
      super().download_and_prepare(download_dir=download_dir, download_config=download_config,
                                   **kwargs)
      if existed:  # Another process may have built it after this builder was made.
        self.info.read_from_directory(self.data_path)

  def _download_and_prepare(self, dl_manager, download_config=None):
    # Beam options or a Beam runner: one night per Beam element (tfds_builders._beam).
    from tfds_builders import _beam
    self.info.metadata["build_inputs"] = build_inputs(self, getattr(self, "_manual_given", None) or None)
    if _beam.requested(download_config):
      self._collector = _beam.prepare(self, dl_manager, download_config)
    else:
      super()._download_and_prepare(dl_manager, download_config)
    drop_empty_splits(self, self._collector)

  def _shard_iterators_per_split(self, dl_manager):
    collector = self._collector = _ReportCollector(self)
    montage = self.builder_config.montage
    return {split: [_RecordingShard(collector, split, files, self._load, montage)
                    for files in records]
            for split, records in self._split_records(dl_manager).items()}


@contextlib.contextmanager
def build_lock(data_path):
  """Holds an exclusive lock on `<data_path>.lock` (waiting, with one log line, if busy)."""
  lock = pathlib.Path(os.fspath(data_path) + ".lock")
  lock.parent.mkdir(parents=True, exist_ok=True)
  with open(lock, "a+") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      _log.warning("another build of %s is running; waiting for it (lock %s)", data_path, lock)
      print(f"waiting for another build of {data_path} to finish (lock file {lock})", flush=True)
      fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def build_inputs(builder, manual_dir) -> dict[str, Any]:
  """What a build is keyed to: the builder config's fields and the manual files.

  Returns:
    {"spec": {"name", "version", "config": {field: value}}, "manual_dir": str | None,
     "files": [[relative path, size in bytes, mtime in ns], ...] sorted} (JSON-able).
  """
  cfg = builder.builder_config
  base = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
  fields = ({f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in base}
            if dataclasses.is_dataclass(cfg) else {})
  spec = json.loads(json.dumps({"name": builder.name, "config_name": getattr(cfg, "name", None),
                                "version": str(builder.version), "config": fields}, default=str))
  files = []
  if manual_dir is not None:
    root = pathlib.Path(manual_dir)
    # A manual_dir may be one archive (DREAMS' .tar.xz).
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for p in paths:
      st = p.stat()
      rel = p.name if p == root else p.relative_to(root).as_posix()
      files.append([rel, int(st.st_size), int(st.st_mtime_ns)])
  return {"spec": spec, "manual_dir": None if manual_dir is None else os.fspath(manual_dir),
          "files": files}


def check_inputs(builder, manual_dir) -> None:
  """Refuses to reuse a finished build whose recorded inputs differ from the given ones.

  Without a manual_dir (a prepared dataset opened by name) only the spec is compared.

  Raises:
    StaleBuildError: one line naming what differs and how to rebuild.
  """
  try:
    recorded = json.loads((pathlib.Path(builder.data_path) / "metadata.json").read_text())
    recorded = recorded.get("build_inputs")
  except (OSError, ValueError):
    recorded = None
  if recorded is None:
    return  # Built before inputs were recorded: nothing to compare.
  current = build_inputs(builder, manual_dir)
  diffs = []
  if recorded["spec"] != current["spec"]:
    changed = sorted(k for k in set(recorded["spec"]["config"]) | set(current["spec"]["config"])
                     if recorded["spec"]["config"].get(k) != current["spec"]["config"].get(k))
    diffs.append(f"the builder config changed ({', '.join(changed) or 'name/version'})")
  if manual_dir is not None:
    old = {f[0]: tuple(f[1:]) for f in recorded["files"]}
    new = {f[0]: tuple(f[1:]) for f in current["files"]}
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(k for k in set(old) & set(new) if old[k] != new[k])
    if added or removed or changed:
      what = [f"{len(x)} {w} ({', '.join(x[:3])}{', ...' if len(x) > 3 else ''})"
              for x, w in ((changed, "changed"), (added, "added"), (removed, "removed")) if x]
      diffs.append(f"manual files differ from the build's (in {recorded['manual_dir']}): "
                   + "; ".join(what))
  if diffs:
    raise errors.StaleBuildError(
        builder.data_path, f"this build was made from other inputs: {'; '.join(diffs)}. Rebuild it "
        "with `python -m sleepjax.data.build ... --overwrite` (alias --rebuild; or pipeline.prepare(..., "
        "rebuild=True)), or delete this folder, or use another data_dir")


def drop_empty_splits(builder, collector) -> None:
  """Stores only splits with examples; none at all is a NoUsableRecordingError (counted reasons)."""
  splits = builder.info.splits
  kept = [splits[name] for name in splits if splits[name].num_examples > 0]
  if kept:
    if len(kept) != len(splits):
      builder.info.set_splits(tfds.core.SplitDict(kept))
    return
  reasons = collections.Counter()
  first = None
  n = 0
  for st in collector.state.values():
    for e in st["failures"]:
      reasons[type(e).__name__] += 1
      first = first or str(e)
      n += 1
    for rep in st["reports"]:
      reasons["no epoch kept"] += 1
      n += 1
  counted = ", ".join(f"{k} x{v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
  raise errors.NoUsableRecordingError(
      None, f"no usable recording among {n} in the inputs of {builder.info.full_name} "
      f"({counted or 'no recordings found'}); nothing was stored"
      + (f". First: {' '.join(first.split())}" if first else ""))
class UncompressedArrayRecordWriter(tfds.core.writer.ExampleWriter):
  """TFDS's example writer, with array_record's chunks left uncompressed.

  TFDS writes array_record with "group_size:1" and array_record's default compression; on
  float32 signals that saves ~8% of disk and costs ~3x the writing time and ~2x the reading
  time (benchmarks/README.md). Readers need no change (the chunk says it is uncompressed).
  Other file formats are written by TFDS as usual.
  """

  def write(self, path, examples):
    if self.file_format != tfds.core.FileFormat.ARRAY_RECORD:
      return super().write(path, examples)
    from array_record.python import array_record_module

    writer = array_record_module.ArrayRecordWriter(os.fspath(path), "group_size:1,uncompressed")
    for _, serialized in examples:
      writer.write(serialized)
    writer.close()
    return None


@dataclasses.dataclass(frozen=True)
class RecordFiles:
  """The files of one night.

  Attributes:
    record_id: e.g. "SC4001E0" (goes into keys and examples; never a path).
    subject_id: e.g. "SC400".
    psg_path: the PSG file (EDF, or a text signal for DREAMS).
    hypnogram_path: the expert hypnogram file.
  """
  record_id: str
  subject_id: str
  psg_path: str
  hypnogram_path: str


def is_masked(montage: Montage) -> bool:
  """True when a montage has optional channels: its examples are padded and carry `channel_mask`."""
  return any(not s.required for s in montage)


def channel_counts(montage: Montage) -> dict[str, int]:
  """{modality: number of channels} of a montage, in montage order (optional channels included).

  A montage of required channels only gives examples of exactly these channels (a night without
  one is reported and skipped). A montage with optional channels (`is_masked`: the psg_folder
  builder, whose recordings may carry different subsets) gives examples padded to every channel
  of the montage, absent channels zero and masked out by the `channel_mask` feature.
  """
  return {m: len(specs) for m, specs in montage.by_modality().items()}


STAGE_NAMES = ("W", "N1", "N2", "N3", "REM")
SELF_DESCRIBING_NOTE = (
    "`stage` is a ClassLabel (W, N1, N2, N3, REM; int64 codes 0..4 as before); info.metadata "
    "holds sfreq, units per modality, the montage and the stage codes.")
# The stage-code convention, stored in every PSG dataset's metadata (docs/stages.md).
STAGE_CODES = {
    "W": 0, "N1": 1, "N2": 2, "N3": 3, "REM": 4,
    "note": "AASM stages (R&K S3+S4 -> N3). Unscored and movement epochs are not stored. YASA "
            "uses the same 0-4 codes, with -1 for artefact and -2 for unscored.",
}


def epoch_features(montage: Montage, sfreq: float) -> tfds.features.FeaturesDict:
  """TFDS features of one 30-s epoch (docs/architecture.md §3).

  Args:
    montage: the config's montage (fixes C_m per modality).
    sfreq: Hz after resampling; T = 30 * sfreq must be an integer.

  Returns:
    The FeaturesDict: signals (C_m, T) float32 uV (stored as raw bytes), channel_names (C_m,)
    str, positions (C_m, 3) float32, stage `ClassLabel(names=W, N1, N2, N3, REM)` (int64 0..4),
    subject_id / record_id text, epoch_index int32; with a masked montage (`is_masked`) also
    channel_mask (C_m,) bool, True where the recording has the channel.

  Raises:
    ValueError: 30 s at sfreq is not a whole number of samples.
  """
  n_times = int(round(EPOCH_S * sfreq))
  if abs(n_times - EPOCH_S * sfreq) > 1e-6:
    raise ValueError(f"30 s at {sfreq} Hz is not a whole number of samples")
  counts = channel_counts(montage)
  features = {
      # Raw bytes: TFDS's default float_list encoding costs ~0.2 us per sample to write (most
      # of a build's time) and to read (benchmarks/README.md, build_throughput).
      "signals": {m: tfds.features.Tensor(shape=(c, n_times), dtype=np.float32,
                                          encoding=tfds.features.Encoding.BYTES)
                  for m, c in counts.items()},
      "channel_names": {m: tfds.features.Tensor(shape=(c,), dtype=np.str_)
                        for m, c in counts.items()},
      "positions": {m: tfds.features.Tensor(shape=(c, 3), dtype=np.float32)
                    for m, c in counts.items()},
      # Named classes: a project without sleepjax reads the names from the dataset itself.
      "stage": tfds.features.ClassLabel(names=STAGE_NAMES),
      "subject_id": tfds.features.Text(),
      "record_id": tfds.features.Text(),
      "epoch_index": tfds.features.Scalar(dtype=np.int32),
  }
  if is_masked(montage):
    features["channel_mask"] = {m: tfds.features.Tensor(shape=(c,), dtype=np.bool_)
                                for m, c in counts.items()}
  return tfds.features.FeaturesDict(features)


def dataset_metadata(montage: Montage, sfreq: float, *, zscore: bool = False,
                     units: dict[str, str] | None = None, **extra) -> tfds.core.MetadataDict:
  """The self-description every PSG dataset stores in `info.metadata` (metadata.json).

  Args:
    montage: the config's montage.
    sfreq: Hz of every stored signal.
    zscore: signals are z-scored per channel and night (then unitless).
    units: {modality: unit} as stored, default "uV" for every modality (respiration channels
      whose file unit is not a voltage keep it: say so here).
    **extra: more JSON-able entries (e.g. the psg_folder spec).

  Returns:
    A MetadataDict with "sfreq" (Hz), "epoch_s", "units" {modality: unit}, "montage"
    {modality: [{"name", "aliases", "required"}]}, "stage_names", "stage_codes" and `extra`.
  """
  units = {m: ("z-score (per channel and night)" if zscore else (units or {}).get(m, "uV"))
           for m in montage.modalities}
  return tfds.core.MetadataDict(
      sfreq=float(sfreq), epoch_s=EPOCH_S, units=units,
      montage={m: [{"name": s.name, "aliases": list(s.aliases), "required": s.required}
                   for s in specs] for m, specs in montage.by_modality().items()},
      stage_names=list(STAGE_NAMES), stage_codes=dict(STAGE_CODES), **extra)


def recording_examples(rec, montage: Montage) -> Iterator[tuple[str, dict[str, Any]]]:
  """Yields (key, example) for every kept epoch of a Recording, in time order.

  Args:
    rec: a `sleepjax.data.recording.Recording` (signals {m: (N, C_m, T) float32 uV}).
    montage: the config montage. Required channels only: every modality must be present with
      its full channel count. With optional channels (`is_masked`): each modality is padded to
      the montage's channels, in montage order, absent ones zero with NaN positions and
      `channel_mask` False.

  Raises:
    MissingChannelError: the recording lacks a required channel of the montage (static shapes),
      or (masked montage) has none of the montage's channels.
  """
  counts = channel_counts(montage)
  masked = is_masked(montage)
  n_times = None
  for m, c in counts.items():
    got = 0 if m not in rec.signals else rec.signals[m].shape[1]
    if got != c and not masked:
      raise errors.MissingChannelError(
          None, f"record {rec.record_id}: modality {m!r} has {got} channel(s), the montage "
                f"needs {c}")
    if m in rec.signals:
      n_times = rec.signals[m].shape[-1]
  if n_times is None:
    raise errors.MissingChannelError(None, f"record {rec.record_id}: none of the montage's "
                                     f"channels {[s.name for s in montage]} is present")
  if masked:
    names = {m: np.array([s.name for s in specs], dtype=object)
             for m, specs in montage.by_modality().items()}
    slots: dict[str, np.ndarray] = {}  # {m: (C_present,) int} montage slot of each present channel
    positions, mask = {}, {}
    for m, specs in montage.by_modality().items():
      present = list(rec.channel_names.get(m, ()))
      order = [s.name for s in specs]
      slots[m] = np.asarray([order.index(n) for n in present], np.int64)
      pos = np.full((counts[m], 3), np.nan, np.float32)
      if present:
        pos[slots[m]] = np.asarray(rec.positions[m], np.float32).reshape(len(present), 3)
      positions[m] = pos
      mask[m] = np.zeros((counts[m],), bool)
      mask[m][slots[m]] = True
  else:
    names = {m: np.array(list(rec.channel_names[m]), dtype=object) for m in counts}
    positions = {m: np.asarray(rec.positions[m], np.float32).reshape(counts[m], 3)
                 for m in counts}
  for i in range(len(rec.stages)):
    epoch = int(rec.epoch_index[i])
    if masked:
      signals = {}
      for m, c in counts.items():
        x = np.zeros((c, n_times), np.float32)  # (C_m, T), absent channels zero
        if m in rec.signals:
          x[slots[m]] = rec.signals[m][i]
        signals[m] = x
    else:
      signals = {m: np.asarray(rec.signals[m][i], np.float32) for m in counts}
    example = {
        "signals": signals,
        "channel_names": names,
        "positions": positions,
        "stage": np.int64(rec.stages[i]),
        "subject_id": rec.subject_id,
        "record_id": rec.record_id,
        "epoch_index": np.int32(epoch),
    }
    if masked:
      example["channel_mask"] = mask
    yield f"{rec.record_id}_{epoch:05d}", example


def edf_night_loader(
    montage: Montage,
    *,
    sfreq: float,
    lowpass_at_nyquist: bool = False,
    zscore: bool = False,
    trim_wake_min: float | None = 30.0,
    keep_unscored: bool = False,
    max_mismatch_s: float | None = 30.0,
    assume_offset_s: float | None = None,
) -> Callable[[RecordFiles], Any]:
  """The loader of nights stored as Sleep-EDF does it: PSG EDF + EDF+ annotations hypnogram.

  sleep_edf and synthetic_psg both use it (the synthetic generator writes this layout), so the
  synthetic default dataset goes through exactly the reader real recordings go through
  (sleepjax.data.recording.load_recording).

  Wake trimming is anchored on sleep INSIDE the signal: when no sleep epoch (N1..REM) of the
  hypnogram lies within the PSG (e.g. a 300-s excerpt of the evening before lights-off, whose
  hypnogram scores sleep hours later, beyond the file), the recording is kept whole, untrimmed,
  and the report says so; otherwise trimming is the Sleep-EDF protocol of
  `epoch_recording` (trim_wake_min before the first / after the last sleep epoch).

  Args:
    montage: channels to keep.
    sfreq: output rate in Hz (100 SleepMG, 128 SleepFM-Clinical).
    lowpass_at_nyquist: 4th-order zero-phase Butterworth at the new Nyquist (SleepFM-Clinical).
    zscore: per-channel z-score over the night (SleepFM-Clinical).
    trim_wake_min: wake kept before the first / after the last sleep epoch, minutes (Sleep-EDF
      protocol: 30); None keeps everything.
    keep_unscored: keep unscored epochs with stage -1.
    max_mismatch_s: how far scored hypnogram epochs may overhang the signal (see
      sleepjax.data.recording); None only counts them as "beyond_signal".
    assume_offset_s: opt-in offset (s) of the hypnogram after the PSG when a start date/time
      does not parse (stated in the report); None: such a night fails with AlignmentError.

  Returns:
    load(files) -> Recording; raises RecordingError subclasses on bad input.
  """
  from sleepjax.data import edf as edf_lib
  from sleepjax.data import recording as recording_lib
  from sleepjax.data import stages as stages_lib

  def load(files: RecordFiles):
    header = edf_lib.validate_edf(files.psg_path)
    hyp = recording_lib.read_aligned_hypnogram(header, files.hypnogram_path,
                                               assume_offset_s=assume_offset_s)
    trim = trim_wake_min
    ends_s = hyp.onset_s + EPOCH_S * (np.arange(hyp.n_epochs) + 1)
    inside = ends_s <= header.duration_s + 1e-6
    is_sleep = (hyp.stages >= stages_lib.N1) & (hyp.stages <= stages_lib.REM)
    no_sleep_inside = trim is not None and not np.any(is_sleep & inside)
    if no_sleep_inside:
      trim = None
    rec = recording_lib.load_recording(
        files.psg_path, hyp, montage, record_id=files.record_id, subject_id=files.subject_id,
        sfreq=sfreq, lowpass_at_nyquist=lowpass_at_nyquist, zscore=zscore,
        trim_wake_min=trim, keep_unscored=keep_unscored, max_mismatch_s=max_mismatch_s)
    if no_sleep_inside:
      rec.report.warnings.append("no sleep epoch inside the signal: kept whole, not trimmed")
    return rec

  return load


class _ReportCollector:
  """Accumulates per-recording reports; keeps builder.info.metadata["build_report"] current."""

  def __init__(self, builder):
    self._builder = builder
    self._state: dict[str, dict[str, list]] = {}

  @property
  def state(self) -> dict[str, dict[str, list]]:
    """{split: {"reports", "failures", ...}} so far."""
    return self._state

  def _split(self, split: str) -> dict[str, list]:
    return self._state.setdefault(split, {"reports": [], "failures": [], "failed_records": [],
                                          "record_id": [], "subject_id": [], "epoch_index": []})

  def add(self, split: str, rec) -> None:
    st = self._split(split)
    st["reports"].append(rec.report)
    st["record_id"].append(rec.record_id)
    st["subject_id"].append(rec.subject_id)
    st["epoch_index"].append([int(e) for e in rec.epoch_index])
    self._publish(split)

  def fail(self, split: str, record_id: str, error: errors.RecordingError) -> None:
    st = self._split(split)
    st["failures"].append(error)
    st["failed_records"].append(record_id)
    self._publish(split)

  def _publish(self, split: str) -> None:
    # Rewritten after every recording: a build interrupted half-way still says what it did.
    st = self._state[split]
    _report.write(self._builder, split,
                  _report.psg_report(st["reports"], st["failures"], st["failed_records"], st))


class _RecordingShard:
  """The example generator of one shard: one recording's kept epochs, in order.

  A recording that raises RecordingError is logged with its message and reported; its shard is
  empty (the other recordings are built).
  """

  def __init__(self, collector: _ReportCollector, split: str, files: RecordFiles,
               load_fn: Callable[[RecordFiles], Any], montage: Montage):
    self._collector, self._split, self._files = collector, split, files
    self._load_fn, self._montage = load_fn, montage

  def __call__(self) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
      rec = self._load_fn(self._files)
      examples = recording_examples(rec, self._montage)
      first = next(examples, None)  # raises MissingChannelError before anything is written
    except errors.RecordingError as e:
      _log.warning("skipping recording %s: %s", self._files.record_id, e)
      self._collector.fail(self._split, self._files.record_id, e)
      return
    _log.info("%s", rec.report)
    self._collector.add(self._split, rec)
    if first is not None:
      yield first
      yield from examples


def generate_examples(
    builder: tfds.core.DatasetBuilder,
    split: str,
    records: Sequence[RecordFiles],
    load_fn: Callable[[RecordFiles], Any],
    montage: Montage,
) -> Iterator[tuple[str, dict[str, Any]]]:
  """All examples of a split's recordings in one generator (for GeneratorBasedBuilder users).

  Same per-recording behaviour and build report as `PsgBuilder` (corrupted recordings logged,
  reported and skipped); prefer `PsgBuilder` for splits above 1 GB (see its docstring).

  Args:
    builder: the builder (its info.metadata receives the report).
    split: split name.
    records: the split's nights, in a deterministic order.
    load_fn: RecordFiles -> Recording (raises RecordingError on bad input).
    montage: the config montage.

  Yields:
    (key, example) pairs, a recording's epochs contiguous and in order.
  """
  collector = _ReportCollector(builder)
  for files in records:
    yield from _RecordingShard(collector, split, files, load_fn, montage)()


def split_records(
    records: Iterable[RecordFiles],
    **split_kwargs,
) -> dict[str, list[RecordFiles]]:
  """Subject-wise split of nights with `sleepjax.data.pipeline.subject_split`.

  Args:
    records: all nights.
    **split_kwargs: validation_fraction, test_fraction, salt.

  Returns:
    {split: nights sorted by record_id}, only non-empty splits, in train/validation/test order.
  """
  # Imported here: sleepjax.data.pipeline brings grain and JAX, which reading nights (e.g. in a
  # Beam worker process) does not need.
  from sleepjax.data import pipeline

  records = sorted(records, key=lambda r: r.record_id)
  assignment = pipeline.subject_split([r.subject_id for r in records], **split_kwargs)
  out = {}
  for split in pipeline.SPLITS:
    chosen = [r for r in records if assignment[r.subject_id] == split]
    if chosen:
      out[split] = chosen
  return out


def manual_dir_or_none(dl_manager) -> pathlib.Path | None:
  """The manual_dir the user gave, else None (the builder may then download).

  A given manual_dir is never silently replaced by a download: one that does not exist is an
  error, and an empty or unrelated one is the builder's "no matching file" error.

  Raises:
    RecordingError: the given manual_dir does not exist.
  """
  raw = getattr(dl_manager, "_manual_dir", None)
  if raw is None or not os.fspath(raw):
    return None
  path = pathlib.Path(os.fspath(raw))
  if path == pathlib.Path(os.fspath(dl_manager.download_dir)) / "manual":
    # TFDS's default when no manual_dir is given: used only if the user filled it.
    try:
      return pathlib.Path(os.fspath(dl_manager.manual_dir))
    except (AssertionError, ValueError):
      return None
  if not path.exists():
    raise errors.RecordingError(path, "manual_dir does not exist (a mistyped path?); give the "
                                "folder of the dataset's files, or no manual_dir to download")
  return path


def sha256_of(path: str | os.PathLike) -> str:
  """Hex SHA-256 of a file (streamed)."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


_SHA_LINE = re.compile(r"^#\s*sha256\t(\S+)\t([0-9a-f]{64})\t(\S+)$")


def read_commented_sha256(checksums_tsv: str | os.PathLike) -> dict[str, tuple[str, str]]:
  """Reads the "#sha256<TAB>url<TAB>sha256<TAB>filename" lines of a builder's checksums.tsv.

  TFDS's checksums.tsv format needs each file's size, which is unknown until the file is
  downloaded; a made-up size would make TFDS reject every download. So the SHA-256 sums
  (published by PhysioNet) are kept as comment lines that TFDS ignores, and the builder verifies
  them itself. `tfds build --register_checksums` writes real TFDS lines once downloaded.

  Returns:
    {filename: (url, sha256)}.
  """
  out = {}
  with open(checksums_tsv, encoding="utf-8") as f:
    for line in f:
      m = _SHA_LINE.match(line.strip())
      if m:
        out[m.group(3)] = (m.group(1), m.group(2))
  return out
