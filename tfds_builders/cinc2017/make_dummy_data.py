"""Writes dummy_data/training2017/ in the CinC 2017 native format: WFDB .hea + MATLAB v4 .mat.

Twelve records A00001-A00012 (three per class N, A, O, ~) at 300 Hz, 1000 adu/mV, int16 'val'
matrices written by scipy.io.savemat(format="4") (24-byte header, as the "16+24" headers say),
and REFERENCE.csv with the header line "data_source,class" like the project's copy. Durations
are 9-12 s, except A00003 (35 s: cropped to 30 s). Each record is a 1 Hz spike train whose
amplitude in mV is 0.5 + 0.1 * record number, so tests can check units and record order.
Run: `python tfds_builders/cinc2017/make_dummy_data.py`.
"""

import pathlib

import numpy as np
import scipy.io

SFREQ = 300
GAIN = 1000  # adu per mV.
CODES = ("N", "A", "O", "~")


def main():
  out = pathlib.Path(__file__).resolve().parent / "dummy_data" / "training2017"
  out.mkdir(parents=True, exist_ok=True)
  rows = ["data_source,class"]
  for i in range(1, 13):
    record = f"A{i:05d}"
    duration_s = 35 if i == 3 else 9 + i % 4
    n = duration_s * SFREQ
    amplitude_mv = 0.5 + 0.1 * i
    t = np.arange(n)
    mv = amplitude_mv * np.exp(-0.5 * ((t % SFREQ - 150) / 5.0) ** 2)
    val = np.round(mv * GAIN).astype(np.int16)[None, :]
    scipy.io.savemat(out / f"{record}.mat", {"val": val}, format="4")
    header = (f"{record} 1 {SFREQ} {n} 05:05:15 1/05/2000 \n"
              f"{record}.mat 16+24 {GAIN}/mV 16 0 {int(val[0, 0])} 0 0 ECG \n")
    (out / f"{record}.hea").write_text(header)
    rows.append(f"{record},{CODES[(i - 1) % 4]}")
  (out / "REFERENCE.csv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
  main()
