"""Per-recording epoch accounting: what was kept, what was dropped and why.

Every 30-s epoch of the hypnogram timeline is counted exactly once: either kept or dropped
for the first reason that applies, in the order of `DROP_REASONS`. So
`n_kept + sum(dropped.values()) == n_epochs_total` always holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from sleepjax.data.errors import RecordingError

# Order = precedence: an epoch beyond the signal is not also counted as unscored, etc.
DROP_REASONS = (
    "beyond_signal",           # the hypnogram epoch is not (fully) covered by the signal
    "outside_trimmed_window",  # wake more than `trim_wake_min` before/after sleep
    "movement",                # "Movement time" (R&K), never trained on
    "unscored",                # "?" or a gap in the annotations
    "bad_signal",              # NaN, flat or clipped for a whole epoch in some channel
)


@dataclasses.dataclass
class EpochReport:
  """What happened to the epochs of one recording.

  Attributes:
    record_id: the recording id (e.g. "SC4001E0"), never a local path.
    paths: the files read (PSG, hypnogram), for the log only.
    n_epochs_total: epochs on the hypnogram timeline.
    n_kept: epochs in the returned Recording.
    dropped: {reason: count} for every reason in DROP_REASONS (zeros included).
    warnings: human-readable notes (optional channel absent, signal longer than the
      hypnogram, no sleep epoch found for trimming, ...).
  """

  record_id: str
  paths: tuple[str, ...] = ()
  n_epochs_total: int = 0
  n_kept: int = 0
  dropped: dict[str, int] = dataclasses.field(
      default_factory=lambda: {r: 0 for r in DROP_REASONS})
  warnings: list[str] = dataclasses.field(default_factory=list)

  def __post_init__(self):
    self.paths = tuple(str(p) for p in self.paths)
    for r in DROP_REASONS:
      self.dropped.setdefault(r, 0)
    unknown = set(self.dropped) - set(DROP_REASONS)
    if unknown:
      raise ValueError(f"unknown drop reasons {sorted(unknown)}; expected {DROP_REASONS}")

  @property
  def n_dropped(self) -> int:
    """Total epochs dropped, all reasons."""
    return sum(self.dropped.values())

  def __str__(self) -> str:
    reasons = ", ".join(f"{r}={n}" for r, n in self.dropped.items() if n)
    line = (f"{self.record_id}: kept {self.n_kept}/{self.n_epochs_total} epochs"
            f"; dropped {self.n_dropped}" + (f" ({reasons})" if reasons else ""))
    if self.warnings:
      line += f"; {len(self.warnings)} warning(s): " + " | ".join(self.warnings)
    return line


def merge_reports(reports: Iterable[EpochReport],
                  failures: Iterable[RecordingError] = ()) -> dict:
  """Summarises many recordings' reports (e.g. a whole dataset build).

  Args:
    reports: the EpochReports of the recordings that were read.
    failures: RecordingErrors of recordings that were skipped.

  Returns:
    {"n_recordings", "n_failed", "n_epochs_total", "n_kept", "dropped": {reason: count},
     "n_warnings", "failures": [str(error), ...]}.
  """
  reports = list(reports)
  failures = list(failures)
  dropped = {r: 0 for r in DROP_REASONS}
  for rep in reports:
    for r, n in rep.dropped.items():
      dropped[r] += n
  return {
      "n_recordings": len(reports),
      "n_failed": len(failures),
      "n_epochs_total": sum(r.n_epochs_total for r in reports),
      "n_kept": sum(r.n_kept for r in reports),
      "dropped": dropped,
      "n_warnings": sum(len(r.warnings) for r in reports),
      "failures": [str(e) for e in failures],
  }
