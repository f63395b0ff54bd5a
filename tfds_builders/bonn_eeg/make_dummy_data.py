"""Writes dummy_data/ in the Bonn native format: setA..setE/<X>NNN.txt, one integer per line, CRLF.

Three segments per set (15 files) of 4097 synthetic samples: a 10 Hz sine plus noise, with a
larger amplitude for the ictal set S so that tests can tell the sets apart. Set C uses upper-case
`.TXT` like the real files. Run from anywhere: `python tfds_builders/bonn_eeg/make_dummy_data.py`.
"""

import pathlib

import numpy as np

N_TIMES = 4097
SFREQ = 173.61
SETS = {"Z": "setA", "O": "setB", "N": "setC", "F": "setD", "S": "setE"}
AMPLITUDE_UV = {"Z": 40, "O": 60, "N": 45, "F": 50, "S": 250}
N_PER_SET = 3


def main():
  out = pathlib.Path(__file__).resolve().parent / "dummy_data"
  rng = np.random.default_rng(0)
  t = np.arange(N_TIMES) / SFREQ
  for letter, folder in SETS.items():
    (out / folder).mkdir(parents=True, exist_ok=True)
    for i in range(1, N_PER_SET + 1):
      x = AMPLITUDE_UV[letter] * np.sin(2 * np.pi * 10 * t + i) + rng.normal(0, 5, N_TIMES)
      suffix = ".TXT" if letter == "N" else ".txt"
      text = "\r\n".join(str(int(round(v))) for v in x) + "\r\n"
      (out / folder / f"{letter}{i:03d}{suffix}").write_bytes(text.encode("ascii"))


if __name__ == "__main__":
  main()
