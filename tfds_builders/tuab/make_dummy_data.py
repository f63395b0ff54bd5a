"""Writes tiny synthetic TUAB dummy data in the NATIVE layout (TUH-style EDF files).

Run from the repository root: `python tfds_builders/tuab/make_dummy_data.py`. No TUH bytes are
used: signals are synthetic (alpha rhythm + noise; "abnormal" adds delta slowing), written with
edfio as TUH writes them: 1-s data records, labels "EEG FP1-REF" (or "-LE" for the linked-ears
montage), extra non-montage channels (EKG, T1, photic), 250 Hz (one file at 256 Hz).
Each file lasts 12 s, so the test config's 5-s windows give 2 windows per file.
"""

import datetime
import pathlib

import edfio
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"
CHANNELS = ("FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "T3", "C3", "CZ", "C4", "T4",
            "T5", "P3", "PZ", "P4", "T6", "O1", "O2")
EXTRA = ("EKG1", "T1", "T2")
DURATION_S = 12

# (relative path, suffix, sampling rate Hz, abnormal?)
FILES = (
    ("edf/train/normal/01_tcp_ar/aaaaaaaa_s001_t000.edf", "REF", 250, False),
    ("edf/train/normal/01_tcp_ar/aaaaaaab_s001_t000.edf", "REF", 256, False),
    ("edf/train/abnormal/01_tcp_ar/aaaaaaac_s002_t001.edf", "REF", 250, True),
    ("edf/train/abnormal/02_tcp_le/aaaaaaad_s001_t000.edf", "LE", 250, True),
    ("edf/eval/normal/01_tcp_ar/aaaaaaae_s001_t000.edf", "REF", 250, False),
    ("edf/eval/abnormal/01_tcp_ar/aaaaaaaf_s001_t000.edf", "REF", 250, True),
)


def synthetic_eeg(n_chans: int, sfreq: float, abnormal: bool, seed: int) -> np.ndarray:
  """(C, T) float64 microvolts: 10 Hz alpha (+ 2 Hz delta if abnormal) + white noise."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(DURATION_S * sfreq)) / sfreq
  phase = rng.uniform(0, 2 * np.pi, (n_chans, 1))
  x = 20 * np.sin(2 * np.pi * 10 * t + phase) + 5 * rng.standard_normal((n_chans, t.size))
  if abnormal:
    x += 60 * np.sin(2 * np.pi * 2 * t + phase)
  return x


def main() -> None:
  for seed, (rel, suffix, sfreq, abnormal) in enumerate(FILES):
    labels = [f"EEG {c}-{suffix}" for c in CHANNELS] + [f"EEG {c}-{suffix}" for c in EXTRA]
    data = synthetic_eeg(len(labels), sfreq, abnormal, seed)
    signals = [edfio.EdfSignal(row, sfreq, label=lab, physical_dimension="uV", physical_range=(-500.0, 500.0),
                               transducer_type="Unknown", prefiltering="HP:0.000 Hz LP:0.0 Hz N:0.0")
               for lab, row in zip(labels, data)]
    path = OUT / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals, starttime=datetime.time(10, 0, 0), data_record_duration=1).write(path)


if __name__ == "__main__":
  main()
