"""The build report: what every builder stores in `info.metadata["build_report"][split]`.

TFDS saves `info.metadata` as metadata.json next to the data, so users see what a build
skipped and why. `write` is the only code that stores a report. Every report has
n_recordings, n_failed and failures (`python -m sleepjax.data.build` prints them). On top:

- PSG builders (`psg_report`, via `tfds_builders._common.PsgBuilder`): n_epochs_total, n_kept,
  dropped {reason: count}, n_warnings, recordings, failed_records and the "index" that
  `sleepjax.data.pipeline.WindowIndex.from_source` reads instead of decoding every example.
- Downstream builders (`example_report`): n_examples plus counters of their own (e.g.
  n_zero_padded_beats).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sleepjax.data import report as report_lib

# The keys of every split's report.
COMMON_KEYS = ("n_recordings", "n_failed", "failures")


def write(builder, split: str, report: Mapping[str, Any]) -> None:
  """Stores (or replaces) one split's report in `builder.info.metadata["build_report"]`.

  Args:
    builder: a DatasetBuilder whose `info.metadata` is a `tfds.core.MetadataDict`.
    split: split name, e.g. "train".
    report: from `psg_report` or `example_report`; plain ints, strs, lists and dicts (it is
      written as JSON).

  Raises:
    ValueError: a key of COMMON_KEYS is missing, or n_failed != len(failures).
  """
  missing = [k for k in COMMON_KEYS if k not in report]
  if missing:
    raise ValueError(f"build report of split {split!r} lacks {missing}")
  if report["n_failed"] != len(report["failures"]):
    raise ValueError(f"build report of split {split!r}: n_failed={report['n_failed']} but "
                     f"{len(report['failures'])} failure message(s)")
  builder.info.metadata.setdefault("build_report", {})[split] = dict(report)


def example_report(n_recordings: int, failures: Sequence[Any], n_examples: int, **counts: int
                   ) -> dict[str, Any]:
  """The report of a downstream split (one example per window, beat or record).

  Args:
    n_recordings: recordings (files, records, segments) tried.
    failures: one message per skipped recording (its RecordingError, naming the file).
    n_examples: examples written.
    **counts: the builder's own counters, e.g. n_events_skipped=3.

  Returns:
    {"n_recordings", "n_failed", "failures", "n_examples", **counts}, plain ints and strs.
  """
  return {"n_recordings": int(n_recordings), "n_failed": len(failures),
          "failures": [str(f) for f in failures], "n_examples": int(n_examples),
          **{k: int(v) for k, v in counts.items()}}


def psg_report(reports: Sequence[report_lib.EpochReport], failures: Sequence[Exception],
               failed_records: Sequence[str], index: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
  """The report of a PSG split (one example per kept 30-s epoch).

  Args:
    reports: the EpochReport of each recording built, in build order.
    failures: the RecordingError of each skipped recording.
    failed_records: the record_id of each skipped recording (same order as `failures`).
    index: {"record_id": [...], "subject_id": [...], "epoch_index": [[int, ...], ...]}, one
      entry per built recording in the order its examples were written.

  Returns:
    `sleepjax.data.report.merge_reports` (n_recordings, n_failed, n_epochs_total, n_kept,
    dropped, n_warnings, failures) plus "recordings" {record_id: {"n_kept", "n_epochs_total",
    "dropped", "warnings"[, "missing_channels"]}}, "failed_records" and "index"; with reports
    that carry `missing_channels` / `untyped_labels` attributes (the psg_folder loader) also
    "n_missing_channels" {record_id: int} and "untyped_labels" (sorted file labels).
  """
  summary = report_lib.merge_reports(reports, failures)
  summary["recordings"] = {
      r.record_id: {"n_kept": int(r.n_kept), "n_epochs_total": int(r.n_epochs_total),
                    "dropped": {k: int(v) for k, v in r.dropped.items()},
                    "warnings": list(r.warnings)}
      for r in reports}
  # Masked montages (psg_folder): the loader notes on each report which montage channels the
  # recording lacks and which file labels nothing types.
  if any(hasattr(r, "missing_channels") for r in reports):
    for r in reports:
      summary["recordings"][r.record_id]["missing_channels"] = list(getattr(r, "missing_channels", []))
    summary["n_missing_channels"] = {r.record_id: len(getattr(r, "missing_channels", []))
                                     for r in reports}
    summary["untyped_labels"] = sorted({lab for r in reports for lab in getattr(r, "untyped_labels", [])})
  summary["failed_records"] = list(failed_records)
  summary["index"] = {k: list(index[k]) for k in ("record_id", "subject_id", "epoch_index")}
  return summary
