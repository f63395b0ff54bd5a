"""Tests of the linear probe, cross-modal retrieval and the report writers."""

import csv
import json

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sleepjax.data.stages import STAGE_NAMES
from sleepjax.evaluation import metrics
from sleepjax.evaluation import probe
from sleepjax.evaluation import plots
from sleepjax.evaluation import report


def _clusters(rng, n, k=5, d=16, spread=1.0, offset=0.0):
  centers = np.random.default_rng(123).normal(0, 3, (k, d))
  y = rng.integers(0, k, n)
  x = centers[y] + rng.normal(0, spread, (n, d)) + offset
  return x.astype(np.float32), y.astype(np.int32)


# Linear probe.


def test_linear_probe_matches_sklearn_pipeline_fitted_on_train_only():
  rng = np.random.default_rng(0)
  # Different scales per feature make the standardisation matter.
  scale = np.logspace(-2, 2, 16)
  tx, ty = _clusters(rng, 400, spread=2.5)
  vx, vy = _clusters(rng, 200, spread=2.5)
  tx, vx = tx * scale, (vx + 0.5) * scale  # A shifted test set: test statistics must not be used.
  out = probe.linear_probe(tx, ty, vx, vy, seed=0, C=0.5, max_iter=500, class_names=STAGE_NAMES)

  scaler = StandardScaler().fit(tx)
  clf = LogisticRegression(C=0.5, max_iter=500, random_state=0).fit(scaler.transform(tx), ty)
  pred = clf.predict(scaler.transform(vx))
  np.testing.assert_array_equal(out["predictions"], pred)
  np.testing.assert_allclose(out["probabilities"], clf.predict_proba(scaler.transform(vx)), atol=1e-12)
  np.testing.assert_array_equal(out["confusion_matrix"], skm.confusion_matrix(vy, pred, labels=range(5)))
  assert out["accuracy"] == pytest.approx(skm.accuracy_score(vy, pred))
  assert out["macro_f1"] == pytest.approx(skm.f1_score(vy, pred, average="macro"))
  assert out["kappa"] == pytest.approx(skm.cohen_kappa_score(vy, pred))
  np.testing.assert_allclose([out[f"f1/{n}"] for n in STAGE_NAMES],
                             skm.f1_score(vy, pred, average=None, labels=range(5)))
  # A scaler fitted on the (shifted) test set would give different predictions here.
  leaky = clf.predict_proba(StandardScaler().fit_transform(vx))
  assert np.abs(leaky - out["probabilities"]).max() > 0.1


def test_linear_probe_separable_clusters_are_learned():
  rng = np.random.default_rng(1)
  tx, ty = _clusters(rng, 300, spread=0.5)
  vx, vy = _clusters(rng, 300, spread=0.5)
  out = probe.linear_probe(tx, ty, vx, vy, seed=0)
  assert out["accuracy"] > 0.95 and out["kappa"] > 0.9
  # Random labels carry no information: near chance (0.2 for 5 classes).
  out_rand = probe.linear_probe(tx, rng.permutation(ty), vx, vy, seed=0)
  assert out_rand["accuracy"] < 0.45


def test_linear_probe_drops_unscored_and_handles_class_missing_from_train():
  rng = np.random.default_rng(2)
  tx, ty = _clusters(rng, 300, k=5, spread=0.5)
  vx, vy = _clusters(rng, 100, k=5, spread=0.5)
  keep = ty != 3  # No N3 in training.
  tx, ty = tx[keep], ty[keep].copy()
  ty[:10] = -1
  vy = vy.copy()
  vy[:7] = -1
  out = probe.linear_probe(tx, ty, vx, vy, num_classes=5, class_names=STAGE_NAMES)
  assert out["count"] == 93
  assert out["probabilities"].shape == (93, 5)
  np.testing.assert_array_equal(out["probabilities"][:, 3], 0.0)
  assert not np.any(out["predictions"] == 3)
  assert out["f1/N3"] == 0.0  # N3 is in the truth but never predicted: F1 is defined and 0.


@pytest.mark.parametrize("kwargs,match", [
    (dict(train_x=np.zeros((4, 3)), train_y=np.zeros(5, int)), "train_y must have shape"),
    (dict(train_x=np.zeros(4), train_y=np.zeros(4, int)), r"train_x must be \(N, D\)"),
    (dict(train_x=np.zeros((4, 3)), train_y=np.zeros(4, int)), "at least two classes"),
    (dict(train_x=np.full((4, 3), np.nan), train_y=np.array([0, 1, 0, 1])), "NaN"),
    (dict(train_x=np.zeros((4, 3)), train_y=np.array([0, 1, 0, 1.0])), "integer"),
    (dict(train_x=np.zeros((4, 2)), train_y=np.array([0, 1, 0, 1])), "D=2"),
])
def test_linear_probe_input_errors(kwargs, match):
  args = dict(test_x=np.zeros((3, 3)), test_y=np.array([0, 1, 0]))
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    probe.linear_probe(args["train_x"], args["train_y"], args["test_x"], args["test_y"])


# Retrieval.


def _retrieval_reference(emb):
  """Plain loops: modality i vs the unnormalised mean of the others' unit vectors."""
  mods = list(emb)
  z = {m: emb[m] / np.linalg.norm(emb[m], axis=1, keepdims=True) for m in mods}
  n = next(iter(emb.values())).shape[0]
  out = {}
  for i in mods:
    target = sum(z[j] for j in mods if j != i) / (len(mods) - 1)
    hits = 0
    for a in range(n):
      sims = [float(np.dot(z[i][a], target[b])) for b in range(n)]
      hits += int(np.argmax(sims) == a)
    out[i] = hits / n
  return out


def test_retrieval_matches_loop_reference_and_chunking():
  rng = np.random.default_rng(3)
  shared = rng.normal(size=(60, 8))
  emb = {m: shared + rng.normal(0, s, (60, 8)) for m, s in [("bas", 1.0), ("ecg", 1.5), ("resp", 2.0)]}
  ref = _retrieval_reference(emb)
  assert probe.retrieval_top1(emb) == pytest.approx(ref)
  assert probe.retrieval_top1(emb, chunk_size=7) == pytest.approx(ref)
  # Noisier modalities retrieve worse, and everything is well above chance (1/60).
  assert ref["bas"] > ref["resp"] > 1 / 60


def test_retrieval_known_answers():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(50, 16))
  assert probe.retrieval_top1({"a": x, "b": 3 * x}) == {"a": 1.0, "b": 1.0}  # Scale-invariant.
  rand = probe.retrieval_top1({"a": rng.normal(size=(500, 16)), "b": rng.normal(size=(500, 16))})
  assert all(v < 0.02 for v in rand.values())  # Chance is 1/500.


def test_retrieval_target_is_not_renormalised():
  # For "a", candidate 0 is the mean of two unit vectors 60 degrees either side of (1, 0): it
  # points exactly at a[0] but has length 0.5. Candidate 1 is a unit vector 30 degrees away.
  # Unnormalised (docs/specification.md §2.2: zbar is a plain mean), a[0] . t1 = 0.87 > a[0] . t0 = 0.5: a miss.
  # Renormalising the targets would make it a hit, so "a" scores 0.5 here and not 1.0.
  c60, s60, c30, s30 = 0.5, np.sqrt(3) / 2, np.sqrt(3) / 2, 0.5
  a = np.array([[1.0, 0.0], [c30, s30]])
  b = np.array([[c60, s60], [c30, s30]])
  c = np.array([[c60, -s60], [c30, s30]])
  out = probe.retrieval_top1({"a": a, "b": b, "c": c})
  assert out["a"] == 0.5
  assert out == pytest.approx(_retrieval_reference({"a": a, "b": b, "c": c}))


def test_retrieval_input_errors():
  with pytest.raises(ValueError, match="two modalities"):
    probe.retrieval_top1({"a": np.zeros((3, 2))})
  with pytest.raises(ValueError, match="expected"):
    probe.retrieval_top1({"a": np.ones((3, 2)), "b": np.ones((4, 2))})
  with pytest.raises(ValueError, match="NaN"):
    probe.retrieval_top1({"a": np.ones((3, 2)), "b": np.full((3, 2), np.nan)})


# Reports (report.py is tested here: it formats what the probe and metrics produce).


def test_format_table_exact():
  rows = [{"model": "SleepMG", "kappa": 0.72641, "n": 10}, {"model": "FeatureNet", "kappa": float("nan")}]
  table = report.format_table(rows, ["model", "kappa", "n"], ".3f")
  assert table == (
      "| model      | kappa |   n |\n"
      "|------------|------:|----:|\n"
      "| SleepMG    | 0.726 |  10 |\n"
      "| FeatureNet |   nan |     |"
  )
  assert report.format_table([{"a|b": "x|y"}]).splitlines()[2] == "| x\\|y |"


def test_write_results_round_trip(tmp_path):
  cm = metrics.confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], 3)
  rows = [dict(model="probe", **metrics.summarize(cm, ["a", "b", "c"]), confusion_matrix=cm)]
  rows[0]["f1/a"] = float("nan")
  paths = report.write_results(tmp_path / "out", "probe_results", rows)
  assert {p.name for p in paths.values()} == {"probe_results.md", "probe_results.csv", "probe_results.json"}
  loaded = json.loads(paths["json"].read_text())
  assert loaded[0]["confusion_matrix"] == cm.tolist()
  assert loaded[0]["kappa"] == pytest.approx(metrics.cohen_kappa(cm))
  assert loaded[0]["f1/a"] is None  # NaN -> null keeps strict JSON valid.
  with open(paths["csv"]) as f:
    csv_rows = list(csv.DictReader(f))
  assert "confusion_matrix" not in csv_rows[0]  # Arrays only go to JSON.
  assert float(csv_rows[0]["macro_f1"]) == pytest.approx(metrics.macro_f1(cm))
  assert csv_rows[0]["f1/a"] == ""
  assert "| probe " in paths["md"].read_text()
  with pytest.raises(ValueError, match="file stem"):
    report.write_results(tmp_path, "a/b", rows)


def test_plot_confusion_writes_png(tmp_path):
  cm = metrics.confusion_matrix(np.arange(50) % 5, (np.arange(50) * 3) % 5, 5)
  path = plots.confusion_matrix(cm, STAGE_NAMES, tmp_path / "plots" / "cm.png", title="fold 1")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  plots.confusion_matrix(np.zeros((5, 5), int), STAGE_NAMES, tmp_path / "empty.png", normalize=True)
  with pytest.raises(ValueError, match="class names"):
    plots.confusion_matrix(cm, ["W"], tmp_path / "bad.png")
