"""Transfer of the sleep-pretrained encoder to wake EEG and ECG tasks (SPEC section 2, "Downstream transfer").

Model: `SetTransformerEncoder` (the transfer paper's sizes, 1-s patches at 128 Hz and 3 layers, by
default; the pretraining checkpoint's encoder config when one is loaded) -> per-token embeddings
(B, S, E) -> masked-time augmentation (in training, each token is dropped with probability
`mask_rate`) -> mean over the kept tokens -> MLP head Linear(E, H) -> GELU -> Dropout ->
Linear(H, K) -> logits.

Single-label or multilabel, decided by the data (one rule): a split whose examples carry `labels`,
an (L,) 0/1 vector (tfds_builders/ptbxl, the six CODE-15 ECG labels), is a multilabel task; examples
with a class index `label` are single-label. `downstream_pipeline.load_split` turns the former into a
2-D `label` (N, L), and everything below follows from that shape:
  single-label  softmax cross-entropy with label smoothing; metrics from the argmax (balanced
                accuracy, kappa, weighted F1, per-class F1) and one-vs-rest AUROC/AUPRC;
  multilabel    one logit per label, sigmoid binary cross-entropy (`losses.multilabel_bce`, label smoothing
                the BCE way: target y (1 - eps) + eps / 2), the transfer paper's ECG protocol (CODE-15,
                SPEC "Downstream transfer": "BCE loss; per-label threshold at the best F1"). Metrics:
                macro and per-label AUROC, macro AUPRC, and F1 per label at the threshold that maximises
                that label's F1 on the VALIDATION split (`metrics.best_f1_thresholds`), applied to test
                (`metrics.multilabel_f1`). Balanced accuracy, kappa and weighted F1 are single-label
                metrics: the table says "n/a (multilabel)" there.

Strategies (the paper's three):
  scratch     random init, the whole model trained;
  pretrained  encoder weights (and BatchNorm statistics) from a pretraining workdir's checkpoint,
              the whole model trained;
  frozen      the pretrained encoder frozen (run in inference mode, its gradients zeroed by
              `optax.multi_transform` + `set_to_zero`), only the head trained: a probe.

Protocol: label smoothing 0.1, AdamW lr 1e-4, batch 16; validation loss every `eval_every` steps,
early stopping after `patience` evaluations without improvement; the best-validation parameters
are evaluated on the test split. Splits are subject-wise and come from the builders. Metrics on the
test split: balanced accuracy (mean per-class recall, binary tasks too), AUROC, AUPRC, Cohen's
kappa, weighted F1 and per-class F1, mean +- std over seeds. The table goes to
`<workdir>/transfer.{md,csv,json}`, one row per (task, strategy, channel_encoding), with the
pretraining checkpoint (path + step) and its pretraining data.

Modality groups: a SleepFM-Clinical checkpoint has one encoder per modality group ("bas" = EEG +
EOG, "ecg", ...) or one shared encoder (`shared_encoder=True`, the default). A downstream modality
takes the encoder of its group: eeg -> "bas", ecg -> "ecg" (`config.pretrained_group` overrides).
With a shared encoder the mapping does not matter.

Single device: the datasets and the model are small; the step is a pure function jitted once per
model structure (seeds reuse the compiled step) with the state donated.

References:
  "Pretraining on Sleep Data Improves non-Sleep Biosignal Tasks", arXiv 2605.02500 (protocol,
  strategies, channel ablation).
  Thapa et al., SleepFM-Clinical, Nature Medicine 2025 (encoder).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import math
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import scipy.special

from sleepjax import losses
from sleepjax.data import downstream_pipeline as dpipe
from sleepjax.data import errors
from sleepjax.data import pipeline
from sleepjax.evaluation import metrics as metrics_lib
from sleepjax.evaluation import report as report_lib
from sleepjax.models import encoder as encoder_lib
from sleepjax.train import common

STRATEGIES = ("scratch", "pretrained", "frozen")
# Downstream modality -> the pretraining modality group whose encoder it takes.
MODALITY_TO_GROUP = {"eeg": "bas", "eog": "bas", "ecg": "ecg", "emg": "emg", "resp": "resp"}
METRIC_KEYS = ("balanced_accuracy", "auroc", "auprc", "kappa", "weighted_f1", "accuracy", "loss")
# Headline test metrics of a multilabel task (per-label ones are "<metric>/<label>").
MULTILABEL_METRIC_KEYS = ("auroc", "auprc", "macro_f1")
# Table cell of a single-label metric on a multilabel task (a number there would be wrong).
NOT_APPLICABLE = "n/a (multilabel)"
SINGLE_LABEL_ONLY = ("balanced_accuracy", "kappa", "weighted_f1")


# ----------------------------------------------------------------------------------------------
# Model.
# ----------------------------------------------------------------------------------------------


class TransferModel(nnx.Module):
  """Set-transformer encoder + masked-time augmentation + MLP head (the transfer paper's model).

  Args:
    encoder_config: `EncoderConfig` (`encoder.transfer()` in the paper).
    num_classes: K classes (softmax head) or L labels (multilabel sigmoid head).
    hidden_dim: H, width of the head's hidden layer.
    head_dropout: dropout rate before the head's output layer.
    mask_rate: probability of dropping each token in training (masked-time augmentation).
    rngs: nnx.Rngs with "params" and "dropout" streams.

  Raises:
    ValueError: num_classes < 2 or mask_rate outside [0, 1).
  """

  def __init__(self, encoder_config: encoder_lib.EncoderConfig, num_classes: int, *, hidden_dim: int = 128,
               head_dropout: float = 0.1, mask_rate: float = 0.2, rngs: nnx.Rngs):
    if num_classes < 2:
      raise ValueError(f"TransferModel: num_classes must be >= 2, got {num_classes}")
    if not 0.0 <= mask_rate < 1.0:
      raise ValueError(f"TransferModel: mask_rate must be in [0, 1), got {mask_rate}")
    e = encoder_config.embed_dim
    self.mask_rate = mask_rate
    self.encoder = encoder_lib.SetTransformerEncoder(encoder_config, rngs=rngs)
    self.head = nnx.Dict({
        "hidden": nnx.Linear(e, hidden_dim, rngs=rngs),
        "dropout": nnx.Dropout(head_dropout, rngs=rngs),
        "out": nnx.Linear(hidden_dim, num_classes, rngs=rngs),
    })

  def __call__(self, x: jax.Array, mask: jax.Array, positions: jax.Array | None = None, *, train: bool,
               encoder_train: bool | None = None, mask_key: jax.Array | None = None) -> jax.Array:
    """Class logits of a batch of windows.

    Args:
      x: (B, C, T) float32 scaled signals at the encoder's rate, T a multiple of the patch size.
      mask: (B, C) bool, True = channel present.
      positions: (B, C, 3) float32 electrode positions (0 where unknown) or None.
      train: head dropout and masked-time augmentation on.
      encoder_train: encoder dropout and BatchNorm batch statistics on (default: `train`); False
        with `train=True` is the frozen-encoder probe, where the encoder is also cut from the graph
        of gradients.
      mask_key: PRNG key of the token mask; required when `train` and mask_rate > 0.

    Returns:
      (B, K) float32 logits.

    Raises:
      ValueError: training with mask_rate > 0 and no mask_key.
    """
    encoder_train = train if encoder_train is None else encoder_train
    tokens, _ = self.encoder(x, mask, positions, train=encoder_train)  # (B, S, E)
    if not encoder_train:
      tokens = jax.lax.stop_gradient(tokens)
    keep = jnp.ones(tokens.shape[:2], tokens.dtype)
    if train and self.mask_rate > 0:
      if mask_key is None:
        raise ValueError("TransferModel: masked-time augmentation needs mask_key in training")
      keep = jax.random.bernoulli(mask_key, 1.0 - self.mask_rate, tokens.shape[:2]).astype(tokens.dtype)
      # A window whose every token was dropped keeps them all rather than pooling to nothing.
      keep = jnp.where(jnp.sum(keep, axis=1, keepdims=True) > 0, keep, 1.0)
    pooled = jnp.sum(tokens * keep[..., None], axis=1) / jnp.sum(keep, axis=1, keepdims=True)  # (B, E)
    h = nnx.gelu(self.head["hidden"](pooled))
    h = self.head["dropout"](h, deterministic=not train)
    return self.head["out"](h).astype(jnp.float32)


# ----------------------------------------------------------------------------------------------
# Train state and pure steps.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Static:
  """What jit closes over (hashed by identity; built once per model structure and reused by seeds)."""
  graphdef: Any
  tx: optax.GradientTransformation
  frozen: bool
  label_smoothing: float
  multilabel: bool = False
  class_weights: tuple[float, ...] | None = None  # Single-label class weights (None: unweighted).


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


def _param_labels(params):
  """"encoder" or "head" for every parameter leaf (the frozen strategy's multi_transform labels)."""
  def label(path, _):
    first = path[0]
    name = getattr(first, "key", getattr(first, "name", None))
    return "encoder" if name == "encoder" else "head"
  return jax.tree_util.tree_map_with_path(label, params)


def make_optimizer(config: ml_collections.ConfigDict, *, frozen: bool) -> optax.GradientTransformation:
  """AdamW (lr 1e-4 in the paper); with `frozen` the encoder's updates are exactly zero."""
  opt = config.optimizer
  tx = optax.adamw(opt.learning_rate, weight_decay=opt.weight_decay)
  if opt.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  if frozen:
    # set_to_zero (not a zero learning rate) so that AdamW's decoupled weight decay cannot move
    # the frozen weights either.
    tx = optax.multi_transform({"encoder": optax.set_to_zero(), "head": tx}, _param_labels)
  return tx


def _loss(static: Static, logits, batch, *, label_smoothing: float = 0.0, reduction: str = "mean"):
  if static.multilabel:
    return losses.multilabel_bce(logits, batch["label"], mask=batch["valid"], label_smoothing=label_smoothing,
                                 reduction=reduction)
  return losses.cross_entropy(logits, batch["label"], mask=batch["valid"], label_smoothing=label_smoothing,
                              reduction=reduction, class_weights=static.class_weights)


def _merge(static: Static, params, batch_stats, rest) -> TransferModel:
  # Fresh Variable objects at the current trace level: NNX forbids mutating (reseeding, updating
  # BatchNorm statistics) Variables created at another trace level, e.g. outside jax.grad.
  fresh = lambda tree: jax.tree.map(lambda x: x, tree)
  return nnx.merge(static.graphdef, fresh(params), fresh(batch_stats), fresh(rest))


def train_step(static: Static, state: dict[str, Any], batch: Mapping[str, Any]):
  """One pure fine-tuning update (smoothed cross-entropy, or smoothed BCE for a multilabel task).

  Args:
    static: see `Static`.
    state: {"step", "params", "batch_stats", "rest" (module RNG state), "opt_state", "rng"}.
    batch: {"signals": (B, C, T), "mask": (B, C), "positions": (B, C, 3), "label": (B,) int32
      ((B, L) 0/1 with `static.multilabel`), "valid": (B,) bool}.

  Returns:
    (new_state, {"loss", "accuracy", "grad_norm"}); for a multilabel task "accuracy" is the
    fraction of correct (example, label) decisions at probability 0.5.
  """
  # Folding the step in gives fresh dropout and token masks at every step, reproducibly.
  drop_key, mask_key = jax.random.split(jax.random.fold_in(state["rng"], state["step"]))

  def loss_fn(params):
    model = _merge(static, params, state["batch_stats"], state["rest"])
    nnx.reseed(model, dropout=drop_key)
    logits = model(batch["signals"], batch["mask"], batch["positions"], train=True,
                   encoder_train=not static.frozen, mask_key=mask_key)
    loss = _loss(static, logits, batch, label_smoothing=static.label_smoothing)
    return loss, (logits, nnx.state(model, nnx.BatchStat))

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  updates, opt_state = static.tx.update(grads, state["opt_state"], state["params"])
  params = optax.apply_updates(state["params"], updates)
  if static.multilabel:
    correct = jnp.mean(((logits > 0) == (batch["label"] > 0)).astype(jnp.float32), axis=-1) * batch["valid"]
  else:
    correct = (jnp.argmax(logits, -1) == batch["label"]) & batch["valid"]
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
             "accuracy": jnp.sum(correct) / jnp.maximum(jnp.sum(batch["valid"]), 1)}
  new_state = dict(state, step=state["step"] + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
  return new_state, metrics


def eval_step(static: Static, params, batch_stats, rest, batch: Mapping[str, Any]):
  """Logits (B, K) and per-example unsmoothed cross-entropy (or BCE, multilabel) (B,) in inference mode."""
  model = _merge(static, params, batch_stats, rest)
  logits = model(batch["signals"], batch["mask"], batch["positions"], train=False)
  loss = _loss(static, logits, batch, reduction="none")
  return logits, loss


_jit_train_step = jax.jit(train_step, static_argnums=0, donate_argnums=1)
_jit_eval_step = jax.jit(eval_step, static_argnums=0)

# Static parts per model structure, so that every seed of a (strategy, channel encoding) run
# reuses the compiled steps: compilation dominates CPU runs of these small models.
_STATIC_CACHE: dict[Any, Static] = {}


def head_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """`TransferModel` head keyword arguments from `config.model` (hidden width, dropout, mask rate)."""
  return {"hidden_dim": config.model.head_hidden_dim, "head_dropout": config.model.head_dropout,
          "mask_rate": config.model.mask_rate}


def init_state(config: ml_collections.ConfigDict, enc_config: encoder_lib.EncoderConfig, num_classes: int, *,
               strategy: str, seed: int, multilabel: bool = False,
               class_weights=None) -> tuple[Static, dict[str, Any]]:
  """Builds a `TransferModel` with `seed` and returns (static parts, train state).

  `num_classes` is K (softmax head) or, with `multilabel`, the number of labels L (sigmoid head
  trained with `losses.multilabel_bce`). `class_weights` ((K,) floats, single-label only) weights the
  cross-entropy of training and of the validation loss that early stopping watches.

  Raises:
    ValueError: unknown strategy.
  """
  if strategy not in STRATEGIES:
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
  frozen = strategy == "frozen"
  if class_weights is not None and multilabel:
    raise ValueError("class_weights apply to single-label tasks only (a multilabel task uses BCE)")
  weights = None if class_weights is None else tuple(float(w) for w in np.asarray(class_weights).reshape(-1))
  if weights is not None and len(weights) != num_classes:
    raise ValueError(f"class_weights has {len(weights)} entries for {num_classes} classes")
  model = TransferModel(enc_config, num_classes, **head_config(config),
                        rngs=nnx.Rngs(params=seed, dropout=seed + 1))
  graphdef, params, batch_stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  key = (enc_config, num_classes, tuple(sorted(head_config(config).items())), frozen,
         config.optimizer.learning_rate, config.optimizer.weight_decay, config.optimizer.grad_clip_norm,
         config.label_smoothing, bool(multilabel), weights)
  static = _STATIC_CACHE.get(key)
  if static is None or static.graphdef != graphdef:
    static = Static(graphdef, make_optimizer(config, frozen=frozen), frozen, config.label_smoothing,
                    bool(multilabel), weights)
    _STATIC_CACHE[key] = static
  state = {"step": jnp.zeros((), jnp.int32), "params": params, "batch_stats": batch_stats, "rest": rest,
           "opt_state": static.tx.init(params), "rng": jax.random.PRNGKey(seed + 2)}
  return static, state


# ----------------------------------------------------------------------------------------------
# Pretrained encoder.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """A pretraining checkpoint's encoder, ready to copy into a `TransferModel`.

  Attributes:
    encoder_config: the pretraining encoder's `EncoderConfig`.
    params: pure dict of the encoder's parameters (nested, numpy).
    batch_stats: pure dict of its BatchNorm running statistics.
    checkpoint: path of the checkpoint directory (`<workdir>/checkpoints/<step>`).
    step: its training step.
    data: which pretraining data it saw ("<name>/<builder_config> ..." or "unknown").
    group: the modality group whose encoder was taken.
  """
  encoder_config: encoder_lib.EncoderConfig
  params: dict
  batch_stats: dict
  checkpoint: str
  step: int
  data: str
  group: str


def _load_config_file(spec: str) -> ml_collections.ConfigDict:
  """`path/to/config.py[:arg]` -> get_config(arg), as absl's config_flags does."""
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_sleepjax_pretrain_config", path)
  if module_spec is None or not os.path.exists(path):
    raise FileNotFoundError(f"pretraining config file {path!r} not found (config.pretrained_config={spec!r})")
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def pretraining_config(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, bool]:
  """The pretraining run's config and whether it was read from the workdir (True) or rebuilt.

  `<pretrained_workdir>/config.json` is used when the pretraining run saved one; otherwise
  `config.pretrained_config` (`configs/pretrain.py:VARIANT`) rebuilds it, and the caller must make
  sure it is the variant the workdir was trained with (restoring fails loudly on any shape mismatch).
  """
  saved = pathlib.Path(config.pretrained_workdir) / "config.json"
  if saved.exists():
    return ml_collections.ConfigDict(json.loads(saved.read_text())), True
  if not config.get("pretrained_config"):
    raise ValueError(f"{config.pretrained_workdir} has no config.json; set config.pretrained_config to the "
                     "pretraining config it was trained with, e.g. configs/pretrain.py:tiny")
  return _load_config_file(config.pretrained_config), False


def load_pretrained(config: ml_collections.ConfigDict, modality: str) -> Pretrained:
  """Restores the encoder of `modality`'s group from the latest (or `pretrained_step`) checkpoint.

  Args:
    config: needs `pretrained_workdir`, `pretrained_config` (unless the workdir saved its config),
      optional `pretrained_step` and `pretrained_group`.
    modality: the downstream modality ("eeg" -> group "bas", "ecg" -> "ecg").

  Returns:
    A `Pretrained`.

  Raises:
    FileNotFoundError: no checkpoint in the workdir.
    KeyError: the checkpoint has no encoder for the group.
    ValueError: the checkpoint does not match the pretraining config (wrong variant).
  """
  from sleepjax.train import pretrain  # pylint: disable=g-import-not-at-top

  pcfg, from_workdir = pretraining_config(config)
  ckpt_dir = pathlib.Path(config.pretrained_workdir).absolute() / "checkpoints"
  if not ckpt_dir.is_dir():
    raise FileNotFoundError(f"{ckpt_dir}: no pretraining checkpoints (run `python -m sleepjax.main "
                            f"--config=configs/pretrain.py:... --workdir={config.pretrained_workdir}` first)")
  mngr = ocp.CheckpointManager(ckpt_dir, options=ocp.CheckpointManagerOptions(create=False))
  step = config.get("pretrained_step") or mngr.latest_step()
  if step is None:
    raise FileNotFoundError(f"{ckpt_dir}: no pretraining checkpoints")
  modalities = pretrain.encoder_modalities(pcfg)
  _, abstract = pretrain.init_state(pcfg, modalities)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract)
  try:
    state, _ = pretrain.restore_checkpoint(mngr, abstract, step)
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{ckpt_dir}/{step}: does not match the pretraining config "
                     f"{config.get('pretrained_config')!r} (wrong variant?): {e}") from e
  finally:
    mngr.close()
  group = config.get("pretrained_group") or MODALITY_TO_GROUP.get(modality, modality)
  params = nnx.to_pure_dict(state["params"])
  stats = nnx.to_pure_dict(state["batch_stats"])
  if pcfg.model.shared_encoder:
    enc_params, enc_stats = params["encoder"], stats.get("encoder", {})
  else:
    if group not in params["encoders"]:
      raise KeyError(f"{ckpt_dir}/{step}: no encoder for modality group {group!r} "
                     f"(has {sorted(params['encoders'])}); set config.pretrained_group")
    enc_params, enc_stats = params["encoders"][group], stats.get("encoders", {}).get(group, {})
  data = (f"{pcfg.data.name}/{pcfg.data.builder_config} split={pcfg.data.train_split}" if from_workdir
          else "unknown (the workdir saved no config)")
  return Pretrained(pretrain.encoder_config(pcfg), jax.device_get(enc_params), jax.device_get(enc_stats),
                    str(ckpt_dir / str(step)), int(step), data, group)


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


def load_encoder_into(state: dict[str, Any], pretrained: Pretrained) -> dict[str, Any]:
  """Copies the pretrained encoder's parameters and BatchNorm statistics into a train state.

  The channel-encoding layer is copied only if both sides have one; a downstream run with channel
  encoding on an encoder pretrained without it starts that layer at random init.
  """
  params = nnx.to_pure_dict(state["params"])
  stats = nnx.to_pure_dict(state["batch_stats"])
  params["encoder"] = _overlay(params["encoder"], pretrained.params)
  if "encoder" in stats:
    stats["encoder"] = _overlay(stats["encoder"], pretrained.batch_stats)
  new_params, new_stats = state["params"], state["batch_stats"]
  nnx.replace_by_pure_dict(new_params, params)
  nnx.replace_by_pure_dict(new_stats, stats)
  return dict(state, params=new_params, batch_stats=new_stats)


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


def load_data(config: ml_collections.ConfigDict, enc_config: encoder_lib.EncoderConfig,
              sources: Mapping[str, Any] | None = None) -> tuple[dict[str, dict], list[str]]:
  """Reads train/validation/test into memory, preprocessed for `enc_config` (rate, patch size).

  Args:
    config: `config.data` names the builder, its splits, the dataset rate `sfreq` and `modality`.
    enc_config: the encoder (its `sfreq` and `patch_size`).
    sources: optional {"train", "validation", "test": random-access examples} (tests); with it,
      `config.data.class_names` gives the class (or label) names.

  Returns:
    ({"train", "validation", "test": arrays of `downstream_pipeline.load_split`}, class names).
    Without a validation split, a seeded 10% of the training subjects is held out (SPEC).
    A multilabel builder (a `labels` feature, no `label`) gives 2-D `label` arrays (N, L) and its
    `info.metadata["label_names"]` as the names.

  Raises:
    errors.RecordingError: a split is missing or malformed, or the splits disagree on the task
      type (single-label vs multilabel) or on the number of labels.
    ValueError: `config.data.manual_dir_required` and no manual_dir while the dataset is not built
      yet in `data_dir` (PTB-XL: the project has no copy), or the number of names does not match.
  """
  d = config.data
  names = {"train": d.train_split, "validation": d.validation_split, "test": d.test_split}
  if sources is None:
    if d.get("builder_module"):
      importlib.import_module(d.builder_module)  # Registers the builder; sleepjax never imports it.
    if d.get("manual_dir_required") and not d.manual_dir:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Lazy: seconds to import.
      if not tfds.builder(f"{d.name}/{d.builder_config}", data_dir=d.data_dir).is_prepared():
        raise ValueError(
            f"{d.name}/{d.builder_config} is not built in data_dir={d.data_dir!r} and config.data.manual_dir is "
            f"unset: pass --config.data.manual_dir=/path/to/your/{d.name} download (the project has no copy; "
            f"see tfds_builders/{d.name}/README.md), or --config.data.manual_dir_required=False to let the "
            "builder download it itself")
    builder = pipeline.prepare(d.name, d.data_dir, config=d.builder_config, manual_dir=d.manual_dir)
    class_names = dpipe.class_names(builder.info)
    if class_names is None:
      raise errors.RecordingError(f"{d.name}/{d.builder_config}",
                                  f"no 'label' or 'labels' feature (has {sorted(builder.info.features.keys())})")
    available = set(builder.info.splits.keys())
    sources = {}
    for role, split in names.items():
      if split and split in available:
        sources[role] = builder.as_data_source(split=split)
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
  for role, source in sources.items():
    out[role] = dpipe.load_split(source, modality=d.modality, sfreq=d.sfreq, target_sfreq=enc_config.sfreq,
                                 patch_size=enc_config.patch_size, max_examples=caps[role], seed=config.data_seed,
                                 name=f"{d.name}/{d.builder_config}[{names[role]}]")
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


# ----------------------------------------------------------------------------------------------
# Evaluation.
# ----------------------------------------------------------------------------------------------


def predict(static: Static, params, batch_stats, rest, arrays: Mapping[str, np.ndarray], batch_size: int):
  """(logits (N, K) float32, per-example unsmoothed loss (N,)) over in-memory examples.

  The loss is the cross-entropy, or `losses.multilabel_bce` (mean over labels) when `static.multilabel`.
  """
  logits, loss = [], []
  for batch in dpipe.batches(arrays, batch_size, shuffle=False):
    lg, ls = _jit_eval_step(static, params, batch_stats, rest, batch)
    valid = batch["valid"]
    logits.append(np.asarray(lg)[valid])
    loss.append(np.asarray(ls)[valid])
  return np.concatenate(logits), np.concatenate(loss)


def classification_metrics(labels: np.ndarray, logits: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
  """Test metrics of the transfer paper from labels (N,) int and logits (N, K).

  Balanced accuracy is the mean per-class recall (binary tasks too, unlike the reference code);
  AUROC/AUPRC are one-vs-rest macro means (the positive-class probability for K = 2).
  """
  k = logits.shape[1]
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1), np.float64)
  cm = metrics_lib.confusion_matrix(labels, probs.argmax(-1), k)
  out = metrics_lib.summarize(cm, class_names)
  scores = probs[:, 1] if k == 2 else probs
  out["auroc"] = metrics_lib.auroc(labels, scores)
  out["auprc"] = metrics_lib.auprc(labels, scores)
  return out


def sigmoid(logits: np.ndarray) -> np.ndarray:
  """Per-label probabilities, float64 (N, L), of (N, L) logits (`scipy.special.expit`).

  Thresholds and the test decisions both go through this one function, so a validation score
  used as a threshold compares bit-exactly with itself.
  """
  return scipy.special.expit(np.asarray(logits, np.float64))


def multilabel_metrics(labels: np.ndarray, logits: np.ndarray, label_names: Sequence[str],
                       thresholds: np.ndarray) -> dict[str, float]:
  """Test metrics of a multilabel task (the transfer paper's ECG protocol, SPEC "Downstream transfer").

  Args:
    labels: (N, L) {0, 1} test targets.
    logits: (N, L) float32 logits of the sigmoid head.
    label_names: L names (CODE-15: 1dAVb, RBBB, LBBB, SB, AF, ST).
    thresholds: (L,) probability thresholds chosen on the validation split with
      `metrics.best_f1_thresholds` (+inf for a label without validation positives: never predicted).

  Returns:
    {"auroc", "auprc" (unweighted means over the labels whose test column holds both classes),
     "macro_f1" (mean of the defined per-label F1s), "accuracy" (fraction of correct (example, label)
     decisions at the thresholds), "auroc/<name>", "auprc/<name>", "f1/<name>", "threshold/<name>"}.
    A label with a single class in the test split has NaN AUROC/AUPRC (with a warning), left out
    of the macro means.

  Raises:
    ValueError: shapes disagree or the labels are not 0/1.
  """
  labels = np.asarray(labels)
  if labels.ndim != 2 or labels.shape != np.shape(logits) or len(label_names) != labels.shape[1]:
    raise ValueError(f"multilabel_metrics: labels {labels.shape}, logits {np.shape(logits)} and "
                     f"{len(label_names)} names disagree")
  probs = sigmoid(logits)
  per_auroc = metrics_lib.auroc_per_class(labels, probs)
  per_auprc = metrics_lib.auprc_per_class(labels, probs)
  f1 = metrics_lib.multilabel_f1(labels, probs, thresholds)
  out = {"auroc": metrics_lib.auroc(labels, probs), "auprc": metrics_lib.auprc(labels, probs),
         "macro_f1": float(f1["macro_f1"]),
         "accuracy": float(np.mean((probs >= np.asarray(thresholds)[None]) == (labels == 1)))}
  for j, name in enumerate(label_names):
    out[f"auroc/{name}"] = float(per_auroc[j])
    out[f"auprc/{name}"] = float(per_auprc[j])
    out[f"f1/{name}"] = float(f1["f1"][j])
    out[f"threshold/{name}"] = float(thresholds[j])
  return out


def validation_thresholds(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
  """(L,) per-label probability thresholds with the best validation F1 (`metrics.best_f1_thresholds`).

  Args:
    labels: (N, L) {0, 1} validation targets.
    logits: (N, L) float32 validation logits.
  """
  thresholds, _ = metrics_lib.best_f1_thresholds(labels, sigmoid(logits))
  return thresholds


def evaluate(labels: np.ndarray, logits: np.ndarray, class_names: Sequence[str],
             thresholds: np.ndarray | None = None) -> dict[str, float]:
  """`classification_metrics` for (N,) labels, `multilabel_metrics` (needs thresholds) for (N, L)."""
  if np.ndim(labels) == 2:
    if thresholds is None:
      raise ValueError("multilabel evaluation needs per-label thresholds chosen on validation data")
    return multilabel_metrics(labels, logits, class_names, thresholds)
  return classification_metrics(labels, logits, class_names)


# ----------------------------------------------------------------------------------------------
# One run: train with early stopping, test the best-validation parameters.
# ----------------------------------------------------------------------------------------------


def _train_batches(arrays, batch_size: int, seed: int):
  """Endless training batches; every pass over the data has its own permutation."""
  n_pass = 0
  while True:
    got = False
    for batch in dpipe.batches(arrays, batch_size, shuffle=True, seed=seed * 100003 + n_pass,
                               drop_remainder=len(arrays["label"]) >= batch_size):
      got = True
      yield batch
    if not got:
      raise ValueError("no training examples")
    n_pass += 1


def train_one(config: ml_collections.ConfigDict, data: Mapping[str, Mapping[str, np.ndarray]], class_names,
              enc_config: encoder_lib.EncoderConfig, *, strategy: str, seed: int,
              pretrained: Pretrained | None = None, writer: common.MetricWriter | None = None,
              prefix: str = "") -> dict[str, Any]:
  """Fine-tunes one model and evaluates its best-validation parameters on the test split.

  Args:
    config: see configs/transfer.py (optimizer, batch_size, max_steps, eval_every, patience, ...).
    data: {"train", "validation", "test"} arrays from `load_data`.
    class_names: K class names, or L label names for a multilabel task (2-D `label` arrays).
    enc_config: the encoder's config (channel encoding on or off already set).
    strategy: "scratch", "pretrained" or "frozen".
    seed: model init, dropout, token masks and batch order.
    pretrained: the encoder to start from (required unless strategy == "scratch").
    writer: optional metric writer; scalars are namespaced with `prefix`.

  Returns:
    {"metrics": test metrics (`evaluate`), "static", "state" (best-validation state), "best_step",
     "steps", "best_val_loss", "logits" (test), "thresholds" ((L,) validation-chosen, multilabel
     only; None otherwise)}.

  Raises:
    ValueError: a pretrained strategy without `pretrained`.
  """
  if strategy != "scratch" and pretrained is None:
    raise ValueError(f"strategy {strategy!r} needs a pretrained encoder (config.pretrained_workdir)")
  multilabel = dpipe.is_multilabel(data["train"])
  weighting = config.get("class_weighting", "none")
  if weighting not in ("none", "balanced"):
    raise ValueError(f"config.class_weighting must be 'none' or 'balanced', got {weighting!r}")
  if weighting == "balanced" and multilabel:
    raise ValueError(f"config.class_weighting='balanced' applies to single-label tasks; {config.name} is multilabel")
  class_weights = (balanced_class_weights(data["train"]["label"], len(class_names))
                   if weighting == "balanced" else None)
  static, state = init_state(config, enc_config, len(class_names), strategy=strategy, seed=seed,
                             multilabel=multilabel, class_weights=class_weights)
  if pretrained is not None and strategy != "scratch":
    state = load_encoder_into(state, pretrained)
  batches = _train_batches(data["train"], config.batch_size, seed)
  best = None
  best_loss, best_step, bad = math.inf, 0, 0
  step = 0
  for step in range(1, config.max_steps + 1):
    state, train_metrics = _jit_train_step(static, state, next(batches))
    if step % config.eval_every and step != config.max_steps:
      continue
    # Host fetches only at evaluation steps (HOUSE_STYLE: no per-step device sync).
    _, val_loss = predict(static, state["params"], state["batch_stats"], state["rest"], data["validation"],
                          config.eval_batch_size)
    val_loss = float(np.mean(val_loss))
    scalars = {f"train/{k}": float(v) for k, v in jax.device_get(train_metrics).items()}
    if not math.isfinite(scalars["train/loss"]):
      raise common.NonFiniteLossError(f"{prefix}non-finite training loss at step {step}; lower the learning rate")
    scalars["eval/validation/loss"] = val_loss
    if writer is not None:
      writer.write_scalars(step, {f"{prefix}{k}": v for k, v in scalars.items()})
    if val_loss < best_loss:
      # A host copy: the device state is donated to the next step.
      best = jax.device_get({k: state[k] for k in ("params", "batch_stats", "rest")})
      best_loss, best_step, bad = val_loss, step, 0
    else:
      bad += 1
      if bad >= config.patience:
        break
  if best is None:  # Validation loss never finite: test the last parameters rather than none.
    best = jax.device_get({k: state[k] for k in ("params", "batch_stats", "rest")})
  thresholds = None
  if multilabel:  # Thresholds from validation only: choosing them on test would overstate F1.
    val_logits, _ = predict(static, best["params"], best["batch_stats"], best["rest"], data["validation"],
                            config.eval_batch_size)
    thresholds = validation_thresholds(data["validation"]["label"], val_logits)
  logits, test_loss = predict(static, best["params"], best["batch_stats"], best["rest"], data["test"],
                              config.eval_batch_size)
  test = evaluate(data["test"]["label"], logits, class_names, thresholds)
  test["loss"] = float(np.mean(test_loss))
  return {"metrics": test, "static": static, "state": best, "best_step": best_step, "steps": step,
          "best_val_loss": best_loss, "logits": logits, "thresholds": thresholds}


def encoder_config_for(config: ml_collections.ConfigDict, channel_encoding: bool,
                       pretrained: Pretrained | None) -> encoder_lib.EncoderConfig:
  """The configured encoder (scratch) or the checkpoint's (pretrained), with channel encoding set."""
  from sleepjax.train import pretrain  # pylint: disable=g-import-not-at-top
  base = pretrained.encoder_config if pretrained is not None else pretrain.encoder_config(config)
  return base.replace(channel_encoding=bool(channel_encoding))


# ----------------------------------------------------------------------------------------------
# Channel ablation.
# ----------------------------------------------------------------------------------------------


def ablation_sizes(n_channels: int, sizes: Sequence[int] | None) -> list[int]:
  """Subset sizes k: the configured ones (clipped to 1..C) or every k when C <= 20, else a doubling grid."""
  if sizes:
    ks = sorted({int(k) for k in sizes if 1 <= int(k) <= n_channels})
  elif n_channels <= 20:
    ks = list(range(1, n_channels + 1))
  else:
    ks = sorted({*(2 ** i for i in range(int(math.log2(n_channels)) + 1)), n_channels})
  return ks


def smallest_k_reaching(curve: Sequence[Mapping[str, float]], full_score: float, fraction: float = 0.95):
  """The smallest k whose mean score is >= fraction * full_score (None when none does)."""
  for row in sorted(curve, key=lambda r: r["k"]):
    if row["mean"] >= fraction * full_score:
      return int(row["k"])
  return None


def _ablation_from_model(config, workdir, data, class_names, enc_config, run, strategy: str, seed: int,
                         pretrained=None) -> dict[str, Any]:
  abl = config.ablation
  metric = abl.metric
  test = data["test"]
  n_ch = test["mask"].shape[1]
  rng = np.random.default_rng(abl.seed)
  static, best = run["static"], run["state"]
  if metric not in run["metrics"]:
    raise ValueError(f"config.ablation.metric={metric!r} is not a metric of {config.name} (has "
                     f"{sorted(k for k in run['metrics'] if '/' not in k)}); a multilabel task has no "
                     "balanced accuracy: use e.g. 'auroc'")
  full = run["metrics"][metric]
  draws = []
  for k in ablation_sizes(n_ch, abl.get("sizes")):
    for draw in range(abl.draws if k < n_ch else 1):
      keep = np.sort(rng.choice(n_ch, size=k, replace=False))
      if abl.retrain:
        masked = {split: dpipe.drop_channels(a, keep) for split, a in data.items()}
        score = train_one(config, masked, class_names, enc_config, strategy=strategy, seed=seed,
                          pretrained=pretrained)["metrics"][metric]
      else:
        logits, _ = predict(static, best["params"], best["batch_stats"], best["rest"],
                            dpipe.drop_channels(test, keep), config.eval_batch_size)
        score = evaluate(test["label"], logits, class_names, run["thresholds"])[metric]
      draws.append({"k": k, "draw": draw, "channels": " ".join(map(str, keep.tolist())), metric: score})
  curve = []
  for k in sorted({d["k"] for d in draws}):
    vals = np.array([d[metric] for d in draws if d["k"] == k], np.float64)
    curve.append({"k": k, "mean": float(np.nanmean(vals)),
                  "std": float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0, "n": len(vals)})
  k95 = smallest_k_reaching(curve, full, abl.fraction)
  name = config.name
  report_lib.write_results(workdir, "channel_ablation", [{"task": name, "metric": metric, **c} for c in curve])
  report_lib.write_results(workdir, "channel_ablation_draws", draws)
  png = _plot_ablation(curve, full, abl.fraction, metric, n_ch, k95,
                       pathlib.Path(workdir) / "channel_ablation.png",
                       title=f"{name}: {strategy}, {'re-trained' if abl.retrain else 'evaluate-only'}")
  print(f"Channel ablation ({'re-trained per subset' if abl.retrain else 'evaluate-only, dropped channels masked'}"
        f", {metric}): full montage {full:.4f} with {n_ch} channels; smallest k reaching "
        f"{abl.fraction:.0%}: {k95}", flush=True)
  return {"curve": curve, "draws": draws, "full": full, "k95": k95, "n_channels": n_ch, "png": str(png)}


def _plot_ablation(curve, full, fraction, metric, n_ch, k95, path, *, title):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  ks = [c["k"] for c in curve]
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.errorbar(ks, [c["mean"] for c in curve], yerr=[c["std"] for c in curve], marker="o", capsize=3,
              label="random subsets (mean +- std)")
  ax.axhline(fraction * full, color="gray", linestyle="--", label=f"{fraction:.0%} of full montage")
  if k95 is not None:
    ax.axvline(k95, color="C1", linestyle=":", label=f"k = {k95}")
  ax.set_xlabel(f"channels kept (of {n_ch})")
  ax.set_ylabel(metric.replace("_", " "))
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def channel_ablation(config: ml_collections.ConfigDict, workdir: str, *, sources=None) -> dict[str, Any]:
  """Random channel subsets (SPEC: 5 draws per size) -> metric-vs-k curve and the 95% point.

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
  """Column order of transfer.{md,csv}: single-label or multilabel metrics, then provenance."""
  cols = ["task", "task_type", "strategy", "channel_encoding", "n_seeds"]
  if multilabel:
    # The single-label metrics stay as columns that say "n/a (multilabel)".
    cols += list(SINGLE_LABEL_ONLY)
    for k in ("auroc", "auprc", "macro_f1"):
      cols += [k, f"{k}_std"]
    # Per-label columns (mean, std) in the task's label order (the rows' dict order), not sorted.
    for prefix in ("auroc/", "f1/"):
      cols += list(dict.fromkeys(k for r in rows for k in r if k.startswith(prefix)))
  else:
    for k in ("balanced_accuracy", "auroc", "auprc", "kappa", "weighted_f1"):
      cols += [k, f"{k}_std"]
    cols += sorted({k for r in rows for k in r if k.startswith("f1/")})
  cols += ["steps", "encoder", "pretrained_checkpoint", "pretrained_step", "pretraining_data", "pretrained_group"]
  return cols


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *, sources=None) -> list[dict[str, Any]]:
  """Runs every (strategy, channel_encoding, seed) and writes `<workdir>/transfer.{md,csv,json}`.

  Pretrained strategies are skipped, with a message, when `config.pretrained_workdir` is None.

  Args:
    config: configs/transfer.py.
    workdir: output directory (metrics.jsonl, tensorboard/, the tables, the ablation curve).
    sources: optional in-memory splits (tests), see `load_data`.

  Returns:
    The table rows (means over seeds with `<metric>_std`). A multilabel task's rows have
    `task_type` "multilabel", macro AUROC/AUPRC/F1, `auroc/<label>`, `auprc/<label>` and
    `f1/<label>` (at validation thresholds, which are in `transfer_runs.*` per seed), and
    "n/a (multilabel)" for balanced accuracy, kappa and weighted F1.

  Raises:
    ValueError: unknown strategies, or channel ablation with a metric the task does not have.
  """
  workdir_path = pathlib.Path(workdir)
  workdir_path.mkdir(parents=True, exist_ok=True)
  strategies = [s for s in config.strategies]
  unknown = [s for s in strategies if s not in STRATEGIES]
  if unknown:
    raise ValueError(f"config.strategies: unknown {unknown}; expected a subset of {STRATEGIES}")
  pretrained, skipped = None, []
  # The scratch baseline takes the checkpoint's architecture when asked (an equal-size comparison).
  match = bool(config.model.get("scratch_matches_pretrained", False)) and config.get("pretrained_workdir")
  if any(s != "scratch" for s in strategies) or match:
    if config.get("pretrained_workdir"):
      pretrained = load_pretrained(config, config.data.modality)
    else:
      skipped = [s for s in strategies if s != "scratch"]
      strategies = [s for s in strategies if s == "scratch"]
      print(f"Skipping strategies {skipped}: config.pretrained_workdir is None (pretrain first, e.g. "
            "python -m sleepjax.main --config=configs/pretrain.py --workdir=W, then "
            "--config.pretrained_workdir=W)", flush=True)
  writer = common.MetricWriter(workdir_path)
  rows, runs = [], []
  multilabel = False
  data_cache: dict[tuple, Any] = {}
  ablation_run = None
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
        prefix = f"{strategy}/ce{int(channel_encoding)}/seed{seed}/"
        run = train_one(config, data, class_names, enc, strategy=strategy, seed=int(seed), pretrained=pre,
                        writer=writer, prefix=prefix)
        per_seed.append(run["metrics"])
        runs.append({"task": config.name, "task_type": "multilabel" if multilabel else "single_label",
                     "strategy": strategy, "channel_encoding": bool(channel_encoding),
                     "seed": int(seed), "steps": run["steps"], "best_step": run["best_step"],
                     **{k: v for k, v in run["metrics"].items()}})
        if (ablation_run is None and config.ablation.enabled and strategy == config.ablation.strategy
            and bool(channel_encoding) == bool(config.ablation.channel_encoding)):
          ablation_run = (data, class_names, enc, run, strategy, int(seed), pre)
        logging.info("%s test %s", prefix, run["metrics"])
      stats = metrics_lib.mean_std(per_seed)
      row = {"task": config.name, "task_type": "multilabel" if multilabel else "single_label",
             "strategy": strategy, "channel_encoding": bool(channel_encoding), "n_seeds": len(per_seed)}
      if multilabel:
        row.update({k: NOT_APPLICABLE for k in SINGLE_LABEL_ONLY})
      for key, st in stats.items():
        # A threshold is a per-seed choice (in transfer_runs), not a score to average.
        if key == "count" or key.startswith("threshold/"):
          continue
        row[key] = st["mean"]
        row[f"{key}_std"] = st["std"]
      row["steps"] = float(np.mean([r["steps"] for r in runs[-len(per_seed):]]))
      row["encoder"] = (f"E={enc.embed_dim}, {enc.num_layers} layers, "
                        f"{enc.patch_size / enc.sfreq:g}-s patches")
      row["pretrained_checkpoint"] = pre.checkpoint if pre else ""
      row["pretrained_step"] = pre.step if pre else None
      row["pretraining_data"] = pre.data if pre else ""
      row["pretrained_group"] = pre.group if pre else ""
      rows.append(row)
  writer.close()
  paths = report_lib.write_results(workdir_path, "transfer", rows, columns=_table_columns(rows, multilabel))
  report_lib.write_results(workdir_path, "transfer_runs", runs)
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
