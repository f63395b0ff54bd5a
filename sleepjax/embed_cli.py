"""`sleepjax-embed`: export a saved encoder's embeddings of EDF nights (docs/embeddings.md).

  sleepjax-embed NIGHT.edf [MORE.edf ...] --model WORKDIR --out DIR [--format npz|parquet]

npz (default, NumPy): `<stem>.embeddings.npz` with the arrays of `sleepjax.embed` ("token/<m>",
"epoch/<m>", "present/<m>", "token_onset_s", "epoch_onset_s", ...). parquet (needs pyarrow):
`<stem>.tokens.parquet` and `<stem>.epochs.parquet`, one row per (modality, 5-s token) and per
(modality, 30-s epoch): onset_s, modality, present, e0..e{E-1}.

A night that cannot be read is reported in one line and skipped. Exit status: 0 when at least one
night was embedded, 1 when every night failed, 2 for a usage error (a missing night or model, a
model without a set-transformer, parquet without pyarrow).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from sleepjax import _cli


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="sleepjax-embed", description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("nights", nargs="+", metavar="NIGHT.edf", help="PSG recordings (EDF/EDF+)")
  p.add_argument("--model", required=True, help="a pretraining or staging workdir, or a saved encoder")
  p.add_argument("--name", default=None, help="which model of the workdir's model/index.json")
  p.add_argument("--out", required=True, help="output folder (created)")
  p.add_argument("--format", choices=("npz", "parquet"), default="npz")
  p.add_argument("--batch-size", type=int, default=64, help="windows per forward pass")
  p.add_argument("--no-progress", action="store_true", help="no progress bar")
  return p


def to_frames(emb) -> dict:
  """{"tokens": pandas.DataFrame, "epochs": pandas.DataFrame} in long form (one row per modality and time)."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  out = {}
  for level, onset_key in (("token", "token_onset_s"), ("epoch", "epoch_onset_s")):
    parts = []
    for key in emb:
      if not key.startswith(level + "/"):
        continue
      modality = key.split("/", 1)[1]
      x = np.asarray(emb[key])
      df = pd.DataFrame(x, columns=[f"e{i}" for i in range(x.shape[1])])
      df.insert(0, "present", bool(emb.get(f"present/{modality}", True)))
      df.insert(0, "modality", modality)
      df.insert(0, "onset_s", np.asarray(emb[onset_key]))
      parts.append(df)
    out[level + "s"] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
  return out


def embed_night(night: str, model, out: pathlib.Path, fmt: str, batch_size: int) -> dict:
  from sleepjax import embedding  # pylint: disable=g-import-not-at-top
  stem = pathlib.Path(night).stem
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    emb = embedding.embed(night, model, batch_size=batch_size)
  for w in caught:
    print(f"sleepjax-embed: {night}: warning: {w.message}", file=sys.stderr)
  if fmt == "npz":
    np.savez(out / f"{stem}.embeddings.npz", **emb)
  else:
    for level, df in to_frames(emb).items():
      df.to_parquet(out / f"{stem}.{level}.parquet", index=False)
  modalities = [k.split("/", 1)[1] for k in emb if k.startswith("present/")]
  return {"night": stem, "epochs": int(np.asarray(emb["epoch_onset_s"]).size),
          "modalities": ", ".join(m for m in modalities if bool(emb[f"present/{m}"])),
          "absent": ", ".join(m for m in modalities if not bool(emb[f"present/{m}"])) or "-"}


def main(argv: Sequence[str] | None = None) -> int:
  """The console script; returns the exit status (module doc)."""
  args = _parser().parse_args(argv)
  usage = [f"{p}: no such file" for p in args.nights if not os.path.isfile(p)]
  if _cli.same_stem_error(args.nights):
    usage.append(_cli.same_stem_error(args.nights))
  if args.format == "parquet" and importlib.util.find_spec("pyarrow") is None:
    usage.append("--format parquet needs pyarrow (pip install pyarrow); --format npz needs nothing")
  if usage:
    for line in usage:
      print(f"sleepjax-embed: error: {line}", file=sys.stderr)
    return 2
  from sleepjax import embedding  # pylint: disable=g-import-not-at-top  # Lazy: JAX.
  try:
    model = embedding.load_embedding_model(args.model, args.name)
  except (FileNotFoundError, ValueError) as e:
    print(f"sleepjax-embed: error: {e}", file=sys.stderr)
    return 2
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  rows, failed = _cli.run_nights(
      "sleepjax-embed", args.nights,
      lambda _, night: embed_night(night, model, out, args.format, args.batch_size),
      no_progress=args.no_progress)
  from sleepjax.evaluation import report as report_lib  # pylint: disable=g-import-not-at-top
  print(f"\nEmbedded {len(rows)} of {len(args.nights)} nights into {out} with {model.name}")
  if rows:
    print(report_lib.format_table(rows))
  if failed:
    print(f"Failed ({len(failed)}): {', '.join(failed)}")
  return 0 if rows else 1


if __name__ == "__main__":
  sys.exit(main())
