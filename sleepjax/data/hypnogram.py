"""Hypnograms: expert sleep stages per 30-s epoch on the PSG timeline.

Readers for Sleep-EDF EDF+ annotation files ("Sleep stage W/1/2/3/4/R/?", "Movement time";
Kemp et al. 2000) and for one-label-per-line text files (DREAMS 5-s R&K codes, Devuyst et al.;
ISRUC-Sleep 30-s AASM codes, Khalighi et al. 2016), whose code maps are dataset facts kept by
their builders (tfds_builders/dreams, tfds_builders/isruc_s3). Finer scorings are converted to
30-s epochs by majority vote (`to_30s`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Mapping, Sequence

import numpy as np

from sleepjax.data import stages as stages_lib
from sleepjax.data.errors import AlignmentError
from sleepjax.data.errors import AnnotationError
from sleepjax.data.errors import RecordingError

EPOCH_S = 30.0


@dataclasses.dataclass(frozen=True)
class Hypnogram:
  """Stages of consecutive 30-s epochs, placed on the PSG's timeline.

  Attributes:
    stages: (N,) int32, AASM W=0..REM=4, UNSCORED=-1, MOVEMENT=-2 (sleepjax.data.stages).
    onset_s: seconds from the PSG's start to the start of epoch 0 (may be negative when the
      scoring starts before the signal).
    path: the file it was read from (str), or None.
    notes: statements for the recording's report (e.g. an assumed PSG/hypnogram offset).
  """

  stages: np.ndarray
  onset_s: float = 0.0
  path: str | None = None
  notes: tuple[str, ...] = ()

  def __post_init__(self):
    s = np.asarray(self.stages)
    if s.ndim != 1:
      raise AnnotationError(self.path, f"hypnogram stages must be 1-D, got shape {s.shape}")
    allowed = {stages_lib.UNSCORED, stages_lib.MOVEMENT, *range(stages_lib.NUM_STAGES)}
    bad = sorted(set(np.unique(s).tolist()) - allowed)
    if bad:
      raise AnnotationError(self.path, f"hypnogram has stage values {bad} outside "
                            f"{sorted(allowed)}")
    object.__setattr__(self, "stages", s.astype(np.int32))
    object.__setattr__(self, "onset_s", float(self.onset_s))
    object.__setattr__(self, "notes", tuple(str(n) for n in self.notes))
    if self.path is not None:
      object.__setattr__(self, "path", os.fspath(self.path))

  @property
  def n_epochs(self) -> int:
    """Number of 30-s epochs N."""
    return int(self.stages.shape[0])

  @property
  def end_s(self) -> float:
    """Seconds from the PSG start to the end of the last epoch."""
    return self.onset_s + EPOCH_S * self.n_epochs

  def scored_span(self) -> tuple[int, int] | None:
    """(first, last) indices of epochs that are not UNSCORED, or None when all are."""
    idx = np.flatnonzero(self.stages != stages_lib.UNSCORED)
    return (int(idx[0]), int(idx[-1])) if idx.size else None


def to_30s(stages: np.ndarray, epoch_s: float) -> np.ndarray:
  """Majority vote of sub-epochs into 30-s epochs.

  Each group of k = 30 / epoch_s consecutive sub-epochs gives one 30-s epoch with the most
  frequent label; UNSCORED and MOVEMENT sub-epochs count as their own classes. Ties go to
  the tied label that occurs first in time within the epoch (deterministic, and it keeps the
  epoch rather than discarding transitions). A trailing incomplete group is dropped (it does
  not cover a whole 30-s epoch).

  Args:
    stages: (M,) integer stages at `epoch_s` resolution.
    epoch_s: the scoring resolution in seconds; must divide 30 (e.g. 5 s in DREAMS).

  Returns:
    (M // k,) int32 stages per 30-s epoch.

  Raises:
    ValueError: epoch_s does not divide 30 s.
  """
  stages = np.asarray(stages).astype(np.int32)
  ratio = EPOCH_S / epoch_s
  k = int(round(ratio))
  if epoch_s <= 0 or abs(ratio - k) > 1e-9 or k < 1:
    raise ValueError(f"epoch_s={epoch_s} s does not divide the 30-s epoch")
  if k == 1:
    return stages.copy()
  n = stages.shape[0] // k
  groups = stages[:n * k].reshape(n, k)
  out = np.empty((n,), np.int32)
  for i, g in enumerate(groups):
    labels, first, counts = np.unique(g, return_index=True, return_counts=True)
    tied = counts == counts.max()
    out[i] = labels[tied][np.argmin(first[tied])]
  return out


def read_edf_hypnogram(path: str | os.PathLike, *,
                       psg_start: datetime.datetime | None = None,
                       ignore_texts: Sequence[str] = (),
                       assume_offset_s: float | None = None) -> Hypnogram:
  """Reads a Sleep-EDF style EDF+ hypnogram into 30-s epochs.

  Annotations "Sleep stage W/1/2/3/4/R/?" and "Movement time" (read with
  `mne.read_annotations`) are mapped with `stages.map_stage_text`; a duration of d seconds
  gives d / 30 epochs; gaps between annotations become UNSCORED.

  Args:
    path: the EDF+ annotation file (e.g. "SC4001EC-Hypnogram.edf").
    psg_start: the PSG's start datetime (its EDF header). When given, the hypnogram's own
      header start is used to place epoch 0 on the PSG timeline; otherwise both files are
      assumed to start together (true for Sleep-EDF). To place a hypnogram whose PSG's start
      does not parse, use `recording.read_aligned_hypnogram`, which refuses to guess.
    ignore_texts: annotation texts that are not stages and are skipped (e.g. "Lights off").
    assume_offset_s: opt-in: when psg_start is given but this file's start date/time does not
      parse, or psg_start is None, place the hypnogram this many seconds after the PSG start
      and say so in `Hypnogram.notes` (the report). None: such a start is an AlignmentError.

  Returns:
    A Hypnogram; onset_s = first annotation onset (+ start offset).

  Raises:
    EDFHeaderError / EDFTruncatedError: the file's header is damaged (from validate_edf).
    AnnotationError: no annotation signal, no stage annotation, unknown text, onset or
      duration not on the 30-s grid, or overlapping annotations with different stages.
    AlignmentError: psg_start is given, this file's start does not parse, and no
      assume_offset_s.
  """
  import mne  # Heavy; only needed here.

  from sleepjax.data.edf import validate_edf

  path = os.fspath(path)
  header = validate_edf(path)
  if not header.annotation_indices:
    raise AnnotationError(path, "no 'EDF Annotations' signal: not an EDF+ hypnogram")
  try:
    ann = mne.read_annotations(path)
  except Exception as e:  # MNE raises several types for malformed TALs.
    raise AnnotationError(path, f"MNE could not read the annotations: "
                          f"{type(e).__name__}: {e}") from e
  ignore = {t.strip().casefold() for t in ignore_texts}
  items = [(float(o), float(d), str(t)) for o, d, t in
           zip(ann.onset, ann.duration, ann.description) if t.strip().casefold() not in ignore]
  if not items:
    raise AnnotationError(path, "no sleep stage annotations found")
  items.sort(key=lambda x: x[0])
  base = items[0][0]
  coded = []
  for onset, duration, text in items:
    stage = stages_lib.map_stage_text(text, path)
    start, n = (onset - base) / EPOCH_S, duration / EPOCH_S
    if abs(start - round(start)) > 1e-3 or abs(n - round(n)) > 1e-3 or round(n) < 1:
      raise AnnotationError(path, f"annotation {text!r} at {onset} s lasting {duration} s is "
                            "not on the 30-s epoch grid")
    coded.append((int(round(start)), int(round(n)), stage, onset, text))
  n_total = max(s + n for s, n, *_ in coded)
  out = np.full((n_total,), stages_lib.UNSCORED, np.int32)
  assigned = np.zeros((n_total,), bool)
  for s, n, stage, onset, text in coded:
    clash = assigned[s:s + n] & (out[s:s + n] != stage)
    if clash.any():
      raise AnnotationError(path, f"annotation {text!r} at {onset} s overlaps an earlier "
                            "annotation with a different stage")
    out[s:s + n] = stage
    assigned[s:s + n] = True
  offset, notes = 0.0, ()
  if psg_start is not None and header.start is not None:
    offset = (header.start - psg_start).total_seconds()
  elif assume_offset_s is not None:
    offset = float(assume_offset_s)
    why = (f"the hypnogram's start date/time {header.start_fields} does not parse"
           if header.start is None else "the PSG's start is unknown")
    notes = (f"assumed hypnogram offset {offset:g} s after the PSG start ({why}; "
             "assume_offset_s)",)
  elif psg_start is not None:
    raise AlignmentError(path, f"start date/time {header.start_fields} does not parse "
                         "(dd.mm.yy hh.mm.ss): cannot place the hypnogram on the PSG timeline; "
                         "fix the header or pass assume_offset_s= (stated in the report)")
  return Hypnogram(stages=out, onset_s=base + offset, path=path, notes=notes)


def read_text_hypnogram(path: str | os.PathLike, *, epoch_s: float,
                        mapping: Mapping[str, int], header_lines: int = 1,
                        onset_s: float = 0.0) -> Hypnogram:
  """Reads a one-label-per-line hypnogram, e.g. DREAMS (5 s, R&K) or ISRUC (30 s, AASM).

  Blank lines are skipped; a label is the first whitespace-separated token of its line.

  Args:
    path: the text file.
    epoch_s: the scoring resolution in seconds (must divide 30: 5, 10, 15, 30).
    mapping: {label text: stage int}, e.g. {"0": W, "1": N1, "2": N2, "3": N3, "5": REM} (ISRUC).
    header_lines: lines to skip first (DREAMS has one, "[Hypnogram]"; ISRUC none).
    onset_s: seconds from the PSG start to the first scored epoch.

  Returns:
    A Hypnogram at 30-s resolution (majority vote, see `to_30s`).

  Raises:
    AnnotationError: missing/empty file, an unknown label (naming line and text), or an
      epoch_s that does not divide 30 s.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise AnnotationError(path, "hypnogram file does not exist")
  with open(path, encoding="latin-1") as f:
    lines = f.read().splitlines()
  labels = []
  for lineno, line in enumerate(lines[header_lines:], start=header_lines + 1):
    token = line.strip().split()[0] if line.strip() else None
    if token is None:
      continue
    if token not in mapping:
      raise AnnotationError(path, f"line {lineno}: unknown stage label {token!r}; known: "
                            f"{sorted(mapping)}")
    labels.append(mapping[token])
  if not labels:
    raise AnnotationError(path, "hypnogram file has no stage labels")
  try:
    stages = to_30s(np.asarray(labels, np.int32), epoch_s)
  except ValueError as e:
    raise AnnotationError(path, str(e)) from None
  if stages.size == 0:
    raise AnnotationError(path, f"{len(labels)} labels of {epoch_s} s do not fill one 30-s "
                          "epoch")
  return Hypnogram(stages=stages, onset_s=onset_s, path=path)


def read_hypnogram(path: str | os.PathLike, **kwargs) -> Hypnogram:
  """Reads a hypnogram, choosing the reader from the extension (docs/architecture.md).

  ".edf" -> `read_edf_hypnogram(path, **kwargs)`; anything else ->
  `read_text_hypnogram(path, **kwargs)` (which needs `epoch_s` and `mapping`).

  Args:
    path: the hypnogram file.
    **kwargs: passed to the chosen reader (e.g. psg_start=, or epoch_s= and mapping=).

  Returns:
    A Hypnogram of 30-s epochs.

  Raises:
    AnnotationError and the readers' errors; RecordingError for a text file read without
    `epoch_s`/`mapping`.
  """
  if os.fspath(path).lower().endswith(".edf"):
    return read_edf_hypnogram(path, **kwargs)
  if "epoch_s" not in kwargs or "mapping" not in kwargs:
    raise RecordingError(path, "a text hypnogram needs epoch_s= and mapping= "
                         "(a {label: stage} map such as the DREAMS or ISRUC builder's)")
  return read_text_hypnogram(path, **kwargs)
