"""Multilabel transfer (PTB-XL / CODE-15 ECG labels): BCE head, validation thresholds, metrics, `:ptbxl_tiny`.

In-memory tests use a tiny encoder (E=16, one layer, 32-sample patches) and ECG-like windows whose labels
each add one sinusoid, so every label is learnable from the signal.
"""

import json
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from configs import transfer as transfer_config
from sleepjax import losses
from sleepjax.data import downstream_pipeline as dpipe
from sleepjax.data import errors
from sleepjax.evaluation import evaluators
from sleepjax.train import finetune
from tests.train.conftest import TINY_TRANSFER_ENCODER
from tests.train.conftest import apply_overrides

SFREQ = 128.0
N_TIMES = 256  # 2 s: eight 32-sample tokens.
N_CH = 2
LABELS = ("slow", "fast", "noisy")
FREQS = (3.0, 25.0)


def _multilabel_source(n_subjects: int, per_subject: int, seed: int, prefix: str) -> list[dict]:
  """Windows in uV: label 0 adds a 3-Hz wave, label 1 a 25-Hz wave, label 2 broadband noise."""
  rng = np.random.default_rng(seed)
  t = np.arange(N_TIMES) / SFREQ
  out = []
  for s in range(n_subjects):
    for i in range(per_subject):
      y = np.array([(i + s) % 2, (i // 2 + s) % 2, (i // 4) % 2], np.int32)
      x = rng.normal(0, 50.0, (N_CH, N_TIMES)) * (1 + 8 * y[2])
      for j, f in enumerate(FREQS):
        x += y[j] * 800.0 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))[None]
      out.append({"signals": {"ecg": x.astype(np.float32)},
                  "positions": {"ecg": np.full((N_CH, 3), np.nan, np.float32)},
                  "labels": y, "subject_id": f"{prefix}{s:03d}".encode()})
  return out


@pytest.fixture(scope="module")
def sources():
  return {"train": _multilabel_source(4, 16, 0, "TR"), "validation": _multilabel_source(2, 16, 1, "VA"),
          "test": _multilabel_source(2, 16, 2, "TE")}


def _config(**overrides):
  c = transfer_config.get_config("ptbxl_tiny")
  c.unlock()
  c.model.encoder.update(TINY_TRANSFER_ENCODER)
  c.data.sfreq = SFREQ
  c.data.class_names = LABELS
  c.optimizer.learning_rate = 3e-3
  c.batch_size = 16
  c.eval_batch_size = 32
  c.ablation.enabled = False
  return apply_overrides(c, overrides)


def test_multilabel_bce_equals_numpy_formula():
  logits = np.array([[2.0, -1.0, 0.5], [-3.0, 0.0, 4.0], [9.0, 9.0, 9.0]], np.float32)
  labels = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0]], np.int32)
  mask = np.array([True, True, False])  # The third row is padding: it must not count.
  eps = 0.1
  t = labels * (1 - eps) + eps / 2  # BCE smoothing: 1 -> 0.95, 0 -> 0.05.
  p = 1 / (1 + np.exp(-logits.astype(np.float64)))
  per_example = np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=1)
  got = losses.multilabel_bce(logits, labels, mask=mask, label_smoothing=eps, reduction="none")
  np.testing.assert_allclose(np.asarray(got), [*per_example[:2], 0.0], rtol=1e-5)
  mean = losses.multilabel_bce(logits, labels, mask=mask, label_smoothing=eps)
  assert float(mean) == pytest.approx(per_example[:2].mean(), rel=1e-5)
  # Unsmoothed: the plain BCE, which sklearn's log_loss gives per label.
  plain = float(losses.multilabel_bce(logits[:2], labels[:2]))
  ref = np.mean([sk_metrics.log_loss(labels[:2, j], p[:2, j], labels=[0, 1]) for j in range(3)])
  assert plain == pytest.approx(ref, rel=1e-5)
  with pytest.raises(ValueError, match="shape"):
    losses.multilabel_bce(logits, labels[:, :2])


def test_multilabel_metrics_match_sklearn_and_thresholds_come_from_validation():
  rng = np.random.default_rng(0)
  y_val, y_test = rng.integers(0, 2, (40, 4)), rng.integers(0, 2, (50, 4))
  lg_val = rng.normal(size=(40, 4)) + 1.5 * y_val
  lg_test = rng.normal(size=(50, 4)) + 1.5 * y_test
  names = ["a", "b", "c", "d"]
  thr = evaluators.validation_thresholds(y_val, lg_val)
  p_val, p_test = evaluators.sigmoid(lg_val), evaluators.sigmoid(lg_test)
  np.testing.assert_allclose(p_test, 1 / (1 + np.exp(-lg_test)), rtol=1e-12)
  for j in range(4):  # Brute force: the validation score with the best F1 for label j.
    f1s = [sk_metrics.f1_score(y_val[:, j], p_val[:, j] >= c) for c in p_val[:, j]]
    assert sk_metrics.f1_score(y_val[:, j], p_val[:, j] >= thr[j]) == pytest.approx(max(f1s))
  m = evaluators.multilabel_metrics(y_test, lg_test, names, thr)
  assert m["auroc"] == pytest.approx(sk_metrics.roc_auc_score(y_test, p_test, average="macro"), abs=1e-9)
  assert m["auprc"] == pytest.approx(sk_metrics.average_precision_score(y_test, p_test, average="macro"), abs=1e-9)
  pred = p_test >= thr[None]
  assert m["macro_f1"] == pytest.approx(sk_metrics.f1_score(y_test, pred, average="macro"), abs=1e-9)
  for j, name in enumerate(names):
    assert m[f"auroc/{name}"] == pytest.approx(sk_metrics.roc_auc_score(y_test[:, j], p_test[:, j]), abs=1e-9)
    assert m[f"f1/{name}"] == pytest.approx(sk_metrics.f1_score(y_test[:, j], pred[:, j]), abs=1e-9)
  assert "balanced_accuracy" not in m
  with pytest.raises(ValueError, match="thresholds"):
    evaluators.logits_metrics(y_test, lg_test, names)


def test_load_split_reads_labels_vectors_and_rejects_a_mix(sources):
  arrays = dpipe.load_split(sources["test"], modality="ecg", sfreq=SFREQ, target_sfreq=SFREQ, patch_size=32)
  assert arrays["label"].shape == (32, 3) and arrays["label"].dtype == np.int32 and dpipe.is_multilabel(arrays)
  batch = next(dpipe.batches(arrays, 24, shuffle=False))
  assert batch["label"].shape == (24, 3)
  last = list(dpipe.batches(arrays, 24, shuffle=False))[-1]
  assert last["label"].shape == (24, 3) and last["valid"].sum() == 8
  mixed = [dict(sources["test"][0]), {**{k: v for k, v in sources["test"][1].items() if k != "labels"}, "label": 1}]
  with pytest.raises(errors.RecordingError, match="ptbxl.*mix"):
    dpipe.load_split(mixed, modality="ecg", sfreq=SFREQ, target_sfreq=SFREQ, patch_size=32, name="ptbxl[x]")
  bad = [{**sources["test"][0], "labels": np.array([0, 2, 1])}]
  with pytest.raises(errors.RecordingError, match="0/1"):
    dpipe.load_split(bad, modality="ecg", sfreq=SFREQ, target_sfreq=SFREQ, patch_size=32)


def test_train_one_learns_labels_and_reports_sklearn_metrics(sources):
  config = _config(steps=40, eval_every=10, patience=3)
  enc = finetune.encoder_config_for(config, False, None)
  data, names = finetune.load_data(config, enc, sources)
  run = finetune.train_one(config, data, names, enc, strategy="scratch", seed=0)
  assert run["task"].multilabel and run["logits"].shape == (32, 3)
  y = data["test"]["label"]
  probs = evaluators.sigmoid(run["logits"])
  m = run["metrics"]
  assert m["auroc"] > 0.75, m  # Chance is 0.5.
  assert m["auroc"] == pytest.approx(sk_metrics.roc_auc_score(y, probs, average="macro"), abs=1e-9)
  # Thresholds are the validation split's best-F1 ones, then applied to test.
  val_logits, _ = finetune.predict(run["task"], run["model"], data["validation"], 32)
  np.testing.assert_array_equal(run["thresholds"], evaluators.validation_thresholds(data["validation"]["label"],
                                                                                   val_logits))
  pred = probs >= run["thresholds"][None]
  assert m["macro_f1"] == pytest.approx(sk_metrics.f1_score(y, pred, average="macro"), abs=1e-9)
  # Validation loss: the unsmoothed BCE of the best parameters.
  _, val_loss = finetune.predict(run["task"], run["model"], data["validation"], 32)
  assert run["best_val_loss"] == pytest.approx(float(np.mean(val_loss)), rel=1e-5)
  p_val = 1 / (1 + np.exp(-val_logits.astype(np.float64)))
  yv = data["validation"]["label"]
  ref = np.mean(-(yv * np.log(p_val) + (1 - yv) * np.log(1 - p_val)))
  assert run["best_val_loss"] == pytest.approx(ref, rel=1e-4)


def test_single_label_ablation_metric_on_multilabel_task_fails_clearly(sources, tmp_path):
  config = _config(**{"ablation.enabled": True, "ablation.metric": "balanced_accuracy"})
  with pytest.raises(ValueError, match="does not apply to the multilabel task"):
    finetune.train_and_evaluate(config, str(tmp_path), sources=sources)


def test_ptbxl_without_manual_dir_says_what_to_pass(tmp_path):
  config = transfer_config.get_config("ptbxl")
  # A placeholder, so that --config.data.manual_dir=/path still works from the command line.
  assert config.data.manual_dir is None and config.data.get_ref("manual_dir").get_type() is str
  assert (config.data.sfreq, config.data.builder_config, config.data.modality) == (500.0, "500hz", "ecg")
  config.unlock()
  config.data.data_dir = str(tmp_path)
  enc = finetune.encoder_config_for(config, False, None)
  with pytest.raises(ValueError, match="manual_dir=/path/to/your/ptbxl"):
    finetune.load_data(config, enc)


def test_ptbxl_tiny_end_to_end_writes_multilabel_table(tmp_path):
  config = transfer_config.get_config("ptbxl_tiny")
  config.unlock()
  config.data.data_dir = str(tmp_path / "tfds")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # 2 test records: most labels have a single class there.
    rows = finetune.train_and_evaluate(config, str(tmp_path / "work"))
  assert [r["strategy"] for r in rows] == ["baseline:ecg_rhythm", "scratch"]
  assert all(r["task_type"] == "multilabel" for r in rows)
  assert 0.0 <= rows[0]["auroc"] <= 1.0 and rows[0]["balanced_accuracy"] == finetune.NOT_APPLICABLE
  md = (tmp_path / "work" / "results.md").read_text()
  header = md.splitlines()[0]
  assert "ptbxl_tiny" in md and "auroc/ST" in header and "f1/1dAVb" in header and "macro_f1" in header
  assert "n/a (multilabel)" in md  # Balanced accuracy is said not to apply, not printed as a number.
  table = json.loads((tmp_path / "work" / "results.json").read_text())[1]
  assert table["balanced_accuracy"] == finetune.NOT_APPLICABLE
  # Dummy test split: records 00005 (ST) and 00006 (none); only ST has both classes.
  assert 0.0 <= table["auroc"] <= 1.0 and table["auroc"] == table["auroc/ST"]
  assert table["auroc/1dAVb"] is None  # Undefined (no positive in test): NaN -> null.
  runs = json.loads((tmp_path / "work" / "runs.json").read_text())
  # Validation (record 00004: LBBB + AF) has positives for LBBB and AF only: other labels never predicted.
  assert runs[0]["threshold/RBBB"] is None and 0.0 < runs[0]["threshold/AF"] < 1.0
  curve = (tmp_path / "work" / "channel_ablation.csv").read_text().splitlines()
  assert curve[0].startswith("task,metric,k,mean") and [r.split(",")[2] for r in curve[1:]] == ["1", "12"]
  assert all(r.split(",")[1] == "auroc" for r in curve[1:])
