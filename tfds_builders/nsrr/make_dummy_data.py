r"""Writes NSRR-layout dummy data (EDF + NSRR XML) for the nsrr builder test.

Every byte is synthetic (band-limited noise, made-up hypnograms); only the layout copies the
NSRR releases: folder structure, file names, channel labels and native sampling rates of each
cohort, and annotation files in the NSRR XML schema (`PSGAnnotation/ScoredEvents/ScoredEvent`
with EventType, EventConcept, Start, Duration; a "Recording Start Time" event first, arousal
and desaturation events mixed with the "Stages|Stages" ones, R&K stage 4 as in SHHS).

Per cohort, 3 nights of 8 epochs (4 min) from 3 subjects. SHHS1's second night labels its
second EEG "EEG2" (a site variant of "EEG(sec)") and lacks AIRFLOW (masked in the dataset).

Run from the repository root:  python tfds_builders/nsrr/make_dummy_data.py OUT_DIR
(the test writes it into a temporary folder; nothing binary is committed).
"""

from __future__ import annotations

import datetime
import pathlib
import sys

import edfio
import numpy as np

N_EPOCHS = 8
# (EventConcept, AASM stage) per epoch, the same for every night (sleep from epoch 1 on, so
# wake trimming keeps all 8).
STAGES = (("Wake|0", 0), ("Stage 1 sleep|1", 1), ("Stage 2 sleep|2", 2), ("Stage 2 sleep|2", 2),
          ("Stage 3 sleep|3", 3), ("Stage 4 sleep|4", 3), ("REM sleep|5", 4), ("REM sleep|5", 4))
EXPECTED_STAGES = {"W": 1, "N1": 1, "N2": 2, "N3": 2, "REM": 2}

# cohort -> (EDF folder, file stems, {label: (sfreq Hz, physical dim, range)})
_EEG = ("uV", 250.0)
COHORTS = {
    "shhs1": ("shhs/polysomnography/edfs/shhs1", ["shhs1-200001", "shhs1-200002", "shhs1-200003"], {
        "SaO2": (1, "%", 100.0), "H.R.": (1, "bpm", 250.0), "EEG(sec)": (125, *_EEG),
        "ECG": (125, "mV", 1.25), "EMG": (125, "uV", 31.5), "EOG(L)": (50, "uV", 500.0),
        "EOG(R)": (50, "uV", 500.0), "EEG": (125, *_EEG), "THOR RES": (10, "", 1.0),
        "ABDO RES": (10, "", 1.0), "POSITION": (1, "", 3.0), "LIGHT": (1, "", 1.0),
        "AIRFLOW": (10, "", 1.0), "OX stat": (1, "", 3.0)}),
    "shhs2": ("shhs/polysomnography/edfs/shhs2", ["shhs2-200001", "shhs2-200002", "shhs2-200004"], {
        "SaO2": (1, "%", 100.0), "H.R.": (1, "bpm", 250.0), "EEG(sec)": (125, *_EEG),
        "ECG": (250, "mV", 1.25), "EMG": (125, "uV", 31.5), "EOG(L)": (50, "uV", 500.0),
        "EOG(R)": (50, "uV", 500.0), "EEG": (125, *_EEG), "THOR RES": (10, "", 1.0),
        "ABDO RES": (10, "", 1.0), "POSITION": (1, "", 3.0), "LIGHT": (1, "", 1.0),
        "AIRFLOW": (10, "", 1.0)}),
    "mesa": ("mesa/polysomnography/edfs", ["mesa-sleep-0001", "mesa-sleep-0002", "mesa-sleep-0003"], {
        "EKG": (256, "mV", 5.0), "EOG-L": (256, "uV", 500.0), "EOG-R": (256, "uV", 500.0),
        "EMG": (256, "uV", 100.0), "EEG1": (256, *_EEG), "EEG2": (256, *_EEG), "EEG3": (256, *_EEG),
        "Pres": (32, "cmH2O", 10.0), "Flow": (32, "", 1.0), "Snore": (32, "", 1.0),
        "Thor": (32, "", 1.0), "Abdo": (32, "", 1.0), "Leg": (256, "uV", 100.0),
        "SpO2": (1, "%", 100.0), "HR": (1, "bpm", 250.0), "Pos": (32, "", 4.0)}),
    "mros": ("mros/polysomnography/edfs/visit1",
             ["mros-visit1-aa0001", "mros-visit1-aa0002", "mros-visit1-ab0003"], {
        "C3": (256, *_EEG), "C4": (256, *_EEG), "A1": (256, *_EEG), "A2": (256, *_EEG),
        "LOC": (256, "uV", 500.0), "ROC": (256, "uV", 500.0), "ECG L": (256, "mV", 5.0),
        "ECG R": (256, "mV", 5.0), "L Chin": (256, "uV", 100.0), "R Chin": (256, "uV", 100.0),
        "Leg L": (256, "uV", 100.0), "Leg R": (256, "uV", 100.0), "Airflow": (32, "", 1.0),
        "Thoracic": (32, "", 1.0), "Abdominal": (32, "", 1.0), "SaO2": (1, "%", 100.0),
        "Position": (1, "", 4.0)}),
    "cfs": ("cfs/polysomnography/edfs", ["cfs-visit5-800002", "cfs-visit5-800010", "cfs-visit5-800014"], {
        "C3": (128, *_EEG), "C4": (128, *_EEG), "M1": (128, *_EEG), "M2": (128, *_EEG),
        "LOC": (128, "uV", 500.0), "ROC": (128, "uV", 500.0), "ECG1": (256, "mV", 5.0),
        "ECG2": (256, "mV", 5.0), "EMG1": (128, "uV", 100.0), "EMG2": (128, "uV", 100.0),
        "THOR EFFORT": (32, "mV", 10.0), "ABDO EFFORT": (32, "mV", 10.0),
        "NASAL PRES": (32, "cmH2O", 10.0), "SpO2": (1, "%", 100.0), "PULSE": (1, "bpm", 250.0)}),
}


def _noise(rng, n: int, sfreq: float, lim: float) -> np.ndarray:
  x = np.cumsum(rng.standard_normal(n)) * 0.05
  x = x - np.convolve(x, np.ones(int(sfreq) or 1) / (int(sfreq) or 1), mode="same")
  x = x + 0.3 * rng.standard_normal(n)
  return np.clip(x / (np.abs(x).max() + 1e-9) * 0.4 * lim, -lim, lim)


def _xml(start: datetime.datetime) -> str:
  events = [f"<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept>"
            f"<Start>0</Start><Duration>{30.0 * N_EPOCHS:.1f}</Duration>"
            f"<ClockTime>00.00.00 {start:%H.%M.%S}</ClockTime></ScoredEvent>"]
  for i, (concept, _) in enumerate(STAGES):
    events.append(f"<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>{concept}"
                  f"</EventConcept><Start>{30.0 * i:.1f}</Start><Duration>30.0</Duration></ScoredEvent>")
    if i == 3:
      events.append("<ScoredEvent><EventType>Arousals|Arousals</EventType><EventConcept>"
                    "Arousal|Arousal ()</EventConcept><Start>100.5</Start><Duration>6.0</Duration>"
                    "<SignalLocation>EEG</SignalLocation></ScoredEvent>")
      events.append("<ScoredEvent><EventType>Desaturation|Desaturation</EventType><EventConcept>"
                    "SpO2 desaturation|SpO2 desaturation</EventConcept><Start>110.0</Start>"
                    "<Duration>20.0</Duration><SignalLocation>SaO2</SignalLocation><SpO2Nadir>90"
                    "</SpO2Nadir><SpO2Baseline>95</SpO2Baseline></ScoredEvent>")
  return ('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<PSGAnnotation>'
          "<SoftwareVersion>Compumedics</SoftwareVersion><EpochLength>30</EpochLength>"
          "<ScoredEvents>" + "".join(events) + "</ScoredEvents></PSGAnnotation>\n")


def write(out: str | pathlib.Path) -> dict[str, list[str]]:
  """Writes every cohort's nights under `out`; returns {cohort: [stem, ...]} of the nights."""
  out = pathlib.Path(out)
  written = {}
  for c, (cohort, (folder, stems, channels)) in enumerate(COHORTS.items()):
    edf_dir = out / folder
    xml_dir = edf_dir.parent / ".." / "annotations-events-nsrr" / edf_dir.name
    if edf_dir.name == "edfs":  # MESA, CFS: no visit subfolder
      xml_dir = edf_dir.parent / "annotations-events-nsrr"
    edf_dir.mkdir(parents=True, exist_ok=True)
    xml_dir.mkdir(parents=True, exist_ok=True)
    for k, stem in enumerate(stems):
      rng = np.random.default_rng(1000 * c + k)
      start = datetime.datetime(2001, 5, 1 + k, 22, 30, 0)
      signals = []
      for label, (sfreq, dim, lim) in channels.items():
        if cohort == "shhs1" and k == 1 and label == "AIRFLOW":
          continue
        name = "EEG2" if (cohort == "shhs1" and k == 1 and label == "EEG(sec)") else label
        x = _noise(rng, int(sfreq * 30 * N_EPOCHS), sfreq, lim)
        signals.append(edfio.EdfSignal(x, sfreq, label=name, physical_dimension=dim,
                                       physical_range=(-lim, lim)))
      edfio.Edf(signals, starttime=start.time(), recording=edfio.Recording(startdate=start.date()),
                data_record_duration=30.0).write(edf_dir / f"{stem}.edf")
      (xml_dir / f"{stem}-nsrr.xml").write_text(_xml(start))
    written[cohort] = list(stems)
  return written


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit(__doc__)
  write(sys.argv[1])
  print(f"wrote {sys.argv[1]}")
