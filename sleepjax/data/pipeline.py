"""Input pipeline: prepared TFDS examples (one per 30-s epoch) -> padded, masked window batches.

The builders in `tfds_builders/` store one example per scored 30-s epoch, a recording's epochs
contiguous and in order (docs/architecture.md §3). This module groups them into windows of
L consecutive epochs of one recording (L=10 gives the 5-min windows of SleepFM-Clinical, L=1 the
single epochs of SleepMG), pads every modality to a static channel cap and masks the padding, as
docs/architecture.md §4 fixes. It is numpy + grain only: no JAX, so it runs in any host
process; the trainer passes `jax.process_index()` / `jax.process_count()` as plain ints.

It also owns the subject-wise split rule (`subject_split`) that the builders and the trainers share,
and `prepare` / `data_source`, which build or open a registered dataset by name. sleepjax never
imports `tfds_builders`: the caller (main.py, a test, a notebook) does
`import tfds_builders.synthetic_psg` (or `.sleep_edf`, `.dreams`) first, which registers the builder.

Batch layout (B batch, C_cap channel cap of a modality, L epochs per window, T samples per epoch):

  signals:        {modality: (B, C_cap, L*T) float32}  uV (z-scored if the config asked); 0 where padded
  mask:           {modality: (B, C_cap) bool}          True = real channel (False for padding and for
                                                       channels a recording lacks: `channel_mask`)
  positions:      {modality: (B, C_cap, 3) float32}    electrode (x, y, z); 0 where padded or unknown
  position_mask:  {modality: (B, C_cap) bool}          True = real channel with a known electrode position
  stage:          (B, L) int32                         AASM W=0..REM=4, -1 unscored
  subject:        (B,) int32                           index into the sorted subject vocabulary, -1 unknown
  record_id:      (B,) object (str)
  epoch_index:    (B, L) int32

`position_mask` is an addition to the architecture contract: the contract says NaN positions are
"replaced by 0 and masked", and the channel mask cannot carry that (an ECG lead is a real channel
without an electrode position), so the position validity gets its own mask.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grain
import numpy as np

MODALITIES = ("eeg", "eog", "emg", "ecg", "resp")
SPLITS = ("train", "validation", "test")

# ---------------------------------------------------------------------------------------------
# Subject-wise splits.
# ---------------------------------------------------------------------------------------------


def _subject_hash(subject_id: str, salt: str) -> str:
  # sha256 rather than Python's hash(): the latter is salted per process, the split must not be.
  return hashlib.sha256(f"{salt}:{subject_id}".encode("utf-8")).hexdigest()


def subject_split(
    subject_ids: Sequence[str],
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    salt: str = "sleepjax",
) -> dict[str, str]:
  """Assigns every subject to exactly one of train / validation / test (subject-wise split).

  Rule (deterministic, independent of input order and of the machine): the unique subjects are
  ranked by sha256(f"{salt}:{subject_id}"); the first n_test go to "test", the next n_val to
  "validation", the rest to "train", with

    n >= 3:  n_test = max(1, round(n * test_fraction)), n_val = max(1, round(n * validation_fraction))
             (both 0 when the fraction is 0), and train keeps at least one subject;
    n == 2:  one subject in train, one in test (no validation split);
    n == 1:  the subject is in train.

  So a 1-2 subject subset (a test, a single downloaded night) still gives a usable train split, and
  a 3-subject tiny corpus gives one subject per split. Because the ranking is by hash, adding
  subjects can move a subject between splits only through the changed counts; never a subject
  in two splits (docs/specification.md §1.5: subject-wise splits only).

  Args:
    subject_ids: subject ids (duplicates allowed, e.g. one per night).
    validation_fraction: fraction of subjects for validation, in [0, 1).
    test_fraction: fraction of subjects for test, in [0, 1).
    salt: changes the ranking (a different random-looking split), e.g. for repeated splits.

  Returns:
    Mapping subject_id -> "train" | "validation" | "test".

  Raises:
    ValueError: fractions outside [0, 1) or summing to >= 1.
  """
  if not (0 <= validation_fraction < 1 and 0 <= test_fraction < 1
          and validation_fraction + test_fraction < 1):
    raise ValueError(
        f"subject_split: fractions must be in [0, 1) and sum to < 1, got validation="
        f"{validation_fraction}, test={test_fraction}")
  unique = sorted(set(subject_ids), key=lambda s: (_subject_hash(s, salt), s))
  n = len(unique)
  if n == 0:
    return {}
  if n == 1:
    n_test, n_val = 0, 0
  elif n == 2:
    n_test, n_val = (1 if test_fraction > 0 else 0), 0
  else:
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * validation_fraction)) if validation_fraction > 0 else 0
    while n_test + n_val > n - 1:  # keep at least one training subject
      if n_val >= n_test and n_val > 0:
        n_val -= 1
      else:
        n_test -= 1
  out = {}
  for rank, subject in enumerate(unique):
    if rank < n_test:
      out[subject] = "test"
    elif rank < n_test + n_val:
      out[subject] = "validation"
    else:
      out[subject] = "train"
  return out


# ---------------------------------------------------------------------------------------------
# Window index.
# ---------------------------------------------------------------------------------------------


def as_str(value: Any) -> str:
  """A TFDS text feature as str: data sources return bytes (or a 0-d object array); tests use str."""
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    return as_str(value.item())
  return str(value)


@dataclasses.dataclass(frozen=True)
class WindowIndex:
  """Windows of L consecutive 30-s epochs of one recording, as rows of a data source.

  A window never crosses a recording and never spans a gap in `epoch_index` (an epoch dropped by
  the builder, e.g. unscored or bad signal, breaks the run), so the L epochs of a window are
  consecutive on the night's timeline.

  Attributes:
    rows: (W, L) int64, source row of each epoch of each window, in time order.
    record_ids: (W,) object (str), the recording of each window.
    subject_ids: (W,) object (str), the subject of each window.
    window_epochs: L.
    stride_epochs: distance in epochs between consecutive window starts of one run.
  """
  rows: np.ndarray
  record_ids: np.ndarray
  subject_ids: np.ndarray
  window_epochs: int
  stride_epochs: int

  def __len__(self) -> int:
    return int(self.rows.shape[0])

  @property
  def subjects(self) -> tuple[str, ...]:
    """Sorted unique subject ids: the default vocabulary of the batch's `subject` field."""
    return tuple(sorted(set(self.subject_ids.tolist())))

  @classmethod
  def from_arrays(
      cls,
      record_ids: Sequence[str],
      subject_ids: Sequence[str],
      epoch_index: Sequence[int],
      *,
      window_epochs: int = 1,
      stride_epochs: int | None = None,
  ) -> "WindowIndex":
    """Builds the index from per-row metadata (one entry per source row).

    Args:
      record_ids: (N,) str, recording of each row.
      subject_ids: (N,) str, subject of each row.
      epoch_index: (N,) int, epoch index within the night of each row.
      window_epochs: L >= 1.
      stride_epochs: start-to-start distance, default L (non-overlapping windows).

    Returns:
      The index; rows need not be sorted (they are ordered by (record, epoch_index) here).

    Raises:
      ValueError: L or the stride < 1, mismatched lengths, or a duplicated (record, epoch).
    """
    stride_epochs = window_epochs if stride_epochs is None else stride_epochs
    if window_epochs < 1 or stride_epochs < 1:
      raise ValueError(f"window_epochs and stride_epochs must be >= 1, got {window_epochs}, "
                       f"{stride_epochs}")
    rec = np.asarray([as_str(r) for r in record_ids], dtype=object)
    sub = np.asarray([as_str(s) for s in subject_ids], dtype=object)
    ep = np.asarray(epoch_index, dtype=np.int64)
    if not (len(rec) == len(sub) == len(ep)):
      raise ValueError(f"record_ids, subject_ids and epoch_index differ in length: "
                       f"{len(rec)}, {len(sub)}, {len(ep)}")
    rec_codes = {r: i for i, r in enumerate(sorted(set(rec.tolist())))}
    rec_num = np.asarray([rec_codes[r] for r in rec], dtype=np.int64)
    order = np.lexsort((ep, rec_num))
    windows = []
    n = len(order)
    start = 0
    while start < n:
      # A run: same recording, epoch_index increasing by exactly 1.
      end = start + 1
      while (end < n and rec_num[order[end]] == rec_num[order[start]]
             and ep[order[end]] == ep[order[end - 1]] + 1):
        end += 1
      if end < n and rec_num[order[end]] == rec_num[order[end - 1]] \
          and ep[order[end]] == ep[order[end - 1]]:
        raise ValueError(f"duplicated epoch {ep[order[end]]} of recording {rec[order[end]]}")
      for w0 in range(start, end - window_epochs + 1, stride_epochs):
        windows.append(order[w0:w0 + window_epochs])
      start = end
    rows = (np.stack(windows).astype(np.int64) if windows
            else np.zeros((0, window_epochs), np.int64))
    first = rows[:, 0] if len(rows) else np.zeros((0,), np.int64)
    return cls(rows=rows, record_ids=rec[first], subject_ids=sub[first],
               window_epochs=window_epochs, stride_epochs=stride_epochs)

  @classmethod
  def from_source(
      cls,
      source: Sequence[Mapping[str, Any]],
      *,
      window_epochs: int = 1,
      stride_epochs: int | None = None,
      use_metadata: bool = True,
  ) -> "WindowIndex":
    """Index of a random-access source (record_id, subject_id, epoch_index of every row).

    A whole split of a sleepjax PSG builder carries its row index in
    `info.metadata["build_report"][split]["index"]` (see tfds_builders/_common.py); it is used
    when present and consistent with len(source). Otherwise every example is decoded once
    (about 4 ms per 128-Hz epoch of 13 channels: minutes for 10^5 epochs).

    Args:
      source: a `tfds.data_source(...)` split or any sequence of example dicts with the keys of
        docs/architecture.md §3.
      window_epochs: L >= 1.
      stride_epochs: default L (non-overlapping).
      use_metadata: False forces the scan.

    Returns:
      The index.
    """
    meta = _index_from_metadata(source) if use_metadata else None
    if meta is not None:
      return cls.from_arrays(*meta, window_epochs=window_epochs, stride_epochs=stride_epochs)
    recs, subs, eps = [], [], []
    for i in range(len(source)):
      ex = source[i]
      recs.append(as_str(ex["record_id"]))
      subs.append(as_str(ex["subject_id"]))
      eps.append(int(ex["epoch_index"]))
    return cls.from_arrays(recs, subs, eps, window_epochs=window_epochs,
                           stride_epochs=stride_epochs)


def _index_from_metadata(source) -> tuple[list[str], list[str], list[int]] | None:
  """(record_ids, subject_ids, epoch_index) per row from a builder's stored index, or None."""
  info, split = getattr(source, "dataset_info", None), getattr(source, "split", None)
  if info is None or not isinstance(split, str):
    return None
  try:
    entry = info.metadata["build_report"][split]["index"]
    recs, subs, eps = [], [], []
    for rec, sub, epochs in zip(entry["record_id"], entry["subject_id"], entry["epoch_index"]):
      recs += [rec] * len(epochs)
      subs += [sub] * len(epochs)
      eps += [int(e) for e in epochs]
  except (KeyError, TypeError, AttributeError):
    return None
  if len(eps) != len(source):
    return None  # e.g. a sliced split ("train[:10%]"): scan instead.
  return recs, subs, eps


# ---------------------------------------------------------------------------------------------
# Window assembly.
# ---------------------------------------------------------------------------------------------


def _modality_groups(
    modalities: Sequence[str] | Mapping[str, Sequence[str]] | None,
    example: Mapping[str, Any],
) -> dict[str, tuple[str, ...]]:
  if modalities is None:
    return {m: (m,) for m in example["signals"]}
  if isinstance(modalities, Mapping):
    return {k: tuple(v) for k, v in modalities.items()}
  return {m: (m,) for m in modalities}


@functools.cache
def _example_class():
  from tensorflow_datasets.proto import tf_example_pb2  # pylint: disable=g-import-not-at-top
  return tf_example_pb2.Example


def _parse_example(record: bytes):
  return _example_class().FromString(record)


class _EpochDecoder:
  """Reads one stored 30-s epoch of a sleepjax PSG dataset straight from its array_record bytes.

  TFDS's generic decoding of an example (`source[i]`) costs about 0.6 ms per 13-channel 128-Hz
  epoch, five times the read itself; it is Python bookkeeping over the nested feature dict. The
  stored records are `tf.train.Example` protos (TFDS's serialization of the features of
  docs/architecture.md §3: "signals/<modality>" float lists or raw float32 bytes (TFDS's
  `Encoding.NONE` or `Encoding.BYTES`), "positions/<modality>", int64
  "stage" and "epoch_index", bytes "subject_id" and "record_id"), so this decoder parses the proto
  and converts the fields the pipeline uses, about 0.1 ms per epoch, to the same values (a test
  checks every field against `source[i]`). `channel_names` is not read. Any other layout (another
  dataset, a zlib-encoded feature, a non-array_record source) gets `None` from `for_source`, and
  the pipeline uses `source[i]`.
  """

  def __init__(self, records, shapes: dict[str, dict[str, tuple[tuple[int, ...], bool]]]):
    self._records = records  # picklable (grain worker processes): no proto classes held here
    self._shapes = shapes

  @classmethod
  def for_source(cls, source) -> "_EpochDecoder | None":
    records = getattr(source, "data_source", None)
    info = getattr(source, "dataset_info", None)
    if records is None or info is None or not hasattr(records, "__getitem__"):
      return None
    try:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
      features = info.features
      keys = set(features.keys())
      base = {"signals", "channel_names", "positions", "stage", "subject_id", "record_id", "epoch_index"}
      if keys not in (base, base | {"channel_mask"}):
        return None
      shapes = {"signals": {}, "positions": {}}
      if "channel_mask" in keys:
        shapes["channel_mask"] = {}
      for group in shapes:
        for m, feature in features[group].items():
          encoding = getattr(feature, "_encoding", None)  # TFDS has no public accessor
          dtype = np.bool_ if group == "channel_mask" else np.float32
          if (not isinstance(feature, tfds.features.Tensor) or feature.np_dtype != dtype
              or encoding not in (tfds.features.Encoding.NONE, tfds.features.Encoding.BYTES)
              or None in feature.shape):
            return None
          shapes[group][m] = (tuple(feature.shape), encoding == tfds.features.Encoding.BYTES)
      # `stage`: a ClassLabel (W..REM, stored as int64) or, in builds before it, an int32 Scalar.
      if not (isinstance(features["stage"], tfds.features.ClassLabel)
              or (isinstance(features["stage"], tfds.features.Scalar)
                  and features["stage"].np_dtype == np.int32)):
        return None
      if not isinstance(features["epoch_index"], tfds.features.Scalar) or features["epoch_index"].np_dtype != np.int32:
        return None
      for name in ("subject_id", "record_id"):
        if not isinstance(features[name], tfds.features.Text):
          return None
    except (AttributeError, KeyError, TypeError, ImportError):
      return None
    return cls(records, shapes)

  def __call__(self, i: int) -> dict[str, Any]:
    f = _parse_example(self._records[i]).features.feature
    out: dict[str, Any] = {}
    for group, shapes in self._shapes.items():
      out[group] = {}
      for m, (shape, raw_bytes) in shapes.items():
        value = f[f"{group}/{m}"]
        if group == "channel_mask":  # TFDS stores a bool tensor as int64 (or raw bytes)
          out[group][m] = (np.frombuffer(value.bytes_list.value[0], np.bool_) if raw_bytes
                           else np.asarray(value.int64_list.value, np.int64).astype(bool)).reshape(shape)
        elif raw_bytes:  # TFDS's Encoding.BYTES: the array's bytes in native (little-endian) order
          out[group][m] = np.frombuffer(value.bytes_list.value[0], np.float32).reshape(shape)
        else:
          out[group][m] = np.asarray(value.float_list.value, np.float32).reshape(shape)
    out["stage"] = int(f["stage"].int64_list.value[0])
    out["epoch_index"] = int(f["epoch_index"].int64_list.value[0])
    out["subject_id"] = f["subject_id"].bytes_list.value[0]
    out["record_id"] = f["record_id"].bytes_list.value[0]
    return out


class _WindowAssembler:
  """Turns the rows of a batch of windows into one padded, masked batch.

  Every epoch's channels are copied once, straight into the batch arrays (allocated zeroed, so
  padding costs nothing); a TFDS data source of a sleepjax PSG builder is decoded by
  `_EpochDecoder`, and the finiteness guard is one reduction over the batch.
  """

  def __init__(self, source, index: WindowIndex, groups: dict[str, tuple[str, ...]],
               caps: dict[str, int], n_times: int, subject_vocab: Sequence[str]):
    self._source = source
    self._index = index
    self._groups = groups
    self._caps = caps
    self._n_times = n_times
    self._subject_of = {s: i for i, s in enumerate(subject_vocab)}
    self._decoder = _EpochDecoder.for_source(source)

  def _read(self, rows: np.ndarray) -> list[Mapping[str, Any]]:
    if self._decoder is not None:
      return [self._decoder(int(r)) for r in rows]
    return [self._source[int(r)] for r in rows]

  def batch(self, windows: Sequence[int]) -> dict[str, Any]:
    """The batch of the given windows (docs/architecture.md §4 plus `position_mask`)."""
    rows = self._index.rows[np.asarray(windows, np.int64)]  # (B, L)
    B, L = rows.shape
    T = self._n_times
    flat = self._read(rows.reshape(-1))
    examples = [flat[b * L:(b + 1) * L] for b in range(B)]
    signals, mask, positions, position_mask = {}, {}, {}, {}
    for out_name, members in self._groups.items():
      cap = self._caps[out_name]
      sig = np.zeros((B, cap, L * T), np.float32)
      pos = np.zeros((B, cap, 3), np.float32)
      m = np.zeros((B, cap), bool)
      pm = np.zeros((B, cap), bool)
      for b, window in enumerate(examples):
        c0 = 0
        for member in members:
          if member not in window[0]["signals"]:
            continue  # a modality this dataset lacks: all-padding, all-masked.
          c = int(np.shape(window[0]["signals"][member])[0])
          if c0 + c > cap:
            raise ValueError(
                f"record {as_str(window[0]['record_id'])}: {out_name!r} has "
                f"{c0 + c} channels, more than its cap {cap}")
          for j, ex in enumerate(window):
            sig[b, c0:c0 + c, j * T:(j + 1) * T] = ex["signals"][member]  # one copy (and cast)
          p = np.asarray(window[0]["positions"][member], np.float32).reshape(c, 3)
          # A masked dataset (psg_folder) stores every montage channel, absent ones zero with
          # channel_mask False; a recording's channels are the same in all its epochs.
          present = np.ones((c,), bool)
          if "channel_mask" in window[0]:
            present = np.asarray(window[0]["channel_mask"][member], bool).reshape(c)
          known = np.all(np.isfinite(p), axis=-1) & present
          pos[b, c0:c0 + c] = np.where(known[:, None], p, 0.0)
          m[b, c0:c0 + c] = present
          pm[b, c0:c0 + c] = known
          c0 += c
      # Epochs with NaN are dropped by the builder; this guards against other sources. A sum is
      # finite only if every term is (one vectorised pass, no temporary array).
      if not np.isfinite(np.sum(sig)):  # an overflow to inf only takes the slow path
        np.nan_to_num(sig, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
      signals[out_name], mask[out_name] = sig, m
      positions[out_name], position_mask[out_name] = pos, pm
    return {
        "signals": signals,
        "mask": mask,
        "positions": positions,
        "position_mask": position_mask,
        "stage": np.asarray([[int(ex["stage"]) for ex in w] for w in examples], np.int32).reshape(B, L),
        "subject": np.asarray([self._subject_of.get(as_str(w[0]["subject_id"]), -1) for w in examples], np.int32),
        "record_id": np.asarray([as_str(w[0]["record_id"]) for w in examples], dtype=object),
        "epoch_index": np.asarray([[int(ex["epoch_index"]) for ex in w] for w in examples],
                                  np.int32).reshape(B, L),
    }


def collate(elements: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Stacks window elements (single windows without the batch axis) into a batch.

  The pipelines assemble whole batches directly; this is for callers that hold elements.

  Args:
    elements: single windows, all with the same shapes (record_id a str).

  Returns:
    The batch dict of docs/architecture.md §4 (plus `position_mask`), record_id as an object
    array of str.
  """
  out = {}
  for key in ("signals", "mask", "positions", "position_mask"):
    out[key] = {m: np.stack([e[key][m] for e in elements]) for m in elements[0][key]}
  out["stage"] = np.stack([e["stage"] for e in elements])
  out["subject"] = np.asarray([e["subject"] for e in elements], np.int32)
  out["record_id"] = np.asarray([e["record_id"] for e in elements], dtype=object)
  out["epoch_index"] = np.stack([e["epoch_index"] for e in elements])
  return out


def _setup(source, index, window_epochs, stride_epochs, channel_caps, modalities, subject_vocab):
  if len(source) == 0:
    raise ValueError("the data source is empty")
  if index is None:
    index = WindowIndex.from_source(source, window_epochs=window_epochs,
                                    stride_epochs=stride_epochs)
  elif index.window_epochs != window_epochs:
    raise ValueError(f"index has window_epochs={index.window_epochs}, asked {window_epochs}")
  first = source[0]
  groups = _modality_groups(modalities, first)
  n_times = int(next(iter(first["signals"].values())).shape[-1])
  caps = {}
  for out_name, members in groups.items():
    natural = sum(int(np.shape(first["signals"][m])[0]) for m in members
                  if m in first["signals"])
    caps[out_name] = natural if channel_caps is None else int(
        channel_caps.get(out_name, natural))
    if caps[out_name] < natural:
      raise ValueError(f"channel cap {caps[out_name]} for {out_name!r} is below the dataset's "
                       f"{natural} channels")
  vocab = index.subjects if subject_vocab is None else tuple(subject_vocab)
  return index, _WindowAssembler(source, index, groups, caps, n_times, vocab)


def make_dataset(
    source: Sequence[Mapping[str, Any]],
    *,
    batch_size: int,
    window_epochs: int = 1,
    stride_epochs: int | None = None,
    channel_caps: Mapping[str, int] | None = None,
    modalities: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    drop_remainder: bool = True,
    shard_index: int = 0,
    shard_count: int = 1,
    subject_vocab: Sequence[str] | None = None,
    index: WindowIndex | None = None,
    read_options: grain.ReadOptions | None = None,
) -> grain.IterDataset:
  """A grain training pipeline of padded, masked window batches.

  Every process (shard) walks the same global order of windows (shuffled with `seed`, a different
  permutation in each pass over the data, as grain's repeat reseeds) in global batches of
  `batch_size * shard_count` windows, and reads only its slice of each global batch: rows
  [shard_index * batch_size, (shard_index + 1) * batch_size). So the global batches, and hence
  training, are the same for any number of processes, and no window is read twice in a step.

  `iter(dataset)` returns a grain `DatasetIterator`; `it.get_state()` / `it.set_state(state)`
  save and restore the input position (a small dict, checkpointable with orbax's grain handler or
  JSON), so a resumed run sees exactly the batches an uninterrupted one would.

  Args:
    source: random-access sequence of examples (docs/architecture.md §3), e.g.
      `data_source(name, "train", ...)`, or a list of dicts in tests.
    batch_size: windows per batch (per process).
    window_epochs: L, epochs per window (10 = 5 min as in SleepFM-Clinical, 1 for SleepMG).
    stride_epochs: start-to-start distance of windows, default L (non-overlapping).
    channel_caps: {output modality: C_cap}; channels are padded to the cap and masked. Default:
      the dataset's own channel counts (SleepFM-Clinical caps: BAS 10, ECG 2, EMG 4, RESP 7).
    modalities: output modalities: a list of dataset modalities, or a mapping output name ->
      dataset modalities concatenated in that order (e.g. {"bas": ("eeg", "eog")} as SleepFM-
      Clinical's BAS). A dataset modality the source lacks gives an all-masked block. Default: all.
    seed: shuffling seed.
    shuffle: shuffle windows (False: index order, still sharded).
    num_epochs: passes over the data; None = repeat forever.
    drop_remainder: drop the last partial batch of the (finite) stream.
    shard_index: this process's shard, e.g. jax.process_index().
    shard_count: number of shards, e.g. jax.process_count().
    subject_vocab: sorted subject list defining the `subject` integers (default: the source's).
    index: a precomputed `WindowIndex` (skips the scan of the source).
    read_options: grain thread/prefetch options. Default: 4 threads, 8 batches ahead (grain's
      own default, 500 batches ahead, would hold gigabytes of 5-min windows in memory).

  Returns:
    A `grain.IterDataset` of batches (dicts as in the module docstring).

  Raises:
    ValueError: empty source or shard, bad shard arguments (or several shards without
      drop_remainder), or a modality above its cap.
  """
  if not 0 <= shard_index < shard_count:
    raise ValueError(f"shard_index {shard_index} not in [0, {shard_count})")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  index, assemble = _setup(source, index, window_epochs, stride_epochs, channel_caps,
                           modalities, subject_vocab)
  if len(index) < shard_count:
    raise ValueError(f"{len(index)} windows of {window_epochs} epochs cannot feed "
                     f"{shard_count} shards")
  if shard_count > 1 and not drop_remainder:
    raise ValueError("several shards need drop_remainder=True (a last partial global batch cannot be split)")
  ds = grain.MapDataset.range(len(index))
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  lo, hi = shard_index * batch_size, (shard_index + 1) * batch_size
  # Batches of window numbers first (cheap), then this shard's slice of each is read.
  ds = ds.batch(batch_size * shard_count, drop_remainder=drop_remainder)
  ds = ds.map(lambda windows: assemble.batch(np.asarray(windows)[lo:hi]))
  if read_options is None:
    read_options = grain.ReadOptions(num_threads=4, prefetch_buffer_size=8)
  return ds.to_iter_dataset(read_options)


def iterate_windows(
    source: Sequence[Mapping[str, Any]],
    *,
    batch_size: int,
    window_epochs: int = 1,
    stride_epochs: int | None = None,
    channel_caps: Mapping[str, int] | None = None,
    modalities: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    subject_vocab: Sequence[str] | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    pad_final_batch: bool = False,
    index: WindowIndex | None = None,
) -> Iterator[dict[str, Any]]:
  """Evaluation iteration: every window once, in index order (recording, then time), no drop.

  Shards are windows shard_index::shard_count (their union is every window exactly once).

  Args:
    source, batch_size, window_epochs, stride_epochs, channel_caps, modalities, subject_vocab,
      index: as in `make_dataset`.
    shard_index: this process's shard.
    shard_count: number of shards.
    pad_final_batch: pad the last batch to `batch_size` with copies of its last window (static
      shapes under jit) and add "valid": (B,) bool, False for padding. Without it the last batch
      is smaller and there is no "valid" key.

  Yields:
    Batches as in `make_dataset`.
  """
  index, assemble = _setup(source, index, window_epochs, stride_epochs, channel_caps,
                           modalities, subject_vocab)
  windows = list(range(len(index)))[shard_index::shard_count]
  for b0 in range(0, len(windows), batch_size):
    chunk = windows[b0:b0 + batch_size]
    n_valid = len(chunk)
    if pad_final_batch:
      chunk = chunk + [chunk[-1]] * (batch_size - n_valid)
    batch = assemble.batch(chunk)
    if pad_final_batch:
      batch["valid"] = np.arange(batch_size) < n_valid
    yield batch


# ---------------------------------------------------------------------------------------------
# Building and opening registered datasets.
# ---------------------------------------------------------------------------------------------


def _builder(name: str, data_dir: str | None, config: str | None):
  import tensorflow_datasets as tfds  # Lazy: importing TFDS costs seconds.
  if config is not None and not isinstance(config, str):  # a BuilderConfig (e.g. from a spec)
    name, kwargs = name.split("/")[0], {"config": config}
  else:
    name, kwargs = (name if config is None or "/" in name else f"{name}/{config}"), {}
  full = name
  try:
    return tfds.builder(full, data_dir=data_dir, **kwargs)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(
        f"dataset {full!r} is not registered: import its builder first, e.g. "
        f"`import tfds_builders.synthetic_psg` (sleepjax does not import tfds_builders)") from e


def beam_pipeline_options(option_string: str):
  """Apache Beam `PipelineOptions` from TFDS's comma-separated option string.

  Args:
    option_string: flags without "--", as `tfds build --beam_pipeline_options` takes them, e.g.
      "direct_num_workers=2,direct_running_mode=multi_processing" (DirectRunner, 2 processes)
      or "runner=DataflowRunner,project=P,region=R,temp_location=gs://B/tmp" (docs/building.md).

  Returns:
    `apache_beam.options.pipeline_options.PipelineOptions`.

  Raises:
    ValueError: an empty string, or an entry starting with "-" or "=".
    ImportError: apache-beam is not installed (the `beam` extra: pip install sleepjax[beam]).
  """
  flags = [s.strip() for s in option_string.split(",") if s.strip()]
  if not flags:
    raise ValueError(f"empty Beam pipeline options {option_string!r}")
  for f in flags:
    if f[0] in "-=":
      raise ValueError(f"Beam pipeline option {f!r} in {option_string!r}: give name=value "
                       "without leading dashes")
  try:
    from apache_beam.options.pipeline_options import PipelineOptions
  except ImportError as e:
    raise ImportError(f"Beam pipeline options {option_string!r} need apache-beam: "
                      "pip install 'sleepjax[beam]'") from e
  return PipelineOptions(flags=[f"--{f}" for f in flags])


_parse_beam_options = beam_pipeline_options  # `prepare`'s argument of the same name hides it.


def prepare(
    name: str,
    data_dir: str | None = None,
    *,
    config=None,
    manual_dir: str | None = None,
    rebuild: bool = False,
    beam_pipeline_options: str | None = None,
):
  """Builds (if not built yet) a registered TFDS dataset and returns its builder.

  The caller must have imported the builder's package (`import tfds_builders.synthetic_psg`),
  which registers it with TFDS; sleepjax itself never imports tfds_builders.

  Args:
    name: dataset name, e.g. "synthetic_psg", or "synthetic_psg/tiny".
    data_dir: TFDS data directory (default: TFDS's, ~/tensorflow_datasets).
    config: builder config name, e.g. "tiny" (ignored when `name` has "/config"), or a
      `tfds.core.BuilderConfig` (the psg_folder builder's config from a dataset spec).
    manual_dir: folder with manually downloaded files (Sleep-EDF offline, DREAMS).
    rebuild: build again even if a build exists (TFDS's REUSE_CACHE_IF_EXISTS: downloads are
      kept, the dataset is regenerated), e.g. after a StaleBuildError.
    beam_pipeline_options: build through Apache Beam with these options (see
      `beam_pipeline_options`; the PSG builders, tfds_builders._beam); None builds in this
      process.

  Returns:
    The prepared `tfds.core.DatasetBuilder` (builder.info.splits, builder.info.metadata).

  Raises:
    ValueError: the dataset is not registered; malformed Beam options.
    sleepjax.data.errors.StaleBuildError / NoUsableRecordingError: from the PSG builders
      (tfds_builders._common.PsgBuilder).
  """
  import tensorflow_datasets as tfds
  builder = _builder(name, data_dir, config)
  beam_options = (_parse_beam_options(beam_pipeline_options)
                  if beam_pipeline_options is not None else None)
  mode = {"download_mode": tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS} if rebuild else {}
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir, beam_options=beam_options, **mode)
  # TFDS refuses to set the file format of an info read from an existing build (a rebuild); the
  # builders default to array_record themselves.
  builder.download_and_prepare(download_config=download_config,
                               file_format=None if rebuild else "array_record")
  return builder


def data_source(name: str, split: str, *, data_dir: str | None = None,
                config: str | None = None, manual_dir: str | None = None):
  """Prepares the dataset if needed and returns the split as a random-access data source.

  Args:
    name, data_dir, config, manual_dir: as in `prepare`.
    split: "train", "validation" or "test" (any TFDS split string).

  Returns:
    A sequence of example dicts (strings as bytes), the input of `make_dataset`.
  """
  builder = prepare(name, data_dir, config=config, manual_dir=manual_dir)
  return builder.as_data_source(split=split)


def describe_windows(index: WindowIndex) -> dict[str, int]:
  """Counts windows per recording (a quick look for logs)."""
  return dict(collections.Counter(index.record_ids.tolist()))
