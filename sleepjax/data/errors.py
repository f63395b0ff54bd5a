"""One exception hierarchy for everything that can be wrong with an input recording.

Every message names the file and the problem, so that a user scanning a log of a
thousand-night build can find the bad night without a debugger. Builders catch
`RecordingError`, report it (see `sleepjax.data.report`) and skip the recording;
nothing is half-read silently.
"""

from __future__ import annotations

import os


class RecordingError(Exception):
  """Base class: a recording (or its annotation file) cannot be used.

  Attributes:
    path: the offending file (str), or None when the problem is not tied to one file.
    problem: a short human-readable description of what is wrong.
  """

  def __init__(self, path: str | os.PathLike | None, problem: str):
    self.path = None if path is None else os.fspath(path)
    self.problem = problem
    where = f"{self.path}: " if self.path is not None else ""
    super().__init__(f"{where}{problem}")

  def __reduce__(self):
    # Pickled as (path, problem), e.g. from a Beam worker to the build report.
    return type(self), (self.path, self.problem)


class EDFHeaderError(RecordingError):
  """The EDF/EDF+ header is unreadable or inconsistent (bad magic, bad field, empty file)."""


class EDFTruncatedError(RecordingError):
  """Header size + n_records x record size does not match the file size.

  Catches truncated downloads and CRLF-corrupted copies (every 0x0A preceded by an inserted
  0x0D), which make the file longer than the header says.
  """


class AnnotationError(RecordingError):
  """EDF+ annotations / hypnogram text cannot be parsed or contain an unknown stage label."""


class HypnogramMismatchError(RecordingError):
  """The hypnogram does not cover the signal (or vice versa) beyond the allowed tolerance."""


class MissingChannelError(RecordingError):
  """A channel required by the montage is absent from the recording."""


class SamplingRateError(RecordingError):
  """A channel's sampling rate is missing, non-positive, or incompatible with 30-s epochs."""


class UnitError(RecordingError):
  """A channel's physical dimension cannot be converted to microvolts (or its expected unit)."""


class BadSignalError(RecordingError):
  """A required channel is entirely NaN/inf or flat (constant) over the whole recording."""


class AlignmentError(RecordingError):
  """The hypnogram cannot be placed on the PSG's timeline (a start date or time does not parse)."""


class DuplicateFileError(RecordingError):
  """Two candidate files for one record (e.g. two hypnograms of one night, two copies of a PSG)."""


class NoUsableRecordingError(RecordingError):
  """A dataset build in which no recording could be used (nothing is cached)."""


class StaleBuildError(RecordingError):
  """A finished build in the data_dir was made from other input files or another spec."""
