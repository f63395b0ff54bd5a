"""Sleep stage labels: AASM integers and the R&K -> AASM map.

AASM (Berry et al., AASM Manual 2.x): W=0, N1=1, N2=2, N3=3, REM=4. R&K (Rechtschaffen &
Kales 1968) stages 3 and 4 merge into N3. "Movement time" and "?" (unscored) map to
UNSCORED (-1): such epochs are dropped by default, or kept with label -1 and masked; they
are never trained on.
"""

from __future__ import annotations

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
  "Sleep stage N1/N2/N3" and "Movement time"; surrounding whitespace is ignored.

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

  t = text.strip()
  if t.casefold() == "movement time":
    return MOVEMENT
  prefix = "sleep stage "
  if t.casefold().startswith(prefix):
    code = t[len(prefix):].strip().upper()
    if code in RK_TO_AASM:
      return RK_TO_AASM[code]
    if code in AASM_CODES:
      return AASM_CODES[code]
  raise AnnotationError(path, f"unknown sleep stage annotation text {text!r}")
