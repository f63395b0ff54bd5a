r"""Why the networks stayed at chance on EEGMMIDB: the input checks and the training / overfitting checks.

  python benchmarks/eegmmidb_diagnosis.py input --data=$SLEEPJAX_TEST_DATA/eegmmidb
  python benchmarks/eegmmidb_diagnosis.py train --data=$SLEEPJAX_TEST_DATA/eegmmidb \
      --pretrained_workdir=/tmp/pretrain_transfer --steps=300 A::none:1e-4:1 B:1-40:balanced:1e-3:1

`input`: amplitude of the stored windows (DC offsets, SD, the fraction of samples beyond the +-50 uV clip)
per training subject, raw and after detrending / band-passing; electrode positions and tokens per window.
`train`: one scratch run per spec TAG:BAND:WEIGHTING:LR:CE (BAND "" or "low-high" Hz, WEIGHTING "none" or
"balanced", CE 0/1 channel encoding) with early stopping off; prints the training and validation loss
curves and the balanced accuracy of the final model on train / validation / test (can it fit the training
subjects?) and of the best-validation model on test. Results: docs/transfer.md "EEGMMIDB diagnosis".
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

import numpy as np
import scipy.signal

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from configs import transfer as transfer_config  # noqa: E402  pylint: disable=g-import-not-at-top
from sleepjax.data import downstream_pipeline as dpipe  # noqa: E402  pylint: disable=g-import-not-at-top
from sleepjax.train import finetune  # noqa: E402  pylint: disable=g-import-not-at-top
from sleepjax.train import writer as writer_lib  # noqa: E402  pylint: disable=g-import-not-at-top


def _config(data: str):
  c = transfer_config.get_config("eegmmidb")
  c.unlock()
  c.data.manual_dir = data
  c.progress_bar = False
  c.tensorboard = False
  return c


def check_input(args) -> None:
  raw, names = finetune.load_data(_config(args.data), None)  # uV at 160 Hz, unfiltered.
  x = raw["train"]["signals"].astype(np.float64)
  subjects = raw["train"]["subject_id"]
  beyond = lambda y: float(np.mean(np.abs(y) > dpipe.EEG_CLIP_UV))
  print(f"train windows {x.shape}, classes {dict(zip(names, np.bincount(raw['train']['label'])))}")
  dc = np.abs(x.mean(-1))
  print(f"channel DC offset per window |mean| uV: median {np.median(dc):.1f}, p90 {np.percentile(dc, 90):.1f}, "
        f"max {dc.max():.1f}")
  variants = {"raw": x, "linear detrend": scipy.signal.detrend(x, axis=-1)}
  for band in ((0.5, 40.0), (1.0, 40.0)):
    variants[f"detrend + {band[0]:g}-{band[1]:g} Hz"] = dpipe.bandpass(x, 160.0, band).astype(np.float64)
  print("\n| input | beyond +-50 uV | median SD uV | " + " | ".join(np.unique(subjects)) + " |")
  print("|---|---|---|" + "---|" * len(np.unique(subjects)))
  for name, y in variants.items():
    per = [f"{beyond(y[subjects == s]):.3f}" for s in np.unique(subjects)]
    print(f"| {name} | {beyond(y):.3f} | {np.median(y.std(-1)):.1f} | " + " | ".join(per) + " |")
  pos, ok = raw["train"]["positions"][0], raw["train"]["position_mask"]
  print(f"\npositions: all finite {bool(ok.all())}, distinct {len(np.unique(pos.round(4), axis=0))} of {len(pos)}, "
        f"|p| in [{np.linalg.norm(pos, axis=1).min():.3f}, {np.linalg.norm(pos, axis=1).max():.3f}]; mask all on "
        f"{bool(raw['train']['mask'].all())}")
  t_enc = dpipe.target_length(x.shape[-1], 160.0, 128.0, 128)
  print(f"tokens per window: {x.shape[-1]} samples at 160 Hz -> {t_enc} at 128 Hz = {t_enc // 128} one-second patches")


def check_train(args) -> None:
  for spec in args.specs:
    tag, band, weighting, lr, ce = spec.split(":")
    c = _config(args.data)
    c.pretrained_workdir = args.pretrained_workdir  # Scratch takes its architecture (E=64, 2 layers).
    c.data.bandpass_hz = tuple(float(f) for f in band.split("-")) if band else ()
    c.class_weighting = weighting
    c.optimizer.learning_rate = float(lr)
    # Early stopping off (patience never reached); evaluations every 50 steps (100 from 1000 steps).
    c.steps, c.patience = args.steps, 10**6
    c.eval_every = max(50, args.steps // 10)
    c.log_every = c.eval_every // 2
    pre = finetune.load_pretrained(c, "eeg") if c.pretrained_workdir else None
    enc = finetune.encoder_config_for(c, ce == "1", pre)
    data, names = finetune.load_data(c, enc)
    at_clip = float(np.mean(np.abs(data["train"]["signals"]) >= dpipe.EEG_CLIP_UV / dpipe.EEG_SCALE_UV - 1e-4))
    start = time.time()
    with tempfile.TemporaryDirectory() as wd:
      with writer_lib.MetricWriter(pathlib.Path(wd), tensorboard=False) as w:
        r = finetune.train_one(c, data, names, enc, strategy="scratch", seed=args.seed, writer=w)
      curve = [json.loads(line) for line in open(pathlib.Path(wd) / "metrics.jsonl", encoding="utf-8")]
    bacc = lambda m, split: finetune.classification_evaluator(r["task"], data[split], names, 64).metrics(m)[
        "balanced_accuracy"]
    print(f"\n{tag}: band {c.data.bandpass_hz or 'none'}, weighting {weighting}, lr {lr}, channel encoding {ce}; "
          f"input at the clip {at_clip:.3f}; {time.time() - start:.0f} s")
    print("  train loss", [(d["step"], round(d["train/loss"], 3)) for d in curve if "train/loss" in d])
    print("  validation loss", [(d["step"], round(d["eval/validation/loss"], 3)) for d in curve
                                if "eval/validation/loss" in d])
    print(f"  final model balanced accuracy: train {bacc(r['final_model'], 'train'):.3f}, validation "
          f"{bacc(r['final_model'], 'validation'):.3f}, test {bacc(r['final_model'], 'test'):.3f}; best-validation "
          f"model (step {r['best_step']}) test {r['metrics']['balanced_accuracy']:.3f}", flush=True)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("check", choices=("input", "train"))
  parser.add_argument("specs", nargs="*", help="train: TAG:BAND:WEIGHTING:LR:CE")
  parser.add_argument("--data", required=True, help="the eegmmidb files (the builder's manual_dir)")
  parser.add_argument("--pretrained_workdir", default=None)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_intermixed_args(argv)  # Specs may follow the options.
  (check_input if args.check == "input" else check_train)(args)


if __name__ == "__main__":
  main()
