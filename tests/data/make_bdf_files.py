r"""Writes small, valid BDF and BDF+ files with known 24-bit samples (tests/data/test_bdf.py).

  python tests/data/make_bdf_files.py OUT_DIR    # writes OUT_DIR/plain.bdf and OUT_DIR/plus.bdf

No maintained Python library writes BDF here (edfio writes EDF only), so the bytes are laid
out directly: the EDF header of Kemp et al. (1992) with 0xFF "BIOSEMI" as version, reserved
"24BIT" (BioSemi) or "BDF+C", and samples as 3-byte little-endian two's complement. A BDF+ file
carries a "BDF Annotations" signal with one time-keeping TAL per data record (EDF+, Kemp &
Olivan 2003, section 2.2.4), plus onset/duration annotations when given.
"""

from __future__ import annotations

import dataclasses
import pathlib
import sys

import numpy as np

DMIN, DMAX = -(1 << 23), (1 << 23) - 1  # The 24-bit digital range.


@dataclasses.dataclass
class BdfSignal:
  """One signal: digital samples (int, within 24 bits) and its calibration.

  Attributes:
    label: the channel label (<= 16 chars).
    digital: (n_records * samples_per_record,) ints in [DMIN, DMAX].
    samples_per_record: samples in one data record.
    physical_dim: e.g. "uV".
    physical_min, physical_max: the physical values of DMIN and DMAX.
  """

  label: str
  digital: np.ndarray
  samples_per_record: int
  physical_dim: str = "uV"
  physical_min: float = -262144.0
  physical_max: float = 262143.96875


def _text(value, width: int) -> bytes:
  raw = str(value).encode("ascii")
  if len(raw) > width:
    raise ValueError(f"header field {value!r} is longer than {width} bytes")
  return raw.ljust(width, b" ")


def _number(value: float, width: int) -> bytes:
  text = repr(int(value)) if float(value).is_integer() else repr(float(value))
  return _text(text[:width], width)


def _int24(values: np.ndarray) -> bytes:
  v = np.asarray(values, np.int64)
  if v.size and (v.min() < DMIN or v.max() > DMAX):
    raise ValueError("digital samples outside the 24-bit range")
  u = (v & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
  return u.tobytes()


def _tal_bytes(n_records, record_duration_s, annotations, n_bytes):
  """Per data record, the annotation signal's bytes (time-keeping TAL, then annotations)."""
  per_record = [f"+{r * record_duration_s:g}\x14\x14\x00".encode() for r in range(n_records)]
  for onset, duration, text in annotations:
    r = min(int(onset // record_duration_s), n_records - 1)
    per_record[r] += f"+{onset:g}\x15{duration:g}\x14{text}\x14\x00".encode()
  for r, b in enumerate(per_record):
    if len(b) > n_bytes:
      raise ValueError(f"annotations of data record {r} do not fit in {n_bytes} bytes")
  return [b.ljust(n_bytes, b"\x00") for b in per_record]


def write_bdf(path, signals, *, n_records: int, record_duration_s: float = 1.0,
              plus: bool = False, annotations=(), annotation_samples: int = 30,
              reserved: str | None = None) -> pathlib.Path:
  """Writes a BDF (plus=False, reserved "24BIT") or BDF+C (plus=True) file.

  Args:
    path: the output file.
    signals: `BdfSignal`s, each with n_records * samples_per_record digital samples.
    n_records: number of data records.
    record_duration_s: duration of one data record in seconds.
    plus: BDF+C with a "BDF Annotations" signal (last).
    annotations: (onset_s, duration_s, text) triples, BDF+ only.
    annotation_samples: samples per record of the annotation signal (3 bytes each).
    reserved: override of the reserved field (e.g. "BDF+D").

  Returns:
    The path.
  """
  path = pathlib.Path(path)
  labels = [s.label for s in signals]
  spr = [s.samples_per_record for s in signals]
  dims = [s.physical_dim for s in signals]
  pmin = [s.physical_min for s in signals]
  pmax = [s.physical_max for s in signals]
  dmin, dmax = [DMIN] * len(signals), [DMAX] * len(signals)
  if plus:
    labels.append("BDF Annotations")
    spr.append(annotation_samples)
    dims.append("")
    pmin.append(-1)
    pmax.append(1)
    dmin.append(DMIN)
    dmax.append(DMAX)
  n = len(labels)
  fixed = (b"\xffBIOSEMI" + _text("X X X X", 80) + _text("Startdate X X X X", 80)
           + _text("01.02.24", 8) + _text("22.30.00", 8) + _text(256 * (n + 1), 8)
           + _text(reserved if reserved is not None else ("BDF+C" if plus else "24BIT"), 44)
           + _text(n_records, 8) + _number(record_duration_s, 8) + _text(n, 4))
  columns = [(labels, 16), (["AgAgCl electrode"] * len(signals) + [""] * plus, 80),
             (dims, 8), (pmin, 8), (pmax, 8), (dmin, 8), (dmax, 8), ([""] * n, 80), (spr, 8),
             ([""] * n, 32)]
  sig_header = b"".join(
      (_number(v, w) if isinstance(v, (int, float)) else _text(v, w)) for vals, w in columns
      for v in vals)
  assert len(fixed) == 256 and len(sig_header) == 256 * n
  tals = (_tal_bytes(n_records, record_duration_s, annotations, 3 * annotation_samples)
          if plus else [])
  records = []
  for r in range(n_records):
    chunk = [_int24(s.digital[r * s.samples_per_record:(r + 1) * s.samples_per_record])
             for s in signals]
    if plus:
      chunk.append(tals[r])
    records.append(b"".join(chunk))
  path.write_bytes(fixed + sig_header + b"".join(records))
  return path


def extremes_signal(n: int, rng: np.random.Generator) -> np.ndarray:
  """n digital samples holding the 24-bit extremes, values around 0 and +-2**15, then noise."""
  edges = np.array([DMIN, DMAX, -1, 0, 1, DMIN + 1, DMAX - 1, -(1 << 15) - 1, 1 << 15,
                    -(1 << 16), (1 << 16) - 1, 0x7F, 0x80, 0xFF, 0x100, -0x80, -0x81], np.int64)
  body = rng.integers(DMIN, DMAX + 1, size=max(n - edges.size, 0))
  return np.concatenate([edges, body])[:n]


def example_signals(n_records: int, seed: int = 0) -> list[BdfSignal]:
  """Clinic-style labels at 256 Hz (EEG, EOG) and 128 Hz (chin EMG), plus a mV ECG."""
  rng = np.random.default_rng(seed)
  return [
      BdfSignal("C4:M1", extremes_signal(256 * n_records, rng), 256),
      BdfSignal("E1-M2", extremes_signal(256 * n_records, rng), 256),
      BdfSignal("Chin1-Chin2", extremes_signal(128 * n_records, rng), 128),
      BdfSignal("ECG II", extremes_signal(128 * n_records, rng), 128, "mV", -10.0,
                10.0),
  ]


def main(argv):
  if len(argv) != 2:
    sys.exit(__doc__)
  out = pathlib.Path(argv[1])
  out.mkdir(parents=True, exist_ok=True)
  n_records = 60
  write_bdf(out / "plain.bdf", example_signals(n_records), n_records=n_records)
  write_bdf(out / "plus.bdf", example_signals(n_records, 1), n_records=n_records, plus=True,
            annotations=[(0.0, 30.0, "Sleep stage W"), (30.0, 30.0, "Sleep stage N2")])
  print(f"wrote {out / 'plain.bdf'} and {out / 'plus.bdf'}")


if __name__ == "__main__":
  main(sys.argv)
