"""Transfer fine-tuning: input pipeline, learning, frozen encoder, checkpoint loading, metrics, `:tiny` end to end.

Models are tiny (E=16, one layer, 0.25-s patches) and every in-memory test uses the same config so that the
jitted steps compile once per model structure.
"""

import json
import warnings

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal
from sklearn import metrics as sk_metrics

from configs import transfer as transfer_config
from sleepjax.data import downstream_pipeline as dpipe
from sleepjax.data import errors
from sleepjax.evaluation import evaluators
from sleepjax.train import finetune
from sleepjax.train import mesh as mesh_lib
from sleepjax.train import pretrain
from sleepjax.train import state as state_lib
from tests.train.conftest import TINY_TRANSFER_ENCODER
from tests.train.conftest import apply_overrides

SFREQ = 128.0
N_TIMES = 256  # 2 s: eight 32-sample tokens.
N_CH = 3
CLASSES = ("slow", "mid", "fast")


def _downstream_source(n_subjects: int, per_subject: int, seed: int, prefix: str) -> list[dict]:
  """Wake-EEG-like windows whose dominant frequency is set by the class (something to learn)."""
  rng = np.random.default_rng(seed)
  t = np.arange(N_TIMES) / SFREQ
  out = []
  for s in range(n_subjects):
    for i in range(per_subject):
      label = int((i + s) % len(CLASSES))
      base = 20.0 * np.sin(2 * np.pi * (3 + 9 * label) * t + rng.uniform(0, 2 * np.pi))
      x = base[None] * (1 + 0.2 * np.arange(N_CH))[:, None] + rng.normal(0, 4.0, (N_CH, N_TIMES))
      pos = rng.normal(size=(N_CH, 3))
      pos /= np.linalg.norm(pos, axis=-1, keepdims=True)
      out.append({"signals": {"eeg": x.astype(np.float32)}, "positions": {"eeg": pos.astype(np.float32)},
                  "label": label, "subject_id": f"{prefix}{s:03d}".encode(), "record_id": f"{prefix}{s}R{i}"})
  return out


@pytest.fixture(scope="module")
def sources():
  return {"train": _downstream_source(4, 12, 0, "TR"), "validation": _downstream_source(1, 12, 1, "VA"),
          "test": _downstream_source(2, 12, 2, "TE")}


def _config(**overrides):
  c = transfer_config.get_config("tiny")
  c.unlock()
  c.model.encoder.update(TINY_TRANSFER_ENCODER)
  c.data.sfreq = SFREQ
  c.data.class_names = CLASSES
  c.optimizer.learning_rate = 3e-3
  c.batch_size = 8
  c.eval_batch_size = 16
  c.seeds = (0,)
  return apply_overrides(c, overrides)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree)) if not state_lib.is_key(x)]


def _step_fn(task, state):
  return state_lib.make_train_step(task, mesh_lib.make_data_mesh(1), state)


# ---------------------------------------------------------------------------------------------
# Input pipeline.
# ---------------------------------------------------------------------------------------------


def test_eeg_scaling_clips_at_50_uv_then_divides_by_10():
  x = np.array([[-120.0, -50.0, -7.0, 0.0, 33.0, 50.0, 400.0]], np.float32)
  np.testing.assert_allclose(dpipe.scale_signals(x, "eeg"), [[-5, -5, -0.7, 0, 3.3, 5, 5]], rtol=1e-6)
  # ECG: uV -> mV, clipped at +-5 mV.
  np.testing.assert_allclose(dpipe.scale_signals(np.array([1200.0, -9000.0]), "ecg"), [1.2, -5.0], rtol=1e-6)
  with pytest.raises(ValueError, match="resp"):
    dpipe.scale_signals(x, "resp")


def test_preprocess_resamples_160_to_128_hz_keeping_the_frequency():
  # eegmmidb: 4-s windows at 160 Hz -> 512 samples at 128 Hz, four 1-s patches.
  t = np.arange(640) / 160.0
  x = (10 * np.sin(2 * np.pi * 10 * t))[None, None].astype(np.float32)
  y = dpipe.preprocess(x, sfreq=160.0, target_sfreq=128.0, patch_size=128, modality="eeg")
  assert y.shape == (1, 1, 512) and y.dtype == np.float32
  freqs, power = scipy.signal.periodogram(y[0, 0], fs=128.0)
  assert abs(freqs[np.argmax(power)] - 10.0) < 0.3
  # Amplitude kept through resampling (10 uV -> 1.0 after the EEG scaling), away from the edges.
  assert abs(np.max(np.abs(y[0, 0, 64:-64])) - 1.0) < 0.05


def test_bandpass_removes_offset_and_drift_before_the_50_uv_clip():
  sfreq = 160.0
  t = np.arange(640) / sfreq
  alpha = 20.0 * np.sin(2 * np.pi * 10.0 * t)
  x = (300.0 + 80.0 * np.sin(2 * np.pi * 0.1 * t) + alpha)[None, None].astype(np.float32)  # uV
  plain = dpipe.preprocess(x, sfreq=sfreq, target_sfreq=128.0, patch_size=128, modality="eeg")
  assert np.all(plain == 5.0)  # The offset alone saturates the paper's clip: nothing of the alpha survives.
  y = dpipe.preprocess(x, sfreq=sfreq, target_sfreq=128.0, patch_size=128, modality="eeg", bandpass_hz=(1.0, 40.0))
  ref = dpipe.preprocess(alpha[None, None], sfreq=sfreq, target_sfreq=128.0, patch_size=128, modality="eeg")
  inner = slice(64, -64)  # Away from the filter's edge transients.
  np.testing.assert_allclose(y[..., inner], ref[..., inner], atol=0.25)  # 2.5 uV of a 20-uV alpha, 300-uV offset.
  with pytest.raises(ValueError, match="band-pass edges"):
    dpipe.bandpass(x, sfreq, (40.0, 1.0))


def test_preprocess_pads_a_short_window_to_one_patch_and_bonn_ratio():
  # MIT-BIH `beat` windows (252 samples at 360 Hz) are shorter than one 1-s patch at 128 Hz.
  y = dpipe.preprocess(np.ones((2, 2, 252), np.float32) * 500, sfreq=360.0, target_sfreq=128.0, patch_size=128,
                       modality="ecg")
  assert y.shape == (2, 2, 128)
  assert np.all(y[..., 100:] == 0)  # Zero padding after the 90 resampled samples.
  up, down = dpipe.resample_ratio(173.61, 128.0)
  assert abs(up / down - 128.0 / 173.61) < 1e-4 * 128.0 / 173.61 and down <= 200


def test_load_split_errors_and_masks(sources):
  arrays = dpipe.load_split(sources["test"], modality="eeg", sfreq=SFREQ, target_sfreq=SFREQ, patch_size=32)
  assert arrays["signals"].shape == (24, N_CH, N_TIMES) and arrays["mask"].all()
  assert arrays["subject_id"][0] == "TE000"
  with pytest.raises(errors.RecordingError, match="mitdb/context.*signals/ecg"):
    dpipe.load_split(sources["test"], modality="ecg", sfreq=SFREQ, target_sfreq=SFREQ, patch_size=32,
                     name="mitdb/context[test]")
  dropped = dpipe.drop_channels(arrays, [2])
  assert dropped["mask"][:, 2].all() and not dropped["mask"][:, :2].any()
  batches = list(dpipe.batches(arrays, 16, shuffle=False))
  assert [b["valid"].sum() for b in batches] == [16, 8] and batches[1]["signals"].shape == (16, N_CH, N_TIMES)


# ---------------------------------------------------------------------------------------------
# Trainer.
# ---------------------------------------------------------------------------------------------


def test_step_learns_one_batch_and_is_deterministic(sources):
  config = _config(**{"model.mask_rate": 0.25})
  enc = finetune.encoder_config_for(config, False, None)
  data, names = finetune.load_data(config, enc, sources)
  batch = next(dpipe.batches(data["train"], 16, shuffle=True, seed=0, drop_remainder=True))
  final = []
  for _ in range(2):
    task, state = finetune.init_state(config, enc, len(names), strategy="scratch", seed=0)
    step = _step_fn(task, state)
    loss = []
    for _ in range(25):
      state, m = step(state, batch)
      loss.append(float(m["loss"]))
    final.append(_leaves(state["params"]))
  assert loss[-1] < 0.5 * loss[0], loss[::5]
  for a, b in zip(*final):
    np.testing.assert_array_equal(a, b)


def test_train_one_beats_chance_and_metrics_match_sklearn(sources):
  config = _config(**{"steps": 60, "eval_every": 20, "patience": 3})
  enc = finetune.encoder_config_for(config, False, None)
  data, names = finetune.load_data(config, enc, sources)
  run = finetune.train_one(config, data, names, enc, strategy="scratch", seed=0)
  y = data["test"]["label"]
  probs = np.asarray(jax.nn.softmax(run["logits"], axis=-1), np.float64)
  m = run["metrics"]
  assert m["balanced_accuracy"] > 0.6  # Chance is 1/3.
  assert m["balanced_accuracy"] == pytest.approx(sk_metrics.balanced_accuracy_score(y, probs.argmax(-1)), abs=1e-12)
  assert m["auroc"] == pytest.approx(sk_metrics.roc_auc_score(y, probs, multi_class="ovr", average="macro"),
                                     abs=1e-9)
  assert m["kappa"] == pytest.approx(sk_metrics.cohen_kappa_score(y, probs.argmax(-1)), abs=1e-9)
  assert m["weighted_f1"] == pytest.approx(sk_metrics.f1_score(y, probs.argmax(-1), average="weighted"), abs=1e-9)
  assert 1 <= run["best_step"] <= run["steps"] <= 60


def test_binary_balanced_accuracy_is_mean_recall():
  # 9 negatives all right, 1 positive missed: accuracy 0.9, balanced accuracy 0.5 (docs/specification.md §3.4).
  y = np.array([0] * 9 + [1])
  logits = np.tile([[2.0, 0.0]], (10, 1))
  logits[0] = [0.0, 1.0]  # A false positive ranked above the positive: AUROC < 1.
  m = evaluators.classification_metrics(y, logits, ["a", "b"])
  assert m["balanced_accuracy"] == pytest.approx(sk_metrics.balanced_accuracy_score(y, logits.argmax(-1)))
  scores = np.asarray(jax.nn.softmax(logits, axis=-1))[:, 1]
  assert m["auroc"] == pytest.approx(sk_metrics.roc_auc_score(y, scores))


@pytest.fixture(scope="module")
def pretrain_workdir(tmp_path_factory):
  from tests.train.conftest import fake_source, tiny_pretrain_config
  c = tiny_pretrain_config(steps=3, checkpoint_every=3, log_every=3)
  workdir = tmp_path_factory.mktemp("pretrain")
  _, state, _ = pretrain.train(c, str(workdir), train_source=fake_source())
  return workdir, nnx.to_pure_dict(jax.device_get(state["params"]))["encoder"]


def test_pretrained_encoder_restored_exactly_and_frozen_stays_bit_identical(sources, pretrain_workdir):
  workdir, encoder_params = pretrain_workdir
  config = _config(**{"pretrained_workdir": str(workdir), "steps": 4, "eval_every": 2})
  pre = finetune.load_pretrained(config, "eeg")
  assert pre.step == 3 and pre.group == "bas" and pre.model_path.endswith("model/final")
  assert pre.data.startswith("synthetic_psg/tiny")
  enc = finetune.encoder_config_for(config, True, pre)
  assert enc.embed_dim == 16 and enc.patch_size == 32 and enc.channel_encoding
  task, state = finetune.init_state(config, enc, 3, strategy="frozen", seed=5, pretrained=pre)
  loaded = nnx.to_pure_dict(state["params"])["encoder"]
  flat_ref = jax.tree_util.tree_flatten_with_path(encoder_params)[0]
  flat_got = dict(jax.tree_util.tree_flatten_with_path(loaded)[0])
  assert len(flat_ref) == len(flat_got) > 10
  for path, ref in flat_ref:
    np.testing.assert_array_equal(np.asarray(flat_got[path]), np.asarray(ref), err_msg=str(path))

  before_enc = _leaves(nnx.to_pure_dict(state["params"])["encoder"])
  batch_stats = lambda st: _leaves(nnx.state(state_lib.model_from_state(task.graphdef, st), nnx.BatchStat))
  before_stats = batch_stats(state)
  assert before_stats
  before_head = _leaves(nnx.to_pure_dict(state["params"])["head"])
  data, _ = finetune.load_data(config, enc, sources)
  batch = next(dpipe.batches(data["train"], 8, shuffle=True, seed=0, drop_remainder=True))
  step = _step_fn(task, state)
  for _ in range(3):
    state, _ = step(state, batch)
  for a, b in zip(before_enc, _leaves(nnx.to_pure_dict(state["params"])["encoder"])):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(before_stats, batch_stats(state)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(before_head, _leaves(nnx.to_pure_dict(state["params"])["head"])))


def test_frozen_head_trains_at_head_learning_rate(pretrain_workdir):
  workdir, _ = pretrain_workdir
  config = _config(**{"pretrained_workdir": str(workdir), "head_learning_rate": 0.05})
  pre = finetune.load_pretrained(config, "eeg")
  enc = finetune.encoder_config_for(config, False, pre)
  rates = {s: finetune.init_state(config, enc, 3, strategy=s, seed=0, pretrained=pre)[0].optimizer.learning_rate
           for s in ("frozen", "pretrained")}
  assert rates == {"frozen": 0.05, "pretrained": config.optimizer.learning_rate}
  with pytest.raises(finetune.config_lib.ConfigError, match="head_learning_rate"):
    finetune.validate_config(_config(**{"head_learning_rate": -1.0}))


def test_linear_probe_on_frozen_embeddings_separates_the_classes(sources, pretrain_workdir):
  workdir, _ = pretrain_workdir
  config = _config(**{"pretrained_workdir": str(workdir)})
  pre = finetune.load_pretrained(config, "eeg")
  enc = finetune.encoder_config_for(config, False, pre)
  data, names = finetune.load_data(config, enc, sources)
  z = finetune.embed(pre.encoder, data["test"], 16)
  assert z.shape == (len(data["test"]["label"]), enc.embed_dim) and np.all(np.isfinite(z))
  metrics = finetune.linear_probe(config, data, names, pre, enc)
  # The classes differ in dominant frequency (3 / 12 / 21 Hz): separable from the embeddings.
  assert metrics["balanced_accuracy"] > 0.6


def test_pretrained_workdir_without_a_model_says_so(tmp_path):
  with pytest.raises(FileNotFoundError, match="no saved model"):
    finetune.load_pretrained(_config(**{"pretrained_workdir": str(tmp_path)}), "eeg")
  with pytest.raises(FileNotFoundError, match="no such file"):
    finetune.load_pretrained(_config(**{"pretrained_workdir": str(tmp_path / "typo")}), "eeg")


def test_saved_model_whose_weights_do_not_match_its_config_fails_loudly(pretrain_workdir, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  workdir, _ = pretrain_workdir
  copy = tmp_path / "model"
  shutil.copytree(workdir / "model" / "final", copy)
  info = json.loads((copy / "config.json").read_text())
  info["config"]["encoder"]["embed_dim"] = 32  # The weights were trained with E=16.
  (copy / "config.json").write_text(json.dumps(info))
  with pytest.raises(ValueError, match="does not match its config.json"):
    finetune.load_pretrained(_config(**{"pretrained_workdir": str(copy)}), "eeg")


def test_ablation_helpers():
  assert evaluators.ablation_sizes(2, ()) == [1, 2]
  assert evaluators.ablation_sizes(64, ()) == [1, 2, 4, 8, 16, 32, 64]
  assert evaluators.ablation_sizes(64, (1, 16, 100)) == [1, 16]
  curve = [{"k": 1, "mean": 0.5}, {"k": 2, "mean": 0.76}, {"k": 4, "mean": 0.79}]
  assert evaluators.smallest_k_reaching(curve, 0.8) == 2  # 0.95 * 0.8 = 0.76.
  assert evaluators.smallest_k_reaching(curve, 0.9) is None


@pytest.mark.parametrize("retrain", [False, True])
def test_channel_ablation_curve(sources, tmp_path, retrain):
  config = _config(**{"steps": 4, "eval_every": 2, "ablation.sizes": (1, 2, 3), "ablation.draws": 2,
                      "ablation.retrain": retrain, "ablation.channel_encoding": False})
  out = finetune.channel_ablation(config, str(tmp_path), sources=sources)
  assert [c["k"] for c in out["curve"]] == [1, 2, 3] and [c["n"] for c in out["curve"]] == [2, 2, 1]
  assert len(out["draws"]) == 5 and all(len(d["channels"].split()) == d["k"] for d in out["draws"])
  assert out["k95"] == evaluators.smallest_k_reaching(out["curve"], out["full"])
  if not retrain:  # Evaluate-only: the full montage is the trained model's own test score.
    assert out["curve"][-1]["mean"] == pytest.approx(out["full"])
  assert (tmp_path / "channel_ablation.png").exists() and (tmp_path / "channel_ablation_draws.csv").exists()


def test_tiny_end_to_end_writes_table_and_ablation(tmp_path):
  config = transfer_config.get_config("tiny")
  config.unlock()
  config.data.data_dir = str(tmp_path / "tfds")
  config.seeds = (0,)
  config.strategies = ("scratch", "frozen")  # No pretrained_workdir: frozen is skipped with a note.
  config.ablation.sizes = (1, 64)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # 2 test windows: some per-class metrics are undefined.
    rows = finetune.train_and_evaluate(config, str(tmp_path / "work"))
  # The classic baselines come first, on the same splits and metrics (on the builder's dummy data).
  assert [(r["strategy"], r["channel_encoding"]) for r in rows] == [
      ("baseline:band_power", False), ("baseline:csp_lda", False), ("scratch", True)]
  md = (tmp_path / "work" / "results.md").read_text()
  assert "balanced_accuracy" in md and "eegmmidb_tiny" in md and "Skipped strategies ['frozen']" in md
  assert "| baseline:band_power " in md and "| baseline:csp_lda " in md
  table = json.loads((tmp_path / "work" / "results.json").read_text())
  assert all(0.0 <= r["balanced_accuracy"] <= 1.0 and r["n_seeds"] == 1 for r in table)
  table = table[2:]
  # The saved model alone (no optimizer, no trainer) reproduces the reported test metrics.
  from sleepjax import models  # pylint: disable=g-import-not-at-top
  model = models.load(tmp_path / "work")
  info = models.load_info(tmp_path / "work")
  assert info["path"].endswith("model/scratch/ce1/seed0/best") and info["label_names"] == ["rest", "left_fist", "right_fist"]
  data, names = finetune.load_data(config, model.encoder.config)
  task = finetune.FinetuneTask(None, None)
  got = finetune.classification_evaluator(task, data["test"], names, 2).metrics(model)
  assert got["balanced_accuracy"] == pytest.approx(table[0]["balanced_accuracy"], abs=1e-12)
  assert got["auroc"] == pytest.approx(info["metadata"]["test_metrics"]["auroc"], abs=1e-12)
  assert (tmp_path / "work" / "channel_ablation.png").stat().st_size > 1000
  curve = (tmp_path / "work" / "channel_ablation.csv").read_text().splitlines()
  assert curve[0].startswith("task,metric,k,mean") and len(curve) == 3


@pytest.mark.parametrize("match", [True, False])
def test_scratch_takes_the_checkpoint_architecture_when_asked(sources, pretrain_workdir, tmp_path, match):
  workdir, _ = pretrain_workdir
  config = _config(**{"pretrained_workdir": str(workdir), "steps": 1, "eval_every": 1,
                      "strategies": ("scratch", "pretrained"), "channel_encodings": (False,),
                      "model.scratch_matches_pretrained": match, "model.encoder.embed_dim": 8})
  config.ablation.enabled = False
  rows = finetune.train_and_evaluate(config, str(tmp_path), sources=sources)
  by_strategy = {r["strategy"]: r for r in rows}
  assert set(by_strategy) == {"baseline:band_power", "baseline:csp_lda", "scratch", "pretrained"}
  assert by_strategy["pretrained"]["encoder"].startswith("E=16,")
  assert by_strategy["scratch"]["encoder"].startswith("E=16," if match else "E=8,")
  assert by_strategy["scratch"]["pretrained_model"] == ""
  assert "| encoder " in (tmp_path / "results.md").read_text().splitlines()[0] + " "


def test_balanced_class_weights_match_sklearn_and_weight_the_loss():
  from sklearn.utils.class_weight import compute_class_weight  # pylint: disable=g-import-not-at-top
  labels = np.array([0, 0, 0, 0, 1, 2, 2, -1])
  w = finetune.balanced_class_weights(labels, 4)
  ref = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=labels[labels >= 0])
  np.testing.assert_allclose(w[:3], ref)
  assert w[3] == 0.0  # Absent class.
  with pytest.raises(ValueError, match="num_classes"):
    finetune.balanced_class_weights(np.array([0, 5]), 3)

  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 3)).astype(np.float32)
  batch = {"label": jnp.array([0, 0, 1, 2, 2, -1]), "valid": jnp.array([True] * 5 + [False])}
  weights = (0.5, 2.0, 1.0)
  task = finetune.FinetuneTask(None, None, class_weights=weights)
  got = float(task.example_loss(jnp.asarray(logits), batch))
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  y = np.array([0, 0, 1, 2, 2])
  ce = -logp[np.arange(5), y]
  wy = np.array(weights)[y]
  assert got == pytest.approx(float(np.sum(wy * ce) / np.sum(wy)), rel=1e-5)
  none = np.asarray(task.example_loss(jnp.asarray(logits), batch, reduction="none"))
  np.testing.assert_allclose(none[:5], wy * ce, rtol=1e-5)
  assert none[5] == 0.0


def test_class_weighting_trains_and_rejects_multilabel(sources):
  config = _config(**{"steps": 2, "eval_every": 1, "class_weighting": "balanced"})
  data, class_names = finetune.load_data(config, finetune.encoder_config_for(config, False, None), sources)
  run = finetune.train_one(config, data, class_names, finetune.encoder_config_for(config, False, None),
                           strategy="scratch", seed=0)
  assert run["task"].class_weights is not None and len(run["task"].class_weights) == len(CLASSES)
  with pytest.raises(ValueError, match="single-label"):
    finetune.init_state(config, finetune.encoder_config_for(config, False, None), 3, strategy="scratch", seed=0,
                        multilabel=True, class_weights=np.ones(3))
