"""What the per-night console scripts (sleepjax-stage, sleepjax-embed) share."""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any


def run_nights(prog: str, nights: Sequence[str], process: Callable[[int, str], dict[str, Any]], *,
               no_progress: bool) -> tuple[list[dict[str, Any]], list[str]]:
  """Runs `process(i, night)` on every night behind a progress bar; a failing night is skipped.

  Returns:
    (the rows `process` returned, the nights that raised). Each failure is one line on stderr,
    "<prog>: <night>: skipped: <ErrorType>: <first line of the message>".
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  rows, failed = [], []
  bar = tqdm(nights, desc="nights", unit="night", disable=no_progress, file=sys.stderr)
  for i, night in enumerate(bar):
    bar.set_postfix_str(pathlib.Path(night).name)
    try:
      rows.append(process(i, night))
    except Exception as e:  # pylint: disable=broad-except  # One bad night must not stop the others.
      msg = str(e).splitlines()[0] if str(e) else type(e).__name__
      failed.append(night)
      tqdm.write(f"{prog}: {night}: skipped: {type(e).__name__}: {msg}", file=sys.stderr)
  return rows, failed


def same_stem_error(nights: Sequence[str]) -> str | None:
  """The usage error for nights whose outputs (named by file stem) would overwrite each other, or None."""
  stems = [pathlib.Path(n).stem for n in nights]
  dup = sorted({s for s in stems if stems.count(s) > 1})
  return f"nights with the same file stem would overwrite each other's outputs: {dup}" if dup else None
