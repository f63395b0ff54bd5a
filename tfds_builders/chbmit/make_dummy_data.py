"""Writes tiny synthetic CHB-MIT dummy data in the NATIVE layout (EDF + chbNN-summary.txt).

Run from the repository root: `python tfds_builders/chbmit/make_dummy_data.py`. No PhysioNet
bytes are used: signals are synthetic (alpha + noise; a 3 Hz, 150 uV rhythm during seizures),
written with edfio like CHB-MIT's files: 256 Hz, 1-s data records, the 23 bipolar labels in
PhysioNet's order (with "T8-P8" twice, as in the real files) and, in one file, "-" dummy
channels. Each file lasts 12 s. Summaries use both spellings PhysioNet uses
("Seizure Start Time:" and "Seizure 1 Start Time:"). chb21 is the same subject as chb01.
"""

import datetime
import pathlib

import edfio
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"
SFREQ = 256
DURATION_S = 12
LABELS_23 = ("FP1-F7", "F7-T7", "T7-P7", "P7-O1", "FP1-F3", "F3-C3", "C3-P3", "P3-O1", "FP2-F4", "F4-C4",
             "C4-P4", "P4-O2", "FP2-F8", "F8-T8", "T8-P8", "P8-O2", "FZ-CZ", "CZ-PZ", "P7-T7", "T7-FT9",
             "FT9-FT10", "FT10-T8", "T8-P8")
LABELS_WITH_DUMMIES = LABELS_23[:4] + ("-",) + LABELS_23[4:8] + ("-",) + LABELS_23[8:]

# case -> [(file, seizures [(start_s, end_s)], labels)]
CASES = {
    "chb01": [("chb01_01.edf", [], LABELS_23), ("chb01_03.edf", [(5, 7)], LABELS_23)],
    "chb02": [("chb02_16.edf", [(1, 2), (9, 10)], LABELS_WITH_DUMMIES)],
    "chb03": [("chb03_01.edf", [], LABELS_23)],
    "chb21": [("chb21_19.edf", [(2, 6)], LABELS_23)],
}
NEW_SPELLING = {"chb02", "chb21"}  # "Seizure 1 Start Time: ..."


def summary(case: str) -> str:
  lines = [f"Data Sampling Rate: {SFREQ} Hz", "*************************", "", "Channels in EDF Files:",
           "**********************"]
  lines += [f"Channel {i + 1}: {lab}" for i, lab in enumerate(LABELS_23)] + [""]
  for k, (name, seizures, _) in enumerate(CASES[case]):
    lines += [f"File Name: {name}", f"File Start Time: {10 + k}:00:00", f"File End Time: {10 + k}:00:12",
              f"Number of Seizures in File: {len(seizures)}"]
    for i, (a, b) in enumerate(seizures, start=1):
      tag = f"Seizure {i} " if case in NEW_SPELLING else "Seizure "
      lines += [f"{tag}Start Time: {a} seconds", f"{tag}End Time: {b} seconds"]
    lines.append("")
  return "\n".join(lines) + "\n"


def main() -> None:
  for seed, (case, files) in enumerate(CASES.items()):
    folder = OUT / case
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{case}-summary.txt").write_text(summary(case))
    for k, (name, seizures, labels) in enumerate(files):
      rng = np.random.default_rng(10 * seed + k)
      t = np.arange(DURATION_S * SFREQ) / SFREQ
      data = 20 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6.3, (len(labels), 1)))
      data += 5 * rng.standard_normal(data.shape)
      for a, b in seizures:
        data[:, (t >= a) & (t < b)] += 150 * np.sin(2 * np.pi * 3 * t[(t >= a) & (t < b)])
      data[[i for i, lab in enumerate(labels) if lab == "-"]] = 0.0
      signals = [edfio.EdfSignal(row, SFREQ, label=lab, physical_dimension="uV", physical_range=(-800.0, 800.0))
                 for lab, row in zip(labels, data)]
      edfio.Edf(signals, starttime=datetime.time(10 + k, 0, 0), data_record_duration=1).write(folder / name)


if __name__ == "__main__":
  main()
