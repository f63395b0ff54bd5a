"""Frozen-embedding evaluations: the SleepFM linear probe and cross-modal retrieval.

The linear probe is how SleepFM (Thapa et al., ICML 2024) and the transfer paper's "pretrained +
frozen encoder" strategy judge an embedding: the encoder is frozen, and a multinomial logistic
regression is fitted on its pooled embeddings (standardised with statistics of the training set
only). Retrieval top-1 is the pretraining-side diagnostic of the leave-one-out objective
(docs/specification.md §2.2, §2.5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sleepjax.evaluation import metrics


def _check_xy(name: str, x, y) -> tuple[np.ndarray, np.ndarray]:
  x = np.asarray(x)
  y = np.asarray(y)
  if x.ndim != 2:
    raise ValueError(f"{name}_x must be (N, D) embeddings, got shape {x.shape}")
  if y.shape != (x.shape[0],):
    raise ValueError(f"{name}_y must have shape ({x.shape[0]},), got {y.shape}")
  if y.dtype.kind not in "iu":
    raise ValueError(f"{name}_y must hold integer class labels, got dtype {y.dtype}")
  if not np.all(np.isfinite(x)):
    raise ValueError(f"{name}_x contains NaN or inf")
  keep = y >= 0  # Unscored epochs (-1) are never fitted nor scored.
  return x[keep].astype(np.float64), y[keep].astype(np.int64)


def linear_probe(train_x, train_y, test_x, test_y, *, seed: int = 0, C: float = 1.0,
                 max_iter: int = 1000, num_classes: int | None = None,
                 class_names: Sequence[str] | None = None) -> dict:
  """Fits a multinomial logistic regression on frozen embeddings and scores it on a test set.

  Features are standardised with a `StandardScaler` fitted on the training embeddings only (no
  test statistics leak into the probe). The classifier is scikit-learn's `LogisticRegression`
  (lbfgs, L2 penalty with inverse strength `C`, multinomial softmax loss for K > 2 classes).

  Args:
    train_x: (N, D) float embeddings of the training examples (e.g. pooled encoder outputs).
    train_y: (N,) int labels; values < 0 (unscored) are dropped.
    test_x: (M, D) float embeddings of the test examples.
    test_y: (M,) int labels; values < 0 are dropped.
    seed: random_state of the solver (lbfgs is deterministic; kept for solvers that are not).
    C: inverse L2 regularisation strength (sklearn's default 1.0).
    max_iter: solver iterations.
    num_classes: K; defaults to 1 + the largest label in train or test.
    class_names: K names for the per-class F1 keys (default "0".."K-1"; pass
      `sleepjax.data.stages.STAGE_NAMES` for sleep staging).

  Returns:
    dict with "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "kappa", "count",
    "f1/<class>" (all from `metrics.summarize`), "confusion_matrix" ((K, K) int64 counts),
    "probabilities" ((M', K) float64 test-set class probabilities, unscored rows dropped) and
    "predictions" ((M',) int64).

  Raises:
    ValueError: shapes disagree, embeddings are not finite, dimensions differ between train and
      test, labels reach num_classes, or the training set has fewer than two classes.
  """
  train_x, train_y = _check_xy("train", train_x, train_y)
  test_x, test_y = _check_xy("test", test_x, test_y)
  if train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"train embeddings have D={train_x.shape[1]} but test has D={test_x.shape[1]}")
  seen = np.unique(train_y)
  if seen.size < 2:
    raise ValueError(f"a linear probe needs at least two classes in train_y, got {seen.tolist()}")
  if num_classes is None:
    num_classes = int(max(train_y.max(), test_y.max() if test_y.size else 0)) + 1
  if train_y.max() >= num_classes or (test_y.size and test_y.max() >= num_classes):
    raise ValueError(f"labels reach {max(train_y.max(), test_y.max())} but num_classes={num_classes}")

  scaler = StandardScaler().fit(train_x)
  # lbfgs fits the multinomial (softmax) loss for K > 2 classes by default in sklearn >= 1.5.
  clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
  clf.fit(scaler.transform(train_x), train_y)

  proba_seen = clf.predict_proba(scaler.transform(test_x)) if test_y.size else np.zeros((0, seen.size))
  # Classes never seen in training get probability 0; columns follow 0..K-1.
  proba = np.zeros((proba_seen.shape[0], num_classes))
  proba[:, clf.classes_] = proba_seen
  pred = clf.classes_[np.argmax(proba_seen, axis=1)] if test_y.size else np.zeros(0, np.int64)
  cm = metrics.confusion_matrix(test_y, pred, num_classes)
  out = metrics.summarize(cm, class_names)
  out["confusion_matrix"] = cm
  out["probabilities"] = proba
  out["predictions"] = pred.astype(np.int64)
  return out


def _l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def retrieval_top1(embeddings: Mapping[str, np.ndarray], *, chunk_size: int = 1024) -> dict[str, float]:
  """Leave-one-out cross-modal retrieval accuracy, one number per modality.

  For modality i with L2-normalised embeddings z_i (N, D), the candidates are the leave-one-out
  means of the other modalities' normalised embeddings, zbar_{-i} = (1/(M-1)) sum_{j != i} z_j,
  NOT renormalised: exactly the targets of the LOO contrastive loss (docs/specification.md §2.2; SleepFM),
  so the similarity is the loss's logit s z_i zbar_{-i}^T up to the positive scale s. Example n is
  retrieved correctly when argmax_k z_i[n] . zbar_{-i}[k] == n over all N candidates (ties go to
  the lowest index, as in `np.argmax`).

  Args:
    embeddings: {modality: (N, D) float} with M >= 2 modalities, rows aligned (row n of every
      modality is the same window).
    chunk_size: rows of the (N, N) similarity matrix computed at a time (memory bound).

  Returns:
    {modality: top-1 accuracy in [0, 1]}; chance level is 1/N.

  Raises:
    ValueError: fewer than two modalities, shapes disagree, or embeddings are not finite.
  """
  if len(embeddings) < 2:
    raise ValueError(f"retrieval needs at least two modalities, got {list(embeddings)}")
  z = {}
  shape = None
  for mod, e in embeddings.items():
    e = np.asarray(e, np.float64)
    if e.ndim != 2:
      raise ValueError(f"embeddings[{mod!r}] must be (N, D), got shape {e.shape}")
    if shape is not None and e.shape != shape:
      raise ValueError(f"embeddings[{mod!r}] has shape {e.shape}, expected {shape}")
    if not np.all(np.isfinite(e)):
      raise ValueError(f"embeddings[{mod!r}] contains NaN or inf")
    shape = e.shape
    z[mod] = _l2_normalize(e)
  n = shape[0]
  if n == 0:
    raise ValueError("retrieval needs at least one example")
  total = sum(z.values())
  m = len(z)
  out = {}
  for mod, zi in z.items():
    target = (total - zi) / (m - 1)  # (N, D) leave-one-out mean, not renormalised.
    hits = 0
    for start in range(0, n, chunk_size):
      sim = zi[start:start + chunk_size] @ target.T  # (chunk, N)
      hits += int(np.sum(np.argmax(sim, axis=1) == np.arange(start, start + sim.shape[0])))
    out[mod] = hits / n
  return out
