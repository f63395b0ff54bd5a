"""Per-split dataset summaries: subjects, recordings and 30-s epochs per AASM stage (or examples per class)."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sleepjax.data import stages as stages_lib
from sleepjax.data.pipeline import as_str


def split_summary(source: Sequence[Mapping[str, Any]], *,
                  class_names: Sequence[str] | None = None) -> dict[str, Any]:
  """Counts subjects, recordings and examples per class in one split.

  Sleep datasets (examples with a `stage`) are counted per AASM stage; downstream datasets per
  class of their `label` (an int class index) or, for multilabel ones, positives per entry of
  their `labels` (an (L,) 0/1 vector).

  Args:
    source: random-access examples (docs/architecture.md §3 and §4), e.g. a TFDS data
      source. Each example is decoded once (seconds per 10^4 examples).
    class_names: names of the downstream classes or labels (default "0", "1", ...); unused for
      sleep datasets.

  Returns:
    Sleep: {"subjects": int, "recordings": int, "epochs": int, "stages": {"W": n, ..., "REM": n,
    "unscored": n}}. Downstream: {"subjects", "recordings", "examples": int, "classes": {name: n}}
    (multilabel: positives per label).

  Raises:
    ValueError: the examples carry none of `stage`, `label`, `labels`.
  """
  subjects, records = set(), set()
  counts = collections.Counter()  # Class index -> examples (multilabel: positives).
  kind = None
  n = len(source)
  for i in range(n):
    ex = source[i]
    if kind is None:
      kind = next((k for k in ("stage", "label", "labels") if k in ex), None)
      if kind is None:
        raise ValueError(f"split_summary: examples have none of stage/label/labels (keys {sorted(ex)})")
    if "subject_id" in ex:
      subjects.add(as_str(ex["subject_id"]))
    if "record_id" in ex:
      records.add(as_str(ex["record_id"]))
    if kind == "labels":
      for j, v in enumerate(np.asarray(ex["labels"]).reshape(-1)):
        counts[j] += int(v)
    else:
      counts[int(ex[kind])] += 1
  out = {"subjects": len(subjects), "recordings": len(records)}
  if kind in (None, "stage"):
    per_stage = {name: counts.get(k, 0) for k, name in enumerate(stages_lib.STAGE_NAMES)}
    per_stage["unscored"] = sum(v for k, v in counts.items() if k < 0)
    return {**out, "epochs": n, "stages": per_stage}
  width = max([len(class_names or ())] + [k + 1 for k in counts if k >= 0])
  names = list(class_names or ()) + [str(k) for k in range(len(class_names or ()), width)]
  classes = {names[k]: counts.get(k, 0) for k in range(width)}
  if kind == "label" and any(k < 0 for k in counts):
    classes["unlabelled"] = sum(v for k, v in counts.items() if k < 0)
  return {**out, "examples": n, "classes": classes}


def format_summary(title: str, summaries: Mapping[str, Mapping[str, Any]]) -> str:
  """A Markdown table, one row per split, from `split_summary` results (all of one kind)."""
  if all("stages" in s for s in summaries.values()):
    count_key, per_key = "epochs", "stages"
    names = list(stages_lib.STAGE_NAMES) + ["unscored"]
  else:
    count_key, per_key = "examples", "classes"
    names = list(dict.fromkeys(n for s in summaries.values() for n in s["classes"]))
  header = f"| split | subjects | recordings | {count_key} | " + " | ".join(names) + " |"
  rule = "|" + "---|" * (4 + len(names))
  lines = [title, "", header, rule]
  for split, s in summaries.items():
    cells = [split, s["subjects"], s["recordings"], s[count_key], *(s[per_key].get(n, 0) for n in names)]
    lines.append("| " + " | ".join(str(c) for c in cells) + " |")
  return "\n".join(lines)
