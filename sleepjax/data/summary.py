"""Per-split dataset summaries: subjects, recordings and 30-s epochs per AASM stage."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

from sleepjax.data import stages as stages_lib
from sleepjax.data.pipeline import as_str


def split_summary(source: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
  """Counts subjects, recordings and epochs per stage in one split.

  Args:
    source: random-access examples (docs/architecture.md section 2), e.g. a TFDS data source.
      Each example is decoded once (seconds per 10^4 epochs).

  Returns:
    {"subjects": int, "recordings": int, "epochs": int, "stages": {"W": n, ..., "REM": n,
    "unscored": n}}.
  """
  subjects, records = set(), set()
  counts = collections.Counter()
  for i in range(len(source)):
    ex = source[i]
    subjects.add(as_str(ex["subject_id"]))
    records.add(as_str(ex["record_id"]))
    counts[int(ex["stage"])] += 1
  per_stage = {name: counts.get(k, 0) for k, name in enumerate(stages_lib.STAGE_NAMES)}
  per_stage["unscored"] = sum(v for k, v in counts.items() if k < 0)
  return {"subjects": len(subjects), "recordings": len(records), "epochs": sum(counts.values()),
          "stages": per_stage}


def format_summary(title: str, summaries: Mapping[str, Mapping[str, Any]]) -> str:
  """A Markdown table, one row per split, from `split_summary` results."""
  names = list(stages_lib.STAGE_NAMES) + ["unscored"]
  header = "| split | subjects | recordings | epochs | " + " | ".join(names) + " |"
  rule = "|" + "---|" * (4 + len(names))
  lines = [title, "", header, rule]
  for split, s in summaries.items():
    cells = [split, s["subjects"], s["recordings"], s["epochs"], *(s["stages"][n] for n in names)]
    lines.append("| " + " | ".join(str(c) for c in cells) + " |")
  return "\n".join(lines)
