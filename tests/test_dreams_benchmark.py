"""benchmarks/dreams_staging.py's reading of the DREAMS scoring, on a fake excerpt (no DREAMS data)."""

import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import dreams_staging  # noqa: E402  pylint: disable=g-import-not-at-top


def test_five_second_rk_scores_to_thirty_second_aasm_epochs(tmp_path):
  # R&K at 5 s: 5=W, 4=REM, 3=S1, 2=S2, 1=S3, 0=S4 (S3 and S4 are N3); 7 (not a stage) does not vote.
  scores = [5, 5, 5, 5, 2, 2,   1, 0, 0, 2, 2, 2,   4, 4, 3, 3, 7, 7,   7, 7, 7, 7, 7, 7]
  fs = dreams_staging.FS[1]
  (tmp_path / "Hypnogram_excerpt1.txt").write_text("[Hypnogram]\n" + "\n".join(map(str, scores)) + "\n")
  x = np.sin(np.arange(int(fs * 5 * len(scores)) + 7) / 10.0)  # 7 samples too many: cut.
  (tmp_path / "excerpt1.txt").write_text("[C3-A1]\n" + "\n".join(f"{v:.4f}" for v in x) + "\n")
  label, signal, sfreq, stages = dreams_staging.read_excerpt(tmp_path, 1)
  assert label == "C3-A1" and sfreq == fs and signal.size == fs * 5 * len(scores)
  # W majority; N3 (3 votes) ties N2 (3): the first of W, N1, N2, N3, REM wins; REM ties N1 -> N1; nothing voted.
  np.testing.assert_array_equal(stages, [0, 2, 1, -1])
  epochs = dreams_staging.to_epochs(signal, sfreq, 4)
  assert epochs.shape == (4, 1, 3000) and abs(float(epochs.mean())) < 1e-5


def test_scores_macro_f1_over_present_stages():
  y = np.array([2, 2, 2, 0])
  s = dreams_staging.scores(y, y)
  assert s["accuracy"] == 1.0 and s["macro_f1"] == 1.0 and s["kappa"] == 1.0
  pooled = dreams_staging.scores(y, y, labels=range(5))  # absent stages: F1 undefined, left out of the mean
  assert np.isfinite(pooled["macro_f1"])
