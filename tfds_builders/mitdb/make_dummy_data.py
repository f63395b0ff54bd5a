"""Writes dummy_data/ in MIT-BIH's native WFDB format (format 212 .dat, .hea, .atr) via wfdb.

Four 10-s two-lead records at 360 Hz:
- 100 (DS2 -> test), 101 (DS1 -> train; stored V1 first, MLII second, as record 114 stores V5
  first, so the builder's reordering is exercised), 124 (DS1 validation record), 102 (paced,
  must be excluded).
- Each beat is a Gaussian R wave of 1 mV on MLII and 0.5 mV on the other lead at its annotated
  sample; the first beat sits 10 samples from the start and the last 20 samples before the end
  (windows zero-padded). Annotations mix beat symbols of every AAMI class with non-beat ones
  ("+" rhythm change, "~" noise, "|" artefact) that the builder must skip.
Run: `python tfds_builders/mitdb/make_dummy_data.py`.
"""

import pathlib

import numpy as np
import wfdb

SFREQ = 360
N_TIMES = 3600
RECORDS = {
    # record: (lead names in file order, [(sample, symbol), ...])
    "100": (("MLII", "V5"), [(10, "N"), (300, "+"), (400, "N"), (800, "A"), (1200, "N"), (1500, "~"),
                             (1600, "V"), (2000, "F"), (2400, "N"), (2800, "Q"), (3580, "N")]),
    "101": (("V1", "MLII"), [(200, "N"), (600, "L"), (1000, "R"), (1400, "a"), (1800, "J"), (1900, "|"),
                             (2200, "E"), (2600, "e"), (3000, "j"), (3400, "S")]),
    "124": (("MLII", "V4"), [(180, "N"), (540, "N"), (900, "V"), (1260, "f"), (1620, "N")]),
    "102": (("V5", "V2"), [(100, "/"), (500, "/"), (900, "/"), (1300, "f")]),
}


def main():
  out = pathlib.Path(__file__).resolve().parent / "dummy_data"
  out.mkdir(exist_ok=True)
  t = np.arange(N_TIMES)
  for record, (leads, annotations) in RECORDS.items():
    beats = [s for s, sym in annotations if sym not in "+~|"]
    wave = sum(np.exp(-0.5 * ((t - s) / 4.0) ** 2) for s in beats)
    amplitude_mv = [1.0 if lead == "MLII" else 0.5 for lead in leads]
    signal = np.stack([a * wave for a in amplitude_mv], axis=1)  # (T, 2), mV
    wfdb.wrsamp(record, fs=SFREQ, units=["mV", "mV"], sig_name=list(leads), p_signal=signal,
                fmt=["212", "212"], adc_gain=[200.0, 200.0], baseline=[1024, 1024], write_dir=str(out))
    wfdb.wrann(record, "atr", np.array([s for s, _ in annotations]), symbol=[sym for _, sym in annotations],
               write_dir=str(out))


if __name__ == "__main__":
  main()
