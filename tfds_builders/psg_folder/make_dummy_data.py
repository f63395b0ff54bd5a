r"""Writes dummy_data/ for the psg_folder builder: a "clinic" folder of SYNTHETIC nights.

Every signal comes from `sleepjax.data.synthetic` (17-min nights at 32 Hz, 64 Hz ECG, 8 Hz
respiration); only the layout copies a clinic's export: its own file names, its own channel
labels ("C4:M1", "Chin1-Chin2", "ECG II", "Flow Patient", "Leg/L"), a montage that changed over
the years, and three hypnogram formats:

  clinic/2019/PSG_0001_N1.edf + PSG_0001_N1.csv          CSV, onset/duration/stage rows, AASM
                                                           labels ("Wake", "N2", "REM", ...)
  clinic/2019/PSG_0002_N1.edf + PSG_0002_N1-nsrr.xml     NSRR XML ("Stage 2 sleep|2", ...)
  clinic/2021/PSG_0003_N1.edf + PSG_0003_N1-Hypnogram.edf  EDF+ annotations, R&K labels;
                                                           older montage: no O2, no flow
  clinic/2021/PSG_0004_N1.edf + PSG_0004_N1.csv          TRUNCATED PSG (a cut copy): the
                                                           build must report and skip it

`spec.json` beside them is the dataset spec that reads this folder. `expected.json` holds the
stages written per recording (W/N1/N2/N3/REM counts) for the tests.

Run from the repository root:  python tfds_builders/psg_folder/make_dummy_data.py [OUT_DIR]
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import pathlib
import sys

import edfio
import numpy as np

from sleepjax.data import synthetic

OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"
CONFIG = synthetic.SyntheticConfig(
    n_subjects=4, duration_h=0.25, wake_before_min=1.0, wake_after_min=1.0, unscored_tail_min=0.0,
    movement_time_per_h=0.0, eeg_sfreq=32.0, eog_sfreq=32.0, emg_sfreq=32.0, ecg_sfreq=64.0,
    resp_sfreq=8.0, seed=7)
# Clinic label -> the synthetic channel it carries (None: a leg EMG the spec does not use).
LABELS = {
    "C4:M1": "EEG C4-M1", "C3:M2": "EEG C3-M2", "O2:M1": "EEG O2-M1", "E1-M2": "EOG E1-M2",
    "E2-M1": "EOG E2-M1", "Chin1-Chin2": "EMG Chin", "ECG II": "ECG", "Thorax": "Resp Thorax",
    "Flow Patient": "Resp Airflow", "Leg/L": "EMG Chin", "DC7": "Resp Abdomen",
}
OLD_MONTAGE_DROPS = ("O2:M1", "Flow Patient")
AASM = {0: "Wake", 1: "N1", 2: "N2", 3: "N3", 4: "REM"}
NSRR = {0: "Wake|0", 1: "Stage 1 sleep|1", 2: "Stage 2 sleep|2", 3: "Stage 3 sleep|3",
        4: "REM sleep|5"}
RK = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2", 3: "Sleep stage 3",
      4: "Sleep stage R"}
STAGE_NAMES = ("W", "N1", "N2", "N3", "REM")

SPEC = {
    "name": "clinic_demo",
    "recordings": "**/PSG_*.edf",
    "hypnogram": ["{stem}.csv", "{stem}-nsrr.xml", "{stem}-Hypnogram.edf"],
    "hypnogram_format": "auto",
    "subject": r"PSG_(\d{4})_",
    "montage": {
        "eeg": [["C4-M1", "C4:M1", "EEG C4-A1"], ["C3-M2", "C3:M2"], ["O2-M1", "O2:M1"]],
        "eog": [["E1-M2", "LOC"], ["E2-M1", "ROC"]],
        "emg": [["Chin", "Chin1-Chin2"]],
        "ecg": [["ECG", "ECG II"]],
        "resp": [["Thorax", "Thor"], ["Flow", "Flow Patient"]],
    },
    "sfreq": 32.0,
    "description": "Synthetic clinic folder (tfds_builders/psg_folder/make_dummy_data.py).",
}


def _merge(stages) -> list[tuple[float, float, int]]:
  out = []
  for i, s in enumerate(stages):
    if out and out[-1][2] == s:
      out[-1] = (out[-1][0], out[-1][1] + 30.0, s)
    else:
      out.append((30.0 * i, 30.0, int(s)))
  return out


def write_psg(path: pathlib.Path, night: synthetic.SyntheticNight, labels, start: datetime.datetime):
  """A clinic-style PSG EDF: the given labels, each carrying its synthetic channel."""
  signals = []
  for label in labels:
    x, fs = night.signals[LABELS[label]]
    lim = synthetic.PHYSICAL_RANGE_UV[synthetic.MODALITY_OF_CHANNEL[LABELS[label]]]
    signals.append(edfio.EdfSignal(np.clip(x, -lim, lim), fs, label=label, physical_dimension="uV",
                                   physical_range=(-lim, lim)))
  edfio.Edf(signals, starttime=start.time(), recording=edfio.Recording(startdate=start.date()),
            data_record_duration=30.0).write(path)


def write_csv(path: pathlib.Path, stages) -> None:
  """onset,duration,stage rows with AASM labels."""
  rows = ["onset,duration,stage"] + [f"{o:g},{d:g},{AASM[s]}" for o, d, s in _merge(stages)]
  path.write_text("\n".join(rows) + "\n")


def write_nsrr_xml(path: pathlib.Path, stages, start: datetime.datetime) -> None:
  """NSRR XML (the layout of SHHS/MESA/MrOS/CFS *-nsrr.xml files)."""
  events = [f"<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept>"
            f"<Start>0</Start><Duration>{30.0 * len(stages):.1f}</Duration>"
            f"<ClockTime>00.00.00 {start:%H.%M.%S}</ClockTime></ScoredEvent>"]
  for onset, duration, s in _merge(stages):
    events.append(f"<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>{NSRR[s]}"
                  f"</EventConcept><Start>{onset:.1f}</Start><Duration>{duration:.1f}</Duration>"
                  "</ScoredEvent>")
  path.write_text('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<PSGAnnotation>'
                  "<SoftwareVersion>Compumedics</SoftwareVersion><EpochLength>30</EpochLength>"
                  "<ScoredEvents>" + "".join(events) + "</ScoredEvents></PSGAnnotation>\n")


def write_edf_hypnogram(path: pathlib.Path, stages, start: datetime.datetime) -> None:
  """EDF+ annotations with R&K labels, starting with the PSG."""
  annotations = [edfio.EdfAnnotation(o, d, RK[s]) for o, d, s in _merge(stages)]
  edfio.Edf([], starttime=start.time(), recording=edfio.Recording(startdate=start.date()),
            annotations=annotations).write(path)


def write_folder(out: str | os.PathLike) -> dict:
  """Writes the clinic folder, spec.json and expected.json under `out`; returns expected."""
  out = pathlib.Path(out)
  expected = {}
  for k in range(CONFIG.n_subjects):
    night = synthetic.generate_night(CONFIG, k)
    stages = np.asarray(night.hypnogram, np.int32)
    stem = f"PSG_{k + 1:04d}_N1"
    folder = out / "clinic" / ("2019" if k < 2 else "2021")
    folder.mkdir(parents=True, exist_ok=True)
    labels = [lab for lab in LABELS if not (k == 2 and lab in OLD_MONTAGE_DROPS)]
    start = datetime.datetime(2019 + 2 * (k >= 2), 3, 1 + k, 22, 15, 0)
    write_psg(folder / f"{stem}.edf", night, labels, start)
    if k == 1:
      write_nsrr_xml(folder / f"{stem}-nsrr.xml", stages, start)
    elif k == 2:
      write_edf_hypnogram(folder / f"{stem}-Hypnogram.edf", stages, start)
    else:
      write_csv(folder / f"{stem}.csv", stages)
    if k == 3:  # a cut copy: the header promises more data records than the file holds
      psg = folder / f"{stem}.edf"
      psg.write_bytes(psg.read_bytes()[:-5000])
      continue
    counts = collections.Counter(int(s) for s in stages)
    expected[stem] = {"subject": f"{k + 1:04d}", "stages": {STAGE_NAMES[s]: counts.get(s, 0)
                                                            for s in range(5)},
                      "missing": ["O2-M1", "Flow"] if k == 2 else []}
  (out / "spec.json").write_text(json.dumps(SPEC, indent=2) + "\n")
  (out / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
  return expected


if __name__ == "__main__":
  target = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
  write_folder(target)
  print(f"wrote {target}")
