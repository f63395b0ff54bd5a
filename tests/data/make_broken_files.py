r"""Broken and unusual inputs derived from the real Sleep-EDF SC4001 excerpt (docs/reliability.md).

  python tests/data/make_broken_files.py OUT_DIR      # writes every case as OUT_DIR/<case>/
  python tests/data/make_broken_files.py --mne-table  # runs plain MNE on each case (the doc's column)

The source is $SLEEPJAX_TEST_DATA/sleep_edf_sc4001_excerpt (short_psg.edf: the first 300 s of
SC4001E0-PSG.edf; SC4001EC-Hypnogram.edf: its full expert hypnogram). Every case is a small
byte-level edit of those two files, written under PhysioNet's names (SC4001E0-PSG.edf,
SC4001EC-Hypnogram.edf) so that the Sleep-EDF builder finds them. The tests
(tests/data/test_reliability.py) import `CASES` and `write_case`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
from collections.abc import Callable

EXCERPT = "sleep_edf_sc4001_excerpt"
PSG_NAME = "SC4001E0-PSG.edf"
HYP_NAME = "SC4001EC-Hypnogram.edf"

# Signal-header columns (offset of the column in units of n_signals, width), Kemp et al. 1992.
COLUMNS = {"label": (0, 16), "transducer": (16, 80), "dim": (96, 8), "pmin": (104, 8),
           "pmax": (112, 8), "dmin": (120, 8), "dmax": (128, 8), "prefilter": (136, 80),
           "spr": (216, 8)}
# Fixed-header fields (offset, width).
FIXED = {"version": (0, 8), "date": (168, 8), "time": (176, 8), "header_bytes": (184, 8),
         "n_records": (236, 8), "duration": (244, 8), "n_signals": (252, 4)}


def excerpt_folder() -> pathlib.Path:
  """The real excerpt folder ($SLEEPJAX_TEST_DATA, default shared/data beside the checkout)."""
  root = pathlib.Path(__file__).resolve().parents[2]
  return pathlib.Path(os.environ.get("SLEEPJAX_TEST_DATA", root.parent / "shared" / "data")) / EXCERPT


def source_bytes(folder: pathlib.Path | None = None) -> tuple[bytes, bytes]:
  """(PSG bytes, hypnogram bytes) of the real excerpt."""
  folder = excerpt_folder() if folder is None else folder
  return (folder / "short_psg.edf").read_bytes(), (folder / "SC4001EC-Hypnogram.edf").read_bytes()


def n_signals(edf: bytes) -> int:
  return int(edf[252:256])


def set_fixed(edf: bytes, field: str, value: bytes) -> bytes:
  offset, width = FIXED[field]
  return edf[:offset] + value.ljust(width)[:width] + edf[offset + width:]


def set_signal(edf: bytes, signal: int, column: str, value: bytes, pad: bytes = b" ") -> bytes:
  """Replaces one signal-header field (padded with `pad` to its width)."""
  ns = n_signals(edf)
  col, width = COLUMNS[column]
  start = 256 + col * ns + signal * width
  return edf[:start] + value.ljust(width, pad)[:width] + edf[start + width:]


def header_len(edf: bytes) -> int:
  return int(edf[184:192])


@dataclasses.dataclass(frozen=True)
class Case:
  """One input: what is wrong, the files, and what sleepjax does (asserted by the tests).

  Attributes:
    name: a folder-safe id.
    wrong: what is wrong with the input, in words.
    make: (psg bytes, hyp bytes) -> {relative path: bytes} of the files to write.
    outcome: "error" (the night is refused with the error `error` matching `match`), "ok"
      (read, possibly with a report note `match`), or "build_error" (the whole build stops).
    error: the expected error class name (sleepjax.data.errors), or None.
    match: a regex the error message (or a report warning) must match.
  """
  name: str
  wrong: str
  make: Callable[[bytes, bytes], dict[str, bytes]]
  outcome: str
  error: str | None = None
  match: str = ""


def _night(psg: bytes, hyp: bytes) -> dict[str, bytes]:
  return {PSG_NAME: psg, HYP_NAME: hyp}


def _psg(edit: Callable[[bytes], bytes]) -> Callable[[bytes, bytes], dict[str, bytes]]:
  return lambda psg, hyp: _night(edit(psg), hyp)


def _crlf(psg: bytes) -> bytes:
  h = header_len(psg)
  return psg[:h] + psg[h:].replace(b"\n", b"\r\n")


def _bit24(psg: bytes) -> bytes:
  h = header_len(psg)
  body = psg[h:]
  return psg[:h] + body + body[:len(body) // 2]  # 3 bytes per sample, as in BDF


def _bdf(psg: bytes) -> bytes:
  return b"\xffBIOSEMI" + psg[8:]


def _nul_labels(psg: bytes) -> bytes:
  for i in range(n_signals(psg)):
    start = 256 + i * 16
    psg = set_signal(psg, i, "label", psg[start:start + 16].strip(b" "), pad=b"\x00")
  return psg


def _hyp_time(value: bytes) -> Callable[[bytes, bytes], dict[str, bytes]]:
  return lambda psg, hyp: _night(psg, set_fixed(hyp, "time", value))


# The 13 nights that no reader should accept (the "every night broken" build).
BROKEN_NIGHTS = (
    Case("truncated", "last 1000 bytes missing (interrupted download)",
         _psg(lambda b: b[:-1000]), "error", "EDFTruncatedError", r"truncated: .*9 whole data records"),
    Case("crlf", "text-mode copy: 0x0D inserted before every 0x0A",
         _psg(_crlf), "error", "EDFTruncatedError", r"CRLF-corrupted"),
    Case("empty", "0-byte file", _psg(lambda b: b""), "error", "EDFHeaderError", r"file is empty"),
    Case("not_edf", "an HTML error page saved as .edf",
         _psg(lambda b: b"<html><body>404 Not Found</body></html>\n" * 8), "error",
         "EDFHeaderError", r"not an EDF file: version field"),
    Case("bdf_named_edf", "a BDF version field (0xFF BIOSEMI) on 16-bit EDF data, named .edf",
         _psg(_bdf), "error", "EDFHeaderError",
         r"2 bytes per sample \(16-bit, as in EDF\), not BDF's 3"),
    Case("zero_sfreq", "EEG Fpz-Cz has 0 samples per data record",
         _psg(lambda b: set_signal(b, 0, "spr", b"0")), "error", "SamplingRateError",
         r"'EEG Fpz-Cz' has no positive sampling rate"),
    Case("bit24_data", "EDF header, but 3-byte samples", _psg(_bit24), "error", "EDFHeaderError",
         r"3 bytes per sample \(24-bit"),
    Case("miscalibrated", "EEG Fpz-Cz physical_min == physical_max",
         _psg(lambda b: set_signal(b, 0, "pmax", b"-192")), "error", "EDFHeaderError",
         r"'EEG Fpz-Cz' has an unusable calibration"),
    Case("bad_version", "version field '1'", _psg(lambda b: set_fixed(b, "version", b"1")), "error",
         "EDFHeaderError", r"version field is '1'"),
    Case("n_records_unknown", "n_records -1 (recording never closed)",
         _psg(lambda b: set_fixed(b, "n_records", b"-1")), "error", "EDFTruncatedError",
         r"n_records is -1"),
    Case("bad_header_bytes", "header_bytes field 1024 for 7 signals",
         _psg(lambda b: set_fixed(b, "header_bytes", b"1024")), "error", "EDFHeaderError",
         r"header_bytes field is 1024"),
    Case("uv_nbsp", "EEG Fpz-Cz unit 'uV' + no-break space (0xA0)",
         _psg(lambda b: set_signal(b, 0, "dim", b"uV\xa0")), "error", "UnitError",
         r"eeg channel 'EEG Fpz-Cz': physical dimension 'uV\\xa0' is an unknown spelling of a "
         r"voltage \(header bytes b'uV\\xa0 {5}'\)"),
    Case("missing_channel", "EEG Fpz-Cz relabelled 'EEG Fpz-Cx'",
         _psg(lambda b: set_signal(b, 0, "label", b"EEG Fpz-Cx")), "error", "MissingChannelError",
         r"required eeg channel 'EEG Fpz-Cz'.*available labels: \['EEG Fpz-Cx'"),
)

# Inputs that are odd but unambiguous: read correctly (tests compare with the original night).
TOLERATED = (
    Case("trailing_byte", "one byte after the last data record", _psg(lambda b: b + b"\x00"), "ok",
         None, r"1 trailing byte\(s\) after the last declared data record ignored"),
    Case("nul_padded_labels", "labels padded with NUL instead of spaces", _psg(lambda b: _nul_labels(b)),
         "ok"),
    Case("hyp_offset_plus60", "hypnogram starts 60 s after the PSG", _hyp_time(b"16.14.00"), "ok"),
    Case("hyp_offset_minus45", "hypnogram starts 45 s before the PSG", _hyp_time(b"16.12.15"), "ok"),
)


# Start dates that do not parse: an error, or with assume_offset_s a stated offset.
ALIGNMENT = (
    Case("psg_bad_date", "PSG start date 31.02.89 (no such day)",
         lambda psg, hyp: _night(set_fixed(psg, "date", b"31.02.89"), hyp), "error",
         "AlignmentError", r"start date/time \('31\.02\.89', '16\.13\.00'\) does not parse"),
    Case("hyp_bad_date", "hypnogram start date 31.02.89, hypnogram 60 s later",
         lambda psg, hyp: _night(psg, set_fixed(set_fixed(hyp, "date", b"31.02.89"), "time",
                                                b"16.14.00")), "error", "AlignmentError",
         r"Hypnogram\.edf: start date/time \('31\.02\.89', '16\.14\.00'\) does not parse"),
)

# Two candidate files for one record: the build stops, naming both.
DUPLICATES = (
    Case("two_hypnograms", "SC4001EC and SC4001EH hypnograms for one PSG",
         lambda psg, hyp: {PSG_NAME: psg, HYP_NAME: hyp, "SC4001EH-Hypnogram.edf": hyp},
         "build_error", "DuplicateFileError",
         r"2 hypnograms for SC4001E0: .*SC4001EC-Hypnogram\.edf.*SC4001EH-Hypnogram\.edf"),
    Case("two_psg_copies", "SC4001E0-PSG.edf in a/ (truncated) and in b/ (intact)",
         lambda psg, hyp: {f"a/{PSG_NAME}": psg[:-1000], f"b/{PSG_NAME}": psg, HYP_NAME: hyp},
         "build_error", "DuplicateFileError",
         r"2 copies of SC4001E0-PSG\.edf: .*a/SC4001E0-PSG\.edf.*b/SC4001E0-PSG\.edf"),
)

# Every spelling of a voltage unit the EDF spec and real files use, with the physical range
# rewritten in that unit: the stored amplitude in uV must not change.
UNIT_SPELLINGS = (
    (b"uV", 1.0), (b"\xb5V", 1.0), (b"\xc2\xb5V", 1.0), (b"\xce\xbcV", 1.0), (b"UV", 1.0),
    (b"uv", 1.0), (b"mV", 1e-3), (b"MV", 1e-3), (b"V", 1e-6), (b"nV", 1e3), (b"uV\x00\x00", 1.0),
)


def _number(x: float) -> bytes:
  """An EDF number field (8 chars) for x, as exact as 8 characters allow."""
  for text in (f"{x:g}", f"{x:.6g}", f"{x:.5g}", f"{x:.4g}"):
    text = text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text
    if len(text) <= 8:
      return text.encode()
  raise ValueError(x)


def unit_case(psg: bytes, dim: bytes, per_uv: float) -> bytes:
  """The PSG with EEG Fpz-Cz's unit set to `dim` and its range rewritten in that unit."""
  out = set_signal(psg, 0, "dim", dim, pad=b"\x00" if b"\x00" in dim else b" ")
  out = set_signal(out, 0, "pmin", _number(-192 * per_uv))
  return set_signal(out, 0, "pmax", _number(192 * per_uv))


CASES = BROKEN_NIGHTS + TOLERATED + ALIGNMENT + DUPLICATES


def write_case(case: Case, folder: pathlib.Path, source: tuple[bytes, bytes] | None = None
               ) -> pathlib.Path:
  """Writes a case's files under `folder` (created) and returns it."""
  psg, hyp = source_bytes() if source is None else source
  folder.mkdir(parents=True, exist_ok=True)
  for rel, data in case.make(psg, hyp).items():
    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
    (folder / rel).write_bytes(data)
  return folder


def mne_outcome(psg_path: pathlib.Path) -> str:
  """What plain `mne.io.read_raw_edf` makes of a file, in a few words (the doc's MNE column)."""
  import mne  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  try:
    raw = mne.io.read_raw_edf(psg_path, preload=True, verbose="error")
  except Exception as e:  # pylint: disable=broad-except  # Reporting whatever MNE raises.
    return f"raises {type(e).__name__}: {' '.join(str(e).split())[:90]}"
  std = np.std(raw.get_data(picks=[0])[0]) * 1e6  # signal 0 is EEG Fpz-Cz in every case
  return f"reads {raw.n_times} samples x {len(raw.ch_names)} ch, signal 0 {raw.ch_names[0]!r}: std {std:.4g}e-6"


def main(argv: list[str]) -> int:
  if argv[1:2] == ["--mne-table"]:
    import tempfile  # pylint: disable=g-import-not-at-top
    with tempfile.TemporaryDirectory() as tmp:
      for case in CASES:
        folder = write_case(case, pathlib.Path(tmp) / case.name)
        psgs = sorted(folder.rglob(PSG_NAME))
        print(f"| {case.name} | " + " / ".join(mne_outcome(p) for p in psgs) + " |")
      psg, hyp = source_bytes()
      for dim, per_uv in UNIT_SPELLINGS:
        path = pathlib.Path(tmp) / f"unit_{dim.hex()}.edf"
        path.write_bytes(unit_case(psg, dim, per_uv))
        print(f"| unit {dim!r} | {mne_outcome(path)} |")
    return 0
  if len(argv) != 2:
    print(__doc__, file=sys.stderr)
    return 2
  out = pathlib.Path(argv[1])
  for case in CASES:
    write_case(case, out / case.name)
  print(f"wrote {len(CASES)} cases under {out}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
