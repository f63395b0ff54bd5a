"""Realism of the synthetic PSG nights, judged by an off-the-shelf sleep stager (YASA).

YASA (Vallat & Walker 2021, eLife 10:e70092) is a LightGBM classifier trained on
thousands of real, expert-scored nights (NSRR). If the synthetic EEG/EOG/EMG carry the
features that define the AASM stages, YASA -- never tuned to them -- should recover the
generating hypnogram. The issue's bar: accuracy >= 0.60 on synthetic nights.

For calibration the same classifier runs on real EEG: the 8 DREAMS spindle excerpts
(30 min each, one EEG channel, no EOG/EMG, R&K hypnograms at 5 s reduced to 30-s
epochs by majority). They are short excerpts, not nights, so YASA's time-of-night
features are off there; the figure is a reference point, not a target.

Usage:
  python benchmarks/yasa_realism.py [--n-nights 2] [--seed 0] [--duration-h 7.5]
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import tarfile
import tempfile
import time

import mne
import numpy as np
import sklearn.metrics
import yasa

from sleepjax.data import synthetic

LABELS = ("W", "N1", "N2", "N3", "R")
# Sleep-EDF R&K annotation -> YASA's AASM strings; movement time and "?" are not scored.
RK_TO_AASM = {"Sleep stage W": "W", "Sleep stage 1": "N1", "Sleep stage 2": "N2", "Sleep stage 3": "N3",
              "Sleep stage 4": "N3", "Sleep stage R": "R"}
# DREAMS hypnogram codes (R&K): 5=W, 4=REM, 3=S1, 2=S2, 1=S3, 0=S4.
DREAMS_TO_AASM = {5: "W", 4: "R", 3: "N1", 2: "N2", 1: "N3", 0: "N3"}
DREAMS_SFREQ = (100, 200, 50, 200, 200, 200, 200, 200)
DREAMS_ARCHIVE_NAME = "dreams_spindles_8excerpts.tar.xz"


def yasa_labels(prediction) -> np.ndarray:
  """YASA's prediction (a `yasa.Hypnogram` since 0.7, or strings before) -> "W".."R" strings."""
  stages = getattr(prediction, "hypno", prediction)
  short = {"WAKE": "W", "REM": "R"}
  return np.asarray([short.get(str(s), str(s)) for s in stages], dtype="<U2")


def epoch_labels_from_annotations(hyp_path: pathlib.Path, n_epochs: int) -> np.ndarray:
  """Per-30-s-epoch AASM strings ("" where unscored) read back from an EDF+ hypnogram."""
  labels = np.full(n_epochs, "", dtype="<U2")
  for onset, duration, text in zip(*(getattr(mne.read_annotations(hyp_path), a)
                                     for a in ("onset", "duration", "description"))):
    first, count = int(round(onset / 30)), int(round(duration / 30))
    labels[first:first + count] = RK_TO_AASM.get(text, "")
  return labels


def stage_synthetic(n_nights: int, seed: int, duration_h: float, workdir: pathlib.Path):
  """Writes synthetic nights, reads them back with MNE and stages them with YASA."""
  config = synthetic.SyntheticConfig(n_subjects=n_nights, seed=seed, duration_h=duration_h)
  truth, pred, per_night = [], [], []
  for subject in range(n_nights):
    t0 = time.perf_counter()
    night = synthetic.generate_night(config, subject)
    psg_path, hyp_path = synthetic.write_night(workdir, night.record_id, night)
    t_gen = time.perf_counter() - t0
    raw = mne.io.read_raw_edf(psg_path, include=["EEG C4-M1", "EOG E1-M2", "EMG Chin"], preload=True, verbose=False)
    staging = yasa.SleepStaging(raw, eeg_name="EEG C4-M1", eog_name="EOG E1-M2", emg_name="EMG Chin")
    y_pred = yasa_labels(staging.predict())
    y_true = epoch_labels_from_annotations(hyp_path, y_pred.size)
    keep = y_true != ""
    truth.append(y_true[keep])
    pred.append(y_pred[keep])
    per_night.append((night.record_id, int(keep.sum()), float(np.mean(y_true[keep] == y_pred[keep])),
                      sklearn.metrics.cohen_kappa_score(y_true[keep], y_pred[keep]), t_gen))
  return np.concatenate(truth), np.concatenate(pred), per_night


def stage_dreams(archive: pathlib.Path, workdir: pathlib.Path):
  """Stages the 8 DREAMS excerpts (EEG only) with YASA."""
  with tarfile.open(archive) as tar:
    tar.extractall(workdir, filter="data")
  root = workdir / "dreams_spindles"
  truth, pred, per_excerpt = [], [], []
  for i, sfreq in enumerate(DREAMS_SFREQ, start=1):
    with open(root / f"excerpt{i}.txt") as f:
      channel = f.readline().strip().strip("[]")
      eeg_uv = np.loadtxt(f)
    raw = mne.io.RawArray(eeg_uv[None] * 1e-6, mne.create_info([channel], sfreq, "eeg"), verbose=False)
    note = ""
    if sfreq < 100:
      # YASA refuses < 80 Hz; upsampling adds no content above the original 25 Hz Nyquist.
      raw.resample(100, verbose=False)
      note = f"upsampled {sfreq}->100 Hz"
    codes = np.loadtxt(root / f"Hypnogram_excerpt{i}.txt", skiprows=1).astype(int)
    n_epochs = codes.size // 6
    y_true = []
    for e in range(n_epochs):
      votes = collections.Counter(DREAMS_TO_AASM[c] for c in codes[6 * e:6 * e + 6])
      y_true.append(votes.most_common(1)[0][0])  # Ties go to the label seen first in the epoch.
    y_true = np.asarray(y_true, dtype="<U2")
    y_pred = yasa_labels(yasa.SleepStaging(raw, eeg_name=channel).predict())[:n_epochs]
    truth.append(y_true)
    pred.append(y_pred)
    per_excerpt.append((f"excerpt{i} {channel} {note}".strip(), n_epochs, float(np.mean(y_true == y_pred)),
                        sklearn.metrics.cohen_kappa_score(y_true, y_pred), 0.0))
  return np.concatenate(truth), np.concatenate(pred), per_excerpt


def print_block(title: str, truth: np.ndarray, pred: np.ndarray, rows) -> None:
  print(f"\n== {title}")
  print(f"{'record':<32} {'epochs':>6} {'acc':>6} {'kappa':>6}")
  for name, n, acc, kappa, _ in rows:
    print(f"{name:<32} {n:>6d} {acc:>6.3f} {kappa:>6.3f}")
  acc = float(np.mean(truth == pred))
  kappa = sklearn.metrics.cohen_kappa_score(truth, pred)
  f1 = sklearn.metrics.f1_score(truth, pred, labels=list(LABELS), average="macro", zero_division=0)
  print(f"{'POOLED':<32} {truth.size:>6d} {acc:>6.3f} {kappa:>6.3f}   macro-F1 {f1:.3f}")
  cm = sklearn.metrics.confusion_matrix(truth, pred, labels=list(LABELS))
  print("confusion (rows = truth, cols = YASA):  " + " ".join(f"{l:>5}" for l in LABELS))
  for label, row in zip(LABELS, cm):
    print(f"{'':<24}{label:>16} " + " ".join(f"{v:>5d}" for v in row))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--n-nights", type=int, default=2)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--duration-h", type=float, default=7.5)
  parser.add_argument("--dreams", type=pathlib.Path, default=None,
                      help=f"the DREAMS spindles archive ({DREAMS_ARCHIVE_NAME}); without it only the synthetic "
                           "nights are staged")
  args = parser.parse_args()
  mne.set_log_level("WARNING")
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    truth, pred, rows = stage_synthetic(args.n_nights, args.seed, args.duration_h, tmp / "synthetic")
    print_block(f"YASA {yasa.__version__} on synthetic nights (seed {args.seed}, {args.duration_h} h sleep period; "
                "EEG C4-M1 + EOG E1-M2 + EMG Chin)", truth, pred, rows)
    print("generation + writing time per night (s): " + ", ".join(f"{r[4]:.1f}" for r in rows))
    if args.dreams is not None and not args.dreams.is_file():
      parser.error(f"--dreams {args.dreams}: no such file")
    if args.dreams is not None:
      truth, pred, rows = stage_dreams(args.dreams, tmp / "dreams")
      print_block("YASA on real DREAMS spindle excerpts (30 min each, EEG only)", truth, pred, rows)
    else:
      print("\nNo --dreams archive given: the real-data reference is skipped.")


if __name__ == "__main__":
  main()
