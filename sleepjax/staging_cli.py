"""`sleepjax-stage`: stage EDF nights with a saved sleepjax stager (docs/staging.md).

  sleepjax-stage NIGHT.edf [MORE.edf ...] --model WORKDIR --out DIR [--hypnogram EXPERT.edf ...]

For each night, in DIR: `<stem>.hypnogram.csv` (one row per 30-s epoch: onset, stage,
confidence, 5 probabilities), `<stem>.hypnogram.edf` (EDF+ annotations, AASM labels),
`<stem>.png` (hypnogram and stacked probabilities) and `<stem>.stats.json` (sleep statistics,
channels used, warnings, and with `--hypnogram` the agreement with the expert: accuracy, kappa,
macro-F1, confusion). A progress bar runs over the nights; a summary table ends the run.

A night that cannot be staged (damaged EDF, no usable channel, ...) is reported in one line and
skipped; the others are still staged. Exit status: 0 when at least one night was staged, 1 when
every night failed, 2 for a usage error (a night, hypnogram or model path that does not exist, a
model that is not a stager, a --hypnogram count that differs from the nights'), before anything
is staged.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from sleepjax import _cli


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="sleepjax-stage", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("nights", nargs="+", metavar="NIGHT.edf", help="PSG recordings (EDF/EDF+)")
  p.add_argument("--model", required=True,
                 help="a trainer's workdir, its model/ folder, or a model folder (sleepjax.models.save)")
  p.add_argument("--name", default=None, help="which model of the workdir's model/index.json (default: its default)")
  p.add_argument("--out", required=True, help="output folder (created)")
  p.add_argument("--hypnogram", nargs="+", default=None, metavar="EXPERT.edf",
                 help="expert hypnograms (EDF+ annotations, Sleep-EDF or AASM texts), one per night in order")
  p.add_argument("--batch-size", type=int, default=256, help="epochs per forward pass")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  return p


def agreement(predicted, expert) -> dict[str, Any]:
  """Agreement of a staged night with an expert hypnogram on the epochs both scored.

  Args:
    predicted: the `sleepjax.hypnogram.Hypnogram` of `sleepjax.stage`.
    expert: a `sleepjax.data.hypnogram.Hypnogram` on the same PSG timeline.

  Returns:
    {"epochs": n compared, "accuracy", "kappa", "macro_f1", "confusion": 5x5 counts (rows expert,
     columns predicted, W..REM)}.

  Raises:
    ValueError: the expert's epochs are not on the predicted 30-s grid, or no epoch is scored by both.
  """
  from sleepjax.data import stages as stages_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  shift = (expert.onset_s - predicted.onset_s) / 30.0
  k = int(round(shift))
  if abs(shift - k) > 1e-3:
    raise ValueError(f"{expert.path}: expert epochs start {expert.onset_s - predicted.onset_s:.3f} s after the "
                     "recording's grid, not a multiple of 30 s")
  truth = np.full(predicted.n_epochs, stages_lib.UNSCORED, np.int32)
  lo, hi = max(0, k), min(predicted.n_epochs, k + expert.n_epochs)
  if hi > lo:
    truth[lo:hi] = expert.stages[lo - k:hi - k]
  both = (truth >= 0) & (predicted.stages >= 0)
  if not both.any():
    raise ValueError(f"{expert.path}: no epoch scored by both the expert and the model")
  cm = metrics_lib.ConfusionMatrix(stages_lib.NUM_STAGES).add(truth[both], predicted.stages[both])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", metrics_lib.UndefinedMetricWarning)
    s = metrics_lib.summarize(cm, stages_lib.STAGE_NAMES)
  return {"epochs": int(both.sum()), "accuracy": s["accuracy"], "kappa": s["kappa"], "macro_f1": s["macro_f1"],
          "confusion": cm.matrix.tolist()}


def _read_expert(path: str, night: str):
  from sleepjax.data import edf as edf_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.data import hypnogram as data_hypnogram  # pylint: disable=g-import-not-at-top
  if not path.lower().endswith(".edf"):
    raise ValueError(f"{path}: --hypnogram reads EDF+ annotation files (Sleep-EDF or AASM stage texts)")
  return data_hypnogram.read_edf_hypnogram(path, psg_start=edf_lib.validate_edf(night).start)


def _jsonable(x):
  if isinstance(x, dict):
    return {k: _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (float, np.floating)):
    return None if not np.isfinite(x) else float(x)
  if isinstance(x, np.integer):
    return int(x)
  return x


def stage_night(night: str, stager, out: pathlib.Path, expert: str | None) -> dict[str, Any]:
  """Stages one night and writes its four files; returns its summary row (see module doc)."""
  from sleepjax import staging  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", staging.StagingWarning)
    hyp = staging.stage(night, stager)
  notes = [str(w.message) for w in caught if issubclass(w.category, staging.StagingWarning)]
  stem = pathlib.Path(night).stem
  hyp.to_csv(out / f"{stem}.hypnogram.csv")
  hyp.to_edf_annotations(out / f"{stem}.hypnogram.edf")
  hyp.plot(out / f"{stem}.png", title=stem)
  stats = hyp.sleep_statistics()
  report = {"recording": os.path.abspath(night), "model": getattr(stager, "name", None), "epochs": hyp.n_epochs,
            "start": None if hyp.start is None else hyp.start.isoformat(), "channels": hyp.channels,
            "warnings": notes, "mean_confidence": float(np.nanmean(hyp.confidence)) if hyp.n_epochs else None,
            "statistics": stats}
  if expert is not None:
    report["agreement"] = agreement(hyp, _read_expert(expert, night))
    report["expert_hypnogram"] = os.path.abspath(expert)
  (out / f"{stem}.stats.json").write_text(json.dumps(_jsonable(report), indent=1) + "\n", encoding="utf-8")
  row = {"night": stem, "epochs": hyp.n_epochs, "TST_min": stats["TST"], "SE_%": stats["SE"],
         "W_min": stats["WAKE"], "N1_min": stats["N1"], "N2_min": stats["N2"], "N3_min": stats["N3"],
         "REM_min": stats["REM"], "confidence": report["mean_confidence"],
         "masked": "yes" if notes else "no"}
  if expert is not None:
    row["accuracy"] = report["agreement"]["accuracy"]
    row["kappa"] = report["agreement"]["kappa"]
  return row


def main(argv: Sequence[str] | None = None) -> int:
  """The console script; returns the exit status (module doc)."""
  args = _parser().parse_args(argv)
  usage = []
  for path in list(args.nights) + list(args.hypnogram or []):
    if not os.path.isfile(path):
      usage.append(f"{path}: no such file")
  if args.hypnogram is not None and len(args.hypnogram) != len(args.nights):
    usage.append(f"--hypnogram: {len(args.hypnogram)} files for {len(args.nights)} nights (one per night, in order)")
  if _cli.same_stem_error(args.nights):
    usage.append(_cli.same_stem_error(args.nights))
  if usage:
    for line in usage:
      print(f"sleepjax-stage: error: {line}", file=sys.stderr)
    return 2
  from sleepjax import staging  # pylint: disable=g-import-not-at-top  # Lazy: JAX.
  try:
    stager = staging.load_stager(args.model, args.name, batch_size=args.batch_size)
  except (FileNotFoundError, ValueError) as e:
    print(f"sleepjax-stage: error: {e}", file=sys.stderr)
    return 2
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  rows, failed = _cli.run_nights(
      "sleepjax-stage", args.nights,
      lambda i, night: stage_night(night, stager, out, args.hypnogram[i] if args.hypnogram else None),
      no_progress=args.no_progress)
  from sleepjax.evaluation import report as report_lib  # pylint: disable=g-import-not-at-top
  print(f"\nStaged {len(rows)} of {len(args.nights)} nights into {out} with {stager.name}")
  if rows:
    print(report_lib.format_table(rows, floatfmt=".3f"))
  if failed:
    print(f"Failed ({len(failed)}): {', '.join(failed)}")
  return 0 if rows else 1


if __name__ == "__main__":
  sys.exit(main())
