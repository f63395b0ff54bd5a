"""Writes dummy_data/ in eegmmidb's native format (EDF+, 64 channels "Fc5." ... at 160 Hz).

Layout, mixing the two forms the builder accepts:
- `eegmmidb_mi_S001-S012.tar.xz` holding `eegmmidb_mi_S001-S012/S001R04.edf`, `S005R08.edf`,
  `S006R12.edf` (one imagery run of a train, a validation and a test subject). Each lasts 9 s
  with annotations T0@0 s, T2@4.2 s (both fit a 4-s window) and T1@8.3 s (runs past the end:
  the builder must drop it), like the 4.1-4.2 s cues of the real runs.
- the PhysioNet tree `S001/S001R01.edf` (eyes open, 9 s -> two 4-s windows, the 1-s tail dropped) and
  `S001/S001R02.edf` (eyes closed).
Signals: per channel a sine whose amplitude encodes the channel index (10 + i uV), at 10 Hz
for eyes closed (alpha) and 20 Hz otherwise, so tests can check channel order and units.
Run: `python tfds_builders/eegmmidb/make_dummy_data.py`.
"""

import io
import pathlib
import tarfile

import edfio
import numpy as np

SFREQ = 160
LABELS = (
    "Fc5.", "Fc3.", "Fc1.", "Fcz.", "Fc2.", "Fc4.", "Fc6.", "C5..", "C3..", "C1..", "Cz..", "C2..",
    "C4..", "C6..", "Cp5.", "Cp3.", "Cp1.", "Cpz.", "Cp2.", "Cp4.", "Cp6.", "Fp1.", "Fpz.", "Fp2.",
    "Af7.", "Af3.", "Afz.", "Af4.", "Af8.", "F7..", "F5..", "F3..", "F1..", "Fz..", "F2..", "F4..",
    "F6..", "F8..", "Ft7.", "Ft8.", "T7..", "T8..", "T9..", "T10.", "Tp7.", "Tp8.", "P7..", "P5..",
    "P3..", "P1..", "Pz..", "P2..", "P4..", "P6..", "P8..", "Po7.", "Po3.", "Poz.", "Po4.", "Po8.",
    "O1..", "Oz..", "O2..", "Iz..")


def make_edf(duration_s: float, freq_hz: float, annotations) -> bytes:
  t = np.arange(int(duration_s * SFREQ)) / SFREQ
  signals = [
      edfio.EdfSignal((10.0 + i) * np.sin(2 * np.pi * freq_hz * t), SFREQ, label=label,
                      physical_dimension="uV", physical_range=(-8092, 8092), digital_range=(-8092, 8092))
      for i, label in enumerate(LABELS)]
  recording = edfio.Edf(signals, annotations=[edfio.EdfAnnotation(o, d, s) for o, d, s in annotations])
  buf = io.BytesIO()
  recording.write(buf)
  return buf.getvalue()


def main():
  out = pathlib.Path(__file__).resolve().parent / "dummy_data"
  out.mkdir(exist_ok=True)
  imagery = [(0.0, 4.2, "T0"), (4.2, 4.1, "T2"), (8.3, 0.7, "T1")]
  tar_path = out / "eegmmidb_mi_S001-S012.tar.xz"
  with tarfile.open(tar_path, "w:xz") as tar:
    for name in ("S001R04", "S005R08", "S006R12"):
      data = make_edf(9.0, 20.0, imagery)
      info = tarfile.TarInfo(f"eegmmidb_mi_S001-S012/{name}.edf")
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  (out / "S001").mkdir(exist_ok=True)
  (out / "S001" / "S001R01.edf").write_bytes(make_edf(9.0, 20.0, [(0.0, 9.0, "T0")]))
  (out / "S001" / "S001R02.edf").write_bytes(make_edf(9.0, 10.0, [(0.0, 9.0, "T0")]))


if __name__ == "__main__":
  main()
