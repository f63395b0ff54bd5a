"""TUH EEG Events Corpus (TUEV): one window per annotated event, six classes.

TUEV (Harati et al. 2015) marks 1-s segments of clinical EEG as one of SPSW (spike and sharp
wave), GPED (generalised periodic epileptiform discharge), PLED (periodic lateralised
epileptiform discharge), EYEM (eye movement), ARTF (artifact) or BCKG (background).

Format read (v2.0.x; only these two files per session are used):

  <manual_dir>/.../{train,eval}/<subject>/<subject>_<nnnnnnnn>.edf   TUH EDF, "EEG FP1-REF" labels
  <manual_dir>/.../{train,eval}/<subject>/<subject>_<nnnnnnnn>.rec   events, one per line:
      channel,start_s,stop_s,class      e.g. "14,19.0,20.0,6"

`channel` indexes TUH's 22-channel TCP bipolar montage (0 = FP1-F7), `class` is 1..6 in the
order SPSW, GPED, PLED, EYEM, ARTF, BCKG (some tools write the lower-case names instead; both
are accepted). The per-channel `.lab` files repeat the same information and are not read.

One example per distinct event (start, stop): the same second is usually listed once per
channel. When channels disagree, an event class wins over BCKG (background is the catch-all,
so a spike on one channel makes the second a spike), and among event classes the one marked on
the most channels wins, ties going to the lower class number (SPSW before GPED, ...). The
window (config: 60 s as in the transfer paper's EEG protocol, docs/specification.md §3.2, or 5 s
as in BIOT/LaBraM) is centred on the event and shifted to stay inside the recording. Signals are
the 19 referential 10-20 channels (kept referential so that every channel has an electrode
position, docs/specification.md §2.3.1), in microvolts, at the config's rate.

Splits: TUEV `eval` -> `test`; TUEV `train` -> `train` / `validation` by subject
(`sleepjax.data.pipeline.subject_split`, 10% of the training subjects).
"""

from __future__ import annotations

import collections
import os
import pathlib
from typing import Iterator

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _eeg
from tfds_builders import _report
from tfds_builders import _tuh_eeg

LABELS = ("spsw", "gped", "pled", "eyem", "artf", "bckg")
_BCKG = LABELS.index("bckg")
VALIDATION_FRACTION = 0.1

# TUH's TCP ("temporal central parasagittal") bipolar montage: the channel index of .rec files.
TCP_MONTAGE = ("FP1-F7", "F7-T3", "T3-T5", "T5-O1", "FP2-F8", "F8-T4", "T4-T6", "T6-O2", "A1-T3", "T3-C3",
               "C3-CZ", "CZ-C4", "C4-T4", "T4-A2", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4",
               "C4-P4", "P4-O2")


def read_rec(path: str | os.PathLike) -> list[tuple[int, float, float, int]]:
  """Parses a TUEV .rec event file.

  Args:
    path: the .rec file.

  Returns:
    Rows (channel index, start_s, stop_s, class index into `LABELS`), in file order.

  Raises:
    AnnotationError: a line without 4 comma-separated fields, a non-numeric time, stop <= start,
      a channel outside the TCP montage, or an unknown class (naming the file and the line).
  """
  path = os.fspath(path)
  rows = []
  with open(path, encoding="ascii", errors="replace") as f:
    for n, line in enumerate(f, start=1):
      line = line.strip()
      if not line:
        continue
      fields = [x.strip() for x in line.split(",")]
      if len(fields) != 4:
        raise errors.AnnotationError(path, f"line {n}: expected 'channel,start,stop,class', got {line!r}")
      try:
        channel, start, stop = int(float(fields[0])), float(fields[1]), float(fields[2])
      except ValueError as e:
        raise errors.AnnotationError(path, f"line {n}: non-numeric channel/start/stop in {line!r}") from e
      label = _class_index(fields[3])
      if label is None:
        raise errors.AnnotationError(path, f"line {n}: unknown event class {fields[3]!r} (expected 1..6 or {LABELS})")
      if not 0 <= channel < len(TCP_MONTAGE):
        raise errors.AnnotationError(path, f"line {n}: channel {channel} outside the 22-channel TCP montage")
      if not stop > start >= 0:
        raise errors.AnnotationError(path, f"line {n}: bad interval [{start}, {stop}] s")
      rows.append((channel, start, stop, label))
  return rows


def _class_index(field: str) -> int | None:
  name = field.strip().lower()
  if name in LABELS:
    return LABELS.index(name)
  try:
    number = float(name)
  except ValueError:
    return None
  return int(number) - 1 if number == int(number) and 1 <= number <= len(LABELS) else None


def merge_events(rows) -> list[tuple[float, float, int, tuple[int, ...]]]:
  """Collapses per-channel .rec rows into one event per distinct (start, stop).

  Rule (module docstring): any event class beats BCKG; among event classes the most channels
  win; ties -> the lower class index.

  Args:
    rows: output of `read_rec`.

  Returns:
    (start_s, stop_s, class index, sorted TCP channel indices carrying that class), by start time.
  """
  by_time = collections.defaultdict(list)
  for channel, start, stop, label in rows:
    by_time[(start, stop)].append((channel, label))
  events = []
  for (start, stop), marks in sorted(by_time.items()):
    counts = collections.Counter(label for _, label in marks)
    candidates = [c for c in counts if c != _BCKG] or [_BCKG]
    label = min(candidates, key=lambda c: (-counts[c], c))
    events.append((start, stop, label, tuple(sorted({ch for ch, lab in marks if lab == label}))))
  return events


def parse_tuev_path(path: str | os.PathLike) -> tuple[str, str, str]:
  """(partition "train"|"eval", subject_id, record_id) of a TUEV .edf path.

  The subject is the per-subject folder holding the file (v2: `train/aaaaaaar/aaaaaaar_00000001.edf`),
  or, for a file directly under train/ or eval/, the text of its stem before the first "_". The
  record id is the stem.

  Raises:
    RecordingError: the path has no train/eval folder.
  """
  p = pathlib.Path(path)
  parts = [x.lower() for x in p.parts[:-1]]
  partition = next((x for x in reversed(parts) if x in ("train", "eval")), None)
  if partition is None:
    raise errors.RecordingError(path, "TUEV file not under .../{train,eval}/")
  parent = p.parent.name
  subject = parent if parent.lower() not in ("train", "eval") else p.stem.split("_")[0]
  return partition, subject, p.stem


class Tuev(_common.ArrayRecordBuilder):
  """TUH EEG Events Corpus: windows centred on annotated 1-s events, 6 classes."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: event-centred windows of the 19 10-20 channels."}
  BUILDER_CONFIGS = [
      _eeg.EEGWindowConfig(name="128hz_60s", description="Transfer-paper protocol: 128 Hz, 60-s windows.",
                          sfreq=128.0, window_s=60.0),
      _eeg.EEGWindowConfig(name="128hz_5s", description="5-s windows (event + 2 s each side, BIOT/LaBraM).",
                          sfreq=128.0, window_s=5.0),
  ]
  DEFAULT_CONFIG_NAME = "128hz_60s"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  TUEV needs a (free) registration: request access at
  https://isip.piconepress.com/projects/nedc/html/tuh_eeg/ (form "TUH EEG Corpus"), then
  rsync -auxvL nedc-tuh-eeg@www.isip.piconepress.com:data/tuh_eeg/tuh_eeg_events/v2.0.1/ tuev/
  and pass the folder (containing .../train/<subject>/*.edf+*.rec and .../eval/<subject>/...) as --manual_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    c = len(_tuh_eeg.TUH_CHANNELS)
    return self.dataset_info_from_configs(
        description=__doc__,
        features=_downstream.features(
            {"eeg": (c, self.builder_config.n_times)}, label_names=LABELS,
            task_fields={
                "event_index": tfds.features.Scalar(dtype=np.int32),
                "event_start_s": tfds.features.Scalar(dtype=np.float32),
                "event_stop_s": tfds.features.Scalar(dtype=np.float32),
                "start_s": tfds.features.Scalar(dtype=np.float32),
                # TCP bipolar channels on which the winning class was marked.
                "event_channels": tfds.features.Tensor(shape=(len(TCP_MONTAGE),), dtype=np.bool_),
            }),
        supervised_keys=None,
        homepage="https://isip.piconepress.com/projects/nedc/html/tuh_eeg/",
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(tcp_montage=list(TCP_MONTAGE)),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    files = collections.defaultdict(list)
    # pathlib, not epath: epath refuses recursive globs (a guard for GCS); manual_dir is local.
    for path in sorted(pathlib.Path(os.fspath(dl_manager.manual_dir)).rglob("*.edf")):
      try:
        partition, subject, record = parse_tuev_path(path)
      except errors.RecordingError as e:
        logging.warning("tuev: ignoring %s", e)
        continue
      files[partition].append((path, subject, record))
    by_split = _tuh_eeg.partition_splits(files, lambda f: f[1], dl_manager.manual_dir, "TUEV",
                                        validation_fraction=VALIDATION_FRACTION)
    # TFDS refuses an empty split; a partial tree (e.g. no eval/ folder) simply lacks that split.
    return {split: self._generate_examples(split, f) for split, f in by_split.items()}

  def _generate_examples(self, split, files) -> Iterator[tuple[str, dict]]:
    cfg = self.builder_config
    window = cfg.n_times
    montage = _tuh_eeg.tuh_montage()
    names = np.array(_tuh_eeg.TUH_CHANNELS, dtype=object)
    pos = _downstream.electrode_positions(_tuh_eeg.TUH_CHANNELS)
    failures, n_examples, n_events_skipped = [], 0, 0
    for path, subject, record in files:
      try:
        events = merge_events(read_rec(path.with_suffix(".rec")))
        data = _eeg.read_eeg(path, montage, cfg.sfreq)
      except FileNotFoundError:
        logging.warning("tuev: skipping %s: no .rec event file next to %s", record, path)
        failures.append(f"{record}: no .rec event file")
        continue
      except errors.RecordingError as e:
        logging.warning("tuev: skipping %s: %s", record, e)
        failures.append(f"{record}: {e}")
        continue
      for i, (start_s, stop_s, label, marked) in enumerate(events):
        start = _eeg.centred_start((start_s + stop_s) / 2, window, cfg.sfreq, data.shape[1])
        if start is None or stop_s * cfg.sfreq > data.shape[1] + 1:
          logging.warning("tuev: %s event %d [%s, %s] s does not fit a %s-s window inside the %.1f-s recording",
                          record, i, start_s, stop_s, cfg.window_s, data.shape[1] / cfg.sfreq)
          n_events_skipped += 1
          continue
        channels_mask = np.zeros(len(TCP_MONTAGE), np.bool_)
        channels_mask[list(marked)] = True
        n_examples += 1
        yield f"{record}_{i:05d}", {
            "signals": {"eeg": data[:, start:start + window]},
            "channel_names": {"eeg": names},
            "positions": {"eeg": pos},
            "label": label,
            "subject_id": subject,
            "record_id": record,
            "event_index": i,
            "event_start_s": start_s,
            "event_stop_s": stop_s,
            "start_s": start / cfg.sfreq,
            "event_channels": channels_mask,
        }
    _report.write(self, split, _report.example_report(len(files), failures, n_examples, n_events_skipped=n_events_skipped))
