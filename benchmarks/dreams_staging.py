r"""Sleep staging on the 8 real DREAMS Spindles excerpts: a sleepjax stager beside YASA's SleepStaging.

  nice -n 10 python benchmarks/dreams_staging.py [--data $SLEEPJAX_TEST_DATA/dreams_spindles] [--steps 150]

Data (Devuyst et al., DREAMS Sleep Spindles database, Univ. Mons; licence: non-commercial, no
derivatives: nothing read or derived here is written inside the repository): 8 excerpts of 30 min,
one EEG channel each (C3-A1 or Cz-A1) at 50-200 Hz, scored in R&K at 5-s resolution. The 30-s
epochs are the majority of their six 5-s scores (a tie goes to the first of the tied stages in
W, N1, N2, N3, REM order); S3 and S4 are N3; movement/unscored 5-s scores do not vote.

sleepjax: the staging task's `SequenceStager` (configs/staging.py default sizes, one EEG
channel resampled to 100 Hz with scipy's resample_poly and z-scored per excerpt), trained from
scratch in leave-one-excerpt-out (8 folds, one subject each: trained on 7, tested on the 8th), a
fixed number of steps (no model selection on the held-out excerpt). YASA 0.8: out-of-the-box
`yasa.SleepStaging(raw, eeg_name=...)` (its pretrained LightGBM, EEG only) on the same epochs, in
microvolts at the native rate (excerpt 3, 50 Hz, upsampled x2 with resample_poly: YASA refuses
rates below 80 Hz). Metrics (sleepjax.evaluation.metrics): accuracy, Cohen's kappa
and macro-F1 over the stages present in the excerpt's scoring or predictions, per excerpt and
pooled over the 480 epochs (the pooled macro-F1 is over the 5 stages).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tarfile
import tempfile
import time
import warnings
from fractions import Fraction

import numpy as np

# R&K codes of Hypnogram_excerptN.txt -> AASM (W=0, N1=1, N2=2, N3=3, REM=4); others do not vote.
RK = {5: 0, 3: 1, 2: 2, 1: 3, 0: 3, 4: 4}
STAGES = ("W", "N1", "N2", "N3", "REM")
# Sampling rates of excerpts 1..8 (the database's description; excerpt6 has 140 samples beyond 30 min).
FS = {1: 100.0, 2: 200.0, 3: 50.0, 4: 200.0, 5: 200.0, 6: 200.0, 7: 200.0, 8: 200.0}


def find_data(path: str | None) -> pathlib.Path:
  """The folder with excerptN.txt (the archive is extracted to a temporary folder when needed)."""
  root = pathlib.Path(path or os.path.join(os.environ.get("SLEEPJAX_TEST_DATA", "../shared/data"), "dreams_spindles"))
  for d in (root, root / "dreams_spindles"):
    if (d / "excerpt1.txt").is_file():
      return d
  archive = root / "dreams_spindles_8excerpts.tar.xz"
  if not archive.is_file():
    raise FileNotFoundError(f"{root}: no excerpt1.txt and no dreams_spindles_8excerpts.tar.xz")
  tmp = pathlib.Path(tempfile.mkdtemp(prefix="dreams_"))
  with tarfile.open(archive) as tar:
    tar.extractall(tmp, filter="data")
  return tmp / "dreams_spindles"


def read_excerpt(folder: pathlib.Path, k: int):
  """(label, signal uV (n,), sfreq, stages (60,) int32 with -1 where no 5-s score voted)."""
  lines = (folder / f"excerpt{k}.txt").read_text().split()
  label = lines[0].strip("[]")
  x = np.asarray(lines[1:], np.float64)
  hyp = np.asarray((folder / f"Hypnogram_excerpt{k}.txt").read_text().split()[1:], np.int64)
  sfreq = FS[k]
  if len(x) < sfreq * 5.0 * len(hyp):
    raise ValueError(f"{folder}/excerpt{k}.txt: {len(x)} samples, fewer than {len(hyp)} 5-s scores at {sfreq:g} Hz")
  x = x[:int(sfreq * 5.0 * len(hyp))]
  n = len(hyp) // 6
  stages = np.full(n, -1, np.int32)
  for e in range(n):
    votes = [RK[int(v)] for v in hyp[6 * e:6 * e + 6] if int(v) in RK]
    if votes:
      stages[e] = int(np.argmax(np.bincount(votes, minlength=5)))
  return label, x, sfreq, stages


def to_epochs(x: np.ndarray, sfreq: float, n: int) -> np.ndarray:
  """(n, 1, 3000) float32: resampled to 100 Hz (resample_poly), z-scored over the excerpt."""
  from scipy import signal  # pylint: disable=g-import-not-at-top
  r = Fraction(100, 1) / Fraction(sfreq).limit_denominator(1000)
  y = signal.resample_poly(x, r.numerator, r.denominator)[:n * 3000]
  y = (y - y.mean()) / (y.std() + 1e-8)
  return y.reshape(n, 1, 3000).astype(np.float32)


def scores(y_true, y_pred, *, labels=None) -> dict[str, float]:
  """accuracy, kappa, macro-F1 (over `labels`: default the stages in y_true or y_pred)."""
  from sleepjax.evaluation import metrics  # pylint: disable=g-import-not-at-top
  cm = metrics.confusion_matrix(y_true, y_pred, 5)
  present = labels if labels is not None else sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
  f1 = metrics.per_class_f1(cm)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return {"accuracy": metrics.accuracy(cm), "kappa": metrics.cohen_kappa(cm),
            "macro_f1": float(np.nanmean([f1[c] for c in present]))}


def yasa_predict(x: np.ndarray, sfreq: float, label: str) -> np.ndarray:
  import mne  # pylint: disable=g-import-not-at-top
  import yasa  # pylint: disable=g-import-not-at-top
  if sfreq < 80:  # YASA asserts sf > 80 Hz (it resamples to 100 Hz itself): excerpt 3 (50 Hz) is upsampled.
    from scipy import signal  # pylint: disable=g-import-not-at-top
    x = signal.resample_poly(x, 2, 1)
    sfreq *= 2
  raw = mne.io.RawArray(x[None] * 1e-6, mne.create_info([label], sfreq, ch_types="eeg"), verbose="error")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pred = yasa.SleepStaging(raw, eeg_name=label).predict()
  # yasa 0.8 returns a yasa.Hypnogram (WAKE/N1/N2/N3/REM -> 0..4); 0.6 returned labels.
  if hasattr(pred, "as_int"):
    return pred.as_int().to_numpy().astype(np.int32)
  return np.asarray([{"W": 0, "N1": 1, "N2": 2, "N3": 3, "R": 4}[p] for p in pred], np.int32)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--data", default=None, help="the dreams_spindles folder (or its archive's folder)")
  p.add_argument("--steps", type=int, default=150, help="training steps per fold")
  p.add_argument("--batch-size", type=int, default=8, help="windows per step")
  p.add_argument("--window", type=int, default=10, help="epochs per window")
  p.add_argument("--folds", default=None, help="comma-separated excerpts to hold out (default all 8)")
  p.add_argument("--no-yasa", action="store_true")
  args = p.parse_args(argv)
  folder = find_data(args.data)
  from sleepjax.train import staging as staging_train  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
  from configs import staging as staging_config  # pylint: disable=g-import-not-at-top
  raw = {k: read_excerpt(folder, k) for k in range(1, 9)}
  nights = {}
  for k, (label, x, sfreq, stages) in raw.items():
    nights[k] = staging_train.Night(f"excerpt{k}", f"subject{k}", {"eeg": to_epochs(x, sfreq, len(stages))}, stages,
                                    np.arange(len(stages), dtype=np.int32))
  config = staging_config.get_config()
  config.data.modalities = ("eeg",)
  config.steps = args.steps
  config.batch_size = args.batch_size
  config.window_epochs = args.window
  config.train_stride_epochs = max(1, args.window // 5)
  config.modality_dropout = 0.0
  config.channel_dropout = 0.0
  config.log_every = max(1, args.steps // 3)
  config.progress_bar = False
  folds = [int(f) for f in args.folds.split(",")] if args.folds else list(raw)
  rows, pooled = [], {"sleepjax": ([], []), "yasa": ([], [])}
  t_sj = t_yasa = 0.0
  for k in folds:
    t0 = time.perf_counter()
    train = [nights[j] for j in raw if j != k]
    model, _, _ = staging_train.fit(config, train, {"eeg": 1}, 100.0)
    y, logits = staging_train.predict_nights(model, [nights[k]], ("eeg",), args.window, config.eval_batch_size)
    t_sj += time.perf_counter() - t0
    pred = logits.argmax(-1)
    row = {"excerpt": k, "channel": raw[k][0], "fs_Hz": raw[k][2], "epochs": int(y.size),
           **{f"sleepjax_{m}": v for m, v in scores(y, pred).items()}}
    pooled["sleepjax"][0].append(y)
    pooled["sleepjax"][1].append(pred)
    if not args.no_yasa:
      t0 = time.perf_counter()
      yp = yasa_predict(raw[k][1], raw[k][2], raw[k][0])
      t_yasa += time.perf_counter() - t0
      truth = raw[k][3]
      ok = truth >= 0
      row.update({f"yasa_{m}": v for m, v in scores(truth[ok], yp[ok]).items()})
      pooled["yasa"][0].append(truth[ok])
      pooled["yasa"][1].append(yp[ok])
    rows.append(row)
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
  total = {"excerpt": "pooled", "channel": "", "fs_Hz": "", "epochs": int(sum(len(y) for y in pooled["sleepjax"][0]))}
  for name, (ys, ps) in pooled.items():
    if ys:
      total.update({f"{name}_{m}": v for m, v in scores(np.concatenate(ys), np.concatenate(ps), labels=range(5)).items()})
  rows.append(total)
  from sleepjax.evaluation import report  # pylint: disable=g-import-not-at-top
  print()
  print(report.format_table(rows, floatfmt=".3f"))
  print(f"\nsleepjax: {args.steps} steps x {len(folds)} folds, train + predict {t_sj:.1f} s wall; "
        f"yasa predict {t_yasa:.1f} s wall; stages in the scoring: "
        f"{dict(zip(STAGES, np.bincount(np.concatenate([r[3][r[3] >= 0] for r in raw.values()]), minlength=5).tolist()))}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
