"""Result tables (Markdown, CSV, JSON): the one writer every trainer's tables go through.

Every experiment writes its numbers in three forms from the same rows: Markdown to read, CSV to
load into a spreadsheet, JSON to load back without losing types. Plots are in `plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import csv
import json
import math
import os
import pathlib

import numpy as np

from sleepjax.evaluation import metrics as metrics_lib


def _cell(value, floatfmt: str) -> str:
  if value is None:
    return ""
  if isinstance(value, (bool, np.bool_)):
    return str(bool(value))
  if isinstance(value, (float, np.floating)):
    if math.isnan(value):
      return "nan"
    return format(float(value), floatfmt)
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  # Markdown tables break on "|" and newlines inside a cell.
  return str(value).replace("|", "\\|").replace("\n", " ")


def _columns(rows: Sequence[Mapping], columns: Sequence[str] | None) -> list[str]:
  if columns is not None:
    return list(columns)
  seen: dict[str, None] = {}
  for row in rows:
    for key in row:
      seen.setdefault(key, None)
  return list(seen)


def format_table(rows: Sequence[Mapping], columns: Sequence[str] | None = None,
                 floatfmt: str = ".4f") -> str:
  """Formats rows as a GitHub-flavoured Markdown table.

  Args:
    rows: one mapping per table row (e.g. a model's metrics from `metrics.summarize` plus a
      "model" entry). Missing keys give empty cells.
    columns: column order; defaults to the keys in order of first appearance.
    floatfmt: format spec for floats (`format(x, floatfmt)`); NaN prints "nan".

  Returns:
    The table as a string (header, separator, one line per row), with numeric columns
    right-aligned, without a trailing newline.

  Raises:
    ValueError: no columns.
  """
  cols = _columns(rows, columns)
  if not cols:
    raise ValueError("format_table needs at least one column")
  numeric = [
      all(isinstance(r.get(c), (int, float, np.integer, np.floating)) or r.get(c) is None for r in rows)
      and any(r.get(c) is not None for r in rows)
      for c in cols
  ]
  body = [[_cell(r.get(c), floatfmt) for c in cols] for r in rows]
  widths = [max([len(c)] + [len(line[i]) for line in body] + [3]) for i, c in enumerate(cols)]

  def line(cells):
    padded = [cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(cells, widths, numeric)]
    return "| " + " | ".join(padded) + " |"

  sep = "|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2))
                       for w, num in zip(widths, numeric)) + "|"
  return "\n".join([line(cols), sep] + [line(b) for b in body])


def jsonable(value):
  """`value` with NumPy scalars/arrays as Python ones and NaN/inf as None (strict JSON: null).

  Recurses into mappings (keys become str), lists, tuples and arrays; other values pass through.
  """
  if isinstance(value, np.ndarray):
    return [jsonable(v) for v in value.tolist()]
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, Mapping):
    return {str(k): jsonable(v) for k, v in value.items()}
  if isinstance(value, (np.bool_, bool)):
    return bool(value)
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    # JSON has no NaN; null keeps the file valid for strict parsers.
    return None if not math.isfinite(float(value)) else float(value)
  return value


def write_results(workdir: str | os.PathLike, name: str, rows: Sequence[Mapping],
                  columns: Sequence[str] | None = None, floatfmt: str = ".4f") -> dict[str, pathlib.Path]:
  """Writes `<name>.md`, `<name>.csv` and `<name>.json` into `workdir` (created if needed).

  Args:
    workdir: output directory.
    name: file stem, e.g. "isruc_s3_5fold"; must not contain a path separator.
    rows: one mapping per row; scalar values go to all three files, array values (a confusion
      matrix) only to the JSON file.
    columns: column order for Markdown/CSV (default: scalar keys in order of first appearance).
    floatfmt: float format of the Markdown table (CSV and JSON keep full precision).

  Returns:
    {"md": path, "csv": path, "json": path}.

  Raises:
    ValueError: `name` is empty or contains a path separator.
  """
  if not name or os.sep in name or "/" in name:
    raise ValueError(f"results name must be a plain file stem, got {name!r}")
  out_dir = pathlib.Path(workdir)
  out_dir.mkdir(parents=True, exist_ok=True)

  def scalar(v):
    return v is None or isinstance(v, (str, int, float, bool, np.integer, np.floating, np.bool_))

  if columns is None:
    columns = [c for c in _columns(rows, None) if all(scalar(r.get(c)) for r in rows)]
  paths = {"md": out_dir / f"{name}.md", "csv": out_dir / f"{name}.csv", "json": out_dir / f"{name}.json"}
  paths["md"].write_text(format_table(rows, columns, floatfmt) + "\n")
  with open(paths["csv"], "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(columns)
    for r in rows:
      # NaN is written as an empty cell, which spreadsheets and pandas read back as missing.
      writer.writerow(["" if jsonable(r.get(c)) is None else jsonable(r.get(c)) for c in columns])
  paths["json"].write_text(json.dumps([jsonable(dict(r)) for r in rows], indent=2) + "\n")
  return paths


def mean_std_rows(groups: Mapping[str, Sequence[Mapping[str, float]]], keys: Sequence[str], *,
                  label: str = "method", fmt: str = ".4f") -> list[dict]:
  """Rows of "mean ± std" cells over runs (seeds), one row per group (e.g. a method).

  Args:
    groups: {group name: [flat metrics dict per run]}.
    keys: the metrics to show, in column order (a missing one gives "n/a").
    label: the name of the group column.
    fmt: number format.

  Returns:
    [{label: name, key: "0.7868 ± 0.0120" (just the mean for one run), ..., "n_runs": int}].
  """
  rows = []
  for name, runs in groups.items():
    stats = metrics_lib.mean_std(list(runs))
    row = {label: name}
    for key in keys:
      row[key] = metrics_lib.format_mean_std(stats[key], fmt) if key in stats else "n/a"
    row["n_runs"] = len(runs)
    rows.append(row)
  return rows
