"""Classification metrics for sleep staging and transfer tasks, built on confusion matrices.

Evaluators accumulate integer counts (a K x K confusion matrix, scenic style: sums and counts),
possibly over many batches, folds or hosts; the host then divides once. Every label metric here
is a function of the pooled confusion matrix, so "metrics pooled over all folds" (SleepMG
protocol, docs/specification.md §4.8) is `sum of the folds' matrices -> metric`, not a mean of per-fold metrics.

Conventions (each is cross-checked against scikit-learn in tests/evaluation/test_metrics.py):
- Rows of a confusion matrix are the true class, columns the predicted class
  (`cm[i, j]` = number of examples of class i predicted as j), as in
  `sklearn.metrics.confusion_matrix`.
- Labels < 0 (AASM UNSCORED=-1, MOVEMENT=-2) are ignored, as are examples whose `mask` is False.
- A class absent from both the truth and the predictions has an undefined F1 (0/0). It is
  reported as NaN and left out of macro-F1. This is what scikit-learn's default call
  `f1_score(y_true, y_pred, average="macro")` computes (it averages over the labels present in
  either array), and equals `f1_score(..., labels=range(K), zero_division=np.nan)`. Passing
  `labels=range(K)` with sklearn's default `zero_division` instead counts such a class as F1 = 0
  and lowers the macro average; we do not do that, because a 5-fold split whose test fold has
  no N3 would otherwise be penalised for a class it was never asked about.
- A class with predictions but no true examples (or the reverse) has F1 = 0, which is defined.
- Balanced accuracy is the mean recall over the classes present in the truth (classes absent
  from the truth have an undefined recall and are left out, as in
  `sklearn.metrics.balanced_accuracy_score`). This holds for binary tasks too: the transfer
  paper's code reports plain accuracy for binary tasks under that name by mistake (docs/specification.md §3.4).
- Cohen's kappa (Cohen 1960): (p_o - p_e) / (1 - p_e); NaN when p_e == 1 (both raters use a
  single, identical class), as in `sklearn.metrics.cohen_kappa_score`.
- An empty confusion matrix gives NaN for every metric.

Score-based metrics (AUROC, AUPRC, best-F1 thresholds) work on per-example scores and use
scikit-learn directly (library first); a label column with only one class present has an
undefined AUROC/AUPRC, reported as NaN with a warning and excluded from macro averages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
import warnings

import numpy as np
from sklearn import metrics as sk_metrics


class UndefinedMetricWarning(UserWarning):
  """A metric is undefined for the given data (e.g. AUROC with a single class) and is NaN."""


def _as_label_array(name: str, y) -> np.ndarray:
  y = np.asarray(y)
  if y.dtype.kind not in "iub":
    if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
      return y.astype(np.int64)
    raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
  return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int, *, mask=None) -> np.ndarray:
  """Counts a K x K confusion matrix from integer labels.

  Args:
    y_true: (...) int, true class in [0, num_classes); values < 0 (unscored) are ignored.
    y_pred: (...) int, predicted class in [0, num_classes), same shape as `y_true`.
    num_classes: K, number of classes (5 for AASM staging).
    mask: optional (...) bool, same shape; False entries are ignored (padding, masked epochs).

  Returns:
    (K, K) int64 array, `cm[i, j]` = number of kept examples with truth i predicted as j.

  Raises:
    ValueError: shapes differ, labels are not integers, or a kept label is >= num_classes, or a
      kept prediction is < 0.
  """
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1, got {num_classes}")
  y_true = _as_label_array("y_true", y_true)
  y_pred = _as_label_array("y_pred", y_pred)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true shape {y_true.shape} != y_pred shape {y_pred.shape}")
  keep = y_true >= 0
  if mask is not None:
    mask = np.asarray(mask)
    if mask.shape != y_true.shape:
      raise ValueError(f"mask shape {mask.shape} != label shape {y_true.shape}")
    keep &= mask.astype(bool)
  t, p = y_true[keep], y_pred[keep]
  if t.size and t.max() >= num_classes:
    raise ValueError(f"y_true holds class {t.max()} but num_classes={num_classes}")
  if p.size and (p.min() < 0 or p.max() >= num_classes):
    raise ValueError(
        f"y_pred holds class {p.min() if p.min() < 0 else p.max()} outside [0, {num_classes})")
  flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
  return flat.reshape(num_classes, num_classes).astype(np.int64)


def confusion_matrix_jax(y_true, y_pred, num_classes: int, *, mask=None):
  """Traceable (jit-friendly) confusion matrix for use inside a jitted evaluation step.

  Same conventions as `confusion_matrix` (labels < 0 and masked entries ignored), but built
  from one-hot products so that it runs on an accelerator and inside `jax.jit`; predictions
  outside [0, K) are silently dropped (no data-dependent errors under jit). The step returns
  these counts; the host sums them (e.g. with `ConfusionMatrix.add_matrix`) and divides.

  Args:
    y_true: (...) int array.
    y_pred: (...) int array, same shape.
    num_classes: K (static).
    mask: optional (...) bool array.

  Returns:
    (K, K) int32 jax array.
  """
  import jax.numpy as jnp  # Local import: the rest of this module is numpy-only.

  keep = y_true >= 0
  if mask is not None:
    keep = keep & mask.astype(bool)
  t = jnp.where(keep, y_true, -1).reshape(-1)
  # one_hot of -1 is the zero vector, which is what removes ignored entries from the counts.
  oh_t = _jax_one_hot(t, num_classes)
  oh_p = _jax_one_hot(y_pred.reshape(-1), num_classes)
  return jnp.einsum("nk,nl->kl", oh_t, oh_p).astype(jnp.int32)


def _jax_one_hot(x, k: int):
  """One-hot (N,) int -> (N, K) int32 with out-of-range values mapped to zeros."""
  import jax.numpy as jnp

  return (x[:, None] == jnp.arange(k)[None, :]).astype(jnp.int32)


class ConfusionMatrix:
  """Accumulates a confusion matrix over batches, folds or hosts.

  Example:
    cm = ConfusionMatrix(5)
    for batch in data:
      cm.add(batch["stage"], predictions, mask=batch_mask)
    summarize(cm.matrix, STAGE_NAMES)

  Folds are pooled with `merge` (or `+`), which sums counts: SleepMG reports metrics pooled
  over all five folds this way.

  Args:
    num_classes: K.
    matrix: optional initial (K, K) non-negative integer counts.

  Raises:
    ValueError: the matrix is not (K, K) or has negative / non-integer entries.
  """

  def __init__(self, num_classes: int, matrix: np.ndarray | None = None):
    self.num_classes = int(num_classes)
    if matrix is None:
      self._matrix = np.zeros((self.num_classes, self.num_classes), np.int64)
    else:
      self._matrix = _check_cm(matrix, self.num_classes).copy()

  @property
  def matrix(self) -> np.ndarray:
    """(K, K) int64 copy of the accumulated counts."""
    return self._matrix.copy()

  @property
  def count(self) -> int:
    """Number of examples accumulated."""
    return int(self._matrix.sum())

  def add(self, y_true, y_pred, *, mask=None) -> "ConfusionMatrix":
    """Adds a batch of labels (see `confusion_matrix` for shapes); returns self."""
    self._matrix += confusion_matrix(y_true, y_pred, self.num_classes, mask=mask)
    return self

  def add_matrix(self, cm) -> "ConfusionMatrix":
    """Adds (K, K) counts, e.g. from `confusion_matrix_jax` in a jitted step; returns self."""
    self._matrix += _check_cm(np.asarray(cm), self.num_classes)
    return self

  def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
    """Returns a new accumulator with the counts of both (pooling folds)."""
    if other.num_classes != self.num_classes:
      raise ValueError(f"cannot merge {self.num_classes}-class and {other.num_classes}-class matrices")
    return ConfusionMatrix(self.num_classes, self._matrix + other._matrix)

  def __add__(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
    return self.merge(other)

  def __repr__(self) -> str:
    return f"ConfusionMatrix(num_classes={self.num_classes}, count={self.count})"


def _check_cm(cm, num_classes: int | None = None) -> np.ndarray:
  cm = np.asarray(cm)
  if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
    raise ValueError(f"a confusion matrix must be square (K, K), got shape {cm.shape}")
  if num_classes is not None and cm.shape[0] != num_classes:
    raise ValueError(f"expected a ({num_classes}, {num_classes}) confusion matrix, got {cm.shape}")
  if cm.dtype.kind == "f":
    if not np.all(np.isfinite(cm)) or np.any(cm != np.round(cm)):
      raise ValueError("confusion matrix entries must be integer counts")
  elif cm.dtype.kind not in "iu":
    raise ValueError(f"confusion matrix must hold counts, got dtype {cm.dtype}")
  if np.any(cm < 0):
    raise ValueError("confusion matrix entries must be non-negative")
  return cm.astype(np.int64)


def _divide(num, den):
  """num / den with NaN where den == 0 (no warnings)."""
  num = np.asarray(num, np.float64)
  den = np.asarray(den, np.float64)
  out = np.full(np.broadcast(num, den).shape, np.nan)
  np.divide(num, den, out=out, where=den != 0)
  return out


def accuracy(cm) -> float:
  """Fraction of examples on the diagonal. cm: (K, K) counts. NaN when empty."""
  cm = _check_cm(cm)
  return float(_divide(np.trace(cm), cm.sum()))


def per_class_recall(cm) -> np.ndarray:
  """(K,) float64 recall (sensitivity) per true class; NaN for classes absent from the truth."""
  cm = _check_cm(cm)
  return _divide(np.diag(cm), cm.sum(axis=1))


def per_class_precision(cm) -> np.ndarray:
  """(K,) float64 precision per class; NaN for classes never predicted."""
  cm = _check_cm(cm)
  return _divide(np.diag(cm), cm.sum(axis=0))


def balanced_accuracy(cm) -> float:
  """Mean recall over the classes present in the truth (binary tasks included).

  Brodersen et al. 2010; `sklearn.metrics.balanced_accuracy_score`. cm: (K, K) counts.
  NaN when the matrix is empty.
  """
  recall = per_class_recall(cm)
  recall = recall[~np.isnan(recall)]
  return float(recall.mean()) if recall.size else math.nan


def per_class_f1(cm) -> np.ndarray:
  """(K,) float64 F1 = 2 TP / (2 TP + FP + FN) per class.

  NaN for a class absent from both truth and predictions (0/0); see the module docstring.
  """
  cm = _check_cm(cm)
  tp = np.diag(cm)
  fp = cm.sum(axis=0) - tp
  fn = cm.sum(axis=1) - tp
  return _divide(2 * tp, 2 * tp + fp + fn)


def macro_f1(cm) -> float:
  """Unweighted mean of the defined per-class F1 scores (classes absent everywhere excluded)."""
  f1 = per_class_f1(cm)
  f1 = f1[~np.isnan(f1)]
  return float(f1.mean()) if f1.size else math.nan


def weighted_f1(cm) -> float:
  """Per-class F1 averaged with weights = true-class support (`average="weighted"` in sklearn)."""
  cm = _check_cm(cm)
  support = cm.sum(axis=1)
  if support.sum() == 0:
    return math.nan
  f1 = np.nan_to_num(per_class_f1(cm), nan=0.0)  # NaN only where support is 0: weight 0.
  return float((f1 * support).sum() / support.sum())


def cohen_kappa(cm) -> float:
  """Cohen's kappa (Cohen 1960), (p_o - p_e) / (1 - p_e), from counts.

  Args:
    cm: (K, K) counts.

  Returns:
    kappa in [-1, 1]; NaN when the matrix is empty or p_e == 1.
  """
  cm = _check_cm(cm).astype(np.float64)
  n = cm.sum()
  if n == 0:
    return math.nan
  p_o = np.trace(cm) / n
  p_e = float((cm.sum(axis=0) * cm.sum(axis=1)).sum()) / (n * n)
  if np.isclose(p_e, 1.0, rtol=0.0, atol=1e-15):
    return math.nan
  return float((p_o - p_e) / (1.0 - p_e))


def summarize(cm, class_names: Sequence[str] | None = None) -> dict[str, float]:
  """All confusion-matrix metrics in one flat dict with keys ready to be namespaced.

  Keys: "accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "kappa", "count", and
  "f1/<name>" for every class (e.g. "f1/N3"), so that a trainer can write them as
  `eval/isruc_s3/f1/N3`.

  Args:
    cm: (K, K) counts (or a `ConfusionMatrix`).
    class_names: K names; defaults to "0".."K-1". Use `sleepjax.data.stages.STAGE_NAMES` for
      AASM staging (W, N1, N2, N3, REM).

  Returns:
    dict of Python floats ("count" is an int).

  Raises:
    ValueError: the matrix is malformed or `class_names` has the wrong length.
  """
  if isinstance(cm, ConfusionMatrix):
    cm = cm.matrix
  cm = _check_cm(cm)
  k = cm.shape[0]
  if class_names is None:
    class_names = [str(i) for i in range(k)]
  if len(class_names) != k:
    raise ValueError(f"{len(class_names)} class names for a {k}-class confusion matrix")
  out = {
      "accuracy": accuracy(cm),
      "balanced_accuracy": balanced_accuracy(cm),
      "macro_f1": macro_f1(cm),
      "weighted_f1": weighted_f1(cm),
      "kappa": cohen_kappa(cm),
      "count": int(cm.sum()),
  }
  for name, f1 in zip(class_names, per_class_f1(cm)):
    out[f"f1/{name}"] = float(f1)
  return out


# ----------------------------------------------------------------------------------------------
# Score-based metrics.


def _prepare_scores(y_true, scores, mask):
  """Validates and masks; returns (labels (N,) or (N, L), scores (N,) or (N, K/L))."""
  y_true = np.asarray(y_true)
  scores = np.asarray(scores, np.float64)
  if scores.shape[0] != y_true.shape[0]:
    raise ValueError(f"y_true has {y_true.shape[0]} examples but scores has {scores.shape[0]}")
  keep = np.ones(y_true.shape[0], bool)
  if y_true.ndim == 1:
    keep &= y_true >= 0
  if mask is not None:
    mask = np.asarray(mask, bool)
    if mask.shape != (y_true.shape[0],):
      raise ValueError(f"mask must have shape ({y_true.shape[0]},), got {mask.shape}")
    keep &= mask
  if not np.all(np.isfinite(scores[keep])):
    raise ValueError("scores contain NaN or inf")
  return y_true[keep], scores[keep]


def _one_vs_rest(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
  """Maps every supported task to binary columns: (N, L) {0,1} truth and (N, L) scores."""
  if y_true.ndim == 2:  # Multilabel: (N, L) {0, 1}.
    if scores.shape != y_true.shape:
      raise ValueError(f"multilabel scores shape {scores.shape} != y_true shape {y_true.shape}")
    if not np.all(np.isin(y_true, (0, 1))):
      raise ValueError("multilabel y_true must hold only 0 and 1")
    return y_true.astype(np.int64), scores
  if y_true.ndim != 1:
    raise ValueError(f"y_true must be (N,) or (N, L), got shape {y_true.shape}")
  y = _as_label_array("y_true", y_true)
  if scores.ndim == 1:  # Binary with the score of the positive class.
    if y.size and y.max() > 1:
      raise ValueError("1-D scores need binary labels in {0, 1}")
    return y[:, None], scores[:, None]
  if scores.ndim != 2:
    raise ValueError(f"scores must be (N,) or (N, K), got shape {scores.shape}")
  k = scores.shape[1]
  if y.size and y.max() >= k:
    raise ValueError(f"y_true holds class {y.max()} but scores has {k} columns")
  if k == 2:  # Binary given as two columns: the positive class is column 1.
    return y[:, None], scores[:, 1:2]
  return (y[:, None] == np.arange(k)[None, :]).astype(np.int64), scores


def _per_column(fn, name: str, y_bin: np.ndarray, s: np.ndarray) -> np.ndarray:
  out = np.full(y_bin.shape[1], np.nan)
  for j in range(y_bin.shape[1]):
    n_pos = int(y_bin[:, j].sum())
    if 0 < n_pos < y_bin.shape[0]:
      out[j] = fn(y_bin[:, j], s[:, j])
    else:
      warnings.warn(
          f"{name} is undefined for column {j}: only one class present "
          f"({n_pos} positives of {y_bin.shape[0]}); reported as NaN",
          UndefinedMetricWarning, stacklevel=3)
  return out


def _macro(values: np.ndarray) -> float:
  values = values[~np.isnan(values)]
  return float(values.mean()) if values.size else math.nan


def auroc_per_class(y_true, scores, *, mask=None) -> np.ndarray:
  """Area under the ROC curve per class (one-vs-rest) or per label.

  Args:
    y_true: (N,) int labels (binary or K classes; < 0 ignored) or (N, L) {0, 1} multilabel.
    scores: (N,) positive-class score (binary), (N, K) class scores (softmax or logits: AUROC
      only needs the ranking), or (N, L) per-label scores.
    mask: optional (N,) bool; False examples are ignored.

  Returns:
    (L,) float64: one entry for a binary task, K for multiclass, L for multilabel; NaN (with an
    `UndefinedMetricWarning`) where the column holds a single class.

  Raises:
    ValueError: shapes or labels are inconsistent, or scores are not finite.
  """
  y, s = _prepare_scores(y_true, scores, mask)
  y_bin, s = _one_vs_rest(y, s)
  return _per_column(sk_metrics.roc_auc_score, "AUROC", y_bin, s)


def auroc(y_true, scores, *, mask=None) -> float:
  """AUROC: binary, or the unweighted one-vs-rest macro mean over classes/labels.

  Matches `sklearn.metrics.roc_auc_score(..., multi_class="ovr", average="macro")` when every
  class is present; undefined (single-class) columns are excluded from the mean. Shapes as in
  `auroc_per_class`. Returns NaN when no column is defined.
  """
  return _macro(auroc_per_class(y_true, scores, mask=mask))


def auprc_per_class(y_true, scores, *, mask=None) -> np.ndarray:
  """Area under the precision-recall curve (average precision, step-wise, not interpolated).

  Uses `sklearn.metrics.average_precision_score` per column. Shapes, NaN policy and errors as
  in `auroc_per_class`.
  """
  y, s = _prepare_scores(y_true, scores, mask)
  y_bin, s = _one_vs_rest(y, s)
  return _per_column(sk_metrics.average_precision_score, "AUPRC", y_bin, s)


def auprc(y_true, scores, *, mask=None) -> float:
  """AUPRC: binary, or the unweighted one-vs-rest macro mean (NaN columns excluded)."""
  return _macro(auprc_per_class(y_true, scores, mask=mask))


def best_f1_thresholds(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
  """Per-label decision threshold that maximises F1 (multilabel BCE tasks).

  The ECG transfer protocol (docs/specification.md §3.3; CODE-15 -> PTB-XL/G12EC/CPSC)
  picks, for every label, the threshold with the best F1; choose it on validation data and
  apply it to the test set with `multilabel_f1`.

  Args:
    y_true: (N, L) {0, 1} labels.
    scores: (N, L) float scores (probabilities or logits; a label is predicted when
      score >= threshold).

  Returns:
    thresholds: (L,) float64; +inf for a label without positives (never predict it).
    f1: (L,) float64 best F1 at that threshold; NaN for a label without positives.

  Raises:
    ValueError: shapes differ or labels are not 0/1.
  """
  y, s = _prepare_scores(y_true, scores, None)
  if y.ndim != 2:
    raise ValueError(f"best_f1_thresholds needs (N, L) multilabel y_true, got shape {y.shape}")
  y_bin, s = _one_vs_rest(y, s)
  thresholds = np.full(y_bin.shape[1], np.inf)
  best = np.full(y_bin.shape[1], np.nan)
  for j in range(y_bin.shape[1]):
    if y_bin[:, j].sum() == 0:
      warnings.warn(f"label {j} has no positives: threshold set to +inf, F1 NaN",
                    UndefinedMetricWarning, stacklevel=2)
      continue
    precision, recall, thr = sk_metrics.precision_recall_curve(y_bin[:, j], s[:, j])
    # The curve's last point (precision 1, recall 0) has no threshold; drop it.
    p, r = precision[:-1], recall[:-1]
    f1 = _divide(2 * p * r, p + r)
    f1 = np.nan_to_num(f1, nan=0.0)
    i = int(np.argmax(f1))
    thresholds[j], best[j] = thr[i], f1[i]
  return thresholds, best


def multilabel_f1(y_true, scores, thresholds) -> dict[str, np.ndarray | float]:
  """Per-label and macro F1 after thresholding each label's score (score >= threshold).

  Args:
    y_true: (N, L) {0, 1}.
    scores: (N, L) float.
    thresholds: (L,) float, e.g. from `best_f1_thresholds` on validation data.

  Returns:
    {"f1": (L,) per-label F1 (NaN when a label has neither positives nor predictions),
     "macro_f1": mean of the defined per-label F1s}.
  """
  y, s = _prepare_scores(y_true, scores, None)
  if y.ndim != 2:
    raise ValueError(f"multilabel_f1 needs (N, L) y_true, got shape {y.shape}")
  y_bin, s = _one_vs_rest(y, s)
  thresholds = np.asarray(thresholds, np.float64)
  if thresholds.shape != (y_bin.shape[1],):
    raise ValueError(f"thresholds must have shape ({y_bin.shape[1]},), got {thresholds.shape}")
  pred = s >= thresholds[None, :]
  tp = (pred & (y_bin == 1)).sum(0)
  fp = (pred & (y_bin == 0)).sum(0)
  fn = (~pred & (y_bin == 1)).sum(0)
  f1 = _divide(2 * tp, 2 * tp + fp + fn)
  return {"f1": f1, "macro_f1": _macro(f1)}


# ----------------------------------------------------------------------------------------------
# Aggregation over seeds / folds.


def mean_std(runs: Sequence[Mapping[str, float]], *, ddof: int = 1) -> dict[str, dict[str, float]]:
  """Mean and standard deviation of each metric over runs (seeds, folds, channel draws).

  Args:
    runs: one flat metrics dict per run (e.g. from `summarize`); keys may differ between runs.
    ddof: delta degrees of freedom of the std (1: sample std, the usual "mean +- std over 5
      seeds"; 0: population std, numpy's default).

  Returns:
    {key: {"mean": float, "std": float, "n": int}} over the runs where the value is a finite
    number (NaN values, e.g. an undefined per-class F1, are skipped and reduce n); std is NaN
    when n <= ddof. Non-numeric values (arrays, strings) are skipped.
  """
  values: dict[str, list[float]] = {}
  for run in runs:
    for key, v in run.items():
      if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        continue
      values.setdefault(key, [])
      if math.isfinite(float(v)):
        values[key].append(float(v))
  out = {}
  for key, vs in values.items():
    a = np.asarray(vs, np.float64)
    n = a.size
    out[key] = {
        "mean": float(a.mean()) if n else math.nan,
        "std": float(a.std(ddof=ddof)) if n > ddof else math.nan,
        "n": int(n),
    }
  return out


def format_mean_std(stats: Mapping[str, float], fmt: str = ".3f") -> str:
  """'0.781 ± 0.012' from one entry of `mean_std` (just the mean when std is NaN)."""
  mean, std = stats["mean"], stats["std"]
  if math.isnan(std):
    return format(mean, fmt)
  return f"{format(mean, fmt)} ± {format(std, fmt)}"
