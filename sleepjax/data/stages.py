"""Sleep stage labels: AASM integers, the label sets read from files, and YASA's codes.

AASM (Berry et al., AASM Manual 2.x): W=0, N1=1, N2=2, N3=3, REM=4. R&K (Rechtschaffen &
Kales 1968) stages 3 and 4 merge into N3. "?" (unscored) maps to UNSCORED (-1) and "Movement
time" / artefact to MOVEMENT (-2): such epochs are dropped by default, or kept and masked; they
are never trained on. The label sets and YASA's codes: docs/hypnograms.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

W, N1, N2, N3, REM = 0, 1, 2, 3, 4
UNSCORED = -1
MOVEMENT = -2  # Kept apart from UNSCORED only so that reports can count the two reasons.
STAGE_NAMES = ("W", "N1", "N2", "N3", "REM")
NUM_STAGES = 5

# R&K (and Sleep-EDF "Sleep stage X") codes -> AASM. R&K S3 and S4 merge into N3 (AASM 2007).
RK_TO_AASM = {
    "W": W,
    "1": N1,
    "2": N2,
    "3": N3,
    "4": N3,
    "R": REM,
    "?": UNSCORED,
    "M": MOVEMENT,
}
# AASM codes in "Sleep stage N1/N2/N3" (what sleepjax.hypnogram.Hypnogram.to_edf_annotations writes).
AASM_CODES = {"N1": N1, "N2": N2, "N3": N3}


def map_stage_text(text: str, path=None) -> int:
  """Maps one Sleep-EDF style stage annotation to an AASM stage integer.

  Accepts "Sleep stage W/1/2/3/4/R/?" (Sleep-EDF Expanded, Kemp et al. 2000), the AASM
  "Sleep stage N1/N2/N3" and "Movement time", and every other label of `KNOWN_LABELS` (e.g.
  "Wake", "N2", "REM"); case and surrounding whitespace are ignored.

  Args:
    text: the annotation text.
    path: the file the text comes from, only to name it in the error.

  Returns:
    An int: W=0, N1=1, N2=2, N3=3 (R&K 3 and 4), REM=4, UNSCORED=-1 ("?"), MOVEMENT=-2.

  Raises:
    AnnotationError: the text is not a known stage annotation.
  """
  # Imported here so that stages.py stays a leaf module for everything else.
  from sleepjax.data.errors import AnnotationError

  key = normalize_label(text)
  if key in KNOWN_LABELS:
    return KNOWN_LABELS[key]
  raise AnnotationError(path, f"unknown sleep stage annotation text {text!r}")


# Every label below is matched after `normalize_label` (casefold, separators -> one space).
# R&K (Rechtschaffen & Kales 1968) as Sleep-EDF, MASS and most exports write it.
_RK_LABELS = {
    "w": W, "wake": W, "awake": W, "stage w": W, "sleep stage w": W, "s0": W,
    "1": N1, "s1": N1, "stage 1": N1, "sleep stage 1": N1,
    "2": N2, "s2": N2, "stage 2": N2, "sleep stage 2": N2,
    "3": N3, "s3": N3, "stage 3": N3, "sleep stage 3": N3,
    "4": N3, "s4": N3, "stage 4": N3, "sleep stage 4": N3,
    "r": REM, "rem": REM, "stage r": REM, "stage rem": REM, "sleep stage r": REM,
    "sleep stage rem": REM, "paradoxical sleep": REM,
    "?": UNSCORED, "sleep stage ?": UNSCORED, "unscored": UNSCORED, "not scored": UNSCORED,
    "unknown": UNSCORED, "u": UNSCORED, "uns": UNSCORED, "sleep stage unknown": UNSCORED,
    "m": MOVEMENT, "mt": MOVEMENT, "movement": MOVEMENT, "movement time": MOVEMENT,
    "sleep stage mt": MOVEMENT, "art": MOVEMENT, "artefact": MOVEMENT, "artifact": MOVEMENT,
}
# AASM (Berry et al., AASM Manual v2.6) names, plus YASA's strings (WAKE, N1..N3, REM, UNS, ART).
_AASM_LABELS = {
    "n1": N1, "n2": N2, "n3": N3, "stage n1": N1, "stage n2": N2, "stage n3": N3,
    "sleep stage n1": N1, "sleep stage n2": N2, "sleep stage n3": N3,
}
# NSRR XML `EventConcept` texts ("Stage 2 sleep|2"): the text before "|" (docs/hypnograms.md).
_NSRR_LABELS = {
    "wake": W, "stage 1 sleep": N1, "stage 2 sleep": N2, "stage 3 sleep": N3,
    "stage 4 sleep": N3, "rem sleep": REM, "unscored": UNSCORED, "movement": MOVEMENT,
}
KNOWN_LABELS = {**_RK_LABELS, **_AASM_LABELS, **_NSRR_LABELS}
# Names a user mapping may use for its values (`stage_mapping={"5": "REM"}`).
STAGE_BY_NAME = {"W": W, "WAKE": W, "N1": N1, "N2": N2, "N3": N3, "N4": N3, "R": REM, "REM": REM,
                 "UNSCORED": UNSCORED, "?": UNSCORED, "UNS": UNSCORED, "MOVEMENT": MOVEMENT,
                 "MT": MOVEMENT, "ART": MOVEMENT}
_ALLOWED = frozenset((UNSCORED, MOVEMENT, *range(NUM_STAGES)))


def normalize_label(label: str) -> str:
  """A stage label as the label sets store it: casefolded, "_" "-" and runs of spaces -> " ".

  NSRR concepts keep only the text before "|" ("Stage 2 sleep|2" -> "stage 2 sleep").
  """
  text = str(label).split("|")[0] if "|" in str(label) else str(label)
  return re.sub(r"[\s_\-]+", " ", text.strip().casefold()).strip()


def _stage_value(value, where: str, path) -> int:
  from sleepjax.data.errors import AnnotationError  # pylint: disable=g-import-not-at-top
  if isinstance(value, str):
    key = value.strip().upper()
    if key not in STAGE_BY_NAME:
      raise AnnotationError(path, f"stage_mapping value {value!r} ({where}) is not one of "
                            f"{sorted(STAGE_BY_NAME)}")
    return STAGE_BY_NAME[key]
  if int(value) not in _ALLOWED:
    raise AnnotationError(path, f"stage_mapping value {value!r} ({where}) is not a sleepjax stage "
                          f"code {sorted(_ALLOWED)}")
  return int(value)


def compile_mapping(stage_mapping: Mapping | None, path=None) -> dict[str, int]:
  """A user `stage_mapping` {file label: stage name or int} as {normalised label: stage int}.

  Raises:
    AnnotationError: a value is neither a stage name (W, N1, N2, N3, REM, UNSCORED, MOVEMENT, ...)
      nor a sleepjax stage code.
  """
  return {normalize_label(k): _stage_value(v, f"label {k!r}", path)
          for k, v in (stage_mapping or {}).items()}


def stage_from_label(label, *, mapping: Mapping[str, int] | None = None, path=None,
                     where: str | None = None) -> int:
  """Maps one hypnogram label to an AASM stage integer.

  The user's mapping (from `compile_mapping`) is tried first, then the known label sets: R&K (W,
  1-4, R, M, ?, "Sleep stage 4" -> N3), AASM (N1, N2, N3, "Sleep stage N2", "Wake", "REM") with
  YASA's strings, and NSRR concepts ("Stage 2 sleep|2"). Bare codes other than R&K's 1-4 (e.g.
  0/5 for W/REM) are dataset conventions: give them in `stage_mapping`.

  Args:
    label: the label (str, or a number read from a table).
    mapping: {normalised label: stage} from `compile_mapping`, or None.
    path: the file, to name it in the error.
    where: where in the file (e.g. "line 12", "row 3"), for the error.

  Returns:
    W=0, N1=1, N2=2, N3=3, REM=4, UNSCORED=-1, MOVEMENT=-2.

  Raises:
    AnnotationError: the label is in neither the mapping nor a known set.
  """
  from sleepjax.data.errors import AnnotationError  # pylint: disable=g-import-not-at-top
  if isinstance(label, float) and label.is_integer():
    label = int(label)
  key = normalize_label(label)
  if mapping and key in mapping:
    return mapping[key]
  if key in KNOWN_LABELS:
    return KNOWN_LABELS[key]
  at = f"{where}: " if where else ""
  hint = (" (a numeric code: give its stage in stage_mapping=)" if key.lstrip("-").isdigit() else "")
  raise AnnotationError(path, f"{at}unknown sleep stage label {str(label)!r}{hint}")


# YASA (Vallat & Walker 2021) integer codes: W=0..REM=4 as sleepjax, but ART (artefact /
# movement) = -1 and UNS (unscored) = -2, the other way round from sleepjax's UNSCORED=-1,
# MOVEMENT=-2.
YASA_UNSCORED, YASA_ARTEFACT = -2, -1


def to_yasa_codes(stages):
  """sleepjax stage integers -> YASA's (UNSCORED -1 -> -2, MOVEMENT -2 -> -1); NumPy in, out."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  s = np.asarray(stages).astype(np.int32)
  return np.where(s == UNSCORED, YASA_UNSCORED, np.where(s == MOVEMENT, YASA_ARTEFACT, s))


def from_yasa_codes(codes):
  """YASA's stage integers -> sleepjax's (-2 unscored -> -1, -1 artefact -> MOVEMENT -2)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  c = np.asarray(codes).astype(np.int32)
  return np.where(c == YASA_UNSCORED, UNSCORED, np.where(c == YASA_ARTEFACT, MOVEMENT, c))
