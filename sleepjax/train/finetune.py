"""Transfer of the sleep-pretrained encoder to wake EEG and ECG tasks.

The task: `models.transfer.TransferModel` (the set-transformer encoder, masked-time augmentation,
an MLP head), trained with label-smoothed cross-entropy, or smoothed sigmoid BCE when the data
are multilabel (examples carrying an (L,) 0/1 `labels` vector, PTB-XL's CODE-15 labels).
Strategies (the paper's three): scratch (random init, all trained), pretrained (the encoder of a
pretraining workdir, all trained), frozen (that encoder frozen in inference mode, only the head
trained: a probe). The protocol: AdamW, early stopping on the validation loss, the
best-validation model tested on held-out subjects, mean +- std over seeds; optionally a channel
ablation. Methods and metrics: docs/specification.md §3; the measurements: docs/transfer.md.

Reference: "Pretraining on Sleep Data Improves non-Sleep Biosignal Tasks", arXiv 2605.02500.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sleepjax import losses
from sleepjax import models as models_lib
from sleepjax import optim
from sleepjax.data import downstream_pipeline as dpipe
from sleepjax.data import errors
from sleepjax.evaluation import baselines as baselines_lib
from sleepjax.evaluation import evaluators
from sleepjax.evaluation import metrics as metrics_lib
from sleepjax.evaluation import plots
from sleepjax.evaluation import report as report_lib
from sleepjax.models import encoder as encoder_lib
from sleepjax.models import multimodal
from sleepjax.models import transfer
from sleepjax.train import config as config_lib
from sleepjax.train import inputs
from sleepjax.train import loop as loop_lib
from sleepjax.train import mesh as mesh_lib
from sleepjax.train import state as state_lib
from sleepjax.train import writer as writer_lib

STRATEGIES = ("scratch", "pretrained", "frozen")
CLASS_WEIGHTINGS = ("none", "balanced")
# Downstream modality -> the pretraining modality group whose encoder it takes.
MODALITY_TO_GROUP = {"eeg": "bas", "eog": "bas", "ecg": "ecg", "emg": "emg", "resp": "resp"}
# Headline test metrics of a multilabel task (per-label ones are "<metric>/<label>").
MULTILABEL_METRIC_KEYS = ("auroc", "auprc", "macro_f1")
# Table cell of a single-label metric on a multilabel task (a number there would be wrong).
NOT_APPLICABLE = "n/a (multilabel)"
SINGLE_LABEL_ONLY = ("balanced_accuracy", "kappa", "weighted_f1")
# What the inference step reads of a batch (the labels for its per-example loss).
EVAL_INPUTS = ("signals", "mask", "positions", "label", "valid")


def default_config() -> ml_collections.ConfigDict:
  """Every field of a transfer config, with the transfer paper's values (configs/transfer.py)."""
  c = config_lib.common("finetune")
  c.name = "eegmmidb"  # Task name in the results table.
  c.seeds = (0, 1, 2)
  c.strategies = STRATEGIES
  c.channel_encodings = (False, True)
  c.num_devices = 1  # The datasets and models are small: one device.

  c.pretrained_workdir = config_lib.placeholder(str)  # A pretraining workdir (or model folder); None skips pretrained strategies.
  c.pretrained_model = config_lib.placeholder(str)  # Which model of that workdir (None: its default, e.g. "final").
  c.pretrained_group = config_lib.placeholder(str)  # None: eeg -> "bas", ecg -> "ecg".

  c.data.builder_module = "tfds_builders.eegmmidb"
  c.data.name = "eegmmidb"
  c.data.builder_config = "motor_imagery"
  c.data.modality = "eeg"
  c.data.sfreq = 160.0  # Hz of the stored windows (eegmmidb 160).
  c.data.train_split = "train"
  c.data.validation_split = "validation"  # "" or missing: 10% of the training subjects.
  c.data.test_split = "test"
  c.data.max_train_examples = config_lib.placeholder(int)
  c.data.max_eval_examples = config_lib.placeholder(int)
  c.data.class_names = ()  # Only for in-memory sources (tests); builders name their classes.
  # () or (low, high) Hz: band-pass the network's input before resampling and clipping (unfiltered
  # wake EEG: docs/transfer.md "EEGMMIDB diagnosis"). The baselines filter for themselves.
  c.data.bandpass_hz = ()
  c.data_seed = 0

  c.model = ml_collections.ConfigDict()
  c.model.encoder = config_lib.encoder("transfer")  # 1-s patches of 128 samples at 128 Hz, 3 layers, E=128.
  c.model.dtype = "float32"
  # True: the scratch strategy uses the pretrained checkpoint's encoder architecture (random init),
  # so scratch and pretrained compare at equal size; False: `model.encoder` above.
  c.model.scratch_matches_pretrained = True
  c.model.head_hidden_dim = 128
  c.model.head_dropout = 0.1
  c.model.mask_rate = 0.2  # Masked-time augmentation: fraction of tokens dropped in training.

  # AdamW 1e-4 (the transfer paper).
  c.optimizer = config_lib.optimizer(name="adamw", learning_rate=1e-4, weight_decay=1e-4, grad_clip_norm=1.0)
  # The frozen strategy trains the head only; None: optimizer.learning_rate. A probe head at the
  # fine-tuning rate of 1e-4 barely leaves its init in a few hundred steps (docs/transfer.md).
  c.head_learning_rate = config_lib.placeholder(float)
  c.head_learning_rate = 1e-3
  c.label_smoothing = 0.1
  # "balanced": cross-entropy weighted by n / (K n_c) from the training labels (sklearn's
  # "balanced"), in training and in the validation loss of early stopping; for skewed tasks.
  c.class_weighting = "none"

  c.batch_size = 16
  c.eval_batch_size = 64
  c.steps = 2000
  c.eval_every = 50
  c.log_every = 50
  c.patience = 5  # Evaluations without a lower validation loss before stopping.

  # Classic feature baselines (sleepjax.evaluation.baselines.BASELINES) fitted on the same splits and
  # scored with the same metrics: a "baseline:<name>" row in results.*; () for none.
  c.baselines = ("band_power",)
  # With a pretrained encoder: also a "linear_probe" row, a standardised logistic regression on its
  # frozen mean-pooled embeddings (a closed-form probe that needs no learning rate).
  c.linear_probe = True

  c.ablation = ml_collections.ConfigDict()
  c.ablation.enabled = False
  c.ablation.strategy = "scratch"  # Which trained model the subsets are evaluated with.
  c.ablation.channel_encoding = False
  c.ablation.sizes = ()  # (): every k when C <= 20, else 1, 2, 4, ..., C.
  c.ablation.draws = 5  # Random subsets per size (the paper).
  c.ablation.retrain = False  # True: re-train per subset as the paper (accelerator only).
  c.ablation.metric = "balanced_accuracy"
  c.ablation.fraction = 0.95
  c.ablation.seed = 0
  return c


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects a config that cannot run, before any data is built.

  Raises:
    config_lib.ConfigError: unknown field or name, or a value out of range (one line).
  """
  config_lib.validate_common(config, default_config(), periods=("eval_every", "patience"))
  config_lib.check_subset("strategies", config.strategies, STRATEGIES)
  config_lib.check_choice("ablation.strategy", config.ablation.strategy, STRATEGIES)
  config_lib.check_choice("class_weighting", config.class_weighting, CLASS_WEIGHTINGS)
  if not tuple(config.channel_encodings):
    raise config_lib.ConfigError("config.channel_encodings is empty")
  if not 0.0 <= config.label_smoothing < 1.0:
    raise config_lib.ConfigError(f"config.label_smoothing must be in [0, 1), got {config.label_smoothing}")
  if config.ablation.enabled:
    config_lib.check_positive(config, ("ablation.draws",))
  if tuple(config.baselines):
    config_lib.check_subset("baselines", config.baselines, baselines_lib.BASELINES)
  if config.get("head_learning_rate") is not None and not config.head_learning_rate > 0:
    raise config_lib.ConfigError(f"config.head_learning_rate must be > 0 or None, got {config.head_learning_rate}")


# ----------------------------------------------------------------------------------------------
# Task.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FinetuneTask(state_lib.Task):
  """The fine-tuning update and its inference-mode evaluation.

  Batch: {"signals": (B, C, T), "mask": (B, C), "positions": (B, C, 3), "label": (B,) int32
  ((B, L) 0/1 when multilabel), "valid": (B,) bool} (`downstream_pipeline.batches`).

  Attributes:
    frozen: the encoder runs in inference mode (its updates are zeroed by the optimizer).
    label_smoothing: eps of the training loss.
    multilabel: sigmoid BCE per label instead of softmax cross-entropy.
    class_weights: (K,) single-label class weights, or None.
  """
  graphdef: Any
  optimizer: optim.OptimizerConfig
  frozen: bool = False
  label_smoothing: float = 0.0
  multilabel: bool = False
  class_weights: tuple[float, ...] | None = None

  def example_loss(self, logits, batch, *, label_smoothing: float = 0.0, reduction: str = "mean"):
    """Cross-entropy (class-weighted if set) or, multilabel, BCE; padding rows ("valid") excluded."""
    if self.multilabel:
      return losses.multilabel_bce(logits, batch["label"], mask=batch["valid"], label_smoothing=label_smoothing,
                                   reduction=reduction)
    return losses.cross_entropy(logits, batch["label"], mask=batch["valid"], label_smoothing=label_smoothing,
                                reduction=reduction, class_weights=self.class_weights)

  def loss(self, model, batch, rng, hparams):
    del hparams
    # Fresh dropout and token masks at every step, reproducibly.
    drop_key, mask_key = jax.random.split(rng)
    nnx.reseed(model, dropout=drop_key)
    logits = model(batch["signals"], batch["mask"], batch["positions"], train=True,
                   encoder_train=not self.frozen, mask_key=mask_key)
    loss = self.example_loss(logits, batch, label_smoothing=self.label_smoothing)
    if self.multilabel:
      correct = jnp.mean(((logits > 0) == (batch["label"] > 0)).astype(jnp.float32), axis=-1) * batch["valid"]
    else:
      correct = (jnp.argmax(logits, -1) == batch["label"]) & batch["valid"]
    accuracy = jnp.sum(correct) / jnp.maximum(jnp.sum(batch["valid"]), 1)
    return loss, {"metrics": {"accuracy": accuracy}}

  def evaluate_batch(self, model, batch):
    """{"logits": (B, K), "loss": (B,) unsmoothed per-example loss} in inference mode."""
    logits = model(batch["signals"], batch["mask"], batch["positions"], train=False)
    return {"logits": logits, "loss": self.example_loss(logits, batch, reduction="none")}


def balanced_class_weights(labels, num_classes: int) -> np.ndarray:
  """Class weights n / (K n_c), K the classes present (scikit-learn's class_weight="balanced").

  Args:
    labels: (N,) int class indices; negative values (unlabelled) are ignored.
    num_classes: K.

  Returns:
    (K,) float64; a class absent from `labels` gets weight 0 (it contributes no loss anyway).

  Raises:
    ValueError: labels are not 1-D, reach K, or none is >= 0.
  """
  y = np.asarray(labels)
  if y.ndim != 1:
    raise ValueError(f"balanced_class_weights: labels must be (N,) class indices, got shape {y.shape}")
  y = y[y >= 0]
  if y.size == 0:
    raise ValueError("balanced_class_weights: no labelled example")
  if y.max() >= num_classes:
    raise ValueError(f"balanced_class_weights: label {y.max()} >= num_classes {num_classes}")
  counts = np.bincount(y, minlength=num_classes).astype(np.float64)
  present = int(np.sum(counts > 0))
  return np.where(counts > 0, y.size / (present * np.maximum(counts, 1)), 0.0)


def head_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`TransferModel` head keyword arguments from `config.model` (hidden width, dropout, mask rate)."""
  return {"hidden_dim": config.model.head_hidden_dim, "head_dropout": config.model.head_dropout,
          "mask_rate": config.model.mask_rate}


def init_state(config: ml_collections.ConfigDict, enc_config: encoder_lib.EncoderConfig, num_classes: int, *,
               strategy: str, seed: int, multilabel: bool = False, class_weights=None,
               pretrained: "Pretrained | None" = None) -> tuple[FinetuneTask, dict[str, Any]]:
  """Builds a `TransferModel` with `seed` (and the pretrained encoder) and returns (task, train state).

  Args:
    config: the transfer config.
    enc_config: the encoder's config (channel encoding set).
    num_classes: K (softmax head) or L labels (multilabel sigmoid head).
    strategy: "scratch", "pretrained" or "frozen".
    seed: parameter init (Rngs(params=seed)), the dropout stream and the run key
      (`state.dropout_key(seed + 1)`, `dropout_key(seed + 2)`).
    multilabel: the head is trained with BCE.
    class_weights: (K,) single-label weights of the training and validation losses, or None.
    pretrained: copied into the encoder (required unless strategy == "scratch").

  Raises:
    ValueError: unknown strategy, a pretrained strategy without `pretrained`, class weights with a
      multilabel task or of the wrong length.
  """
  if strategy not in STRATEGIES:
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
  if strategy != "scratch" and pretrained is None:
    raise ValueError(f"strategy {strategy!r} needs a pretrained encoder (config.pretrained_workdir)")
  if class_weights is not None and multilabel:
    raise ValueError("class_weights apply to single-label tasks only (a multilabel task uses BCE)")
  weights = None if class_weights is None else tuple(float(w) for w in np.asarray(class_weights).reshape(-1))
  if weights is not None and len(weights) != num_classes:
    raise ValueError(f"class_weights has {len(weights)} entries for {num_classes} classes")
  model = transfer.TransferModel(enc_config, num_classes, **head_config(config),
                                 rngs=nnx.Rngs(params=seed, dropout=state_lib.dropout_key(seed + 1)))
  if strategy != "scratch":
    load_encoder_into(model, pretrained)
  frozen = strategy == "frozen"
  # set_to_zero (not a zero learning rate), so that AdamW's decoupled weight decay cannot move
  # the frozen weights either.
  opt = config_lib.optimizer_config(config.optimizer, config.steps).replace(frozen=("encoder",) if frozen else ())
  if frozen and config.get("head_learning_rate") is not None:
    # The encoder's updates are set_to_zero, so the optimiser's rate is the head's rate alone.
    opt = opt.replace(learning_rate=float(config.head_learning_rate))
  graphdef, state = state_lib.init_state(model, opt, state_lib.dropout_key(seed + 2))
  return FinetuneTask(graphdef, opt, frozen, float(config.label_smoothing), bool(multilabel), weights), state


# ----------------------------------------------------------------------------------------------
# Pretrained encoder.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """The encoder of a saved pretraining model, ready to copy into a `TransferModel`.

  Attributes:
    encoder: the `SetTransformerEncoder` (loaded with `sleepjax.models.load`).
    model_path: the saved model's folder.
    step: its training step (None if not recorded).
    data: which pretraining data it saw ("<name>/<builder_config>" or "unknown").
    group: the modality group whose encoder was taken.
  """
  encoder: Any
  model_path: str
  step: int | None
  data: str
  group: str

  @property
  def encoder_config(self) -> encoder_lib.EncoderConfig:
    return self.encoder.config


def load_pretrained(config: ml_collections.ConfigDict, modality: str) -> Pretrained:
  """Loads the encoder of `modality`'s group from `config.pretrained_workdir` (`sleepjax.models.load`).

  Args:
    config: needs `pretrained_workdir` (a pretraining workdir or a saved model folder), optional
      `pretrained_model` (a name of its model index) and `pretrained_group`.
    modality: the downstream modality ("eeg" -> group "bas", "ecg" -> "ecg").

  Returns:
    A `Pretrained`.

  Raises:
    FileNotFoundError: nothing saved there.
    KeyError: the model has no encoder for the group.
    ValueError: the saved model is not an encoder.
  """
  path, name = config.pretrained_workdir, config.get("pretrained_model")
  info = models_lib.load_info(path, name)
  model = models_lib.load(path, name)
  group = config.get("pretrained_group") or MODALITY_TO_GROUP.get(modality, modality)
  if isinstance(model, multimodal.MultiModalEncoder):
    if not model.shared and group not in model.modalities:
      raise KeyError(f"{info['path']}: no encoder for modality group {group!r} (has {list(model.modalities)}); "
                     "set config.pretrained_group")
    encoder = model.encoder if model.shared else model.encoders[group]
  elif isinstance(model, encoder_lib.SetTransformerEncoder):
    encoder = model
  else:
    raise ValueError(f"{info['path']}: a {info['architecture']} is not a pretrained encoder")
  meta = info.get("metadata") or {}
  data = meta.get("data") or {}
  source = f"{data['name']}/{data['builder_config']}" if data.get("name") else "unknown"
  return Pretrained(encoder, info["path"], meta.get("step"), source, group)


def _overlay(target: dict, source: Mapping) -> dict:
  """`target` (nested dict) with every leaf that `source` also has replaced by source's value."""
  out = {}
  for k, v in target.items():
    if k in source and isinstance(v, dict):
      out[k] = _overlay(v, source[k])
    elif k in source:
      out[k] = jnp.asarray(source[k], v.dtype)
    else:
      out[k] = v
  return out


def load_encoder_into(model: transfer.TransferModel, pretrained: Pretrained) -> None:
  """Copies the pretrained encoder's parameters and BatchNorm statistics into `model.encoder`.

  The channel-encoding layer is copied only if both sides have one; a downstream run with channel
  encoding on an encoder pretrained without it starts that layer at random init.
  """
  for kind in (nnx.Param, nnx.BatchStat):
    target = nnx.state(model.encoder, kind)
    nnx.replace_by_pure_dict(target, _overlay(nnx.to_pure_dict(target),
                                              nnx.to_pure_dict(nnx.state(pretrained.encoder, kind))))
    nnx.update(model.encoder, target)


def encoder_config_for(config: ml_collections.ConfigDict, channel_encoding: bool,
                       pretrained: Pretrained | None) -> encoder_lib.EncoderConfig:
  """The configured encoder (scratch) or the pretrained one's, with channel encoding set."""
  base = pretrained.encoder_config if pretrained is not None else config_lib.encoder_config(config.model)
  return base.replace(channel_encoding=bool(channel_encoding))


# ----------------------------------------------------------------------------------------------
# Data.
# ----------------------------------------------------------------------------------------------


def _split_off_subjects(arrays: Mapping[str, np.ndarray], fraction: float, seed: int):
  """(rest, held-out) with a seeded `fraction` of the subjects held out (at least one)."""
  subjects = np.unique(arrays["subject_id"])
  if len(subjects) < 2:
    raise ValueError(f"cannot split a validation set by subject from {len(subjects)} subject(s)")
  n_held = max(1, int(round(fraction * len(subjects))))
  held = np.random.default_rng(seed).choice(subjects, size=n_held, replace=False)
  is_held = np.isin(arrays["subject_id"], held)
  return ({k: v[~is_held] for k, v in arrays.items()}, {k: v[is_held] for k, v in arrays.items()})


def load_data(config: ml_collections.ConfigDict, enc_config: encoder_lib.EncoderConfig | None,
              sources: Mapping[str, Any] | None = None) -> tuple[dict[str, dict], list[str]]:
  """Reads train/validation/test into memory, preprocessed for `enc_config` (rate, patch size).

  Args:
    config: `config.data` names the builder, its splits, the dataset rate `sfreq` and `modality`.
    enc_config: the encoder (its `sfreq` and `patch_size`); None: the raw windows, in uV at the
      dataset's rate (the classic baselines), with the same examples and splits.
    sources: optional {"train", "validation", "test": random-access examples} (tests); with it,
      `config.data.class_names` gives the class (or label) names.

  Returns:
    ({"train", "validation", "test": arrays of `downstream_pipeline.load_split`}, class names).
    Without a validation split, a seeded 10% of the training subjects is held out
    (docs/specification.md §3.2). A multilabel builder (a `labels` feature) gives 2-D `label`
    arrays (N, L) and its `info.metadata["label_names"]` as the names.

  Raises:
    errors.RecordingError: a split is missing or malformed, or the splits disagree on the task
      type (single-label vs multilabel) or on the number of labels.
    ValueError: `config.data.manual_dir_required` and no manual_dir while the dataset is not built
      yet, or the number of names does not match.
  """
  d = config.data
  names = {"train": d.train_split, "validation": d.validation_split, "test": d.test_split}
  if sources is None:
    builder = inputs.open_dataset(d)
    class_names = dpipe.class_names(builder.info)
    if class_names is None:
      raise errors.RecordingError(f"{d.name}/{d.builder_config}",
                                  f"no 'label' or 'labels' feature (has {sorted(builder.info.features.keys())})")
    available = set(builder.info.splits.keys())
    sources = {role: builder.as_data_source(split=split) for role, split in names.items()
               if split and split in available}
    missing = [r for r in ("train", "test") if r not in sources]
    if missing:
      raise errors.RecordingError(f"{d.name}/{d.builder_config}",
                                  f"no {missing} split (available: {sorted(available)}); subject-wise "
                                  "transfer needs train and test subjects")
  else:
    class_names = list(d.class_names)
  caps = {"train": d.get("max_train_examples"), "validation": d.get("max_eval_examples"),
          "test": d.get("max_eval_examples")}
  out = {}
  rate, patch = (d.sfreq, 1) if enc_config is None else (enc_config.sfreq, enc_config.patch_size)
  for role, source in sources.items():
    out[role] = dpipe.load_split(source, modality=d.modality, sfreq=d.sfreq, target_sfreq=rate,
                                 patch_size=patch, max_examples=caps[role], seed=config.data_seed,
                                 name=f"{d.name}/{d.builder_config}[{names[role]}]", scale=enc_config is not None,
                                 bandpass_hz=tuple(d.get("bandpass_hz") or ()) if enc_config is not None else ())
  shapes = {role: a["label"].shape[1:] for role, a in out.items()}
  if len(set(shapes.values())) > 1:
    raise errors.RecordingError(f"{d.name}/{d.builder_config}",
                                f"splits disagree on the label shape per example: {shapes}")
  n_out = shapes["train"][0] if shapes["train"] else None
  if n_out is not None and len(class_names) != n_out:
    raise ValueError(f"{d.name}/{d.builder_config}: {n_out} labels per example but {len(class_names)} names "
                     f"{list(class_names)} (config.data.class_names for in-memory sources)")
  if "validation" not in out:
    out["train"], out["validation"] = _split_off_subjects(out["train"], 0.1, config.data_seed)
  return out, class_names


def train_batches(arrays: Mapping[str, np.ndarray], batch_size: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled training batches (`inputs.index_batches` order), every row valid."""
  keys = ("signals", "mask", "positions", "label")
  for idx in inputs.index_batches(len(arrays["label"]), batch_size, np.random.default_rng(seed)):
    batch = {k: arrays[k][idx] for k in keys}
    batch["valid"] = np.ones(len(idx), bool)
    yield batch


def classification_evaluator(task: FinetuneTask, arrays: Mapping[str, np.ndarray], class_names,
                             batch_size: int) -> evaluators.Classification:
  """A `Classification` evaluator of `arrays` (padded batches) with the task's inference step."""
  return evaluators.Classification(lambda: dpipe.batches(arrays, batch_size, shuffle=False), task.evaluate_batch,
                                   class_names, inputs=EVAL_INPUTS)


def predict(task: FinetuneTask, model: nnx.Module, arrays: Mapping[str, np.ndarray], batch_size: int):
  """(logits (N, K) float32, unsmoothed per-example loss (N,)) of in-memory examples."""
  pred = classification_evaluator(task, arrays, (), batch_size).predict(model)
  return pred["logits"], pred["loss"]


# ----------------------------------------------------------------------------------------------
# One run: train with early stopping, test the best-validation model.
# ----------------------------------------------------------------------------------------------


def train_one(config: ml_collections.ConfigDict, data: Mapping[str, Mapping[str, np.ndarray]], class_names,
              enc_config: encoder_lib.EncoderConfig, *, strategy: str, seed: int,
              pretrained: Pretrained | None = None, writer: writer_lib.MetricWriter | None = None,
              prefix: str = "") -> dict[str, Any]:
  """Fine-tunes one model and evaluates its best-validation parameters on the test split.

  Args:
    config: see configs/transfer.py (optimizer, batch_size, steps, eval_every, patience, ...).
    data: {"train", "validation", "test"} arrays from `load_data`.
    class_names: K class names, or L label names for a multilabel task (2-D `label` arrays).
    enc_config: the encoder's config (channel encoding on or off already set).
    strategy: "scratch", "pretrained" or "frozen".
    seed: model init, dropout, token masks and batch order.
    pretrained: the encoder to start from (required unless strategy == "scratch").
    writer: optional metric writer; scalars are namespaced with `prefix`.
    prefix: e.g. "scratch/ce0/seed1/".

  Returns:
    {"metrics": test metrics (`evaluators.logits_metrics`), "task", "model" (best-validation
     model), "final_model", "best_step", "steps", "best_val_loss", "logits" (test), "thresholds"
     ((L,) validation-chosen, multilabel only; None otherwise)}.

  Raises:
    ValueError: a pretrained strategy without `pretrained`, or class weighting on a multilabel task.
  """
  multilabel = dpipe.is_multilabel(data["train"])
  if config.class_weighting == "balanced" and multilabel:
    raise ValueError(f"config.class_weighting='balanced' applies to single-label tasks; {config.name} is multilabel")
  class_weights = (balanced_class_weights(data["train"]["label"], len(class_names))
                   if config.class_weighting == "balanced" else None)
  task, state = init_state(config, enc_config, len(class_names), strategy=strategy, seed=seed,
                           multilabel=multilabel, class_weights=class_weights, pretrained=pretrained)
  mesh = mesh_lib.make_data_mesh(config.get("num_devices"))
  state = mesh_lib.put(state, mesh_lib.state_sharding(state, mesh))
  validation = classification_evaluator(task, data["validation"], class_names, config.eval_batch_size)

  def evaluate(state):
    loss = validation.predict(state_lib.model_from_state(task.graphdef, state))["loss"]
    return {"validation/loss": float(np.mean(loss))}

  result = loop_lib.train(
      state, state_lib.make_train_step(task, mesh, state), train_batches(data["train"], config.batch_size, seed),
      steps=config.steps, log_every=config.log_every, to_device=functools.partial(mesh_lib.global_batch, mesh=mesh),
      writer=writer, prefix=prefix, evaluate=evaluate, eval_every=config.eval_every,
      select=("validation/loss", "min"), patience=config.patience, progress=config.progress_bar,
      desc=prefix.rstrip("/") or "finetune")
  # Validation loss never finite: the last parameters are tested rather than none.
  best = state_lib.model_from_state(task.graphdef, result.best_or_final())
  thresholds = None
  if multilabel:  # Thresholds from validation only: choosing them on test would overstate F1.
    val_logits, _ = predict(task, best, data["validation"], config.eval_batch_size)
    thresholds = evaluators.validation_thresholds(data["validation"]["label"], val_logits)
  test = classification_evaluator(task, data["test"], class_names, config.eval_batch_size).predict(best)
  metrics = evaluators.logits_metrics(test["label"], test["logits"], class_names, thresholds)
  metrics["loss"] = float(np.mean(test["loss"]))
  return {"metrics": metrics, "task": task, "model": best,
          "final_model": state_lib.model_from_state(task.graphdef, result.state),
          "best_step": result.best_step, "steps": result.steps, "best_val_loss": result.best_metric,
          "logits": test["logits"], "thresholds": thresholds}


# ----------------------------------------------------------------------------------------------
# Classic baselines.
# ----------------------------------------------------------------------------------------------


def run_baselines(config: ml_collections.ConfigDict, *, sources=None) -> list[dict[str, Any]]:
  """Fits `config.baselines` on the training split and scores the test split like the networks.

  The windows are the same examples and splits as the networks' (`load_data` with the same
  `data_seed` subsets and validation hold-out), unscaled, in uV at the dataset's rate.

  Returns:
    One table row per baseline: strategy "baseline:<name>", channel_encoding False, n_seeds 1,
    the test metrics of `evaluators.logits_metrics` (std NaN: the fits are deterministic), and
    `encoder` describing the features and classifier.
  """
  names = tuple(config.baselines)
  if not names:
    return []
  data, class_names = load_data(config, None, sources)
  multilabel = dpipe.is_multilabel(data["train"])
  scores = baselines_lib.run(names, data, config.data.sfreq, class_names, evaluators.logits_metrics,
                             evaluators.validation_thresholds, seed=int(config.seeds[0]))
  rows = []
  for name, metrics in scores.items():
    row = {"task": config.name, "task_type": "multilabel" if multilabel else "single_label",
           "strategy": f"baseline:{name}", "channel_encoding": False, "n_seeds": 1}
    if multilabel:
      row.update({k: NOT_APPLICABLE for k in SINGLE_LABEL_ONLY})
    for key, value in metrics.items():
      if key.startswith("threshold/"):
        continue
      row[key] = value
      row[f"{key}_std"] = float("nan")
    row.update({"steps": float("nan"), "encoder": baselines_lib.DESCRIPTIONS[name], "pretrained_model": "",
                "pretrained_step": None, "pretraining_data": "", "pretrained_group": ""})
    logging.info("baseline %s test %s", name, metrics)
    rows.append(row)
  return rows


def embed(encoder, arrays: Mapping[str, np.ndarray], batch_size: int) -> np.ndarray:
  """(N, E) float32 mean-pooled token embeddings of an encoder in inference mode (jitted once)."""
  graphdef, state = nnx.split(encoder)

  @jax.jit
  def forward(state, x, mask, positions):
    tokens, _ = nnx.merge(graphdef, state)(x, mask, positions, train=False)  # (B, S, E)
    return jnp.mean(tokens, axis=1)

  out = []
  for batch in dpipe.batches(arrays, batch_size, shuffle=False):
    e = forward(state, batch["signals"], batch["mask"], batch["positions"])
    out.append(np.asarray(e)[batch["valid"]])
  return np.concatenate(out).astype(np.float32)


def linear_probe(config: ml_collections.ConfigDict, data, class_names, pretrained: Pretrained,
                 enc_config: encoder_lib.EncoderConfig) -> dict[str, float]:
  """Standardised logistic regression (class-balanced) on the frozen pretrained encoder's embeddings.

  The encoder is the one the `frozen` strategy starts from (channel encoding as `enc_config`).

  Returns:
    Test metrics (`evaluators.logits_metrics`, log-probabilities as logits; multilabel: one
    regression per label, thresholds chosen on validation).
  """
  from sklearn import linear_model, pipeline, preprocessing  # pylint: disable=g-import-not-at-top
  model = transfer.TransferModel(enc_config, len(class_names), **head_config(config), rngs=nnx.Rngs(0))
  load_encoder_into(model, pretrained)
  z = {split: embed(model.encoder, data[split], config.eval_batch_size) for split in ("train", "validation", "test")}
  y = data["train"]["label"]
  make = lambda: pipeline.make_pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression(
      C=0.1, class_weight="balanced", max_iter=2000))
  if dpipe.is_multilabel(data["train"]):
    logits = baselines_lib._fit_multilabel(z["train"], y, {"validation": z["validation"], "test": z["test"]}, 0)  # pylint: disable=protected-access
    thresholds = evaluators.validation_thresholds(data["validation"]["label"], logits["validation"])
    return evaluators.logits_metrics(data["test"]["label"], logits["test"], class_names, thresholds)
  clf = make().fit(z["train"], y)
  logits = baselines_lib._log_proba(clf, z["test"], len(class_names))  # pylint: disable=protected-access
  return evaluators.logits_metrics(data["test"]["label"], logits, class_names)


# ----------------------------------------------------------------------------------------------
# Channel ablation.
# ----------------------------------------------------------------------------------------------


def _ablation_from_model(config, workdir, data, class_names, enc_config, run, strategy: str, seed: int,
                         pretrained=None) -> dict[str, Any]:
  abl = config.ablation
  metric = abl.metric
  test = data["test"]
  if metric not in run["metrics"]:
    raise ValueError(f"config.ablation.metric={metric!r} is not a metric of {config.name} (has "
                     f"{sorted(k for k in run['metrics'] if '/' not in k)}); a multilabel task has no "
                     "balanced accuracy: use e.g. 'auroc'")

  def score(model, keep):
    if abl.retrain:
      masked = {split: dpipe.drop_channels(a, keep) for split, a in data.items()}
      return train_one(config, masked, class_names, enc_config, strategy=strategy, seed=seed,
                       pretrained=pretrained)["metrics"][metric]
    evaluator = classification_evaluator(run["task"], dpipe.drop_channels(test, keep), class_names,
                                         config.eval_batch_size)
    return evaluator.metrics(model, run["thresholds"])[metric]

  n_ch = test["mask"].shape[1]
  ablation = evaluators.ChannelAblation(n_ch, score, sizes=abl.get("sizes"), draws=abl.draws, seed=abl.seed,
                                        metric=metric)
  curve = ablation.run(run["model"])
  full = run["metrics"][metric]
  k95 = evaluators.smallest_k_reaching(curve, full, abl.fraction)
  report_lib.write_results(workdir, "channel_ablation", [{"task": config.name, "metric": metric, **c} for c in curve])
  report_lib.write_results(workdir, "channel_ablation_draws", ablation.draws)
  png = plots.channel_ablation(curve, full, abl.fraction, metric, n_ch, k95,
                               pathlib.Path(workdir) / "channel_ablation.png",
                               title=f"{config.name}: {strategy}, {'re-trained' if abl.retrain else 'evaluate-only'}")
  print(f"Channel ablation ({'re-trained per subset' if abl.retrain else 'evaluate-only, dropped channels masked'}"
        f", {metric}): full montage {full:.4f} with {n_ch} channels; smallest k reaching "
        f"{abl.fraction:.0%}: {k95}", flush=True)
  return {"curve": curve, "draws": ablation.draws, "full": full, "k95": k95, "n_channels": n_ch, "png": str(png)}


def channel_ablation(config: ml_collections.ConfigDict, workdir: str, *, sources=None) -> dict[str, Any]:
  """Random channel subsets (docs/specification.md §3.5: 5 draws per size) -> metric-vs-k curve and the 95% point.

  One model is trained on the full montage (`config.ablation.strategy`, the first seed); each
  subset is then evaluated with the dropped channels masked (the encoder treats a masked channel
  as absent), or, with `config.ablation.retrain`, a model is re-trained per subset as the paper
  does (5 draws x every k trainings: only feasible on an accelerator). Multilabel tasks work the
  same way with a multilabel metric (`config.ablation.metric` "auroc", "auprc" or "macro_f1"; F1
  uses the full-montage model's validation thresholds in evaluate-only mode).

  Writes `<workdir>/channel_ablation.{md,csv,json,png}` and `channel_ablation_draws.*`.

  Returns:
    {"curve": [{"k", "mean", "std", "n"}], "draws", "full" (full-montage score), "k95" (smallest k
     with mean >= 95% of it, None if none), "n_channels", "png"}.

  Raises:
    ValueError: `config.ablation.metric` is not a metric of the task (balanced accuracy on a
      multilabel task).
  """
  strategy = config.ablation.strategy
  pretrained = load_pretrained(config, config.data.modality) if strategy != "scratch" else None
  enc = encoder_config_for(config, config.ablation.channel_encoding, pretrained)
  data, class_names = load_data(config, enc, sources)
  seed = int(config.seeds[0])
  run = train_one(config, data, class_names, enc, strategy=strategy, seed=seed, pretrained=pretrained)
  return _ablation_from_model(config, workdir, data, class_names, enc, run, strategy, seed, pretrained)


# ----------------------------------------------------------------------------------------------
# The job.
# ----------------------------------------------------------------------------------------------


def _table_columns(rows: Sequence[Mapping[str, Any]], multilabel: bool = False) -> list[str]:
  """Column order of results.{md,csv}: single-label or multilabel metrics, then provenance."""
  cols = ["task", "task_type", "strategy", "channel_encoding", "n_seeds"]
  if multilabel:
    # The single-label metrics stay as columns that say "n/a (multilabel)".
    cols += list(SINGLE_LABEL_ONLY)
    for k in MULTILABEL_METRIC_KEYS:
      cols += [k, f"{k}_std"]
    # Per-label columns (mean, std) in the task's label order (the rows' dict order), not sorted.
    for prefix in ("auroc/", "f1/"):
      cols += list(dict.fromkeys(k for r in rows for k in r if k.startswith(prefix)))
  else:
    for k in ("balanced_accuracy", "auroc", "auprc", "kappa", "weighted_f1"):
      cols += [k, f"{k}_std"]
    cols += sorted({k for r in rows for k in r if k.startswith("f1/")})
  cols += ["steps", "encoder", "pretrained_model", "pretrained_step", "pretraining_data", "pretrained_group"]
  return cols


def model_metadata(config, enc: encoder_lib.EncoderConfig, run: Mapping[str, Any], *, strategy: str,
                   channel_encoding: bool, seed: int) -> dict[str, Any]:
  """What a user of a saved transfer model needs: its input, preprocessing and test metrics."""
  d = config.data
  return {"task": "finetune", "name": config.name, "strategy": strategy, "channel_encoding": bool(channel_encoding),
          "seed": int(seed), "step": run["best_step"],
          "data": {"name": d.name, "builder_config": d.builder_config},
          # The input of the model is `preprocess(x, **arguments)` of the dataset's windows (uV).
          "preprocessing": {"function": "sleepjax.data.downstream_pipeline.preprocess",
                            "arguments": {"modality": d.modality, "sfreq": float(d.sfreq),
                                          "bandpass_hz": [float(f) for f in (d.get("bandpass_hz") or ())],
                                          "target_sfreq": float(enc.sfreq), "patch_size": int(enc.patch_size)}},
          "multilabel": bool(run["task"].multilabel),
          "thresholds": None if run["thresholds"] is None else [float(t) for t in run["thresholds"]],
          "test_metrics": report_lib.jsonable({k: v for k, v in run["metrics"].items() if "/" not in k})}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, sources=None) -> list[dict[str, Any]]:
  """Runs every (strategy, channel_encoding, seed), saves each model, writes `<workdir>/results.*`.

  Pretrained strategies are skipped, with a message, when `config.pretrained_workdir` is None.
  Each run's best-validation and final models go to `<workdir>/model/<strategy>/ce<0|1>/seed<k>/
  {best,final}`; the first run's best is the workdir's default model.

  Args:
    config: configs/transfer.py.
    workdir: output directory (metrics.jsonl, tensorboard/, model/, the tables, the ablation curve).
    sources: optional in-memory splits (tests), see `load_data`.

  Returns:
    The table rows (means over seeds with `<metric>_std`). A multilabel task's rows have
    `task_type` "multilabel", macro AUROC/AUPRC/F1, `auroc/<label>`, `auprc/<label>` and
    `f1/<label>` (at validation thresholds, which are in `runs.*` per seed), and
    "n/a (multilabel)" for balanced accuracy, kappa and weighted F1.

  Raises:
    config_lib.ConfigError: the config cannot run.
    ValueError: channel ablation with a metric the task does not have.
  """
  validate_config(config)
  workdir_path = pathlib.Path(workdir)
  workdir_path.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    (workdir_path / "config.json").write_text(config.to_json_best_effort(indent=2), encoding="utf-8")
  strategies = list(config.strategies)
  pretrained, skipped = None, []
  # The scratch baseline takes the checkpoint's architecture when asked (an equal-size comparison).
  match = bool(config.model.scratch_matches_pretrained) and config.get("pretrained_workdir")
  if any(s != "scratch" for s in strategies) or match:
    if config.get("pretrained_workdir"):
      pretrained = load_pretrained(config, config.data.modality)
    else:
      skipped = [s for s in strategies if s != "scratch"]
      strategies = [s for s in strategies if s == "scratch"]
      print(f"Skipping strategies {skipped}: config.pretrained_workdir is None (pretrain first, e.g. "
            "python -m sleepjax.main --config=configs/pretrain.py --workdir=W, then "
            "--config.pretrained_workdir=W)", flush=True)
  rows = run_baselines(config, sources=sources)
  runs = []
  multilabel = bool(rows) and rows[0]["task_type"] == "multilabel"
  data_cache: dict[tuple, Any] = {}
  ablation_run = None
  with writer_lib.MetricWriter(workdir_path, tensorboard=config.tensorboard) as writer:
    for strategy in strategies:
      for channel_encoding in config.channel_encodings:
        pre = pretrained if strategy != "scratch" else None
        enc = encoder_config_for(config, channel_encoding, pretrained if (pre or match) else None)
        data_key = (enc.sfreq, enc.patch_size)
        if data_key not in data_cache:
          data_cache[data_key] = load_data(config, enc, sources)
        data, class_names = data_cache[data_key]
        multilabel = dpipe.is_multilabel(data["train"])
        if multilabel and config.ablation.enabled and config.ablation.metric in SINGLE_LABEL_ONLY:
          raise ValueError(f"config.ablation.metric={config.ablation.metric!r} does not apply to the multilabel task "
                           f"{config.name}: use one of {MULTILABEL_METRIC_KEYS} (or a per-label 'auroc/<label>')")
        per_seed = []
        for seed in config.seeds:
          run_name = f"{strategy}/ce{int(channel_encoding)}/seed{seed}"
          run = train_one(config, data, class_names, enc, strategy=strategy, seed=int(seed), pretrained=pre,
                          writer=writer, prefix=run_name + "/")
          meta = model_metadata(config, enc, run, strategy=strategy, channel_encoding=channel_encoding, seed=int(seed))
          for kind, model in (("best", run["model"]), ("final", run["final_model"])):
            models_lib.save(model, workdir_path / "model" / run_name / kind, label_names=class_names,
                            metadata={**meta, "step": run["best_step"] if kind == "best" else run["steps"]})
            models_lib.saving.register(workdir_path, f"{run_name}/{kind}", {
                "step": run["best_step"] if kind == "best" else run["steps"],
                "description": f"{config.name} {strategy}, channel encoding {bool(channel_encoding)}, seed {seed}: "
                               + ("lowest validation loss" if kind == "best" else "after the last step")})
          per_seed.append(run["metrics"])
          runs.append({"task": config.name, "task_type": "multilabel" if multilabel else "single_label",
                       "strategy": strategy, "channel_encoding": bool(channel_encoding),
                       "seed": int(seed), "steps": run["steps"], "best_step": run["best_step"],
                       "model": f"model/{run_name}/best", **run["metrics"]})
          if (ablation_run is None and config.ablation.enabled and strategy == config.ablation.strategy
              and bool(channel_encoding) == bool(config.ablation.channel_encoding)):
            ablation_run = (data, class_names, enc, run, strategy, int(seed), pre)
          logging.info("%s test %s", run_name, run["metrics"])
        stats = metrics_lib.mean_std(per_seed)
        row = {"task": config.name, "task_type": "multilabel" if multilabel else "single_label",
               "strategy": strategy, "channel_encoding": bool(channel_encoding), "n_seeds": len(per_seed)}
        if multilabel:
          row.update({k: NOT_APPLICABLE for k in SINGLE_LABEL_ONLY})
        for key, st in stats.items():
          # A threshold is a per-seed choice (in runs.*), not a score to average.
          if key == "count" or key.startswith("threshold/"):
            continue
          row[key] = st["mean"]
          row[f"{key}_std"] = st["std"]
        row["steps"] = float(np.mean([r["steps"] for r in runs[-len(per_seed):]]))
        row["encoder"] = (f"E={enc.embed_dim}, {enc.num_layers} layers, "
                          f"{enc.patch_size / enc.sfreq:g}-s patches")
        row["pretrained_model"] = pre.model_path if pre else ""
        row["pretrained_step"] = pre.step if pre else None
        row["pretraining_data"] = pre.data if pre else ""
        row["pretrained_group"] = pre.group if pre else ""
        rows.append(row)
        if strategy == "frozen" and config.linear_probe:
          probe = linear_probe(config, data, class_names, pre, enc)
          probe_row = {**{k: v for k, v in row.items() if k in ("task", "task_type", "channel_encoding")},
                       "strategy": "linear_probe", "n_seeds": 1}
          if multilabel:
            probe_row.update({k: NOT_APPLICABLE for k in SINGLE_LABEL_ONLY})
          for key, value in probe.items():
            if not key.startswith("threshold/"):
              probe_row[key], probe_row[f"{key}_std"] = value, float("nan")
          probe_row.update({"steps": float("nan"), "encoder": row["encoder"] + " (frozen) + logistic regression",
                            **{k: row[k] for k in ("pretrained_model", "pretrained_step", "pretraining_data",
                                                   "pretrained_group")}})
          rows.append(probe_row)
  paths = report_lib.write_results(workdir_path, "results", rows, columns=_table_columns(rows, multilabel))
  report_lib.write_results(workdir_path, "runs", runs)
  if skipped:
    with open(paths["md"], "a", encoding="utf-8") as f:
      f.write(f"\nSkipped strategies {skipped}: no pretrained_workdir was given.\n")
  shown = (["auroc", "auroc_std", "auprc", "macro_f1", "macro_f1_std"] if multilabel else
           ["balanced_accuracy", "balanced_accuracy_std", "auroc", "kappa", "weighted_f1"])
  print(f"\nTransfer on {config.name} (test split, mean +- std over {len(config.seeds)} seed(s)):\n"
        + report_lib.format_table(rows, ["task", "strategy", "channel_encoding", *shown]), flush=True)
  if ablation_run is not None:
    _ablation_from_model(config, workdir_path, *ablation_run)
  return rows
