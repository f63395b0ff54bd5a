"""EDF / EDF+ and BDF / BDF+ header validation and reading, with physical units made explicit.

The fixed 256-byte header and the 256-byte-per-signal header are parsed here from the raw
bytes (they are tiny), so that a damaged file is rejected with a message naming the file and
the problem before MNE touches it. The samples themselves are read by MNE.

Format: Kemp et al. (1992) "A simple format for exchange of digitized polygraphic
recordings", Electroencephalogr. Clin. Neurophysiol. 82:391-393 (EDF); Kemp & Olivan (2003)
"European data format 'plus' (EDF+)", Clin. Neurophysiol. 114:1755-1761 (EDF+). BDF is
BioSemi's 24-bit EDF (first byte 0xFF, then "BIOSEMI"; 3-byte little-endian two's-complement
samples; reserved field "24BIT"), BDF+ its EDF+ counterpart (reserved "BDF+C"/"BDF+D",
"BDF Annotations" signals); docs/channels.md.

Units, explicitly: samples are read here (`read_physical`), not through MNE: digital values are
calibrated with the header's own physical/digital ranges, and `to_microvolts_factor` converts the
header's physical dimension to microvolts. MNE's EDF reader scales only some spellings of the
dimension to volts ("uV", "µV", "mV", compared after stripping ASCII whitespace) and leaves every
other one unscaled, so its output cannot be converted without copying its rule; sleepjax never
does. A dimension that is not one of the spellings below (e.g. "uV" followed by a no-break space,
0xA0) is a UnitError naming the channel and the header bytes, never a guess.

Header fields are stripped of ASCII spaces and NUL padding only (not of other whitespace such as
0xA0, which is part of the value).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re

import numpy as np

from sleepjax.data.errors import EDFHeaderError
from sleepjax.data.errors import EDFTruncatedError
from sleepjax.data.errors import SamplingRateError
from sleepjax.data.errors import UnitError

_FIXED_HEADER_BYTES = 256
_SIGNAL_HEADER_BYTES = 256
_ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")
_BDF_MAGIC = b"\xffBIOSEMI"
FORMATS = ("EDF", "EDF+C", "EDF+D", "BDF", "BDF+C", "BDF+D")

# Factor from the physical dimension to microvolts, compared case-insensitively (DREAMS writes
# "UV"/"MV"; megavolts do not occur in physiology, so "MV" is read as millivolts). The micro
# sign may be ASCII "u", Latin-1 0xB5, or UTF-8 (micro sign U+00B5 or Greek mu U+03BC).
_MICROVOLT_FACTORS = {
    "nv": 1e-3,
    "uv": 1.0,
    "\u00b5v": 1.0,  # micro sign
    "\u03bcv": 1.0,  # Greek small mu
    "mv": 1e3,
    "v": 1e6,
}

# What header fields are stripped of: EDF pads with spaces; some writers pad with NUL.
_PAD = b" \x00"


@dataclasses.dataclass(frozen=True)
class EDFHeader:
  """The parsed, validated EDF/EDF+ or BDF/BDF+ header of one file.

  Attributes:
    path: the file (str).
    version: the version field: "0" for EDF, "\xffBIOSEMI" (0xFF then "BIOSEMI") for BDF.
    patient: local patient identification (80 chars, stripped).
    recording: local recording identification (80 chars, stripped).
    start: recording start (naive datetime, as written; EDF years 85-99 -> 19xx, else 20xx),
      or None when the date/time fields cannot be parsed (reported, not fatal).
    header_bytes: declared header size in bytes; equals 256 * (n_signals + 1).
    reserved: the 44-char reserved field; "EDF+C"/"EDF+D" marks EDF+, "BDF+C"/"BDF+D" BDF+
      ("24BIT" in BioSemi's plain BDF).
    n_records: number of data records (>= 0).
    record_duration_s: duration of one data record in seconds (0 for annotation-only EDF+).
    n_signals: number of signals, annotation signals included.
    labels: per-signal labels (stripped), length n_signals.
    transducer_types: per-signal transducer strings.
    physical_dims: per-signal physical dimension strings (e.g. "uV"), stripped.
    physical_min, physical_max, digital_min, digital_max: per-signal calibration, float.
    prefiltering: per-signal prefiltering strings.
    n_samples_per_record: per-signal samples per data record (int).
    sfreqs: per-signal sampling rate in Hz (n_samples_per_record / record_duration_s);
      0.0 for annotation signals of annotation-only files.
    is_edf_plus: True for EDF+ and BDF+ (reserved field starts with "EDF+" / "BDF+").
    annotation_indices: indices of "EDF Annotations" (or, in BDF, "BDF Annotations") signals.
    start_fields: the (date, time) fields as written ("dd.mm.yy", "hh.mm.ss"), stripped; kept
      so that an unparseable start can be reported with its text.
    physical_dim_bytes: per-signal physical dimension field, the 8 raw bytes.
    notes: tolerated deviations from the format (e.g. trailing bytes after the last data
      record), for the recording's report.
    format: one of `FORMATS`: "EDF", "EDF+C", "EDF+D", "BDF", "BDF+C", "BDF+D".
    bytes_per_sample: 2 (EDF, 16-bit) or 3 (BDF, 24-bit).
  """

  path: str
  version: str
  patient: str
  recording: str
  start: datetime.datetime | None
  header_bytes: int
  reserved: str
  n_records: int
  record_duration_s: float
  n_signals: int
  labels: tuple[str, ...]
  transducer_types: tuple[str, ...]
  physical_dims: tuple[str, ...]
  physical_min: tuple[float, ...]
  physical_max: tuple[float, ...]
  digital_min: tuple[float, ...]
  digital_max: tuple[float, ...]
  prefiltering: tuple[str, ...]
  n_samples_per_record: tuple[int, ...]
  sfreqs: tuple[float, ...]
  is_edf_plus: bool
  annotation_indices: tuple[int, ...]
  start_fields: tuple[str, str] = ("", "")
  physical_dim_bytes: tuple[bytes, ...] = ()
  notes: tuple[str, ...] = ()
  format: str = "EDF"
  bytes_per_sample: int = 2

  @property
  def record_bytes(self) -> int:
    """Bytes per data record (2 bytes per 16-bit EDF sample, 3 per 24-bit BDF sample)."""
    return self.bytes_per_sample * sum(self.n_samples_per_record)

  @property
  def is_bdf(self) -> bool:
    """True for BDF and BDF+ (24-bit samples)."""
    return self.format.startswith("BDF")

  @property
  def is_discontinuous(self) -> bool:
    """True for EDF+D / BDF+D: data records may have time gaps between them."""
    return self.format.endswith("+D")

  @property
  def duration_s(self) -> float:
    """Declared recording duration in seconds (n_records x record_duration_s)."""
    return self.n_records * self.record_duration_s

  @property
  def signal_indices(self) -> tuple[int, ...]:
    """Indices of the ordinary (non-annotation) signals."""
    return tuple(i for i in range(self.n_signals) if i not in self.annotation_indices)

  def sfreq_of(self, label: str) -> float:
    """Sampling rate (Hz) of the signal with this exact (stripped) label; KeyError if absent."""
    return self.sfreqs[self.labels.index(label)]

  def physical_dim_of(self, label: str) -> str:
    """Physical dimension of the signal with this exact (stripped) label; KeyError if absent."""
    return self.physical_dims[self.labels.index(label)]


def _field(raw: bytes) -> str:
  """A header field as text: ASCII spaces and NUL padding stripped, nothing else.

  EDF requires ASCII, but vendors write UTF-8 or Latin-1 (e.g. "µV"): UTF-8 is tried, then
  Latin-1 (which decodes any byte). `str.strip()` is not used: it would also remove a no-break
  space (0xA0) that is part of the value.
  """
  raw = raw.strip(_PAD)
  for encoding in ("ascii", "utf-8"):
    try:
      return raw.decode(encoding)
    except UnicodeDecodeError:
      pass
  return raw.decode("latin-1")


def _number(text: str, path: str, name: str, *, integer: bool = False) -> float | int:
  try:
    return int(text) if integer else float(text)
  except ValueError:
    kind = "an integer" if integer else "a number"
    raise EDFHeaderError(path, f"header field {name} is not {kind}: {text!r}") from None


def _parse_start(date: str, time: str) -> datetime.datetime | None:
  m_d = re.fullmatch(r"(\d\d)\.(\d\d)\.(\d\d)", date)
  m_t = re.fullmatch(r"(\d\d)\.(\d\d)\.(\d\d)", time)
  if not (m_d and m_t):
    return None
  day, month, yy = (int(g) for g in m_d.groups())
  # EDF spec: yy 85-99 -> 1985-1999, 00-84 -> 2000-2084.
  year = 1900 + yy if yy >= 85 else 2000 + yy
  try:
    return datetime.datetime(year, month, day, *(int(g) for g in m_t.groups()))
  except ValueError:
    return None


def _format(is_bdf: bool, reserved: str) -> str:
  kind = "BDF" if is_bdf else "EDF"
  for plus in ("+C", "+D"):
    if reserved.startswith(kind + plus):
      return kind + plus
  if reserved.startswith(kind + "+"):  # EDF+ without C/D: read as continuous, as MNE does.
    return kind + "+C"
  return kind


def validate_edf(path: str | os.PathLike) -> EDFHeader:
  """Parses and checks an EDF/EDF+ or BDF/BDF+ header against the file's size.

  Checks: the file exists and is non-empty; version "0" (EDF) or 0xFF "BIOSEMI" (BDF); every
  numeric field parses; header_bytes == 256 * (n_signals + 1); n_records >= 0 (-1,
  "unknown", is rejected); header_bytes + n_records * b * sum(samples_per_record) == file
  size, b = 2 bytes per sample for EDF and 3 for BDF; sampling rates positive
  for every ordinary signal; a non-empty physical range and digital_min < digital_max for every
  ordinary signal. Digital ranges beyond 16 bits are tolerated (DREAMS writes them; MNE reads
  the samples correctly).

  Args:
    path: the .edf or .bdf file (any extension: the format is read from the first byte).

  Returns:
    The `EDFHeader` (`header.format` says which of EDF, EDF+C/D, BDF, BDF+C/D it is).

  Raises:
    EDFHeaderError: missing/empty file, wrong version, unparsable or inconsistent field,
      unusable calibration.
    EDFTruncatedError: the file is shorter than declared (truncated download) or longer
      (e.g. CRLF-corrupted copy: 0x0D inserted before every 0x0A), or n_records == -1.
    SamplingRateError: an ordinary signal has zero samples per record or zero duration.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise EDFHeaderError(path, "file does not exist")
  size = os.path.getsize(path)
  if size == 0:
    raise EDFHeaderError(path, "file is empty (0 bytes)")
  with open(path, "rb") as f:
    fixed = f.read(_FIXED_HEADER_BYTES)
    if len(fixed) < _FIXED_HEADER_BYTES:
      raise EDFHeaderError(
          path, f"file has {size} bytes, fewer than the 256-byte EDF fixed header")
    is_bdf = fixed[0:8] == _BDF_MAGIC
    version = _BDF_MAGIC.decode("latin-1") if is_bdf else _field(fixed[0:8])
    if version != "0" and not is_bdf:
      raise EDFHeaderError(path, f"not an EDF file: version field is {version!r}, expected "
                           "'0' (EDF) or 0xFF 'BIOSEMI' (BDF)")
    patient = _field(fixed[8:88])
    recording = _field(fixed[88:168])
    start_fields = (_field(fixed[168:176]), _field(fixed[176:184]))
    start = _parse_start(*start_fields)
    header_bytes = _number(_field(fixed[184:192]), path,
                           "header_bytes", integer=True)
    reserved = _field(fixed[192:236])
    n_records = _number(_field(fixed[236:244]), path, "n_records",
                        integer=True)
    record_duration_s = _number(_field(fixed[244:252]), path,
                                "record_duration")
    n_signals = _number(_field(fixed[252:256]), path, "n_signals",
                        integer=True)
    if n_signals <= 0:
      raise EDFHeaderError(path, f"number of signals is {n_signals}, expected > 0")
    if header_bytes != _FIXED_HEADER_BYTES + _SIGNAL_HEADER_BYTES * n_signals:
      raise EDFHeaderError(
          path, f"header_bytes field is {header_bytes} but {n_signals} signals need "
          f"256 * ({n_signals} + 1) = {256 * (n_signals + 1)}")
    sig = f.read(_SIGNAL_HEADER_BYTES * n_signals)
    if len(sig) < _SIGNAL_HEADER_BYTES * n_signals:
      raise EDFTruncatedError(
          path, f"truncated: file has {size} bytes, less than its declared "
          f"{header_bytes}-byte header")

  def column(offset: int, width: int) -> list[str]:
    base = offset * n_signals
    return [_field(sig[base + i * width:base + (i + 1) * width])
            for i in range(n_signals)]

  labels = column(0, 16)
  transducers = column(16, 80)
  dims = column(96, 8)
  dim_bytes = [sig[96 * n_signals + i * 8:96 * n_signals + (i + 1) * 8] for i in range(n_signals)]
  pmin = [_number(v, path, f"physical_min of {labels[i]!r}")
          for i, v in enumerate(column(104, 8))]
  pmax = [_number(v, path, f"physical_max of {labels[i]!r}")
          for i, v in enumerate(column(112, 8))]
  dmin = [_number(v, path, f"digital_min of {labels[i]!r}")
          for i, v in enumerate(column(120, 8))]
  dmax = [_number(v, path, f"digital_max of {labels[i]!r}")
          for i, v in enumerate(column(128, 8))]
  prefilter = column(136, 80)
  spr = [_number(v, path, f"samples_per_record of {labels[i]!r}", integer=True)
         for i, v in enumerate(column(216, 8))]

  fmt = _format(is_bdf, reserved)
  is_plus = "+" in fmt
  width = 3 if is_bdf else 2
  ann = tuple(i for i, lab in enumerate(labels) if lab in _ANNOTATION_LABELS)

  if n_records == -1:
    raise EDFTruncatedError(
        path, "n_records is -1 (unknown): the recording was not closed properly; "
        "the number of data records cannot be trusted")
  if n_records < 0:
    raise EDFHeaderError(path, f"n_records is {n_records}, expected >= 0")
  if any(s < 0 for s in spr):
    raise EDFHeaderError(path, f"negative samples_per_record in {spr}")
  sfreqs = []
  for i, (lab, n) in enumerate(zip(labels, spr)):
    if i in ann:
      sfreqs.append(n / record_duration_s if record_duration_s > 0 else 0.0)
      continue
    if record_duration_s <= 0 or n <= 0:
      raise SamplingRateError(
          path, f"signal {lab!r} has no positive sampling rate: {n} samples per "
          f"{record_duration_s}-s data record")
    sfreqs.append(n / record_duration_s)

  notes = []
  record_bytes = width * sum(spr)
  expected = header_bytes + n_records * record_bytes
  if size != expected:
    detail = (f"header ({header_bytes} B) + {n_records} records x {record_bytes} B = "
              f"{expected} B, but the file has {size} B")
    if is_bdf and size - header_bytes == 2 * n_records * sum(spr):
      raise EDFHeaderError(
          path, f"the data are 2 bytes per sample (16-bit, as in EDF), not BDF's 3: {detail}")
    if size < expected:
      whole = (size - header_bytes) // record_bytes if record_bytes else 0
      raise EDFTruncatedError(
          path, f"truncated: {detail} (only {whole} whole data records present)")
    extra = size - expected
    if not is_bdf and size - header_bytes == 3 * n_records * sum(spr):
      raise EDFHeaderError(
          path, f"the data are 3 bytes per sample (24-bit, as in BDF), not EDF's 2: {detail}")
    crlf, lf = _count_line_feeds(path, header_bytes)
    # A text-mode copy puts 0x0D before EVERY 0x0A; binary samples alone hold a bare 0x0A in
    # about 1 of 256 bytes, and a CR-LF pair in 1 of 65536.
    if crlf >= extra and lf - crlf <= crlf // 100:
      raise EDFTruncatedError(
          path, f"longer than declared, e.g. CRLF-corrupted download (0x0D inserted before "
          f"0x0A): {detail} ({extra} extra bytes; every one of the {lf} 0x0A follows a 0x0D)")
    if extra < record_bytes:
      # Not a whole data record: MNE reads the declared records and ignores the rest.
      notes.append(f"{extra} trailing byte(s) after the last declared data record ignored")
    else:
      raise EDFTruncatedError(
          path, f"longer than declared by {extra} B ({extra / record_bytes:.2f} data records): "
          f"{detail}; n_records or samples_per_record is wrong")

  for i in range(n_signals):
    # A zero-width range makes the digital -> physical gain 0/0 or x/0.
    if i not in ann and (pmin[i] == pmax[i] or dmin[i] >= dmax[i]):
      raise EDFHeaderError(
          path, f"signal {labels[i]!r} has an unusable calibration: physical range "
          f"[{pmin[i]}, {pmax[i]}], digital range [{dmin[i]}, {dmax[i]}]")

  return EDFHeader(
      path=path, version=version, patient=patient, recording=recording, start=start,
      header_bytes=header_bytes, reserved=reserved, n_records=n_records,
      record_duration_s=float(record_duration_s), n_signals=n_signals, labels=tuple(labels),
      transducer_types=tuple(transducers), physical_dims=tuple(dims),
      physical_min=tuple(pmin), physical_max=tuple(pmax), digital_min=tuple(dmin),
      digital_max=tuple(dmax), prefiltering=tuple(prefilter),
      n_samples_per_record=tuple(spr), sfreqs=tuple(sfreqs), is_edf_plus=is_plus,
      annotation_indices=ann, start_fields=start_fields, physical_dim_bytes=tuple(dim_bytes),
      notes=tuple(notes), format=fmt, bytes_per_sample=width)


def _count_line_feeds(path: str, offset: int) -> tuple[int, int]:
  """(CR-LF pairs, all 0x0A bytes) after `offset` (read only for a file longer than declared)."""
  crlf = lf = 0
  last = b""
  with open(path, "rb") as f:
    f.seek(offset)
    for chunk in iter(lambda: f.read(1 << 22), b""):
      lf += chunk.count(b"\n")
      crlf += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
      last = chunk[-1:]
  return crlf, lf


def _unit_key(physical_dim: str) -> str:
  return physical_dim.strip(" \x00").casefold()


def _dim_text(physical_dim: str, dim_bytes: bytes | None) -> str:
  raw = f", header bytes {dim_bytes!r}" if dim_bytes is not None else ""
  return f"physical dimension {physical_dim!r}{raw}"


def to_microvolts_factor(physical_dim: str, *, path=None, channel: str | None = None,
                         dim_bytes: bytes | None = None) -> float:
  """The factor that converts a value in `physical_dim` to microvolts.

  Args:
    physical_dim: an EDF physical dimension as `validate_edf` returns it (ASCII spaces and NUL
      padding stripped): "nV", "uV", "µV" (micro sign or Greek mu, Latin-1 or UTF-8), "mV",
      "V"; case-insensitive ("UV" and "MV" as written by DREAMS mean uV and mV). Nothing else
      is accepted, not even other whitespace (a no-break space after "uV" is an error).
    path: the file, only to name it in the error.
    channel: the channel label, only to name it in the error.
    dim_bytes: the header's 8 bytes of the field, only to show them in the error.

  Returns:
    A float, e.g. 1e3 for "mV".

  Raises:
    UnitError: the dimension is not a voltage (e.g. "", "DegC", "%") or an unknown spelling of
      one, naming the file, the channel and the bytes.
  """
  factor = _MICROVOLT_FACTORS.get(_unit_key(physical_dim))
  if factor is None:
    which = f"channel {channel!r}: " if channel is not None else ""
    kind = ("is an unknown spelling of a voltage" if looks_like_voltage(physical_dim)
            else "is not a voltage")
    raise UnitError(path, f"{which}{_dim_text(physical_dim, dim_bytes)} {kind}; cannot convert "
                    "to microvolts")
  return factor


def is_voltage(physical_dim: str) -> bool:
  """True when `to_microvolts_factor` accepts `physical_dim` (exactly, see there)."""
  return _unit_key(physical_dim) in _MICROVOLT_FACTORS


def looks_like_voltage(physical_dim: str) -> bool:
  """True when `physical_dim` is a voltage after removing every kind of whitespace.

  A dimension for which this is True but `is_voltage` is False (e.g. "uV\\xa0", "u V") is an
  odd spelling that must not be read as a non-voltage unit either.
  """
  return _unit_key("".join(physical_dim.split())) in _MICROVOLT_FACTORS


def channel_to_microvolts(data: np.ndarray, physical_dim: str, *, path=None,
                          channel: str | None = None, dim_bytes: bytes | None = None
                          ) -> np.ndarray:
  """Converts one channel from its header's physical unit to float32 microvolts.

  Args:
    data: (T,) or (..., T) float array in the channel's physical unit, as `read_physical`
      returns it (NOT MNE's `raw.get_data()`, which rescales some spellings to volts).
    physical_dim: the channel's physical dimension from the EDF header.
    path, channel, dim_bytes: only to name them in the error.

  Returns:
    float32 array of the same shape, in microvolts.

  Raises:
    UnitError: the dimension is not a voltage, or an unknown spelling of one.
  """
  factor = to_microvolts_factor(physical_dim, path=path, channel=channel, dim_bytes=dim_bytes)
  return (np.asarray(data, np.float64) * factor).astype(np.float32)


def read_physical(path: str | os.PathLike, signals, *, header: EDFHeader | None = None,
                  samples_per_record: int | None = None) -> np.ndarray:
  """Reads signals in their physical unit, calibrated from the header, at the file's top rate.

  Each digital sample d (16-bit little-endian in EDF, 24-bit little-endian two's complement in
  BDF) becomes
  `physical_min + (d - digital_min) * (physical_max - physical_min) / (digital_max - digital_min)`
  (Kemp et al. 1992), computed in float64 from the header parsed by `validate_edf`. A signal
  stored at a lower rate is upsampled to the file's highest rate over the whole recording with
  `mne.filter.resample(x, up, down, npad=0)`, the upsampling MNE's EDF reader applies at read
  time, so the result has `raw.n_times` samples like `read_raw_edf`'s (equal to MNE's data
  divided by MNE's own unit scale, to float64 rounding; tests/data/test_edf.py).

  Args:
    path: the EDF or BDF file (any extension).
    signals: signal indices (ints) or exact labels (a repeated label means its first signal).
    header: the file's `validate_edf` header (read when None).
    samples_per_record: the output's samples per data record (default: the most of any
      ordinary signal, i.e. the file's highest rate).

  Returns:
    (len(signals), n_records * samples_per_record) float64, physical units.

  Raises:
    EDFHeaderError / EDFTruncatedError / SamplingRateError: from `validate_edf`.
    MissingChannelError: a label is not in the file.
  """
  from sleepjax.data.errors import MissingChannelError

  path = os.fspath(path)
  header = validate_edf(path) if header is None else header
  index = []
  for sig in signals:
    if isinstance(sig, (int, np.integer)):
      index.append(int(sig))
    elif sig in header.labels:
      index.append(header.labels.index(sig))
    else:
      raise MissingChannelError(path, f"signal {sig!r} not in the file; labels: {list(header.labels)}")
  spr = np.asarray(header.n_samples_per_record, np.int64)
  ordinary = [i for i in header.signal_indices]
  top = int(max(spr[ordinary])) if ordinary else 0
  top = top if samples_per_record is None else int(samples_per_record)
  offsets = np.concatenate([[0], np.cumsum(spr)])
  n_rec = header.n_records
  out = np.empty((len(index), n_rec * top), np.float64)
  width = header.bytes_per_sample
  if n_rec == 0 or offsets[-1] == 0:
    return out
  data = np.memmap(path, dtype="<i2" if width == 2 else np.uint8, mode="r",
                   offset=header.header_bytes,
                   shape=(n_rec, int(offsets[-1]) * (1 if width == 2 else width)))
  try:
    for row, i in enumerate(index):
      if width == 2:
        digital = np.asarray(data[:, offsets[i]:offsets[i + 1]], np.float64).reshape(-1)
      else:
        digital = _int24(data[:, width * offsets[i]:width * offsets[i + 1]]).astype(np.float64)
      gain = ((header.physical_max[i] - header.physical_min[i])
              / (header.digital_max[i] - header.digital_min[i]))
      x = header.physical_min[i] + (digital - header.digital_min[i]) * gain
      if spr[i] != top:
        import mne  # pylint: disable=g-import-not-at-top  # Only for files with mixed rates.
        x = mne.filter.resample(x, up=float(n_rec * top), down=float(n_rec * spr[i]), npad=0,
                                verbose="error")
      out[row] = x
  finally:
    del data
  return out


def _int24(raw: np.ndarray) -> np.ndarray:
  """(R, 3 * n) uint8 little-endian 24-bit two's-complement samples -> (R * n,) int32."""
  b = np.asarray(raw, np.uint8).reshape(-1, 3)
  # Bytes (0, b0, b1, b2) as a little-endian int32 hold the sample times 256 with its sign bit
  # in place; the arithmetic shift divides by 256 and keeps the sign.
  wide = np.zeros((b.shape[0], 4), np.uint8)
  wide[:, 1:] = b
  return wide.view("<i4").reshape(-1) >> 8


def read_raw_edf(path: str | os.PathLike, *, preload: bool = True, include=None,
                 verbose: str = "error", **kwargs):
  """Validates the header, then reads the file with `mne.io.read_raw_edf` (BDF: `read_raw_bdf`).

  MNE upsamples channels recorded at a lower rate to the file's highest rate (FFT
  resampling, npad=0) at read time: Sleep-EDF's 1 Hz EMG envelope and respiration come back
  at 100 Hz. The returned data keep MNE's unit convention (volts only for some spellings);
  sleepjax reads amplitudes with `read_physical` + `channel_to_microvolts` instead (see the
  module docstring) and uses the Raw for its channel names, rate and length. Files with another extension (ISRUC's *.rec) are read through
  a file object, which MNE accepts (it still records the path in `raw.filenames`).

  Args:
    path: the EDF or BDF file (.edf/.bdf, or either under another extension with
      preload=True); the format is the header's (`validate_edf`), not the extension's.
    preload: passed to MNE (True: load the samples now).
    include: optional list of channel labels to read (others are skipped by MNE).
    verbose: MNE's log level.
    **kwargs: passed to `mne.io.read_raw_edf` / `mne.io.read_raw_bdf`.

  Returns:
    An `mne.io.Raw`.

  Raises:
    EDFHeaderError, EDFTruncatedError, SamplingRateError: from `validate_edf`;
    EDFHeaderError: MNE failed to read the file (its message is kept).
  """
  import mne  # Heavy import; keep `validate_edf` usable without it.

  path = os.fspath(path)
  header = validate_edf(path)
  reader, ext = (mne.io.read_raw_bdf, ".bdf") if header.is_bdf else (mne.io.read_raw_edf, ".edf")
  try:
    if path.lower().endswith(ext):
      return reader(path, preload=preload, include=include, verbose=verbose, **kwargs)
    # MNE refuses other extensions (ISRUC ships EDF as *.rec) but reads file objects.
    if not preload:
      raise EDFHeaderError(path, f"a {header.format} file without the {ext} extension can only "
                           "be read with preload=True")
    with open(path, "rb") as f:
      return reader(f, preload=True, include=include, verbose=verbose, **kwargs)
  except EDFHeaderError:
    raise
  except Exception as e:  # MNE raises ValueError, RuntimeError, struct/IO errors alike.
    raise EDFHeaderError(path, f"MNE could not read the file: {type(e).__name__}: {e}") from e


# docs/architecture.md names it `read_raw`.
read_raw = read_raw_edf
