r"""The transfer table on the real downstream tasks: baseline / scratch / pretrained / + channel encoding / frozen.

Runs `sleepjax.train.finetune.train_and_evaluate` for each task (configs/transfer.py variants, with
the budget flags below) and prints one table of balanced accuracy, AUROC and kappa (mean +- std
over seeds; baselines are deterministic, one fit). docs/transfer.md "Re-run" has the measured table.

  python benchmarks/transfer_table.py --data=$SLEEPJAX_TEST_DATA --pretrained_workdir=/tmp/pretrain_transfer \
      --workdir=/tmp/transfer_table --tasks=bonn_seizure,cinc2017,mitdb,eegmmidb --seeds=0,1 --steps=400

`--data` is the folder with one sub-folder per dataset (the project's copies: eegmmidb, bonn_eeg,
mitdb, cinc2017); `--set KEY=VALUE` overrides a config field of every task (e.g.
`--set optimizer.learning_rate=1e-3`), `--set TASK:KEY=VALUE` of one task.
"""

from __future__ import annotations

import argparse
import ast
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import transfer as transfer_config  # noqa: E402  pylint: disable=g-import-not-at-top
from sleepjax.train import finetune  # noqa: E402  pylint: disable=g-import-not-at-top

# Task -> the sub-folder of --data with its files (each builder's README says what it may hold).
MANUAL_DIRS = {"eegmmidb": "eegmmidb", "bonn_seizure": "bonn_eeg", "bonn_five": "bonn_eeg", "mitdb": "mitdb",
               "cinc2017": "cinc2017"}


def _value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _set(config, key: str, value) -> None:
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = value


def _fmt(row, key: str) -> str:
  mean, std = row.get(key), row.get(f"{key}_std")
  if not isinstance(mean, float):
    return str(mean)
  if std is None or not isinstance(std, float) or std != std:  # NaN: one fit / one seed.
    return f"{mean:.3f}"
  return f"{mean:.3f} ± {std:.3f}"


def label(row) -> str:
  """The row's name in the combined table."""
  s = row["strategy"]
  if s.startswith("baseline:"):
    return s
  if s == "scratch":
    return "scratch" + (" + channel enc." if row["channel_encoding"] else "")
  return s + (" + channel enc." if row["channel_encoding"] else "")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data", default=os.environ.get("SLEEPJAX_TEST_DATA"), help="folder of the datasets' files")
  parser.add_argument("--workdir", default="/tmp/sleepjax/transfer_table")
  parser.add_argument("--pretrained_workdir", default=None)
  parser.add_argument("--tasks", default="bonn_seizure,cinc2017,mitdb,eegmmidb")
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--set", action="append", default=[], help="KEY=VALUE or TASK:KEY=VALUE config override")
  args = parser.parse_args(argv)
  if not args.data:
    parser.error("--data (or $SLEEPJAX_TEST_DATA) is required: the folder with eegmmidb/, bonn_eeg/, mitdb/, cinc2017/")
  all_rows, times = [], {}
  for task in args.tasks.split(","):
    c = transfer_config.get_config(task)
    c.unlock()
    c.data.manual_dir = os.path.join(args.data, MANUAL_DIRS[task])
    c.pretrained_workdir = args.pretrained_workdir
    c.seeds = tuple(int(s) for s in args.seeds.split(","))
    c.steps = args.steps
    c.progress_bar = False
    c.tensorboard = False
    c.ablation.enabled = False  # Item of its own (docs/transfer.md "Channel ablation").
    for item in args.set:
      key, value = item.split("=", 1)
      if ":" in key:
        only, key = key.split(":", 1)
        if only != task:
          continue
      _set(c, key, _value(value))
    start = time.time()
    all_rows += finetune.train_and_evaluate(c, os.path.join(args.workdir, task))
    times[task] = time.time() - start
  print("\n| task | model | balanced acc. | AUROC | kappa | steps |\n|---|---|---|---|---|---|")
  for r in all_rows:
    steps = r.get("steps")
    steps = "" if not isinstance(steps, float) or steps != steps else f"{steps:.0f}"
    print(f"| {r['task']} | {label(r)} | {_fmt(r, 'balanced_accuracy')} | {_fmt(r, 'auroc')} | {_fmt(r, 'kappa')} "
          f"| {steps} |")
  print("\nwall time: " + ", ".join(f"{t} {s / 60:.1f} min" for t, s in times.items()))


if __name__ == "__main__":
  main()
