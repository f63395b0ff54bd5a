"""Writes tiny synthetic ISRUC-Sleep subgroup III dummy data in the NATIVE layout.

Run from the repository root: `python tfds_builders/isruc_s3/make_dummy_data.py`. No ISRUC bytes
are used. Layout, as extracted from the per-subject RAR archives:

  dummy_data/<n>/<n>.rec     EDF with a .rec extension, 200 Hz, 1-s data records
  dummy_data/<n>/<n>_1.txt   scorer 1: one AASM code (0 W, 1 N1, 2 N2, 3 N3, 5 REM) per 30-s epoch
  dummy_data/<n>/<n>_2.txt   scorer 2

Three subjects, 4 epochs (2 min) each. Subjects 1-2 use ISRUC's "C3-A2"-style labels in the
order of the real files (EOG first, extra channels X3 and SaO2), subject 3 uses the "C3-M2" /
"E1-M2" spellings. Signals are periodic within 1 s (integer-Hz sines) so that the files
compress well in git; amplitudes follow the scored stage (alpha in W, large delta in N3,
loud chin EMG in W, quiet in REM).
"""

import datetime
import pathlib

import edfio
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"
SFREQ = 200
EPOCH_S = 30
LABELS_A2 = ("LOC-A2", "ROC-A1", "F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1", "X1", "X2", "X3", "SaO2")
LABELS_M2 = ("E1-M2", "E2-M1", "F3-M2", "C3-M2", "O1-M2", "F4-M1", "C4-M1", "O2-M1", "X1", "X2", "X3", "SaO2")
# subject -> (labels, scorer 1 codes, scorer 2 codes)
SUBJECTS = {
    1: (LABELS_A2, (0, 1, 2, 3), (0, 2, 2, 3)),
    2: (LABELS_A2, (0, 2, 5, 5), (0, 1, 5, 5)),
    3: (LABELS_M2, (2, 3, 3, 0), (2, 2, 3, 0)),
}


def epoch_signal(label: str, stage: int, t: np.ndarray) -> np.ndarray:
  """One 30-s epoch of one channel, in physical units (uV; % for SaO2)."""
  if label == "SaO2":
    return np.full_like(t, 96.0)
  if label in ("X1", "X3"):  # EMG: 40-60 Hz activity, loud in W, near-silent in REM.
    amp = {0: 40.0, 5: 3.0}.get(stage, 12.0)
    return amp * (np.sin(2 * np.pi * 47 * t) + 0.5 * np.sin(2 * np.pi * 61 * t))
  if label == "X2":  # ECG: 1 Hz "R peaks", 800 uV.
    return 800.0 * np.exp(-0.5 * ((t % 1.0 - 0.3) / 0.01) ** 2)
  if label[:1] in ("L", "R", "E"):  # EOG: slow 1 Hz movements in W/REM.
    return (60.0 if stage in (0, 5) else 10.0) * np.sin(2 * np.pi * t)
  alpha = 30.0 if stage == 0 else 5.0
  delta = {3: 120.0, 2: 40.0}.get(stage, 15.0)
  return alpha * np.sin(2 * np.pi * 10 * t) + delta * np.sin(2 * np.pi * 2 * t) + 8.0 * np.sin(2 * np.pi * 13 * t)


def main() -> None:
  t = np.arange(EPOCH_S * SFREQ) / SFREQ
  for n, (labels, scorer1, scorer2) in SUBJECTS.items():
    folder = OUT / str(n)
    folder.mkdir(parents=True, exist_ok=True)
    signals = []
    for lab in labels:
      data = np.concatenate([epoch_signal(lab, s, t) for s in scorer1])
      dim, rng = ("%", (0.0, 100.0)) if lab == "SaO2" else ("uV", (-1000.0, 1000.0))
      signals.append(edfio.EdfSignal(data, SFREQ, label=lab, physical_dimension=dim, physical_range=rng))
    edfio.Edf(signals, starttime=datetime.time(23, 0, 0), data_record_duration=1).write(folder / f"{n}.edf")
    (folder / f"{n}.edf").rename(folder / f"{n}.rec")
    # A trailing blank line, as some scorer files have.
    (folder / f"{n}_1.txt").write_text("".join(f"{c}\n" for c in scorer1) + "\n")
    (folder / f"{n}_2.txt").write_text("".join(f"{c}\n" for c in scorer2) + "\n")


if __name__ == "__main__":
  main()
