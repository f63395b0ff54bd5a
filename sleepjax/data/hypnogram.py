"""Hypnograms: expert sleep stages per 30-s epoch on the PSG timeline.

Readers (`read_hypnogram(path, format)`, docs/hypnograms.md): EDF+ annotations (Sleep-EDF's
"Sleep stage W/1/2/3/4/R/?", Kemp et al. 2000, or AASM labels), CSV (onset/duration/stage rows,
or one stage per epoch row), NSRR XML (`ScoredEvent` elements; SHHS, MESA, MrOS, CFS) and text
files with one label per line (DREAMS 5-s R&K codes, Devuyst et al.; ISRUC-Sleep 30-s AASM codes,
Khalighi et al. 2016). Labels go through `sleepjax.data.stages.stage_from_label` (R&K, AASM,
NSRR and a user `stage_mapping`). Scorings in epochs other than 30 s are converted to 30-s epochs
by majority over time (`to_30s`).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import fractions
import os
import xml.etree.ElementTree as ET
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
  """Majority vote of a scoring at `epoch_s` resolution into 30-s epochs.

  Each 30-s epoch gets the label that covers most of its time; UNSCORED and MOVEMENT count as
  their own classes. Ties go to the tied label that occurs first in time within the epoch
  (deterministic, and it keeps the epoch rather than discarding transitions). Scorings whose
  epoch does not divide 30 s (MASS's 20 s) are compared on the grid of the greatest common
  divisor (10 s for 20 s). A trailing part that does not cover a whole 30-s epoch is dropped.

  Args:
    stages: (M,) integer stages at `epoch_s` resolution.
    epoch_s: the scoring resolution in seconds, e.g. 5 (DREAMS), 20 (MASS), 30.

  Returns:
    (floor(M * epoch_s / 30),) int32 stages per 30-s epoch.

  Raises:
    ValueError: epoch_s is not positive, or not a multiple of 1 ms.
  """
  stages = np.asarray(stages).astype(np.int32)
  if not epoch_s > 0:
    raise ValueError(f"epoch_s={epoch_s} s: the scoring epoch must be positive")
  step = fractions.Fraction(epoch_s).limit_denominator(1000)
  if abs(float(step) - epoch_s) > 1e-9:
    raise ValueError(f"epoch_s={epoch_s} s is not a multiple of 1 ms")
  grid = fractions.Fraction(int(EPOCH_S)) if step == EPOCH_S else _gcd(step, fractions.Fraction(int(EPOCH_S)))
  if step != grid:  # e.g. 20 s on a 10-s grid: each label repeated over its sub-intervals
    stages = np.repeat(stages, int(step / grid))
  k = int(fractions.Fraction(int(EPOCH_S)) / grid)
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


def _gcd(a: fractions.Fraction, b: fractions.Fraction) -> fractions.Fraction:
  import math  # pylint: disable=g-import-not-at-top
  den = math.lcm(a.denominator, b.denominator)
  return fractions.Fraction(math.gcd(int(a * den), int(b * den)), den)


def _from_rows(path: str, rows, *, resolution_s: float, what: str) -> tuple[np.ndarray, float]:
  """(stages at 30 s, onset_s) from (onset_s, duration_s, stage, where) rows on one grid.

  Rows are sorted by onset; each must start and last a whole number of `resolution_s` epochs from
  the first row; gaps become UNSCORED; overlapping rows with different stages are an error.
  """
  rows = sorted(rows, key=lambda r: r[0])
  base = rows[0][0]
  coded = []
  for onset, duration, stage, where in rows:
    start, n = (onset - base) / resolution_s, duration / resolution_s
    if abs(start - round(start)) > 1e-3 or abs(n - round(n)) > 1e-3 or round(n) < 1:
      raise AnnotationError(path, f"{where}: {what} at {onset:g} s lasting {duration:g} s is not on "
                            f"the {resolution_s:g}-s epoch grid")
    coded.append((int(round(start)), int(round(n)), stage, where))
  n_total = max(s + n for s, n, *_ in coded)
  out = np.full((n_total,), stages_lib.UNSCORED, np.int32)
  assigned = np.zeros((n_total,), bool)
  for s, n, stage, where in coded:
    if (assigned[s:s + n] & (out[s:s + n] != stage)).any():
      raise AnnotationError(path, f"{where}: overlaps an earlier {what} with a different stage")
    out[s:s + n] = stage
    assigned[s:s + n] = True
  if resolution_s != EPOCH_S:
    out = to_30s(out, resolution_s)
  return out, float(base)


def read_edf_hypnogram(path: str | os.PathLike, *,
                       psg_start: datetime.datetime | None = None,
                       ignore_texts: Sequence[str] = (),
                       assume_offset_s: float | None = None,
                       stage_mapping: Mapping | None = None,
                       epoch_s: float | None = None) -> Hypnogram:
  """Reads an EDF+ hypnogram (Sleep-EDF style, R&K or AASM labels) into 30-s epochs.

  Annotations (read with `mne.read_annotations`) such as "Sleep stage W/1/2/3/4/R/?",
  "Sleep stage N2", "Wake", "REM" and "Movement time" are mapped with `stages.map_stage_text`
  (after `stage_mapping`); a duration of d seconds gives d / 30 epochs; gaps between annotations
  become UNSCORED.

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
    stage_mapping: {annotation text: stage name or int} tried before the known label sets.
    epoch_s: the scoring epoch in seconds when it is not 30 (e.g. 20 for MASS); converted to 30-s
      epochs by majority (`to_30s`).

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
  mapping = stages_lib.compile_mapping(stage_mapping, path)
  rows = []
  for onset, duration, text in items:
    key = stages_lib.normalize_label(text)
    stage = mapping[key] if key in mapping else stages_lib.map_stage_text(text, path)
    rows.append((onset, duration, stage, f"annotation {text!r}"))
  out, base = _from_rows(path, rows, resolution_s=float(epoch_s or EPOCH_S), what="annotation")
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


def read_text_hypnogram(path: str | os.PathLike, *, epoch_s: float = EPOCH_S,
                        mapping: Mapping[str, int] | None = None, header_lines: int = 1,
                        onset_s: float = 0.0, stage_mapping: Mapping | None = None) -> Hypnogram:
  """Reads a one-label-per-line hypnogram, e.g. DREAMS (5 s, R&K) or ISRUC (30 s, AASM).

  Blank lines are skipped; a label is the first whitespace-separated token of its line (the
  whole line when `mapping` is None, so that "Sleep stage 2" is one label).

  Args:
    path: the text file.
    epoch_s: the scoring resolution in seconds (e.g. 5, 20, 30); converted by majority (`to_30s`).
    mapping: a dataset's exact {label text: stage int} code table, e.g. ISRUC's {"0": W, "1": N1,
      "2": N2, "3": N3, "5": REM}; None: `stage_mapping` and the known label sets
      (`stages.stage_from_label`).
    header_lines: lines to skip first (DREAMS has one, "[Hypnogram]"; ISRUC none).
    onset_s: seconds from the PSG start to the first scored epoch.
    stage_mapping: {label: stage name or int} tried before the known label sets (with
      mapping=None).

  Returns:
    A Hypnogram at 30-s resolution.

  Raises:
    AnnotationError: missing/empty file, an unknown label (naming line and text), or an
      epoch_s that is not positive.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise AnnotationError(path, "hypnogram file does not exist")
  with open(path, encoding="latin-1") as f:
    lines = f.read().splitlines()
  user = stages_lib.compile_mapping(stage_mapping, path)
  labels = []
  for lineno, line in enumerate(lines[header_lines:], start=header_lines + 1):
    if not line.strip():
      continue
    if mapping is not None:
      token = line.strip().split()[0]
      if token not in mapping:
        raise AnnotationError(path, f"line {lineno}: unknown stage label {token!r}; known: "
                              f"{sorted(mapping)}")
      labels.append(mapping[token])
    else:
      labels.append(stages_lib.stage_from_label(line.strip(), mapping=user, path=path,
                                                where=f"line {lineno}"))
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


# CSV column names (casefolded, spaces -> "_") that hold each field.
_CSV_ONSET = ("onset", "onset_s", "start", "start_s", "start_sec", "time", "time_s", "begin")
_CSV_DURATION = ("duration", "duration_s", "dur", "length", "length_s")
_CSV_STAGE = ("stage", "sleep_stage", "stages", "label", "description", "annotation", "hypnogram",
              "event", "score", "value")
_CSV_EPOCH = ("epoch", "epoch_index", "epoch_number", "epoch_no", "index")


def read_csv_hypnogram(path: str | os.PathLike, *, epoch_s: float | None = None,
                       stage_mapping: Mapping | None = None, onset_s: float = 0.0) -> Hypnogram:
  """Reads a CSV hypnogram in either common layout (docs/hypnograms.md).

  The layout follows from the header (column names are matched case-insensitively; the
  delimiter, "," ";" or tab, is detected by pandas):
  - events: columns onset, duration and stage (or label / description / annotation), in
    seconds from the PSG start, one row per scored span (gaps become UNSCORED);
  - epochs: one row per scoring epoch, a stage column and optionally an epoch number column
    (which must count up by one), or a single column of labels with or without a header.

  Args:
    path: the .csv file.
    epoch_s: the scoring epoch in seconds (default 30); other lengths are converted by majority.
    stage_mapping: {label: stage name or int} tried before the known label sets (R&K, AASM,
      NSRR): needed for numeric codes other than R&K's 1-4.
    onset_s: epochs layout only: seconds from the PSG start to the first row's epoch.

  Returns:
    A Hypnogram of 30-s epochs (events layout: onset_s = the first row's onset).

  Raises:
    AnnotationError: missing/unreadable file, no stage column, a non-numeric onset or duration,
      an unknown label (naming its row), rows off the epoch grid, overlapping rows that
      disagree, or epoch numbers that skip.
  """
  import pandas as pd  # pylint: disable=g-import-not-at-top  # Only this reader needs it.

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise AnnotationError(path, "hypnogram file does not exist")
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      head = f.read(65536)
    first = next((line for line in head.splitlines() if line.strip()), "")
    sep = (csv.Sniffer().sniff(head, delimiters=",;\t").delimiter
           if any(d in first for d in ",;\t") else ",")
    table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True,
                        encoding="utf-8-sig")
  except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as e:
    raise AnnotationError(path, f"not a readable CSV file: {e}") from None
  columns = {str(c).strip().casefold().replace(" ", "_"): c for c in table.columns}

  def column(names):
    return next((columns[n] for n in names if n in columns), None)

  stage_col, first_row = column(_CSV_STAGE), 2  # file line of the first data row
  if stage_col is None and len(table.columns) == 1:
    # One column without a known header: a header-less list of labels (the first row too).
    table = pd.read_csv(path, header=None, dtype=str, keep_default_na=False, names=["stage"],
                        encoding="utf-8-sig")
    stage_col, columns, first_row = "stage", {"stage": "stage"}, 1
  if stage_col is None:
    raise AnnotationError(path, f"no stage column among {list(table.columns)} (expected one of "
                          f"{list(_CSV_STAGE)})")
  if table.empty:
    raise AnnotationError(path, "hypnogram file has no stage labels")
  user = stages_lib.compile_mapping(stage_mapping, path)
  stages = [stages_lib.stage_from_label(v.strip(), mapping=user, path=path, where=f"row {i + first_row}")
            for i, v in enumerate(table[stage_col].tolist())]
  onset_col, duration_col = column(_CSV_ONSET), column(_CSV_DURATION)
  resolution = float(epoch_s or EPOCH_S)
  if onset_col is not None and duration_col is not None:
    rows = []
    for i, (o, d, st) in enumerate(zip(table[onset_col], table[duration_col], stages)):
      try:
        rows.append((float(o), float(d), st, f"row {i + first_row}"))
      except ValueError:
        raise AnnotationError(path, f"row {i + first_row}: onset {o!r} / duration {d!r} are not seconds") from None
    out, base = _from_rows(path, rows, resolution_s=resolution, what="row")
    return Hypnogram(stages=out, onset_s=base, path=path)
  epoch_col = column(_CSV_EPOCH)
  if epoch_col is not None:
    try:
      numbers = np.asarray([int(float(v)) for v in table[epoch_col]])
    except ValueError:
      raise AnnotationError(path, f"column {epoch_col!r} holds non-integer epoch numbers") from None
    skips = np.flatnonzero(np.diff(numbers) != 1)
    if skips.size:
      i = int(skips[0])
      raise AnnotationError(path, f"row {i + first_row + 1}: epoch {numbers[i + 1]} follows epoch {numbers[i]} "
                            "(epoch numbers must count up by one)")
  try:
    out = to_30s(np.asarray(stages, np.int32), resolution)
  except ValueError as e:
    raise AnnotationError(path, str(e)) from None
  if out.size == 0:
    raise AnnotationError(path, f"{len(stages)} labels of {resolution:g} s do not fill one 30-s epoch")
  return Hypnogram(stages=out, onset_s=onset_s, path=path)


def read_nsrr_xml_hypnogram(path: str | os.PathLike, *, stage_mapping: Mapping | None = None) -> Hypnogram:
  """Reads an NSRR XML scoring (SHHS, MESA, MrOS, CFS: `*-nsrr.xml`) into 30-s epochs.

  The file is a `PSGAnnotation` with `ScoredEvents/ScoredEvent` elements; the stage events are
  those whose `EventType` is "Stages|Stages", with `EventConcept` such as "Wake|0",
  "Stage 1 sleep|1" ... "Stage 4 sleep|4" (R&K 3 and 4 -> N3), "REM sleep|5", "Unscored|9",
  "Movement|6", and `Start` / `Duration` in seconds from the recording's start. `EpochLength`
  gives the scoring epoch (30 s in every NSRR cohort); others are converted by majority.
  Gaps become UNSCORED.

  Args:
    path: the XML file.
    stage_mapping: {concept text: stage name or int} tried before the known NSRR concepts.

  Returns:
    A Hypnogram; onset_s = the first stage event's Start.

  Raises:
    AnnotationError: missing file, not XML, no stage events, an unknown concept, a non-numeric
      Start/Duration, events off the epoch grid or overlapping with different stages.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise AnnotationError(path, "hypnogram file does not exist")
  try:
    root = ET.parse(path).getroot()
  except ET.ParseError as e:
    raise AnnotationError(path, f"not a readable XML file: {e}") from None
  epoch_text = root.findtext(".//EpochLength")
  try:
    resolution = float(epoch_text) if epoch_text and epoch_text.strip() else EPOCH_S
  except ValueError:
    raise AnnotationError(path, f"EpochLength {epoch_text!r} is not seconds") from None
  user = stages_lib.compile_mapping(stage_mapping, path)
  rows = []
  for i, event in enumerate(root.iter("ScoredEvent"), start=1):
    kind = (event.findtext("EventType") or "").strip()
    if kind.split("|")[0].strip().casefold() != "stages":
      continue
    concept = (event.findtext("EventConcept") or "").strip()
    where = f"ScoredEvent {i} ({concept!r})"
    stage = stages_lib.stage_from_label(concept, mapping=user, path=path, where=where)
    try:
      rows.append((float(event.findtext("Start")), float(event.findtext("Duration")), stage, where))
    except (TypeError, ValueError):
      raise AnnotationError(path, f"{where}: Start {event.findtext('Start')!r} / Duration "
                            f"{event.findtext('Duration')!r} are not seconds") from None
  if not rows:
    raise AnnotationError(path, "no ScoredEvent with EventType 'Stages|Stages': not an NSRR sleep "
                          "stage scoring")
  out, base = _from_rows(path, rows, resolution_s=resolution, what="stage event")
  return Hypnogram(stages=out, onset_s=base, path=path)


FORMATS = ("edf+", "csv", "nsrr_xml", "text")


def read_hypnogram(path: str | os.PathLike, format: str | None = None, *,  # pylint: disable=redefined-builtin
                   stage_mapping: Mapping | None = None, epoch_s: float | None = None,
                   psg_start: datetime.datetime | None = None,
                   assume_offset_s: float | None = None, **kwargs) -> Hypnogram:
  """Reads a hypnogram of any supported format into 30-s epochs (docs/hypnograms.md).

  Args:
    path: the hypnogram file.
    format: "edf+" (`read_edf_hypnogram`), "csv" (`read_csv_hypnogram`), "nsrr_xml"
      (`read_nsrr_xml_hypnogram`) or "text" (`read_text_hypnogram`, no header line unless
      header_lines= says so). None: by extension, ".edf" -> "edf+", ".csv" -> "csv", ".xml" ->
      "nsrr_xml", anything else -> "text" with the dataset code table of `mapping=` (what the
      DREAMS and ISRUC builders pass).
    stage_mapping: {label: stage name (W, N1, N2, N3, REM, UNSCORED, MOVEMENT) or int}, tried
      before the known label sets (R&K, AASM, NSRR); needed for numeric codes such as 0/5.
    epoch_s: the scoring epoch in seconds when not 30 (NSRR XML reads it from EpochLength).
    psg_start: EDF+ only: the PSG's start, to place the hypnogram on its timeline.
    assume_offset_s: EDF+ only: see `read_edf_hypnogram`.
    **kwargs: passed to the reader (e.g. ignore_texts=, onset_s=, header_lines=, mapping=).

  Returns:
    A Hypnogram of 30-s epochs.

  Raises:
    ValueError: an unknown format.
    AnnotationError and the readers' errors, each naming the file.
  """
  path = os.fspath(path)
  if format is None:
    ext = os.path.splitext(path)[1].lower()
    format = {".edf": "edf+", ".csv": "csv", ".xml": "nsrr_xml"}.get(ext, "text")
    if format == "text" and "mapping" not in kwargs and stage_mapping is None:
      raise RecordingError(path, "a text hypnogram needs epoch_s= and mapping= (a {label: stage} "
                           "map such as the DREAMS or ISRUC builder's), or format='text' with "
                           "stage_mapping= / known labels")
  elif format == "text":
    kwargs.setdefault("header_lines", 0)
  if format not in FORMATS:
    raise ValueError(f"hypnogram format {format!r} is not one of {list(FORMATS)}")
  if format == "edf+":
    return read_edf_hypnogram(path, psg_start=psg_start, assume_offset_s=assume_offset_s,
                              stage_mapping=stage_mapping, epoch_s=epoch_s, **kwargs)
  if format == "csv":
    return read_csv_hypnogram(path, epoch_s=epoch_s, stage_mapping=stage_mapping, **kwargs)
  if format == "nsrr_xml":
    return read_nsrr_xml_hypnogram(path, stage_mapping=stage_mapping, **kwargs)
  return read_text_hypnogram(path, epoch_s=epoch_s or EPOCH_S, stage_mapping=stage_mapping, **kwargs)
