r"""Staging trainer: a sequence stager on set-transformer tokens, tested on held-out subjects.

  python -m sleepjax.main --config=configs/staging.py:tiny --workdir=/tmp/staging_tiny
  sleepjax-stage night.edf --model /tmp/staging_tiny --out /tmp/hypnograms

The task (SleepFM-Clinical's staging recipe, docs/staging.md): the shared set-transformer gives
5-s tokens per modality (its channel pooling sets each modality's channels aside), the modalities
present are averaged, a transformer (and optionally a bidirectional LSTM) runs over a window of
`window_epochs` epochs, one stage per 30-s epoch. The encoder starts from scratch or from a saved
model (`model.pretrained`: a pretraining workdir, an encoder, or a staging model), frozen or
fine-tuned. Windows of consecutive epochs of one night, the last one padded and masked;
class-weighted cross-entropy; random modality and channel dropout so that a recording lacking some
of the dataset's channels is staged by a model that has seen such inputs.

The protocol: the dataset's subject-wise splits (`sleepjax.data.pipeline.subject_split`): train on
`data.train_split`, select the best validation macro-F1, test on `data.test_split`. Outputs in
`workdir`: results.{md,csv,json} (pooled and per-class metrics, confusion matrix), confusion.png,
metrics.jsonl, and model/{best,final} (`sleepjax.models.load`; `sleepjax.stage` applies them).
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging
from flax import nnx
import jax.numpy as jnp
import ml_collections
import numpy as np

from sleepjax import losses
from sleepjax import models as models_lib
from sleepjax.data import pipeline
from sleepjax.data import stages
from sleepjax.evaluation import metrics as metrics_lib
from sleepjax.evaluation import plots
from sleepjax.evaluation import report as report_lib
from sleepjax.models import encoder as encoder_lib
from sleepjax.models import stager as stager_lib
from sleepjax.train import config as config_lib
from sleepjax.train import inputs
from sleepjax.train import loop as loop_lib
from sleepjax.train import mesh as mesh_lib
from sleepjax.train import state as state_lib
from sleepjax.train import writer as writer_lib

TASK = "staging"
CLASS_WEIGHTING = ("balanced", "none")


def default_config() -> ml_collections.ConfigDict:
  """Every field of a staging config (configs/staging.py)."""
  c = config_lib.common(TASK)
  c.tensorboard = False
  c.num_devices = 1
  c.data.builder_module = "tfds_builders.synthetic_psg"
  c.data.name = "synthetic_psg"
  c.data.builder_config = "sleepmg"  # 100 Hz, EEG 6 / EOG 2 / EMG 1 / ECG 1, microvolts.
  c.data.modalities = ("eeg", "eog", "emg", "ecg")
  # The builders' subject-wise splits (no subject in two of them).
  c.data.train_split = "train"
  c.data.validation_split = "validation"
  c.data.test_split = "test"

  c.window_epochs = 20  # Epochs per sequence (10 min); SleepFM-Clinical sees whole nights.
  c.train_stride_epochs = 5  # Offsets of the training windows within a night.

  c.model = ml_collections.ConfigDict()
  c.model.encoder = config_lib.encoder("tiny", patch_size=500, sfreq=100.0, embed_dim=32, num_layers=1,
                                       num_heads=2, pooling_heads=2, ff_dim=64, dropout=0.1,
                                       tokenizer_widths=(4, 8, 8, 16, 16, 32), window_s=30.0)
  c.model.dtype = "float32"
  # A saved model whose set-transformer starts the stager: a pretraining workdir (its shared
  # encoder), a saved SetTransformerEncoder, or a staging model. None: from scratch.
  c.model.pretrained = config_lib.placeholder(str)
  c.model.freeze_encoder = False  # True: the encoder's parameters and BatchNorm statistics stay fixed.
  c.model.model_dim = 64
  c.model.num_layers = 1
  c.model.num_heads = 4
  c.model.ff_dim = 128
  c.model.lstm_hidden = 32  # Bidirectional LSTM units per direction (0: transformer only).
  c.model.dropout = 0.1

  c.class_weighting = "balanced"  # "balanced": n / (K n_c) of the training epochs; "none".
  c.modality_dropout = 0.25  # Probability that a training window loses a modality (one is always kept).
  c.channel_dropout = 0.15  # ... and that each remaining channel is masked (one per modality kept).
  c.optimizer = config_lib.optimizer(name="adamw", learning_rate=1e-3, weight_decay=1e-4, grad_clip_norm=1.0)
  c.batch_size = 8  # Windows per step.
  c.eval_batch_size = 16
  c.steps = 300
  c.eval_every = 50
  c.log_every = 25
  return c


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects a config that cannot run, before any data is read.

  Raises:
    config_lib.ConfigError: one line naming the field.
  """
  config_lib.validate_common(config, default_config(), periods=["eval_every", "window_epochs", "train_stride_epochs"])
  config_lib.check_choice("class_weighting", config.class_weighting, CLASS_WEIGHTING)
  if not config.data.modalities:
    raise config_lib.ConfigError("config.data.modalities is empty")
  for name in ("modality_dropout", "channel_dropout"):
    if not 0.0 <= config[name] < 1.0:
      raise config_lib.ConfigError(f"config.{name} must be in [0, 1), got {config[name]}")
  enc = config.model.encoder
  if abs(30.0 * enc.sfreq / enc.patch_size - round(30.0 * enc.sfreq / enc.patch_size)) > 1e-9:
    raise config_lib.ConfigError(f"config.model.encoder: a 30-s epoch at {enc.sfreq:g} Hz is not a whole "
                                 f"number of {enc.patch_size}-sample patches")
  if config.model.model_dim % config.model.num_heads:
    raise config_lib.ConfigError(f"config.model.model_dim {config.model.model_dim} is not divisible by "
                                 f"config.model.num_heads {config.model.num_heads}")


# ----------------------------------------------------------------------------------------------
# Data: whole nights in memory, cut into windows of consecutive epochs.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Night:
  """One recording's scored epochs in time order.

  Attributes:
    record_id, subject_id: identifiers.
    signals: {modality: (N, C_m, T) float32}.
    stage: (N,) int32 AASM stages.
    epoch_index: (N,) int32 position of each epoch in the night.
  """
  record_id: str
  subject_id: str
  signals: dict[str, np.ndarray]
  stage: np.ndarray
  epoch_index: np.ndarray


def read_nights(source, modalities: Sequence[str], where: str) -> list[Night]:
  """The nights of a TFDS split (examples of docs/architecture.md §3), in epoch order.

  Raises:
    ValueError: a modality is missing from the examples (naming `where`).
  """
  rows: dict[str, dict[str, Any]] = {}
  for i in range(len(source)):
    ex = source[i]
    missing = [m for m in modalities if m not in ex["signals"]]
    if missing:
      raise ValueError(f"{where}: example {i} has no {missing} signals (has {sorted(ex['signals'])})")
    rec = pipeline.as_str(ex["record_id"])
    r = rows.setdefault(rec, {"subject": pipeline.as_str(ex["subject_id"]), "sig": {m: [] for m in modalities},
                              "stage": [], "index": []})
    for m in modalities:
      r["sig"][m].append(np.asarray(ex["signals"][m], np.float32))
    r["stage"].append(int(ex["stage"]))
    r["index"].append(int(ex["epoch_index"]))
  nights = []
  for rec, r in rows.items():
    order = np.argsort(r["index"], kind="stable")
    nights.append(Night(rec, r["subject"], {m: np.stack(v)[order] for m, v in r["sig"].items()},
                        np.asarray(r["stage"], np.int32)[order], np.asarray(r["index"], np.int32)[order]))
  return nights


def window_starts(night: Night, window: int, stride: int) -> list[int]:
  """Start positions (into the night's arrays) of windows over runs of consecutive epochs.

  A gap in `epoch_index` (epochs the builder dropped) starts a new run; the windows of a run step
  by `stride` and the last one may run past its end (padded and masked in `window_batch`).
  """
  breaks = np.flatnonzero(np.diff(night.epoch_index) != 1) + 1
  bounds = [0, *breaks.tolist(), len(night.stage)]
  starts = []
  for a, b in zip(bounds[:-1], bounds[1:]):
    starts.extend(range(a, max(b - window, a) + 1, stride))
    if starts[-1] + window < b:
      starts.append(b - window)
  return starts


def _run_end(night: Night, start: int) -> int:
  gaps = np.flatnonzero(np.diff(night.epoch_index[start:]) != 1)
  return start + (int(gaps[0]) + 1 if gaps.size else len(night.stage) - start)


def window_batch(nights: Sequence[Night], items: Sequence[tuple[int, int]], modalities: Sequence[str],
                 window: int, *, rng: np.random.Generator | None = None, modality_dropout: float = 0.0,
                 channel_dropout: float = 0.0) -> dict[str, Any]:
  """A batch of windows: (night, start) items -> the stager's arrays.

  Returns:
    {"signals": {m: (B, L, C_m, T) float32}, "mask": {m: (B, C_m) bool}, "epoch_mask": (B, L) bool,
     "stage": (B, L) int32 (-1 at padding)}. With `rng`, modalities and channels are masked at
    random (at least one channel is kept per window, and one per kept modality).
  """
  b = len(items)
  first = nights[items[0][0]]
  sig = {m: np.zeros((b, window) + first.signals[m].shape[1:], np.float32) for m in modalities}
  mask = {m: np.ones((b, first.signals[m].shape[1]), bool) for m in modalities}
  epoch_mask = np.zeros((b, window), bool)
  stage = np.full((b, window), -1, np.int32)
  for i, (n, start) in enumerate(items):
    night = nights[n]
    end = min(start + window, _run_end(night, start))
    k = end - start
    for m in modalities:
      sig[m][i, :k] = night.signals[m][start:end]
    epoch_mask[i, :k] = True
    stage[i, :k] = night.stage[start:end]
    if rng is not None:
      keep = rng.random(len(modalities)) >= modality_dropout
      if not keep.any():
        keep[rng.integers(len(modalities))] = True
      for j, m in enumerate(modalities):
        c = mask[m].shape[1]
        ch = rng.random(c) >= channel_dropout
        if not ch.any():
          ch[rng.integers(c)] = True
        mask[m][i] = ch & keep[j]
  return {"signals": sig, "mask": mask, "epoch_mask": epoch_mask, "stage": stage}


def class_weights(nights: Sequence[Night], mode: str) -> np.ndarray:
  """(K,) float32: sklearn's "balanced" n / (K n_c) over the training epochs (absent classes: 0), or ones."""
  k = stages.NUM_STAGES
  if mode == "none":
    return np.ones((k,), np.float32)
  counts = np.bincount(np.concatenate([n.stage[n.stage >= 0] for n in nights]), minlength=k)[:k].astype(np.float64)
  w = np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 0.0)
  return w.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Model and task.
# ----------------------------------------------------------------------------------------------


def pretrained_encoder(path: str) -> encoder_lib.SetTransformerEncoder:
  """The set-transformer of a saved model: a pretraining workdir or encoder, or a staging model.

  Raises:
    FileNotFoundError: nothing saved at `path`.
    ValueError: the saved model holds no set-transformer (or one per modality).
  """
  model = models_lib.load(path)
  if isinstance(model, encoder_lib.SetTransformerEncoder):
    return model
  encoder = getattr(model, "encoder", None)
  if isinstance(encoder, encoder_lib.SetTransformerEncoder):
    return encoder
  raise ValueError(f"{path}: a {type(model).__name__} has no shared SetTransformerEncoder to start a stager from")


def build_model(config: ml_collections.ConfigDict, channels: Mapping[str, int], sfreq: float) -> stager_lib.SequenceStager:
  """The stager at initialisation (`config.seeds[0]`), its encoder from `model.pretrained` if set.

  Raises:
    ValueError: the encoder's rate differs from the data's (`sfreq`).
  """
  seed = int(config.seeds[0])
  pre = pretrained_encoder(config.model.pretrained) if config.model.pretrained else None
  enc_config = pre.config if pre is not None else config_lib.encoder_config(config.model)
  if abs(enc_config.sfreq - sfreq) > 1e-6:
    raise ValueError(f"the encoder reads {enc_config.sfreq:g} Hz but {config.data.name}/"
                     f"{config.data.builder_config} is at {sfreq:g} Hz")
  m = config.model
  model = stager_lib.SequenceStager(
      tuple(config.data.modalities), channels, enc_config, model_dim=m.model_dim, num_layers=m.num_layers,
      num_heads=m.num_heads, ff_dim=m.ff_dim, lstm_hidden=m.lstm_hidden, dropout=m.dropout,
      rngs=nnx.Rngs(params=seed, dropout=state_lib.dropout_key(seed + 1)))
  if pre is not None:
    nnx.update(model.encoder, nnx.state(pre))
  return model


@dataclasses.dataclass(frozen=True)
class StagingTask(state_lib.Task):
  """One update: class-weighted cross-entropy over the real epochs of a batch of windows.

  Batch: `window_batch`'s arrays. Hyper-parameters (traced): "class_weights" (K,) float32.
  Metrics: loss, grad_norm, accuracy (of the real epochs).
  """
  graphdef: Any
  optimizer: Any
  graphdef_eval: Any = None
  freeze_encoder: bool = False

  def loss(self, model, batch, rng, hparams):
    nnx.reseed(model, dropout=rng)
    out = model(batch["signals"], batch["mask"], batch["epoch_mask"], train=True,
                stop_encoder_gradient=self.freeze_encoder)
    valid = batch["epoch_mask"] & (batch["stage"] >= 0)
    loss = losses.cross_entropy(out["logits"], batch["stage"], mask=valid,
                                class_weights=hparams["class_weights"])
    correct = (jnp.argmax(out["logits"], -1) == batch["stage"]) & valid
    return loss, {"metrics": {"accuracy": jnp.sum(correct) / jnp.maximum(jnp.sum(valid), 1)}}

  def eval_model(self, state: Mapping[str, Any]) -> nnx.Module:
    return nnx.merge(self.graphdef_eval, state["params"], state["model_state"])


def _logits(model, batch):
  return model(batch["signals"], batch["mask"], batch["epoch_mask"], train=False)["logits"]


def predict_nights(model, nights: Sequence[Night], modalities: Sequence[str], window: int,
                   batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(y_true, logits (N, K)) of every epoch of `nights`, in non-overlapping windows, all channels real."""
  from sleepjax.evaluation import inference  # pylint: disable=g-import-not-at-top
  apply = inference.Apply(_logits, model)
  items = [(i, s) for i, n in enumerate(nights) for s in window_starts(n, window, window)]
  y, out = [], []
  for a in range(0, len(items), batch_size):
    chunk = items[a:a + batch_size]
    chunk = chunk + [chunk[-1]] * (batch_size - len(chunk))  # One compiled shape.
    batch = window_batch(nights, chunk, modalities, window)
    logits = np.asarray(apply(batch))
    k = min(batch_size, len(items) - a)
    m = batch["epoch_mask"][:k] & (batch["stage"][:k] >= 0)
    y.append(batch["stage"][:k][m])
    out.append(logits[:k][m])
  # Windows of a run overlap only at its end (the last window is aligned to the run's end):
  # keep each epoch once, by its first prediction.
  return _dedupe(nights, items, window, np.concatenate(y), np.concatenate(out))


def _dedupe(nights, items, window, y, logits):
  keys = []
  for n, start in items:
    end = min(start + window, _run_end(nights[n], start))
    keys.extend((n, j) for j in range(start, end) if nights[n].stage[j] >= 0)
  _, first = np.unique(np.array(keys, dtype=np.int64), axis=0, return_index=True)
  first = np.sort(first)
  return y[first], logits[first]


def evaluate_nights(model, nights, modalities, window, batch_size) -> dict[str, Any]:
  """Pooled and per-class metrics (`metrics.summarize`) and the confusion matrix of `nights`."""
  y, logits = predict_nights(model, nights, modalities, window, batch_size)
  cm = metrics_lib.ConfusionMatrix(stages.NUM_STAGES).add(y, logits.argmax(-1))
  return {"metrics": metrics_lib.summarize(cm, stages.STAGE_NAMES), "confusion": cm.matrix.tolist(),
          "epochs": int(y.size)}


def _builder_input(builder, modalities):
  from sleepjax.train import sleepmg  # pylint: disable=g-import-not-at-top
  return sleepmg._builder_input(builder, modalities)  # pylint: disable=protected-access


def model_metadata(config, input_block, *, best_step, validation, test, train_subjects, test_subjects):
  return {"task": TASK, "window_epochs": int(config.window_epochs),
          "data": {"name": config.data.name, "builder_config": config.data.builder_config,
                   "modalities": list(config.data.modalities)},
          "pretrained": config.model.pretrained, "freeze_encoder": bool(config.model.freeze_encoder),
          "best_step": int(best_step), "validation": validation, "test": test,
          "train_subjects": list(train_subjects), "test_subjects": list(test_subjects), "input": input_block}


def fit(config: ml_collections.ConfigDict, train_nights: Sequence[Night], channels: Mapping[str, int], sfreq: float,
        *, validation_nights: Sequence[Night] | None = None, writer=None):
  """Trains one stager on `train_nights` (the config's model, optimizer, windows and dropout).

  Args:
    config: a staging config.
    train_nights: the training nights.
    channels: {modality: C_m} of the input.
    sfreq: Hz of the signals (the encoder's rate must match).
    validation_nights: if given, the best validation macro-F1 (every `eval_every` steps) is kept.
    writer: an optional `MetricWriter`.

  Returns:
    (best eval-mode model (the final one without validation), final eval-mode model, `loop.Result`).
  """
  modalities = tuple(config.data.modalities)
  model = build_model(config, channels, sfreq)
  opt = config_lib.optimizer_config(config.optimizer, config.steps)
  if config.model.freeze_encoder:
    opt = dataclasses.replace(opt, frozen=tuple(sorted(set(opt.frozen) | {"encoder"})))
  seed = int(config.seeds[0])
  model.eval()
  graphdef_eval = nnx.graphdef(model)
  model.train()
  # The class weights are a traced argument: runs with other training sets share one compiled step.
  weights = {"class_weights": class_weights(train_nights, config.class_weighting)}
  graphdef, state = state_lib.init_state(model, opt, state_lib.dropout_key(seed + 2))
  task = StagingTask(graphdef, opt, graphdef_eval, bool(config.model.freeze_encoder))
  mesh = mesh_lib.make_data_mesh(config.get("num_devices"))
  state = mesh_lib.put(state, mesh_lib.state_sharding(state, mesh))
  window = int(config.window_epochs)
  items = [(i, s) for i, n in enumerate(train_nights) for s in window_starts(n, window, int(config.train_stride_epochs))]
  rng = np.random.default_rng(seed)

  def batches():
    for idx in inputs.index_batches(len(items), config.batch_size, rng):
      yield window_batch(train_nights, [items[i] for i in idx], modalities, window, rng=rng,
                         modality_dropout=config.modality_dropout, channel_dropout=config.channel_dropout)

  def evaluate(state):
    res = evaluate_nights(task.eval_model(state), validation_nights, modalities, window, config.eval_batch_size)
    return {f"validation/{k}": res["metrics"][k] for k in ("accuracy", "macro_f1", "kappa")}

  has_val = bool(validation_nights)
  result = loop_lib.train(
      state, state_lib.make_train_step(task, mesh, state), batches(), steps=int(config.steps),
      log_every=config.log_every, to_device=functools.partial(mesh_lib.global_batch, mesh=mesh),
      hparams=weights, writer=writer, evaluate=evaluate if has_val else None,
      eval_every=config.eval_every if has_val else None, select=("validation/macro_f1", "max") if has_val else None,
      progress=config.progress_bar, desc="staging", items_per_step=config.batch_size)
  return task.eval_model(result.best_or_final()), task.eval_model(result.state), result


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains a stager on the training subjects, selects on validation, tests on held-out subjects.

  Returns:
    {"test": {"metrics", "confusion", "epochs"}, "validation": ..., "best_step": int}.

  Raises:
    config_lib.ConfigError: before any data is read.
    ValueError: a split without epochs, or an encoder at another rate than the data.
  """
  validate_config(config)
  work = pathlib.Path(workdir)
  work.mkdir(parents=True, exist_ok=True)
  (work / "config.json").write_text(config.to_json_best_effort(indent=2), encoding="utf-8")
  modalities = tuple(config.data.modalities)
  builder = inputs.open_dataset(config.data)
  full = f"{config.data.name}/{config.data.builder_config}"
  splits = {k: config.data[f"{k}_split"] for k in ("train", "validation", "test")}
  nights = {k: read_nights(builder.as_data_source(split=s), modalities, f"{full}[{s}]") for k, s in splits.items()}
  for k, v in nights.items():
    if not v:
      raise ValueError(f"{full}: split {splits[k]!r} has no epochs")
  input_block = _builder_input(builder, modalities)
  sfreq = float(input_block["sfreq"]) if input_block else config.model.encoder.sfreq
  train_nights = nights["train"]
  channels = {m: int(train_nights[0].signals[m].shape[1]) for m in modalities}
  window = int(config.window_epochs)
  with writer_lib.MetricWriter(work, tensorboard=config.tensorboard) as writer:
    best, final, result = fit(config, train_nights, channels, sfreq, validation_nights=nights["validation"],
                              writer=writer)
  validation = evaluate_nights(best, nights["validation"], modalities, window, config.eval_batch_size)
  test = evaluate_nights(best, nights["test"], modalities, window, config.eval_batch_size)
  subjects = {k: sorted({n.subject_id for n in v}) for k, v in nights.items()}
  for name, m, step in (("best", best, result.best_step or result.steps), ("final", final, result.steps)):
    meta = model_metadata(config, input_block, best_step=step, validation=validation["metrics"],
                          test=test["metrics"], train_subjects=subjects["train"], test_subjects=subjects["test"])
    models_lib.save(m, work / models_lib.saving.MODEL_ROOT / name, label_names=stages.STAGE_NAMES, metadata=meta)
    models_lib.saving.register(work, name, {"description": f"sequence stager ({name}: "
                                            f"{'best validation macro-F1' if name == 'best' else 'last step'})",
                                            "step": step}, default=name == "best")
  rows = [{"split": split, "subjects": ", ".join(subjects[split]), "epochs": res["epochs"], **res["metrics"],
           "confusion": res["confusion"]} for split, res in (("validation", validation), ("test", test))]
  columns = ["split", "subjects", "epochs", "accuracy", "macro_f1", "kappa", *[f"f1/{s}" for s in stages.STAGE_NAMES]]
  report_lib.write_results(work, "results", rows, columns)
  plots.confusion_matrix(np.asarray(test["confusion"]), stages.STAGE_NAMES, work / "confusion.png",
                         title="Sequence stager, held-out test subjects")
  table = report_lib.format_table(rows, columns)
  logging.info("staging: best step %d", result.best_step)
  print(f"\nHeld-out subjects ({work / 'results.md'}):\n{table}", flush=True)
  return {"test": test, "validation": validation, "best_step": result.best_step}
