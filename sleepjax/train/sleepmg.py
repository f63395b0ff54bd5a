r"""SleepMG trainer: subject-wise cross-validated sleep staging for SleepMG and its baselines.

  python -m sleepjax.main --config=configs/sleepmg.py --workdir=/tmp/sleepmg
  python -m sleepjax.main --config=configs/sleepmg.py:tiny --workdir=/tmp/sleepmg_tiny

Methods (`config.methods`, SPEC section 3; SleepMG paper Tables 1, 2 and 4):
  featurenet      all channels through one FeatureNet stack, G_y only (no domain head).
  naivemg         one FeatureNet per modality, concat, G_y + GRL -> G_d.
  ogmge           per-modality FeatureNets + G_y (no domain head, as in Peng et al.), with the
                  OGM-GE modulation generalised one-vs-rest (`models.sleepmg.ogm_ge_coefficients`)
                  on each modality's conv-kernel gradients plus Gaussian noise of the gradient's std.
  sleepmg         NaiveMG + rho^{y,u} and rho^{d,u} on the column blocks of G_y and G_d (Eq. 7).
  sleepmg_y_only  rho on G_y only;  sleepmg_d_only: rho on G_d only (Table 4 ablations).
  sleepmg_sgd     SleepMG with momentum SGD instead of Adam (Adam cancels a constant rho).

Protocol: k-fold subject-wise CV (5 in the paper); inside a fold, 20% of the training subjects'
epochs (or, with `val_by_subject`, 20% of the training subjects) are held out for validation; the
parameters with the best validation accuracy are kept (in memory) and tested on the held-out
subjects; predictions are pooled over folds before computing accuracy, macro-F1, Cohen's kappa
and per-class F1 (W, N1, N2, N3, REM). Several seeds give mean +- std.

Outputs in `workdir`:
  results.md / results.csv    one row per method, the paper's Table 1 layout (mean +- std over seeds)
  results.json                every metric of every (method, seed), and the pooled confusion matrices
  imbalance.jsonl             per step: method, seed, fold, losses, s^{a,u}, rho^{a,u}, imbalance degrees
  imbalance.png               the paper's Fig. 4: imbalance degree of G_y and G_d over training steps
  confusion_<method>.png      pooled confusion matrix (first seed)
  metrics.jsonl, tensorboard/ scalars via `sleepjax.train.common.MetricWriter`

Every method reports the imbalance degree of the classifier: even FeatureNet's fused feature is a
concatenation of per-channel blocks, so its G_y has modality blocks too (SleepMG Fig. 4 compares
methods on the same footing). Methods without a domain head log NaN for the domain imbalance.

The train step is pure and jitted once per model structure and shape (folds of equal size share it;
NaiveMG, SleepMG and its G_y-only / G_d-only ablations share it too, the balance being switched by
a traced argument): rho and the imbalance degrees are computed inside the step from the current
head kernels and the batch's features; the GRL ratio lambda is a traced argument; dropout and
OGM-GE noise keys are folded with the step number.

Data: the whole dataset is read into memory (`SleepData`; SleepMG uses single 30-s epochs and its
datasets hold a few thousand to ~60k of them) from every split of the TFDS dataset, then re-split by
subject for the cross-validation; batches are gathered on the host with a seeded numpy generator
(data order only; the step itself uses no host randomness). Single device: the SleepMG model is
small, and CV folds are the natural unit of parallelism.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import importlib
import json
import os
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from sleepjax import losses
from sleepjax import optim
from sleepjax.data import stages
from sleepjax.evaluation import metrics as metrics_lib
from sleepjax.evaluation import report as report_lib
from sleepjax.models import featurenet
from sleepjax.models import sleepmg as sleepmg_lib

METHODS = ("featurenet", "naivemg", "ogmge", "sleepmg", "sleepmg_y_only", "sleepmg_d_only",
           "sleepmg_sgd")
# Display names in the results table (the paper's Table 1 spelling where one exists).
METHOD_NAMES = {
    "featurenet": "FeatureNet", "naivemg": "NaiveMG", "ogmge": "OGM-GE", "sleepmg": "SleepMG",
    "sleepmg_y_only": "SleepMG (G_y only)", "sleepmg_d_only": "SleepMG (G_d only)",
    "sleepmg_sgd": "SleepMG (SGD)",
}
ALL_GROUP = "all"  # The single channel group of the FeatureNet baseline.


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """What distinguishes the methods: grouping, domain head, balance, optimiser, OGM-GE."""
  per_modality: bool
  domain_head: bool
  balance_heads: tuple[str, ...]
  optimizer: str = "adam"
  ogm_ge: bool = False


def method_spec(method: str, config: ml_collections.ConfigDict | None = None) -> MethodSpec:
  """The `MethodSpec` of a method name.

  Raises:
    ValueError: unknown method.
  """
  ogm_domain = bool(config.get("ogmge_domain_head", False)) if config is not None else False
  specs = {
      "featurenet": MethodSpec(False, False, ()),
      "naivemg": MethodSpec(True, True, ()),
      "ogmge": MethodSpec(True, ogm_domain, (), ogm_ge=True),
      "sleepmg": MethodSpec(True, True, ("y", "d")),
      "sleepmg_y_only": MethodSpec(True, True, ("y",)),
      "sleepmg_d_only": MethodSpec(True, True, ("d",)),
      "sleepmg_sgd": MethodSpec(True, True, ("y", "d"), optimizer="sgd"),
  }
  if method not in specs:
    raise ValueError(f"unknown SleepMG method {method!r}; expected one of {METHODS}")
  return specs[method]


# ----------------------------------------------------------------------------------------------
# Data: the whole dataset in memory (SleepMG uses single 30-s epochs; ISRUC-S3 is ~8.6k epochs).
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SleepData:
  """All epochs of a dataset, in memory.

  Attributes:
    signals: {modality: (N, C_u, T) float32} microvolts at 100 Hz, T = 3000.
    stage: (N,) int32 AASM stage (W=0..REM=4).
    subject: (N,) str subject id (the SleepMG domain).
    record_id: (N,) str.
  """
  signals: dict[str, np.ndarray]
  stage: np.ndarray
  subject: np.ndarray
  record_id: np.ndarray

  def __len__(self) -> int:
    return int(self.stage.shape[0])

  @property
  def channels(self) -> dict[str, int]:
    return {m: int(x.shape[1]) for m, x in self.signals.items()}


def make_toy_data(*, num_subjects: int = 4, epochs_per_subject: int = 40,
                  channels: Mapping[str, int] | None = None, seed: int = 0,
                  snr: Mapping[str, float] | None = None) -> SleepData:
  """In-memory stand-in for a SleepMG dataset, for tests and `tiny` runs without a build.

  Each epoch is noise plus a sinusoid whose frequency codes the stage; the modalities carry that
  code with different signal-to-noise ratios (so the modalities differ in classification
  performance, the imbalance SleepMG measures), and every subject has its own gain and offset
  (a domain shift). NOT a physiological model: the synthetic_psg dataset is.

  Args:
    num_subjects: number of subjects (one night each).
    epochs_per_subject: 30-s epochs per subject.
    channels: {modality: C_u}; default the SleepMG layout EEG 6 / EOG 2 / EMG 1 / ECG 1.
    seed: numpy seed.
    snr: {modality: amplitude of the stage code relative to unit noise}.

  Returns:
    A `SleepData` with T = 3000 samples (30 s at 100 Hz), stages cycling over all five classes.
  """
  channels = dict(channels or {"eeg": 6, "eog": 2, "emg": 1, "ecg": 1})
  snr = dict(snr or {"eeg": 1.0, "eog": 0.5, "emg": 0.25, "ecg": 0.1})
  rng = np.random.default_rng(seed)
  t = np.arange(featurenet.EPOCH_SAMPLES, dtype=np.float32) / 100.0
  n = num_subjects * epochs_per_subject
  stage = np.concatenate([rng.permutation(np.arange(epochs_per_subject) % stages.NUM_STAGES)
                          for _ in range(num_subjects)]).astype(np.int32)
  subject = np.repeat([f"TOY{s:03d}" for s in range(num_subjects)], epochs_per_subject)
  freqs = np.array([10.0, 6.0, 13.0, 1.5, 4.0], np.float32)  # W alpha, N1 theta, N2 sigma, N3 delta, REM
  signals = {}
  for m, c in channels.items():
    gain = rng.uniform(0.7, 1.3, size=num_subjects).astype(np.float32)
    offset = rng.normal(0.0, 0.5, size=num_subjects).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=(n, c, 1)).astype(np.float32)
    code = np.sin(2 * np.pi * freqs[stage][:, None, None] * t[None, None] + phase)
    x = snr.get(m, 0.5) * code + rng.normal(size=(n, c, t.size)).astype(np.float32)
    subj = np.repeat(np.arange(num_subjects), epochs_per_subject)
    x = x * gain[subj][:, None, None] + offset[subj][:, None, None]
    signals[m] = (20.0 * x).astype(np.float32)  # ~20 uV
  record = np.array([f"{s}E0" for s in subject], dtype=object)
  return SleepData(signals, stage, subject.astype(object), record)


def load_tfds_data(config: ml_collections.ConfigDict) -> SleepData:
  """Reads every split of the configured TFDS dataset into memory (CV re-splits by subject).

  The dataset's examples follow docs/architecture.md section 2; only `config.data.modalities`
  are kept, in that order, and unscored epochs (stage < 0) are dropped.

  Raises:
    ValueError: a modality is absent, or epochs are not 3000 samples (30 s at 100 Hz).
  """
  from sleepjax.data import pipeline  # pylint: disable=g-import-not-at-top
  if config.data.get("builder_module"):
    importlib.import_module(config.data.builder_module)  # Registers the builder with TFDS.
  modalities = tuple(config.data.modalities)
  sig = {m: [] for m in modalities}
  stage, subject, record = [], [], []
  for split in config.data.splits:
    source = pipeline.data_source(config.data.name, split, data_dir=config.data.data_dir,
                                  config=config.data.builder_config,
                                  manual_dir=config.data.get("manual_dir"))
    for i in range(len(source)):
      ex = source[i]
      for m in modalities:
        if m not in ex["signals"]:
          raise ValueError(f"{config.data.name}/{config.data.builder_config}: example {i} of "
                           f"split {split!r} has no {m!r} signals (has {sorted(ex['signals'])})")
        sig[m].append(np.asarray(ex["signals"][m], np.float32))
      stage.append(int(ex["stage"]))
      subject.append(pipeline.as_str(ex["subject_id"]))
      record.append(pipeline.as_str(ex["record_id"]))
  signals = {m: np.stack(v) for m, v in sig.items()}
  for m, x in signals.items():
    if x.shape[-1] != featurenet.EPOCH_SAMPLES:
      raise ValueError(f"{config.data.name}/{config.data.builder_config}: {m} epochs have "
                       f"{x.shape[-1]} samples; FeatureNet needs {featurenet.EPOCH_SAMPLES} (100 Hz)")
  stage_arr = np.asarray(stage, np.int32)
  keep = stage_arr >= 0
  return SleepData({m: x[keep] for m, x in signals.items()}, stage_arr[keep],
                   np.asarray(subject, object)[keep], np.asarray(record, object)[keep])


def load_data(config: ml_collections.ConfigDict) -> SleepData:
  """The configured dataset: `config.data.source` = "tfds" or "toy" (`make_toy_data`)."""
  if config.data.source == "toy":
    toy = config.data.toy
    return make_toy_data(num_subjects=toy.num_subjects, epochs_per_subject=toy.epochs_per_subject,
                         channels=dict(toy.channels), seed=toy.seed)
  if config.data.source == "tfds":
    return load_tfds_data(config)
  raise ValueError(f"unknown data source {config.data.source!r}; expected 'tfds' or 'toy'")


def subject_folds(subjects: Sequence[str], num_folds: int, seed: int) -> list[tuple[str, ...]]:
  """Splits the sorted unique subjects into `num_folds` disjoint test groups (shuffled by seed).

  Raises:
    ValueError: fewer subjects than folds, or fewer than 2 folds.
  """
  unique = sorted(set(subjects))
  if num_folds < 2 or len(unique) < num_folds:
    raise ValueError(f"{num_folds}-fold subject-wise CV needs >= 2 folds and >= {num_folds} "
                     f"subjects; the dataset has {len(unique)}")
  order = np.random.default_rng(seed).permutation(len(unique))
  return [tuple(sorted(unique[i] for i in part)) for part in np.array_split(order, num_folds)]


def split_fold(data: SleepData, test_subjects: Sequence[str], *, val_fraction: float,
               val_by_subject: bool, seed: int) -> dict[str, np.ndarray]:
  """Indices of train / validation / test epochs for one fold (test = `test_subjects`).

  Validation is `val_fraction` of the training subjects' epochs, drawn at random (the paper:
  "from the training set, we further allocate 20% as a validation set"), or of the training
  subjects themselves when `val_by_subject`.
  """
  rng = np.random.default_rng(seed)
  is_test = np.isin(data.subject, list(test_subjects))
  rest = np.flatnonzero(~is_test)
  if val_by_subject:
    subs = sorted(set(data.subject[rest]))
    n_val = max(1, int(round(val_fraction * len(subs)))) if len(subs) > 1 else 0
    val_subs = set(rng.permutation(subs)[:n_val].tolist())
    is_val = np.isin(data.subject[rest], list(val_subs))
  else:
    is_val = np.zeros(rest.size, bool)
    is_val[rng.permutation(rest.size)[:int(round(val_fraction * rest.size))]] = True
  return {"train": rest[~is_val], "validation": rest[is_val], "test": np.flatnonzero(is_test)}


# ----------------------------------------------------------------------------------------------
# Model, optimiser, steps.
# ----------------------------------------------------------------------------------------------


def block_sizes(channels: Mapping[str, int]) -> tuple[int, ...]:
  """Rows of each modality's block in the fused feature (256 C_u, modality order)."""
  return featurenet.modality_widths(list(channels.values()))


def build_model(config: ml_collections.ConfigDict, spec: MethodSpec, channels: Mapping[str, int],
                num_domains: int, seed: int) -> sleepmg_lib.SleepMGModel:
  """The model of a method: per-modality FeatureNets, or one group of all channels (FeatureNet).

  Args:
    config: the SleepMG config (model.* fields).
    spec: the method.
    channels: ordered {modality: C_u}.
    num_domains: K_d, training subjects of the fold (ignored without a domain head).
    seed: parameter-initialisation seed.
  """
  groups = dict(channels) if spec.per_modality else {ALL_GROUP: sum(channels.values())}
  return sleepmg_lib.SleepMGModel(
      groups, num_domains=num_domains if spec.domain_head else 0,
      share_channel_weights=config.model.share_channel_weights,
      dropout_rate=config.model.dropout_rate, bn_momentum=config.model.bn_momentum,
      rngs=nnx.Rngs(params=seed))


def _group_signals(signals: Mapping[str, jax.Array], spec: MethodSpec,
                   modalities: Sequence[str]) -> dict[str, jax.Array]:
  if spec.per_modality:
    return {m: signals[m] for m in modalities}
  return {ALL_GROUP: jnp.concatenate([signals[m] for m in modalities], axis=1)}


def _split_blocks(fused: jax.Array, sizes: Sequence[int]) -> list[jax.Array]:
  offsets = np.cumsum((0,) + tuple(sizes))
  return [fused[:, offsets[i]:offsets[i + 1]] for i in range(len(sizes))]


def _ogm_ge_modulate(grads, coeff: jax.Array, key: jax.Array, modalities: Sequence[str]):
  """OGM-GE on the extractors' conv kernels: g * coeff_u + N(0, std(g)) (Peng et al. 2022, Alg. 1)."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(grads)
  out = []
  for i, (path, g) in enumerate(leaves):
    names = optim.path_names(path)
    if len(names) >= 2 and names[0] == "extractors" and names[1] in modalities and \
        names[-1] == "kernel" and "conv" in names:
      u = list(modalities).index(names[1])
      noise = jax.random.normal(jax.random.fold_in(key, i), g.shape, g.dtype)
      # The std is computed from the unmodulated gradient, as in the reference implementation.
      g = g * coeff[u] + noise * (jnp.std(g) + 1e-8)
    out.append(g)
  return jax.tree_util.tree_unflatten(treedef, out)


@dataclasses.dataclass(frozen=True)
class StepStatic:
  """Everything static about a method's step: hashable, so folds with equal shapes share one jit.

  Attributes:
    graphdef_train, graphdef_eval: NNX graph definitions of the model in train / eval mode.
    spec: the method.
    modalities: modality order (fixes the column blocks).
    sizes: rows 256 C_u of each modality's block in the fused feature.
    optimizer: (kind, learning_rate, b1, b2, momentum).
    ogm_alpha: OGM-GE modulation strength.
  """
  graphdef_train: Any
  graphdef_eval: Any
  spec: MethodSpec  # With balance_heads widened to every head: see `init_step_state`.
  modalities: tuple[str, ...]
  sizes: tuple[int, ...]
  optimizer: tuple[str, float, float, float, float]
  ogm_alpha: float

  def tx(self) -> optax.GradientTransformationExtraArgs:
    kind, lr, b1, b2, momentum = self.optimizer
    balance = None
    if self.spec.balance_heads:
      paths = {"y": ("head_y", "kernel"), "d": ("head_d", "kernel")}
      balance = optim.modality_balance({h: paths[h] for h in self.spec.balance_heads}, self.sizes)
    return optim.sleepmg_optimizer(kind=kind, learning_rate=lr, b1=b1, b2=b2, momentum=momentum,
                                   balance=balance)


def init_step_state(config: ml_collections.ConfigDict, spec: MethodSpec,
                    model: sleepmg_lib.SleepMGModel, modalities: Sequence[str],
                    channels: Mapping[str, int]) -> tuple[StepStatic, Any, Any, Any]:
  """Splits `model` into (static, params, batch_stats) and initialises the optimiser state.

  The balance transform is always chained, on every head the model has; which heads it actually
  scales is the traced `balance_switch(spec)` argument of `train_step`. A switched-off head gets
  rho = 1 exactly, and x * 1.0 == x in floating point, so NaiveMG is bit-identical to the plain
  optimiser while sharing one compiled step with SleepMG and its G_y-only / G_d-only ablations.
  """
  model.train()
  graphdef_train, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  model.eval()
  graphdef_eval, _, _ = nnx.split(model, nnx.Param, nnx.BatchStat)
  opt = config.optimizer
  lr = opt.sgd_learning_rate if spec.optimizer == "sgd" else opt.learning_rate
  shared = dataclasses.replace(spec, balance_heads=("y", "d") if spec.domain_head else ("y",))
  static = StepStatic(graphdef_train, graphdef_eval, shared, tuple(modalities), block_sizes(channels),
                      (spec.optimizer, float(lr), float(opt.b1), float(opt.b2), float(opt.momentum)),
                      float(config.get("ogm_alpha", 0.1)))
  return static, params, batch_stats, static.tx().init(params)


def balance_switch(spec: MethodSpec) -> np.ndarray:
  """(2,) float32 [G_y balanced, G_d balanced] of a method: the traced switch of `train_step`."""
  return np.array([h in spec.balance_heads for h in ("y", "d")], np.float32)


@functools.partial(jax.jit, static_argnums=0, donate_argnums=(1, 2, 3))
def train_step(static: StepStatic, params, batch_stats, opt_state, batch: Mapping[str, Any],
               step: jax.Array, key: jax.Array, grl_ratio: jax.Array, balance_on: jax.Array):
  """One SleepMG (or baseline) update: pure; rho computed in the step; lambda traced.

  Args:
    static: the method's `StepStatic`.
    params, batch_stats, opt_state: the train state (donated).
    batch: {"signals": {modality: (B, C_u, 3000) float32 uV}, "stage": (B,) int32,
      "subject": (B,) int32 training-subject index, "mask": (B,) bool}.
    step: int step number, folded into `key` (dropout, OGM-GE noise).
    key: the run's base PRNG key.
    grl_ratio: () float32 lambda of the gradient reversal layer.
    balance_on: (2,) float32 `balance_switch`: where 0, that head's rho is replaced by 1.

  Returns:
    (params, batch_stats, opt_state, metrics) with metrics: loss, loss_y, loss_d, accuracy_y,
    imbalance_y, imbalance_d (), s_y, rho_y, s_d, rho_d (U,) [, ogm_coeff, ogm_ratio (U,)].
  """
  spec = static.spec
  key = jax.random.fold_in(key, step)
  dropout_key, noise_key = jax.random.split(key)
  signals = _group_signals(batch["signals"], spec, static.modalities)

  def loss_fn(params):
    model = nnx.merge(static.graphdef_train, params, batch_stats, copy=True)
    out = model(signals, grl_ratio=grl_ratio, rngs=nnx.Rngs(dropout=dropout_key))
    loss_y = losses.cross_entropy(out["logits_y"], batch["stage"], mask=batch["mask"])
    loss = loss_y
    loss_d = jnp.zeros((), jnp.float32)
    if spec.domain_head:
      loss_d = losses.cross_entropy(out["logits_d"], batch["subject"], mask=batch["mask"])
      # The GRL already reverses dL_d/df for the extractors (L = L_y - L_d for them), while G_d
      # itself descends L_d: the summed loss is the right objective for every parameter.
      loss = loss_y + loss_d
    return loss, (out, loss_y, loss_d, nnx.state(model, nnx.BatchStat))

  (loss, (out, loss_y, loss_d, new_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
  feats = _split_blocks(out["fused"], static.sizes)
  bal_y = sleepmg_lib.head_balance(feats, params["head_y"]["kernel"][...],
                                   params["head_y"]["bias"][...], batch["stage"], mask=batch["mask"])
  nan_u = jnp.full((len(static.sizes),), jnp.nan, jnp.float32)
  bal_d = {"v": nan_u, "s": nan_u, "rho": nan_u, "imbalance": jnp.array(jnp.nan, jnp.float32)}
  if spec.domain_head:
    bal_d = sleepmg_lib.head_balance(feats, params["head_d"]["kernel"][...],
                                     params["head_d"]["bias"][...], batch["subject"],
                                     mask=batch["mask"])
  correct = (jnp.argmax(out["logits_y"], -1) == batch["stage"]) & batch["mask"]
  metrics = {"loss": loss, "loss_y": loss_y, "loss_d": loss_d,
             "accuracy_y": jnp.sum(correct) / jnp.maximum(jnp.sum(batch["mask"]), 1),
             "imbalance_y": bal_y["imbalance"], "imbalance_d": bal_d["imbalance"],
             "s_y": bal_y["s"], "rho_y": bal_y["rho"], "s_d": bal_d["s"], "rho_d": bal_d["rho"]}
  if spec.ogm_ge:
    coeff, ratio = sleepmg_lib.ogm_ge_coefficients(bal_y["v"], static.ogm_alpha)
    grads = _ogm_ge_modulate(grads, coeff, noise_key, static.modalities)
    metrics["ogm_coeff"] = coeff
    metrics["ogm_ratio"] = ratio
  rho = {"y": jnp.where(balance_on[0] > 0, bal_y["rho"], 1.0)}
  if spec.domain_head:
    rho["d"] = jnp.where(balance_on[1] > 0, bal_d["rho"], 1.0)
  updates, opt_state = static.tx().update(grads, opt_state, params, rho=rho)
  params = optax.apply_updates(params, updates)
  return params, new_stats, opt_state, metrics


@functools.partial(jax.jit, static_argnums=0)
def predict(static: StepStatic, params, batch_stats, signals: Mapping[str, jax.Array]) -> jax.Array:
  """(B, 5) stage logits of G_y in eval mode (running BatchNorm statistics, no dropout)."""
  model = nnx.merge(static.graphdef_eval, params, batch_stats, copy=True)
  return model(_group_signals(signals, static.spec, static.modalities))["logits_y"]


# ----------------------------------------------------------------------------------------------
# Loops.
# ----------------------------------------------------------------------------------------------


def _batch(data: SleepData, idx: np.ndarray, modalities: Sequence[str], *, batch_size: int,
           domain_index: Mapping[str, int] | None = None) -> dict[str, Any]:
  """Gathers epochs `idx` into a batch padded to `batch_size` rows (mask False on padding)."""
  n = idx.size
  pad = batch_size - n
  full = np.concatenate([idx, np.full(pad, idx[0] if n else 0, idx.dtype)]) if pad > 0 else idx
  mask = np.arange(batch_size) < n
  subject = np.full(batch_size, -1, np.int32)
  if domain_index is not None:
    subject = np.array([domain_index.get(s, -1) for s in data.subject[full]], np.int32)
  return {"signals": {m: data.signals[m][full] for m in modalities},
          "stage": data.stage[full], "subject": subject, "mask": mask}


def _train_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
  """Shuffled passes over range(n), full batches only (a pass shorter than a batch is resampled)."""
  while True:
    order = rng.permutation(n)
    if n < batch_size:
      yield rng.choice(n, batch_size, replace=True)
      continue
    for i in range(0, n - batch_size + 1, batch_size):
      yield order[i:i + batch_size]


def predict_indices(static: StepStatic, params, batch_stats, data: SleepData, idx: np.ndarray,
                    batch_size: int) -> np.ndarray:
  """Predicted stages (argmax of G_y) of epochs `idx`, in order."""
  preds = []
  for i in range(0, idx.size, batch_size):
    chunk = idx[i:i + batch_size]
    batch = _batch(data, chunk, static.modalities, batch_size=batch_size)
    logits = predict(static, params, batch_stats, batch["signals"])
    preds.append(np.asarray(jnp.argmax(logits, -1))[:chunk.size])
  return np.concatenate(preds) if preds else np.zeros(0, np.int32)


def _host_copy(tree):
  return jax.tree.map(lambda x: np.array(x), jax.device_get(tree))


def train_fold(config: ml_collections.ConfigDict, method: str, data: SleepData,
               split: Mapping[str, np.ndarray], *, seed: int, fold: int,
               log_rows: list[dict[str, Any]] | None = None, writer=None) -> dict[str, Any]:
  """Trains one method on one fold and tests the best-validation parameters.

  Args:
    config: the SleepMG config.
    method: one of METHODS.
    data: the in-memory dataset.
    split: {"train", "validation", "test"} epoch indices (`split_fold`).
    seed: run seed (parameter init, data order, dropout and noise keys).
    fold: fold number (logging and key folding).
    log_rows: if given, per-step metric rows are appended (method, seed, fold, step, ...).
    writer: optional `MetricWriter` for scalars.

  Returns:
    {"y_true": (N_test,), "y_pred": (N_test,), "best_step": int, "best_val_accuracy": float,
     "steps": int}.
  """
  spec = method_spec(method, config)
  modalities = tuple(config.data.modalities)
  channels = {m: data.channels[m] for m in modalities}
  train_subjects = sorted(set(data.subject[split["train"]]))
  domain_index = {s: i for i, s in enumerate(train_subjects)}
  run_seed = seed * 1000 + fold
  model = build_model(config, spec, channels, len(train_subjects), run_seed)
  static, params, batch_stats, opt_state = init_step_state(config, spec, model, modalities, channels)
  # RBG keys: XLA's RngBitGenerator compiles much faster on CPU than unrolled threefry, and the
  # keys only drive dropout masks and OGM-GE noise.
  key = jax.random.fold_in(jax.random.key(seed, impl="rbg"), fold)
  grl_ratio = jnp.asarray(config.grl_ratio, jnp.float32)
  switch = balance_switch(spec)
  rng = np.random.default_rng(run_seed)
  batches = _train_batches(split["train"].size, config.batch_size, rng)
  steps = int(config.steps)
  eval_every = max(1, int(config.eval_every))
  best = {"accuracy": -1.0, "step": -1, "state": None}
  pending = []

  def flush():
    rows = jax.device_get(pending)
    for step, m in rows:
      row = {"method": method, "seed": seed, "fold": fold, "step": int(step)}
      for k, v in m.items():
        v = np.asarray(v)
        row[k] = float(v) if v.ndim == 0 else [float(x) for x in v]
      if log_rows is not None:
        log_rows.append(row)
      if writer is not None:
        writer.write_scalars(step, {f"train/{method}/seed{seed}/fold{fold}/{k}": v
                                    for k, v in row.items() if isinstance(v, float)})
    pending.clear()

  for step in range(steps):
    idx = split["train"][next(batches)]
    batch = _batch(data, idx, modalities, batch_size=config.batch_size, domain_index=domain_index)
    params, batch_stats, opt_state, m = train_step(static, params, batch_stats, opt_state, batch,
                                                   np.int32(step), key, grl_ratio, switch)
    pending.append((step, m))
    if (step + 1) % config.log_every == 0 or step + 1 == steps:
      flush()
    if (step + 1) % eval_every == 0 or step + 1 == steps:
      val_idx = split["validation"] if split["validation"].size else split["train"]
      pred = predict_indices(static, params, batch_stats, data, val_idx, config.eval_batch_size)
      acc = float(np.mean(pred == data.stage[val_idx]))
      if acc > best["accuracy"]:
        # Host copies: the device buffers are donated to the next step.
        best = {"accuracy": acc, "step": step + 1, "state": _host_copy((params, batch_stats))}
  best_params, best_stats = best["state"]
  y_pred = predict_indices(static, best_params, best_stats, data, split["test"],
                           config.eval_batch_size)
  return {"y_true": data.stage[split["test"]], "y_pred": y_pred, "best_step": best["step"],
          "best_val_accuracy": best["accuracy"], "steps": steps}


def run_method(config: ml_collections.ConfigDict, method: str, data: SleepData, *, seed: int,
               log_rows: list[dict[str, Any]] | None = None, writer=None) -> dict[str, Any]:
  """Subject-wise k-fold CV of one method and seed; metrics on predictions pooled over folds.

  Returns:
    {"metrics": `metrics.summarize` dict (accuracy, macro_f1, kappa, f1/W..f1/REM, ...),
     "confusion": (5, 5) int counts, "folds": per-fold {"test_subjects", "accuracy", "best_step"},
     "y_true", "y_pred": pooled test stages (lists, fold order)}.
  """
  folds = subject_folds(data.subject, config.num_folds, seed)
  cm = metrics_lib.ConfusionMatrix(stages.NUM_STAGES)
  fold_info, y_true, y_pred = [], [], []
  for k, test_subjects in enumerate(folds):
    split = split_fold(data, test_subjects, val_fraction=config.val_fraction,
                       val_by_subject=config.val_by_subject, seed=seed * 1000 + k)
    res = train_fold(config, method, data, split, seed=seed, fold=k, log_rows=log_rows, writer=writer)
    cm.add(res["y_true"], res["y_pred"])
    y_true.append(res["y_true"])
    y_pred.append(res["y_pred"])
    fold_info.append({"test_subjects": list(test_subjects), "best_step": res["best_step"],
                      "best_val_accuracy": res["best_val_accuracy"],
                      "accuracy": float(np.mean(res["y_true"] == res["y_pred"]))})
    logging.info("%s seed %d fold %d: test accuracy %.4f (best val step %d)", method, seed, k,
                 fold_info[-1]["accuracy"], res["best_step"])
  return {"metrics": metrics_lib.summarize(cm, stages.STAGE_NAMES), "confusion": cm.matrix.tolist(),
          "folds": fold_info, "y_true": np.concatenate(y_true).tolist(),
          "y_pred": np.concatenate(y_pred).tolist()}


# ----------------------------------------------------------------------------------------------
# Reports.
# ----------------------------------------------------------------------------------------------

TABLE_COLUMNS = (("Accuracy", "accuracy"), ("Macro F1", "macro_f1"), ("Kappa", "kappa"),
                 ("Wake", "f1/W"), ("N1", "f1/N1"), ("N2", "f1/N2"), ("N3", "f1/N3"), ("REM", "f1/REM"))


def results_table(results: Mapping[str, Sequence[Mapping[str, float]]], dataset: str) -> tuple[str, list[list[str]]]:
  """The paper's Table 1 layout: one row per method, overall results then F1 per stage.

  Args:
    results: {method: [metrics dict per seed]}.
    dataset: dataset label for the first column.

  Returns:
    (Markdown text, CSV rows including the header). Cells are "mean ± std" over seeds (just the
    mean for one seed).
  """
  header = ["Dataset", "Method"] + [c for c, _ in TABLE_COLUMNS] + ["Seeds"]
  md = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  rows = [header]
  for method, runs in results.items():
    stats = metrics_lib.mean_std(list(runs))
    cells = [metrics_lib.format_mean_std(stats[k], ".4f") if k in stats else "n/a"
             for _, k in TABLE_COLUMNS]
    row = [dataset, METHOD_NAMES.get(method, method)] + cells + [str(len(runs))]
    rows.append(row)
    md.append("| " + " | ".join(row) + " |")
  return "\n".join(md) + "\n", rows


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
  if width <= 1 or x.size < width:
    return x
  return np.convolve(x, np.ones(width) / width, mode="valid")


def plot_imbalance(log_rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                   seed: int, fold: int = 0, smooth: int = 1) -> None:
  """SleepMG Fig. 4: imbalance degree sum_u (s^{a,u} - 1/U)^2 of G_y (a) and G_d (b) per step."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
  by_method = collections.defaultdict(list)
  for r in log_rows:
    if r["seed"] == seed and r["fold"] == fold:
      by_method[r["method"]].append(r)
  for index, (method, rows) in enumerate(by_method.items()):
    rows = sorted(rows, key=lambda r: r["step"])
    steps = np.array([r["step"] for r in rows])
    for ax, key in zip(axes, ("imbalance_y", "imbalance_d")):
      # None: a strict-JSON null read back from imbalance.jsonl (no such head).
      y = np.array([np.nan if r[key] is None else r[key] for r in rows], np.float64)
      if np.all(np.isnan(y)):
        continue
      ys = _moving_average(y, smooth)
      # One colour per method in both panels.
      ax.plot(steps[len(steps) - ys.size:], ys, color=f"C{index % 10}", label=METHOD_NAMES.get(method, method))
  for ax, title in zip(axes, ("(a) Classification", "(b) Domain discrimination")):
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("modal imbalance degree")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def plot_confusion(cm: np.ndarray, path: str | os.PathLike, title: str) -> None:
  """Row-normalised confusion matrix (true stage x predicted stage) with counts."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  cm = np.asarray(cm)
  norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
  fig, ax = plt.subplots(figsize=(4.5, 4))
  ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
  for i in range(cm.shape[0]):
    for j in range(cm.shape[1]):
      ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=7,
              color="white" if norm[i, j] > 0.5 else "black")
  ax.set_xticks(range(len(stages.STAGE_NAMES)), stages.STAGE_NAMES)
  ax.set_yticks(range(len(stages.STAGE_NAMES)), stages.STAGE_NAMES)
  ax.set_xlabel("predicted")
  ax.set_ylabel("scored (AASM)")
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _write_reports(work: pathlib.Path, config, label: str, results, runs, log_rows, new_rows) -> str:
  """Appends `new_rows` to imbalance.jsonl, rewrites imbalance.png and results.md/.csv/.json.

  Returns the Markdown table.
  """
  with open(work / "imbalance.jsonl", "a", encoding="utf-8") as f:
    for row in new_rows:
      # Methods without a domain head log NaN for it; strict JSON readers need null.
      f.write(json.dumps(report_lib.jsonable(row), allow_nan=False) + "\n")
  plot_imbalance(log_rows, work / "imbalance.png", seed=int(config.seeds[0]),
                 smooth=int(config.get("plot_smoothing", 1)))
  table, rows = results_table(results, label)
  (work / "results.md").write_text(table, encoding="utf-8")
  with open(work / "results.csv", "w", newline="", encoding="utf-8") as f:
    csv.writer(f).writerows(rows)
  with open(work / "results.json", "w", encoding="utf-8") as f:
    json.dump({"config": config.to_dict(), "runs": runs}, f, indent=1, default=str)
  return table


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       data: SleepData | None = None) -> dict[str, Any]:
  """Runs every method of `config.methods` for every seed of `config.seeds` and writes reports.

  Args:
    config: see configs/sleepmg.py.
    workdir: output folder (created).
    data: optional in-memory dataset (tests); default `load_data(config)`.

  Returns:
    {"results": {method: [metrics per seed]}, "table": Markdown text, "runs": full records}.

  Raises:
    ValueError: unknown method or data source, too few subjects for the folds.
  """
  from sleepjax.train import common  # pylint: disable=g-import-not-at-top
  for method in config.methods:
    method_spec(method, config)  # Fail before any data is read.
  work = pathlib.Path(workdir)
  work.mkdir(parents=True, exist_ok=True)
  if data is None:
    data = load_data(config)
  logging.info("SleepMG data: %d epochs, %d subjects, channels %s", len(data),
               len(set(data.subject)), data.channels)
  writer = common.MetricWriter(work, tensorboard=config.get("tensorboard", False))
  log_rows: list[dict[str, Any]] = []
  results: dict[str, list[dict[str, float]]] = {}
  runs = []
  label = config.get("dataset_label") or (config.data.name if config.data.source == "tfds" else "toy")
  table = ""
  n_logged = 0
  (work / "imbalance.jsonl").write_text("", encoding="utf-8")  # Appended per (method, seed) below.
  try:
    for method in config.methods:
      for seed in config.seeds:
        out = run_method(config, method, data, seed=int(seed), log_rows=log_rows, writer=writer)
        results.setdefault(method, []).append(out["metrics"])
        runs.append({"method": method, "seed": int(seed), **out})
        if seed == config.seeds[0]:
          plot_confusion(np.asarray(out["confusion"]), work / f"confusion_{method}.png",
                         f"{METHOD_NAMES.get(method, method)} (pooled over folds)")
        # Reports are rewritten after every (method, seed): an interrupted multi-hour run keeps
        # the table of everything finished so far.
        table = _write_reports(work, config, label, results, runs, log_rows, log_rows[n_logged:])
        n_logged = len(log_rows)
  finally:
    writer.close()
  print(f"\nSubject-wise cross-validation, metrics pooled over folds ({work / 'results.md'}):\n{table}",
        flush=True)
  return {"results": results, "table": table, "runs": runs}
