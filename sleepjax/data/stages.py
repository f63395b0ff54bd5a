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
