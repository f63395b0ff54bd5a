r"""Writes dummy_data/ for the dreams builder test, in the DREAMS Spindles NATIVE format.

The DREAMS licence forbids redistribution and derivatives: every byte here is synthetic
(random noise, made-up hypnograms); only the file layout copies the database:

  dummy_data/dreams_spindles/excerptN.txt            "[C3-A1]" or "[CZ-A1]", then one uV value a line
  dummy_data/dreams_spindles/Hypnogram_excerptN.txt  "[Hypnogram]", then one R&K code per 5 s
  dummy_data/dreams_spindles/excerpt3.edf            20-channel PSG, 50 Hz, 2-s data records,
                                                     the labels and units of the real excerpt3.edf
  dummy_data/dreams_spindles.tar.xz                  the same folder as an archive (manual_dir may
                                                     point at an archive)

Excerpts 1-3 are 120 s (4 x 30-s epochs) at their database rates (100, 200, 50 Hz); excerpt 4
(200 Hz) has a non-numeric sample: the builder must report and skip it.

Run from the repository root:  python tfds_builders/dreams/make_dummy_data.py
"""

from __future__ import annotations

import datetime
import pathlib
import shutil
import tarfile

import edfio
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent / "dummy_data"
OUT = ROOT / "dreams_spindles"
DURATION_S = 120
# 24 codes of 5 s: epoch 1 W (5 5 5 5 5 3 -> W), 2 S1/S2 tie broken by first (3), 3 S2, 4 S3/S4.
HYPNOGRAM = ([5] * 5 + [3]) + ([3] * 3 + [2] * 3) + ([2] * 6) + ([1] * 2 + [0] * 4)
# -> AASM W, N1, N2, N3.

_EXCERPT3_SIGNALS = (  # label, unit, physical range (as in the real excerpt3.edf header)
    ("O1-A1", "UV", (-730.0, 503.0)), ("EMG1", "UV", (-80.0, 95.0)),
    ("ECG", "MV", (-136.0, 63.0)), ("NAF1", "UV", (-391.0, 454.0)),
    ("VAB", "ML", (-2643.0, 2916.0)), ("VTH", "ML", (-945.0, 1289.0)),
    ("C3-A1", "UV", (-204.0, 184.0)), ("FP1-A1", "UV", (-273.0, 361.0)),
    ("EOG2-A1", "UV", (-461.0, 281.0)), ("EOG1-A1", "UV", (-485.0, 239.0)),
    ("POS", "-", (0.0, 3.0)), ("PHONO", "MV", (-34.0, 56.0)), ("SAO2", "%", (-32.0, 89.0)),
    ("PR", "BPM", (-18.0, 51.0)), ("PULSE", "-", (-46.0, 61.0)),
)


def _noise(rng, n, lo, hi):
  center, sd = 0.5 * (lo + hi), 0.1 * (hi - lo)
  return np.clip(center + rng.normal(0.0, sd, n), lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo))


def write_text_excerpt(n: int, label: str, sfreq: float, rng, corrupt: bool = False):
  x = rng.normal(0.0, 25.0, int(DURATION_S * sfreq))
  lines = [f"[{label}]"] + [f"{v:10.4f}" for v in x]
  if corrupt:
    lines[100] = "   n/a"
  (OUT / f"excerpt{n}.txt").write_text("\n".join(lines) + "\n")
  (OUT / f"Hypnogram_excerpt{n}.txt").write_text(
      "[Hypnogram]\n" + "\n".join(str(c) for c in HYPNOGRAM) + "\n")


def write_excerpt3_edf(rng):
  signals = [edfio.EdfSignal(_noise(rng, DURATION_S * 50, *phys), 50.0, label=label,
                             physical_dimension=unit, physical_range=phys)
             for label, unit, phys in _EXCERPT3_SIGNALS]
  # The real file also stores its hypnograms and events as 1-Hz signals.
  for label, unit, phys in (("hypnogram", "stade", (1.0, 5.0)), ("event_pneumo", "ev", (0.0, 10.0)),
                            ("hypnogram_aut", "stade", (0.0, 5.0)),
                            ("event_pneumo_aut", "ev", (0.0, 1.0)),
                            ("event_neuro", "ev", (0.0, 1.0))):
    signals.append(edfio.EdfSignal(_noise(rng, DURATION_S, *phys), 1.0, label=label,
                                   physical_dimension=unit, physical_range=phys))
  edf = edfio.Edf(signals, patient=edfio.Patient(name="X"),
                  recording=edfio.Recording(startdate=datetime.date(2003, 11, 17)),
                  starttime=datetime.time(3, 27, 0), data_record_duration=2.0)
  edf.write(OUT / "excerpt3.edf")


def main():
  if OUT.exists():
    shutil.rmtree(OUT)
  OUT.mkdir(parents=True)
  rng = np.random.default_rng(0)
  write_text_excerpt(1, "C3-A1", 100.0, rng)
  write_text_excerpt(2, "CZ-A1", 200.0, rng)
  write_text_excerpt(3, "C3-A1", 50.0, rng)
  write_text_excerpt(4, "CZ-A1", 200.0, rng, corrupt=True)
  write_excerpt3_edf(rng)
  with tarfile.open(ROOT / "dreams_spindles.tar.xz", "w:xz") as tar:
    tar.add(OUT, arcname="dreams_spindles")
  print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
  main()
