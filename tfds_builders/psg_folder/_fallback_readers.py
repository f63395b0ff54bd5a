"""Stopgap CSV and NSRR-XML hypnogram readers, used only while sleepjax.data.hypnogram lacks them.

sleepjax.data.hypnogram.read_hypnogram(path, format=...) (issue 10, item 2) is the reader the
psg_folder builder calls when it exists; until it lands these keep the builder usable on CSV and
NSRR XML scorings. Remove this module once it has.

Label sets: AASM ("W", "Wake", "N1".."N3", "R", "REM", "Sleep stage N2"), R&K ("1".."4",
"S1".."S4", "Sleep stage 4" -> N3), "?"/"Unscored" -> UNSCORED, "MT"/"Movement time" -> MOVEMENT;
a user mapping {label: stage int} comes first. NSRR XML: ScoredEvent elements of EventType
"Stages|Stages", EventConcept "<name>|<code>" with NSRR's codes 0=W, 1..3=N1..N3, 4=N3 (R&K S4),
5=REM, 6=movement, 9=unscored (Zhang et al. 2018, sleepdata.org).
"""

from __future__ import annotations

import csv
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

import numpy as np

from sleepjax.data import stages as stages_lib
from sleepjax.data.errors import AnnotationError
from sleepjax.data.hypnogram import EPOCH_S, Hypnogram, to_30s

_WORDS = {
    "w": 0, "wake": 0, "awake": 0, "n1": 1, "n2": 2, "n3": 3, "n4": 3, "r": 4, "rem": 4,
    "1": 1, "2": 2, "3": 3, "4": 3, "s1": 1, "s2": 2, "s3": 3, "s4": 3,
    "?": -1, "unscored": -1, "u": -1, "mt": -2, "movement": -2, "movement time": -2,
}
_NSRR_CODES = {"0": 0, "1": 1, "2": 2, "3": 3, "4": 3, "5": 4, "6": -2, "9": -1}


def label_to_stage(text: str, mapping: Mapping[str, int] | None, path) -> int:
  """One stage label to an AASM int (user mapping first). Raises AnnotationError."""
  t = text.strip()
  if mapping and t in mapping:
    return int(mapping[t])
  key = re.sub(r"^sleep stage\s+", "", t.casefold()).strip()
  if key in _WORDS:
    return _WORDS[key]
  raise AnnotationError(path, f"unknown sleep stage label {text!r} (give the spec a stage_mapping)")


def read_csv(path: str | os.PathLike, *, epoch_s: float = EPOCH_S,
             mapping: Mapping[str, int] | None = None) -> Hypnogram:
  """CSV: onset/duration/stage rows (seconds from the PSG start), or one stage per epoch row.

  Raises:
    AnnotationError: missing file, no stage column, an unknown label, overlapping rows.
  """
  path = os.fspath(path)
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      text = f.read()
  except OSError as e:
    raise AnnotationError(path, f"cannot read hypnogram: {e}") from None
  try:
    dialect = csv.Sniffer().sniff(text[:2048], delimiters=",;\t")
  except csv.Error:
    dialect = csv.excel  # one column
  rows = [r for r in csv.reader(text.splitlines(), dialect) if any(c.strip() for c in r)]
  if not rows:
    raise AnnotationError(path, "hypnogram file has no rows")
  head = [c.strip().casefold() for c in rows[0]]
  col = lambda *names: next((i for i, h in enumerate(head) if h in names), None)  # noqa: E731
  stage_col = col("stage", "sleep stage", "label", "hypnogram", "stages", "score")
  onset_col, dur_col = col("onset", "start", "onset_s", "start_s"), col("duration", "duration_s")
  if stage_col is not None:
    rows = rows[1:]  # a header
  elif len(head) >= 3 and all(_is_number(c) for c in rows[0][:2]):
    stage_col, onset_col, dur_col = 2, 0, 1  # onset, duration, stage without a header
  else:
    stage_col = len(head) - 1  # one stage per row (the last column)
    if not _is_stage(rows[0][stage_col], mapping):
      rows = rows[1:]  # an unknown header
  if onset_col is not None and dur_col is not None:
    coded = []
    for n, r in enumerate(rows, start=2):
      try:
        onset, dur = float(r[onset_col]), float(r[dur_col])
      except (ValueError, IndexError):
        raise AnnotationError(path, f"row {n}: onset/duration not numbers: {r}") from None
      coded.append((onset, dur, label_to_stage(r[stage_col], mapping, path)))
    coded.sort()
    base = coded[0][0]
    n_epochs = int(round((coded[-1][0] + coded[-1][1] - base) / EPOCH_S))
    out = np.full((n_epochs,), stages_lib.UNSCORED, np.int32)
    for onset, dur, stage in coded:
      i, k = int(round((onset - base) / EPOCH_S)), int(round(dur / EPOCH_S))
      out[i:i + k] = stage
    return Hypnogram(stages=out, onset_s=base, path=path)
  labels = [label_to_stage(r[stage_col], mapping, path) for r in rows if len(r) > stage_col]
  try:
    stages = to_30s(np.asarray(labels, np.int32), epoch_s)
  except ValueError as e:
    raise AnnotationError(path, str(e)) from None
  return Hypnogram(stages=stages, onset_s=0.0, path=path)


def _is_number(text) -> bool:
  try:
    float(text)
    return True
  except ValueError:
    return False


def _is_stage(text, mapping) -> bool:
  try:
    label_to_stage(text, mapping, None)
    return True
  except AnnotationError:
    return False


def read_nsrr_xml(path: str | os.PathLike, *, mapping: Mapping[str, int] | None = None) -> Hypnogram:
  """NSRR XML scoring (Start in seconds from the recording start, i.e. the PSG's).

  Raises:
    AnnotationError: unreadable XML, no stage event, an unknown concept.
  """
  path = os.fspath(path)
  try:
    root = ET.parse(path).getroot()
  except (OSError, ET.ParseError) as e:
    raise AnnotationError(path, f"not readable NSRR XML: {e}") from None
  events = []
  for ev in root.iter("ScoredEvent"):
    if (ev.findtext("EventType") or "").strip() != "Stages|Stages":
      continue
    concept = (ev.findtext("EventConcept") or "").strip()
    code = concept.rsplit("|", 1)[-1]
    if mapping and concept in mapping:
      stage = int(mapping[concept])
    elif code in _NSRR_CODES:
      stage = _NSRR_CODES[code]
    else:
      raise AnnotationError(path, f"unknown NSRR stage concept {concept!r}")
    events.append((float(ev.findtext("Start")), float(ev.findtext("Duration")), stage))
  if not events:
    raise AnnotationError(path, "no ScoredEvent of EventType 'Stages|Stages'")
  events.sort()
  base = events[0][0]
  n_epochs = int(round((events[-1][0] + events[-1][1] - base) / EPOCH_S))
  out = np.full((n_epochs,), stages_lib.UNSCORED, np.int32)
  for start, dur, stage in events:
    i, k = int(round((start - base) / EPOCH_S)), int(round(dur / EPOCH_S))
    out[i:i + k] = stage
  return Hypnogram(stages=out, onset_s=base, path=path)
