"""Writes tiny synthetic TUEV dummy data in the NATIVE layout (TUH-style EDF + .rec event files).

Run from the repository root: `python tfds_builders/tuev/make_dummy_data.py`. No TUH bytes are
used: signals are synthetic (alpha + noise, with a spike burst at each SPSW event), written with
edfio like TUH's files (1-s data records, "EEG FP1-REF" labels, extra EKG/T1/T2 channels, 250 Hz,
12 s). The .rec files use TUEV's "channel,start,stop,class" lines (class 1..6 =
SPSW, GPED, PLED, EYEM, ARTF, BCKG; channel = TCP bipolar montage index), several channels per
event as in the real corpus, including disagreements that exercise the merge rule.
"""

import datetime
import pathlib

import edfio
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"
CHANNELS = ("FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "T3", "C3", "CZ", "C4", "T4",
            "T5", "P3", "PZ", "P4", "T6", "O1", "O2", "EKG1", "T1", "T2")
SFREQ = 250
DURATION_S = 12

SESSIONS = {
    # 3 events: BCKG; SPSW on 2 channels beats BCKG on 1; EYEM vs ARTF tie -> EYEM (lower class).
    "edf/train/aaaaaaar/aaaaaaar_00000001": "0,2.0,3.0,6\n1,2.0,3.0,6\n14,5.0,6.0,1\n15,5.0,6.0,1\n16,5.0,6.0,6\n"
                                            "3,9.0,10.0,4\n4,9.0,10.0,5\n",
    "edf/train/aaaaaaas/aaaaaaas_00000001": "2,4.0,5.0,2\n5,4.0,5.0,2\n7,8.0,9.0,3\n",
    # The second event lies beyond the 12-s recording: the builder must skip it.
    "edf/train/aaaaaaat/aaaaaaat_00000002": "4,6.0,7.0,5\n0,30.0,31.0,6\n",
    "edf/eval/aaaaaaau/aaaaaaau_00000001": "10,3.0,4.0,1\n11,7.0,8.0,6\n",
}


def main() -> None:
  for seed, (stem, rec) in enumerate(SESSIONS.items()):
    rng = np.random.default_rng(seed)
    t = np.arange(DURATION_S * SFREQ) / SFREQ
    data = 20 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6.3, (len(CHANNELS), 1)))
    data += 5 * rng.standard_normal(data.shape)
    for line in rec.splitlines():
      _, start, stop, label = line.split(",")
      if label == "1" and float(stop) <= DURATION_S:  # A 70-ms spike in the SPSW second.
        data[:, int(float(start) * SFREQ) + 100:int(float(start) * SFREQ) + 118] += 150
    signals = [edfio.EdfSignal(row, SFREQ, label=f"EEG {c}-REF", physical_dimension="uV",
                               physical_range=(-500.0, 500.0)) for c, row in zip(CHANNELS, data)]
    path = OUT / f"{stem}.edf"
    path.parent.mkdir(parents=True, exist_ok=True)
    edfio.Edf(signals, starttime=datetime.time(9, 0, 0), data_record_duration=1).write(path)
    (OUT / f"{stem}.rec").write_text(rec)


if __name__ == "__main__":
  main()
