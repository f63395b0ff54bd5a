r"""Writes dummy_data/ for the sleep_edf builder test, in Sleep-EDF's NATIVE format.

Every byte is synthetic (random noise, made-up hypnograms); only the layout copies Sleep-EDF
Expanded: a PSG EDF with 30-s data records and the SC/ST channel labels, rates, units and
transducer fields of the real files, plus an annotations-only EDF+ hypnogram with the R&K texts
"Sleep stage W/1/2/3/4/R/?" and "Movement time". File names follow PhysioNet
(SC4ssNE0-PSG.edf + SC4ssN?-Hypnogram.edf, ST7ssNJ0-PSG.edf + ST7ssN?-Hypnogram.edf).

Contents (16 x 30-s epochs per night unless said otherwise):
  SC4001E0 / SC4001EC, SC4011E0 / SC4011EH, SC4021E0 / SC4021EH, SC4022E0 / SC4022EJ  (3 subjects)
  SC4031E0 / SC4031EC: the PSG is truncated (a broken download): the builder must skip it.
  ST7011J0 / ST7011JP, ST7022J0 / ST7022JM: telemetry (no resp, EMG at 100 Hz).

Run from the repository root:  python tfds_builders/sleep_edf/make_dummy_data.py
"""

from __future__ import annotations

import datetime
import os
import pathlib

import edfio
import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "dummy_data"
N_EPOCHS = 16

# One night's hypnogram as (text, number of 30-s epochs); the last "?" runs past the signal's
# end, as in the real files (their "Sleep stage ?" covers the unscored tail of the recording).
_HYPNOGRAM = (
    ("Sleep stage W", 3), ("Sleep stage 1", 2), ("Sleep stage 2", 3), ("Sleep stage 3", 1),
    ("Sleep stage 4", 1), ("Movement time", 1), ("Sleep stage R", 2), ("Sleep stage W", 2),
    ("Sleep stage ?", 1 + 20),
)
# Scored epochs inside the 16 written: 16 - 1 movement - 1 unscored = 14 kept per night.


def _signal(rng, label, sfreq, dim, phys, transducer, prefilter, n_s, scale):
  center = 0.5 * (phys[0] + phys[1])
  margin = 0.49 * (phys[1] - phys[0])
  data = np.clip(center + rng.normal(0.0, scale, int(n_s * sfreq)), center - margin,
                 center + margin)
  return edfio.EdfSignal(data, sfreq, label=label, physical_dimension=dim, physical_range=phys,
                         digital_range=(-2048, 2047), transducer_type=transducer,
                         prefiltering=prefilter)


def write_psg(path: pathlib.Path, *, telemetry: bool, seed: int, n_epochs: int = N_EPOCHS):
  rng = np.random.default_rng(seed)
  n_s = 30 * n_epochs
  eeg_t, eeg_f = "Ag-AgCl electrodes", "HP:0.5Hz LP:100Hz [enhanced cassette BW]"
  signals = [
      _signal(rng, "EEG Fpz-Cz", 100.0, "uV", (-192.0, 192.0), eeg_t, eeg_f, n_s, 28.0),
      _signal(rng, "EEG Pz-Oz", 100.0, "uV", (-197.0, 196.0), eeg_t, eeg_f, n_s, 15.0),
      _signal(rng, "EOG horizontal", 100.0, "uV", (-1009.0, 1009.0), eeg_t, eeg_f, n_s, 40.0),
  ]
  if telemetry:
    signals.append(_signal(rng, "EMG submental", 100.0, "uV", (-250.0, 250.0), eeg_t,
                           "HP:16Hz LP:100Hz", n_s, 10.0))
    signals.append(_signal(rng, "Marker", 10.0, "", (-2047.0, 2048.0), "Marker button", "",
                           n_s, 1.0))
  else:
    signals += [
        _signal(rng, "Resp oro-nasal", 1.0, "", (-2048.0, 2047.0), "Oral-nasal thermistors",
                "HP:0.03Hz LP:0.9Hz", n_s, 300.0),
        _signal(rng, "EMG submental", 1.0, "uV", (-5.0, 5.0), eeg_t,
                "HP:16Hz Rectification LP:0.7Hz", n_s, 1.0),
        _signal(rng, "Temp rectal", 1.0, "DegC", (34.0, 40.0), "Rectal thermistor", "", n_s,
                0.1),
        _signal(rng, "Event marker", 1.0, "", (-2047.0, 2048.0), "Marker button",
                "Hold during 2 seconds", n_s, 1.0),
    ]
  # Event marker / Temp are ~constant in real files; noise keeps them valid 16-bit signals.
  edf = edfio.Edf(
      signals,
      patient=edfio.Patient(name="X"),
      recording=edfio.Recording(startdate=datetime.date(1989, 4, 24)),
      starttime=datetime.time(16, 13, 0),
      data_record_duration=30.0,
  )
  edf.write(path)


def write_hypnogram(path: pathlib.Path):
  annotations, onset = [], 0.0
  for text, n in _HYPNOGRAM:
    annotations.append(edfio.EdfAnnotation(onset, 30.0 * n, text))
    onset += 30.0 * n
  edf = edfio.Edf(
      [],
      patient=edfio.Patient(name="X"),
      recording=edfio.Recording(startdate=datetime.date(1989, 4, 24)),
      starttime=datetime.time(16, 13, 0),
      annotations=annotations,
  )
  edf.write(path)


def main():
  OUT.mkdir(parents=True, exist_ok=True)
  nights = [
      ("SC4001E0", "SC4001EC", False), ("SC4011E0", "SC4011EH", False),
      ("SC4021E0", "SC4021EH", False), ("SC4022E0", "SC4022EJ", False),
      ("SC4031E0", "SC4031EC", False),
      ("ST7011J0", "ST7011JP", True), ("ST7022J0", "ST7022JM", True),
  ]
  for seed, (psg, hyp, telemetry) in enumerate(nights):
    psg_path = OUT / f"{psg}-PSG.edf"
    write_psg(psg_path, telemetry=telemetry, seed=seed)
    write_hypnogram(OUT / f"{hyp}-Hypnogram.edf")
    if psg == "SC4031E0":
      # A broken download: the file ends in the middle of the data records.
      data = psg_path.read_bytes()
      psg_path.write_bytes(data[: len(data) - 1000])
  print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
  main()
