"""Cross-checks of sleepjax.evaluation.metrics against scikit-learn on random data."""

import math
import warnings
import zlib

import numpy as np
import pytest
from sklearn import metrics as skm

from sleepjax.data.stages import STAGE_NAMES
from sleepjax.evaluation import metrics


def _random_labels(rng, n, k, *, drop=()):
  """Random labels in [0, k) without the classes in `drop`, correlated truth/prediction."""
  classes = np.array([c for c in range(k) if c not in drop])
  y = rng.choice(classes, size=n)
  flip = rng.random(n) < 0.4
  p = np.where(flip, rng.choice(classes, size=n), y)
  return y, p


CASES = [
    # (name, n, k, classes dropped from truth, classes dropped from predictions)
    ("five_stages", 300, 5, (), ()),
    ("binary", 200, 2, (), ()),
    ("missing_in_both", 250, 5, (3,), (3,)),
    ("missing_in_truth_only", 250, 5, (1,), ()),
    ("missing_in_pred_only", 250, 5, (), (4,)),
]


def _case(rng, n, k, drop_true, drop_pred):
  y, _ = _random_labels(rng, n, k, drop=drop_true)
  _, p = _random_labels(rng, n, k, drop=drop_pred)
  # Keep truth and prediction correlated, but respect the prediction's dropped classes.
  agree = (rng.random(n) < 0.6) & ~np.isin(y, drop_pred)
  p = np.where(agree, y, p)
  return y, p


@pytest.mark.parametrize("name,n,k,drop_true,drop_pred", CASES)
def test_metrics_match_sklearn(name, n, k, drop_true, drop_pred):
  rng = np.random.default_rng(zlib.crc32(name.encode()))
  y, p = _case(rng, n, k, drop_true, drop_pred)
  cm = metrics.confusion_matrix(y, p, k)
  labels = list(range(k))
  np.testing.assert_array_equal(cm, skm.confusion_matrix(y, p, labels=labels))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # sklearn warns about absent classes; values are what matter.
    assert metrics.accuracy(cm) == pytest.approx(skm.accuracy_score(y, p), abs=1e-12)
    assert metrics.balanced_accuracy(cm) == pytest.approx(skm.balanced_accuracy_score(y, p), abs=1e-12)
    # sklearn's default call averages over labels present in either array: our definition.
    assert metrics.macro_f1(cm) == pytest.approx(skm.f1_score(y, p, average="macro"), abs=1e-12)
    assert metrics.macro_f1(cm) == pytest.approx(
        skm.f1_score(y, p, labels=labels, average="macro", zero_division=np.nan), abs=1e-12)
    assert metrics.weighted_f1(cm) == pytest.approx(
        skm.f1_score(y, p, labels=labels, average="weighted"), abs=1e-12)
    np.testing.assert_allclose(
        metrics.per_class_f1(cm),
        skm.f1_score(y, p, labels=labels, average=None, zero_division=np.nan), atol=1e-12)
    np.testing.assert_allclose(
        metrics.per_class_recall(cm),
        skm.recall_score(y, p, labels=labels, average=None, zero_division=np.nan), atol=1e-12)
    np.testing.assert_allclose(
        metrics.per_class_precision(cm),
        skm.precision_score(y, p, labels=labels, average=None, zero_division=np.nan), atol=1e-12)
    assert metrics.cohen_kappa(cm) == pytest.approx(skm.cohen_kappa_score(y, p), abs=1e-12)


def test_absent_class_is_nan_and_excluded_from_macro():
  y = np.array([0, 0, 1, 1, 2, 2])
  p = np.array([0, 1, 1, 1, 2, 0])
  cm = metrics.confusion_matrix(y, p, 5)  # Classes 3 and 4 absent everywhere.
  f1 = metrics.per_class_f1(cm)
  assert np.isnan(f1[3]) and np.isnan(f1[4])
  assert metrics.macro_f1(cm) == pytest.approx(np.mean(f1[:3]))
  # sklearn with labels=range(5) and its default zero_division counts them as 0: we do not.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    zero_counted = skm.f1_score(y, p, labels=range(5), average="macro")
  assert metrics.macro_f1(cm) > zero_counted


def test_balanced_accuracy_binary_is_not_plain_accuracy():
  # 90 negatives all right, 10 positives all wrong: accuracy 0.9, balanced accuracy 0.5.
  y = np.array([0] * 90 + [1] * 10)
  p = np.zeros(100, int)
  cm = metrics.confusion_matrix(y, p, 2)
  assert metrics.accuracy(cm) == pytest.approx(0.9)
  assert metrics.balanced_accuracy(cm) == pytest.approx(0.5)


def test_mask_and_negative_labels_are_ignored():
  rng = np.random.default_rng(0)
  y, p = _random_labels(rng, 400, 5)
  y = y.copy()
  y[::7] = -1  # Unscored epochs.
  mask = rng.random(400) < 0.8
  cm = metrics.confusion_matrix(y, p, 5, mask=mask)
  keep = mask & (y >= 0)
  np.testing.assert_array_equal(cm, skm.confusion_matrix(y[keep], p[keep], labels=range(5)))
  assert cm.sum() == keep.sum()


def test_confusion_matrix_multidimensional_labels():
  rng = np.random.default_rng(1)
  y, p = _random_labels(rng, 60, 5)
  cm = metrics.confusion_matrix(y.reshape(6, 10), p.reshape(6, 10), 5)
  np.testing.assert_array_equal(cm, metrics.confusion_matrix(y, p, 5))


def test_accumulator_batches_and_pooled_folds_equal_one_shot():
  rng = np.random.default_rng(2)
  y, p = _random_labels(rng, 500, 5)
  folds = []
  for idx in np.array_split(np.arange(500), 5):
    acc = metrics.ConfusionMatrix(5)
    for batch in np.array_split(idx, 3):
      acc.add(y[batch], p[batch])
    folds.append(acc)
  pooled = folds[0]
  for f in folds[1:]:
    pooled = pooled + f
  np.testing.assert_array_equal(pooled.matrix, metrics.confusion_matrix(y, p, 5))
  assert pooled.count == 500
  # Pooling counts is not the mean of per-fold metrics in general; the pooled value is sklearn's.
  assert metrics.cohen_kappa(pooled.matrix) == pytest.approx(skm.cohen_kappa_score(y, p))
  with pytest.raises(ValueError, match="cannot merge"):
    pooled.merge(metrics.ConfusionMatrix(3))


def test_jax_confusion_matrix_matches_numpy_under_jit():
  import jax
  import jax.numpy as jnp

  rng = np.random.default_rng(3)
  y, p = _random_labels(rng, 64, 5)
  y[:5] = -1
  mask = rng.random(64) < 0.7
  fn = jax.jit(lambda a, b, m: metrics.confusion_matrix_jax(a, b, 5, mask=m))
  cm = np.asarray(fn(jnp.asarray(y), jnp.asarray(p), jnp.asarray(mask)))
  np.testing.assert_array_equal(cm, metrics.confusion_matrix(y, p, 5, mask=mask))
  acc = metrics.ConfusionMatrix(5).add_matrix(cm).add_matrix(cm)
  assert acc.count == 2 * cm.sum()


def test_summarize_keys_and_values():
  rng = np.random.default_rng(4)
  y, p = _random_labels(rng, 300, 5)
  cm = metrics.confusion_matrix(y, p, 5)
  s = metrics.summarize(metrics.ConfusionMatrix(5, cm), STAGE_NAMES)
  assert set(s) == {"accuracy", "balanced_accuracy", "macro_f1", "weighted_f1", "kappa", "count",
                    "f1/W", "f1/N1", "f1/N2", "f1/N3", "f1/REM"}
  np.testing.assert_allclose([s[f"f1/{n}"] for n in STAGE_NAMES],
                             skm.f1_score(y, p, average=None, labels=range(5)))
  assert s["count"] == 300
  with pytest.raises(ValueError, match="class names"):
    metrics.summarize(cm, ["a", "b"])


def test_degenerate_confusion_matrices():
  empty = np.zeros((5, 5), int)
  assert math.isnan(metrics.accuracy(empty))
  assert math.isnan(metrics.cohen_kappa(empty))
  assert math.isnan(metrics.macro_f1(empty))
  assert math.isnan(metrics.balanced_accuracy(empty))
  one_class = np.zeros((3, 3), int)
  one_class[1, 1] = 10
  assert math.isnan(metrics.cohen_kappa(one_class))  # p_e = 1.
  assert metrics.accuracy(one_class) == 1.0


@pytest.mark.parametrize("bad,match", [
    (np.zeros((2, 3)), "square"),
    (-np.eye(3), "non-negative"),
    (np.eye(3) * 0.5, "integer"),
])
def test_malformed_confusion_matrix_raises(bad, match):
  with pytest.raises(ValueError, match=match):
    metrics.accuracy(bad)


def test_confusion_matrix_input_errors():
  with pytest.raises(ValueError, match="num_classes=3"):
    metrics.confusion_matrix([0, 3], [0, 1], 3)
  with pytest.raises(ValueError, match="outside"):
    metrics.confusion_matrix([0, 1], [0, 5], 3)
  with pytest.raises(ValueError, match="shape"):
    metrics.confusion_matrix([0, 1], [0], 3)
  with pytest.raises(ValueError, match="integer"):
    metrics.confusion_matrix([0.5, 1], [0, 1], 3)


# Score-based metrics.


def test_auroc_auprc_binary_match_sklearn():
  rng = np.random.default_rng(5)
  y = rng.integers(0, 2, 200)
  s = y + rng.normal(0, 1.0, 200)
  assert metrics.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
  assert metrics.auprc(y, s) == pytest.approx(skm.average_precision_score(y, s))
  # Two-column scores: column 1 is the positive class.
  two = np.stack([-s, s], axis=1)
  assert metrics.auroc(y, two) == pytest.approx(skm.roc_auc_score(y, s))


def test_auroc_auprc_multiclass_ovr_macro_match_sklearn():
  rng = np.random.default_rng(6)
  y = rng.integers(0, 5, 400)
  logits = rng.normal(0, 1, (400, 5))
  logits[np.arange(400), y] += 1.0
  prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  assert metrics.auroc(y, prob) == pytest.approx(
      skm.roc_auc_score(y, prob, multi_class="ovr", average="macro"))
  onehot = np.eye(5)[y]
  assert metrics.auprc(y, prob) == pytest.approx(
      skm.average_precision_score(onehot, prob, average="macro"))
  np.testing.assert_allclose(metrics.auroc_per_class(y, prob),
                             skm.roc_auc_score(onehot, prob, average=None))


def test_auroc_mask_and_unscored():
  rng = np.random.default_rng(7)
  y = rng.integers(0, 2, 300)
  s = y + rng.normal(0, 1.0, 300)
  mask = rng.random(300) < 0.5
  y_un = y.copy()
  y_un[:20] = -1
  keep = mask & (y_un >= 0)
  assert metrics.auroc(y_un, s, mask=mask) == pytest.approx(skm.roc_auc_score(y[keep], s[keep]))


def test_auroc_one_class_is_nan_with_warning():
  y = np.zeros(20, int)
  s = np.linspace(0, 1, 20)
  with pytest.warns(metrics.UndefinedMetricWarning, match="only one class"):
    assert math.isnan(metrics.auroc(y, s))
  # Multiclass with a class absent: that class is NaN and left out of the macro mean.
  rng = np.random.default_rng(8)
  y = rng.choice([0, 1, 3], 100)
  prob = rng.random((100, 4))
  with pytest.warns(metrics.UndefinedMetricWarning):
    per = metrics.auroc_per_class(y, prob)
  assert np.isnan(per[2]) and not np.isnan(per[[0, 1, 3]]).any()
  with pytest.warns(metrics.UndefinedMetricWarning):
    assert metrics.auroc(y, prob) == pytest.approx(np.nanmean(per))


def test_multilabel_auroc_and_best_f1_thresholds():
  rng = np.random.default_rng(9)
  y = (rng.random((300, 6)) < 0.3).astype(int)
  s = y * 0.8 + rng.normal(0, 0.5, (300, 6))
  assert metrics.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s, average="macro"))
  thr, best = metrics.best_f1_thresholds(y, s)
  for j in range(6):
    # Brute force over every candidate threshold: nothing beats the chosen one.
    f1s = [skm.f1_score(y[:, j], s[:, j] >= t) for t in np.unique(s[:, j])]
    assert best[j] == pytest.approx(max(f1s))
    assert skm.f1_score(y[:, j], s[:, j] >= thr[j]) == pytest.approx(best[j])
  res = metrics.multilabel_f1(y, s, thr)
  np.testing.assert_allclose(res["f1"], best)
  assert res["macro_f1"] == pytest.approx(skm.f1_score(y, s >= thr[None], average="macro"))


def test_best_f1_threshold_label_without_positives():
  y = np.zeros((10, 2), int)
  y[:5, 0] = 1
  s = np.random.default_rng(10).random((10, 2))
  with pytest.warns(metrics.UndefinedMetricWarning, match="no positives"):
    thr, best = metrics.best_f1_thresholds(y, s)
  assert thr[1] == np.inf and np.isnan(best[1])


def test_score_input_errors():
  with pytest.raises(ValueError, match="examples"):
    metrics.auroc([0, 1, 1], [0.1, 0.2])
  with pytest.raises(ValueError, match="NaN"):
    metrics.auroc([0, 1], [0.1, np.nan])
  with pytest.raises(ValueError, match="columns"):
    metrics.auroc([0, 4, 1], np.zeros((3, 3)))


# Aggregation.


def test_mean_std_over_seeds():
  runs = [{"kappa": 0.7, "f1/N1": 0.3}, {"kappa": 0.8, "f1/N1": float("nan")}, {"kappa": 0.9}]
  out = metrics.mean_std(runs)
  assert out["kappa"]["mean"] == pytest.approx(0.8)
  assert out["kappa"]["std"] == pytest.approx(np.std([0.7, 0.8, 0.9], ddof=1))
  assert out["kappa"]["n"] == 3
  assert out["f1/N1"] == {"mean": pytest.approx(0.3), "std": out["f1/N1"]["std"], "n": 1}
  assert math.isnan(out["f1/N1"]["std"])
  assert metrics.format_mean_std(out["kappa"]) == "0.800 ± 0.100"
  assert metrics.mean_std(runs, ddof=0)["kappa"]["std"] == pytest.approx(np.std([0.7, 0.8, 0.9]))
