r"""SleepMG trainer: subject-wise cross-validated sleep staging for SleepMG and its baselines.

  python -m sleepjax.main --config=configs/sleepmg.py --workdir=/tmp/sleepmg
  python -m sleepjax.main --config=configs/sleepmg.py:tiny --workdir=/tmp/sleepmg_tiny

The task: per-modality FeatureNets, G_y (stages) and, behind a gradient reversal layer, G_d
(training subjects); rho^{a,u} and the imbalance degrees computed inside the step from the head
kernels and the batch's features; the optimiser chained after the per-modality balance transform.
The protocol: k-fold subject-wise cross-validation, the best-validation-accuracy model of each fold
tested on its held-out subjects, metrics on the predictions pooled over folds; then one model
trained on all subjects (the one to use on new recordings). Methods (docs/specification.md §4.7;
SleepMG Tables 1, 2 and 4):

  featurenet      all channels through one FeatureNet stack, G_y only (no domain head).
  naivemg         one FeatureNet per modality, concat, G_y + GRL -> G_d.
  ogmge           per-modality FeatureNets + G_y (no domain head, as in Peng et al.), with the
                  OGM-GE modulation generalised one-vs-rest (`models.sleepmg.ogm_ge_coefficients`)
                  on each modality's conv-kernel gradients plus Gaussian noise of the gradient's std.
  sleepmg         NaiveMG + rho^{y,u} and rho^{d,u} on the column blocks of G_y and G_d (Eq. 7).
  sleepmg_y_only  rho on G_y only;  sleepmg_d_only: rho on G_d only (Table 4 ablations).
  sleepmg_sgd     SleepMG with momentum SGD instead of Adam (Adam cancels a constant rho).

Outputs in `workdir`: results.{md,csv} (one row per method, the paper's Table 1 layout, mean +- std
over seeds), results.json (every metric of every (method, seed) and the pooled confusion matrices),
imbalance.jsonl (per step of every fold: losses, s^{a,u}, rho^{a,u}, imbalance degrees),
imbalance.png (the paper's Fig. 4), confusion_<method>.png, metrics.jsonl, and model/ with each
fold's best model (`<method>/seed<k>/fold<i>/best`) and the all-subjects models
(`<method>/seed<k>/all/{best,final}`), loadable with `sleepjax.models.load`.

NaiveMG, SleepMG and its G_y-only / G_d-only ablations share one compiled step (the balance is
switched by a traced argument, as is the GRL ratio lambda); folds of equal shapes share it too.
Data: the whole dataset in memory (`SleepData`), re-split by subject; single device.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import pathlib
from collections.abc import Mapping, Sequence
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
from sleepjax.data import pipeline
from sleepjax.data import stages
from sleepjax.evaluation import evaluators
from sleepjax.evaluation import metrics as metrics_lib
from sleepjax.evaluation import plots
from sleepjax.evaluation import report as report_lib
from sleepjax.models import featurenet
from sleepjax.models import sleepmg as sleepmg_lib
from sleepjax.train import config as config_lib
from sleepjax.train import inputs
from sleepjax.train import loop as loop_lib
from sleepjax.train import mesh as mesh_lib
from sleepjax.train import state as state_lib
from sleepjax.train import writer as writer_lib

METHODS = ("featurenet", "naivemg", "ogmge", "sleepmg", "sleepmg_y_only", "sleepmg_d_only",
           "sleepmg_sgd")
# Display names in the results table (the paper's Table 1 spelling where one exists).
METHOD_NAMES = {
    "featurenet": "FeatureNet", "naivemg": "NaiveMG", "ogmge": "OGM-GE", "sleepmg": "SleepMG",
    "sleepmg_y_only": "SleepMG (G_y only)", "sleepmg_d_only": "SleepMG (G_d only)",
    "sleepmg_sgd": "SleepMG (SGD)",
}
ALL_GROUP = "all"  # The single channel group of the FeatureNet baseline.
DATA_SOURCES = ("tfds", "toy")
FREE_FORM = ("data.toy.channels",)


def default_config() -> ml_collections.ConfigDict:
  """Every field of a SleepMG config, with the paper's values (configs/sleepmg.py).

  Data facts (SleepMG section 5.1): ISRUC-S3 (10 subjects, 8589 epochs) and MASS-SS3 (62 subjects,
  59304 epochs) as EEG 6 / EOG 2 / EMG 1 / ECG 1 at 100 Hz in 30-s epochs of 3000 samples, which
  FeatureNet requires.
  """
  c = config_lib.common("sleepmg")
  c.methods = METHODS
  c.dataset_label = "synthetic_psg/sleepmg"
  c.num_devices = 1  # The model is small; folds are the natural unit of parallelism.
  c.tensorboard = False

  c.data.source = "tfds"  # "tfds" | "toy" (in-memory `make_toy_data`)
  c.data.builder_module = "tfds_builders.synthetic_psg"
  c.data.name = "synthetic_psg"
  # 100 Hz, EEG 6 / EOG 2 / EMG 1 / ECG 1 per 30-s epoch: SleepMG's layout (resp is not used).
  c.data.builder_config = "sleepmg"
  c.data.splits = ("train", "validation", "test")  # Every split is read and re-split by subject.
  # Order fixes the column blocks of G_y / G_d (the paper's u in {e, o, m, c}).
  c.data.modalities = ("eeg", "eog", "emg", "ecg")
  c.data.toy = ml_collections.ConfigDict()
  c.data.toy.num_subjects = 4
  c.data.toy.epochs_per_subject = 40
  c.data.toy.channels = ml_collections.ConfigDict({"eeg": 6, "eog": 2, "emg": 1, "ecg": 1})
  c.data.toy.seed = 0

  c.model = ml_collections.ConfigDict()
  # MSTGCN's FeatureNet is one per-channel extractor shared by the channels of a modality.
  c.model.share_channel_weights = True
  c.model.dropout_rate = 0.5
  c.model.bn_momentum = 0.9  # Running-average decay (PyTorch momentum 0.1).

  c.optimizer = config_lib.optimizer(name="adam", learning_rate=1e-3, b1=0.5, b2=0.999)  # SleepMG: Adam.
  c.sgd_optimizer = config_lib.optimizer(name="sgd", learning_rate=1e-2, momentum=0.9)  # sleepmg_sgd only.

  c.grl_ratio = 0.1  # lambda: 0.1 on ISRUC-S3, 1.0 on MASS-SS3 (SleepMG section 5.2).
  c.ogm_alpha = 0.1  # OGM-GE modulation strength (Peng et al. 2022).
  c.ogmge_domain_head = False  # OGM-GE as published has no domain discriminator.

  c.num_folds = 5
  c.val_fraction = 0.2
  c.val_by_subject = False  # False: 20% of the training subjects' epochs (the paper).
  c.all_subjects_model = True  # After CV, train one model on all subjects (model/<method>/seed<k>/all).
  c.batch_size = 64  # The paper: 256 (see `large`).
  c.eval_batch_size = 256
  # Training length in steps. 50 passes over ~7k training epochs at batch 256 is ~1.4k steps
  # per fold (`large`); the default is shortened for CPUs.
  c.steps = 300
  c.eval_every = 50
  c.log_every = 25
  c.plot_smoothing = 5
  return c


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects a config that cannot run, before any data is read.

  Raises:
    config_lib.ConfigError: unknown field, method or data source, or a value out of range (one line).
  """
  config_lib.validate_common(config, default_config(), free_form=FREE_FORM, periods=("eval_every", "num_folds"))
  config_lib.check_subset("methods", config.methods, METHODS)
  config_lib.check_choice("data.source", config.data.source, DATA_SOURCES)
  config_lib.optimizer_config(config.sgd_optimizer, config.steps)
  if config.num_folds < 2:
    raise config_lib.ConfigError(f"config.num_folds must be >= 2, got {config.num_folds}")
  if not 0.0 <= config.val_fraction < 1.0:
    raise config_lib.ConfigError(f"config.val_fraction must be in [0, 1), got {config.val_fraction}")


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
    input: what a saved model needs to prepare a new recording like these epochs
      (`preprocessing_metadata`): {"montage": {modality: [{"name", "aliases"}...]} or None,
      "sfreq", "epoch_s", "units", "lowpass_at_nyquist", "zscore"}; None when unknown.
  """
  signals: dict[str, np.ndarray]
  stage: np.ndarray
  subject: np.ndarray
  record_id: np.ndarray
  input: dict[str, Any] | None = None

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
  montage = {m: [{"name": f"{m}{i}", "aliases": []} for i in range(c)] for m, c in channels.items()}
  return SleepData(signals, stage, subject.astype(object), record,
                   input=preprocessing_metadata(montage, sfreq=100.0, lowpass_at_nyquist=False, zscore=False))


def preprocessing_metadata(montage: Mapping[str, Sequence[Mapping[str, Any]]] | None, *, sfreq: float,
                           lowpass_at_nyquist: bool, zscore: bool) -> dict[str, Any]:
  """The "input" block of a saved stager's metadata: how `sleepjax.stage` prepares a recording.

  Args:
    montage: {modality: [{"name": channel name, "aliases": [file labels]}, ...]} in the model's
      channel order (a dataset's `Montage`, see `montage_metadata`); None when unknown.
    sfreq: Hz of the model's input.
    lowpass_at_nyquist, zscore: `sleepjax.data.recording.epoch_recording`'s preprocessing flags.

  Returns:
    {"montage", "sfreq", "epoch_s": 30.0, "units": "uV", "lowpass_at_nyquist", "zscore",
     "resample": "scipy.signal.resample_poly"}.
  """
  return {"montage": None if montage is None else {m: [dict(c) for c in v] for m, v in montage.items()},
          "sfreq": float(sfreq), "epoch_s": 30.0, "units": "uV", "lowpass_at_nyquist": bool(lowpass_at_nyquist),
          "zscore": bool(zscore), "resample": "scipy.signal.resample_poly"}


def montage_metadata(montage, modalities: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
  """{modality: [{"name", "aliases"}]} of a `sleepjax.data.Montage`, restricted to `modalities`."""
  by = montage.by_modality()
  return {m: [{"name": s.name, "aliases": list(s.aliases)} for s in by.get(m, ())] for m in modalities}


def load_tfds_data(config: ml_collections.ConfigDict) -> SleepData:
  """Reads every split of the configured TFDS dataset into memory (CV re-splits by subject).

  The dataset's examples follow docs/architecture.md §3; only `config.data.modalities`
  are kept, in that order, and unscored epochs (stage < 0) are dropped.

  Raises:
    ValueError: a modality is absent, or epochs are not 3000 samples (30 s at 100 Hz).
  """
  modalities = tuple(config.data.modalities)
  sig = {m: [] for m in modalities}
  stage, subject, record = [], [], []
  builder = inputs.open_dataset(config.data)
  sources = {split: builder.as_data_source(split=split) for split in dict.fromkeys(config.data.splits)}
  for split in config.data.splits:
    source = sources[split]
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
                   np.asarray(subject, object)[keep], np.asarray(record, object)[keep],
                   input=_builder_input(builder, modalities))


def _builder_input(builder, modalities: Sequence[str]) -> dict[str, Any] | None:
  """The preprocessing of a PSG builder config (sfreq, lowpass_at_nyquist, zscore, montage), or None."""
  cfg = getattr(builder, "builder_config", None)
  if cfg is None or not hasattr(cfg, "sfreq"):
    return None
  montage = getattr(cfg, "montage", None)
  return preprocessing_metadata(montage_metadata(montage, modalities) if montage is not None else None,
                                sfreq=float(cfg.sfreq), lowpass_at_nyquist=bool(getattr(cfg, "lowpass_at_nyquist", False)),
                                zscore=bool(getattr(cfg, "zscore", False)))


def load_data(config: ml_collections.ConfigDict) -> SleepData:
  """The configured dataset: `config.data.source` = "tfds" or "toy" (`make_toy_data`)."""
  if config.data.source == "toy":
    toy = config.data.toy
    return make_toy_data(num_subjects=toy.num_subjects, epochs_per_subject=toy.epochs_per_subject,
                         channels=dict(toy.channels), seed=toy.seed)
  if config.data.source == "tfds":
    return load_tfds_data(config)
  raise ValueError(f"unknown data source {config.data.source!r}; expected one of {DATA_SOURCES}")


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
  is_test = np.isin(data.subject, list(test_subjects)) if len(test_subjects) else np.zeros(len(data), bool)
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
# Model, task.
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


HEAD_KERNELS = {"y": ("head_y", "kernel"), "d": ("head_d", "kernel")}


@dataclasses.dataclass(frozen=True)
class SleepMGTask(state_lib.Task):
  """One SleepMG (or baseline) update; hashable, so folds with equal shapes share one jit.

  Batch: {"signals": {modality: (B, C_u, 3000) float32 uV}, "stage": (B,) int32, "subject": (B,)
  int32 training-subject index, "mask": (B,) bool}. Hyper-parameters (traced): "grl_ratio" ()
  float32 lambda; "balance_on" (2,) float32 `balance_switch` (where 0, that head's rho is 1).
  Metrics: loss, loss_y, loss_d, accuracy_y, imbalance_y, imbalance_d (), s_y, rho_y, s_d, rho_d
  (U,) [, ogm_coeff, ogm_ratio (U,)].

  Attributes:
    graphdef, graphdef_eval: the model's graph definitions in train / eval mode.
    optimizer: Adam (or SGD for sleepmg_sgd).
    spec: the method, with balance_heads widened to every head (see `init_state`).
    modalities: modality order (fixes the column blocks).
    sizes: rows 256 C_u of each modality's block in the fused feature.
    ogm_alpha: OGM-GE modulation strength.
  """
  graphdef: Any
  optimizer: optim.OptimizerConfig
  graphdef_eval: Any = None
  spec: MethodSpec = MethodSpec(True, True, ("y", "d"))
  modalities: tuple[str, ...] = ()
  sizes: tuple[int, ...] = ()
  ogm_alpha: float = 0.1

  def make_tx(self):
    balance = optim.modality_balance({h: HEAD_KERNELS[h] for h in self.spec.balance_heads}, self.sizes)
    return optim.make_optimizer(self.optimizer, first=balance)

  def loss(self, model, batch, rng, hparams):
    dropout_key, _ = jax.random.split(rng)
    out = model(_group_signals(batch["signals"], self.spec, self.modalities), grl_ratio=hparams["grl_ratio"],
                rngs=nnx.Rngs(dropout=dropout_key))
    loss_y = losses.cross_entropy(out["logits_y"], batch["stage"], mask=batch["mask"])
    loss, loss_d = loss_y, jnp.zeros((), jnp.float32)
    if self.spec.domain_head:
      loss_d = losses.cross_entropy(out["logits_d"], batch["subject"], mask=batch["mask"])
      # The GRL already reverses dL_d/df for the extractors (L = L_y - L_d for them), while G_d
      # itself descends L_d: the summed loss is the right objective for every parameter.
      loss = loss_y + loss_d
    correct = (jnp.argmax(out["logits_y"], -1) == batch["stage"]) & batch["mask"]
    metrics = {"loss_y": loss_y, "loss_d": loss_d,
               "accuracy_y": jnp.sum(correct) / jnp.maximum(jnp.sum(batch["mask"]), 1)}
    return loss, {"metrics": metrics, "fused": out["fused"]}

  def update_gradients(self, grads, params, batch, aux, rng, hparams):
    _, noise_key = jax.random.split(rng)
    feats = _split_blocks(aux["fused"], self.sizes)
    bal_y = sleepmg_lib.head_balance(feats, params["head_y"]["kernel"][...], params["head_y"]["bias"][...],
                                     batch["stage"], mask=batch["mask"])
    nan_u = jnp.full((len(self.sizes),), jnp.nan, jnp.float32)
    bal_d = {"v": nan_u, "s": nan_u, "rho": nan_u, "imbalance": jnp.array(jnp.nan, jnp.float32)}
    if self.spec.domain_head:
      bal_d = sleepmg_lib.head_balance(feats, params["head_d"]["kernel"][...], params["head_d"]["bias"][...],
                                       batch["subject"], mask=batch["mask"])
    metrics = {"imbalance_y": bal_y["imbalance"], "imbalance_d": bal_d["imbalance"],
               "s_y": bal_y["s"], "rho_y": bal_y["rho"], "s_d": bal_d["s"], "rho_d": bal_d["rho"]}
    if self.spec.ogm_ge:
      coeff, ratio = sleepmg_lib.ogm_ge_coefficients(bal_y["v"], self.ogm_alpha)
      grads = _ogm_ge_modulate(grads, coeff, noise_key, self.modalities)
      metrics["ogm_coeff"] = coeff
      metrics["ogm_ratio"] = ratio
    on = hparams["balance_on"]
    rho = {"y": jnp.where(on[0] > 0, bal_y["rho"], 1.0)}
    if self.spec.domain_head:
      rho["d"] = jnp.where(on[1] > 0, bal_d["rho"], 1.0)
    return grads, {"rho": rho}, metrics

  def predict_batch(self, model, batch):
    """{"logits": (B, 5) stage logits of G_y}; `model` in eval mode (see `eval_model`)."""
    return {"logits": model(_group_signals(batch["signals"], self.spec, self.modalities))["logits_y"]}

  def eval_model(self, state: Mapping[str, Any]) -> nnx.Module:
    """The model of a train state (or host copy) in eval mode (running BatchNorm statistics, no dropout)."""
    return nnx.merge(self.graphdef_eval, state["params"], state["model_state"])


def init_state(config: ml_collections.ConfigDict, spec: MethodSpec, model: sleepmg_lib.SleepMGModel,
               modalities: Sequence[str], channels: Mapping[str, int], *, key: jax.Array) -> tuple[SleepMGTask, dict]:
  """(task, train state) of a fresh model; `key` is the run's base key (RBG: fast to compile on CPU).

  The balance transform is always chained, on every head the model has; which heads it actually
  scales is the traced `balance_switch(spec)`. A switched-off head gets rho = 1 exactly, and
  x * 1.0 == x in floating point, so NaiveMG is bit-identical to the plain optimiser while
  sharing one compiled step with SleepMG and its G_y-only / G_d-only ablations.
  """
  block = config.sgd_optimizer if spec.optimizer == "sgd" else config.optimizer
  opt = config_lib.optimizer_config(block, config.steps)
  shared = dataclasses.replace(spec, balance_heads=("y", "d") if spec.domain_head else ("y",))
  model.eval()
  graphdef_eval = nnx.graphdef(model)
  model.train()
  task = SleepMGTask(nnx.graphdef(model), opt, graphdef_eval, shared, tuple(modalities), block_sizes(channels),
                     float(config.ogm_alpha))
  _, state = state_lib.init_state(model, task.make_tx(), key)
  return task, state


def balance_switch(spec: MethodSpec) -> np.ndarray:
  """(2,) float32 [G_y balanced, G_d balanced] of a method: the traced switch of the step."""
  return np.array([h in spec.balance_heads for h in ("y", "d")], np.float32)


def hparams(config: ml_collections.ConfigDict, spec: MethodSpec) -> dict[str, np.ndarray]:
  """The step's traced hyper-parameters: the GRL ratio and the balance switch."""
  return {"grl_ratio": np.float32(config.grl_ratio), "balance_on": balance_switch(spec)}


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


def stage_evaluator(task: SleepMGTask, data: SleepData, idx: np.ndarray, batch_size: int) -> evaluators.Classification:
  """A `Classification` evaluator of the epochs `idx` (stages W..REM), in order."""
  def batches():
    for i in range(0, idx.size, batch_size):
      chunk = idx[i:i + batch_size]
      b = _batch(data, chunk, task.modalities, batch_size=batch_size)
      yield {"signals": b["signals"], "label": b["stage"], "valid": b["mask"]}
  return evaluators.Classification(batches, task.predict_batch, stages.STAGE_NAMES, inputs=("signals",))


def predict_stages(task: SleepMGTask, model: nnx.Module, data: SleepData, idx: np.ndarray, batch_size: int) -> np.ndarray:
  """Predicted stages (argmax of G_y) of epochs `idx`, in order; `model` in eval mode."""
  if idx.size == 0:
    return np.zeros(0, np.int64)
  return stage_evaluator(task, data, idx, batch_size).predict(model)["logits"].argmax(-1)


def saved_model_stages(model: nnx.Module, info: Mapping[str, Any], data: SleepData, idx: np.ndarray,
                       batch_size: int = 256) -> np.ndarray:
  """Predicted stages of epochs `idx` by a saved SleepMG model (`sleepjax.models.load`).

  Args:
    model: the loaded `SleepMGModel` (eval mode).
    info: its `sleepjax.models.load_info` (the metadata gives the modality order and grouping).
    data: epochs holding at least the model's modalities.
    idx: (N,) epoch indices.
    batch_size: epochs per forward pass.

  Returns:
    (N,) int stages (W=0..REM=4).
  """
  meta = info["metadata"]
  spec = MethodSpec(per_modality=meta["grouping"] != ALL_GROUP, domain_head=False, balance_heads=())
  task = SleepMGTask(None, None, spec=spec, modalities=tuple(meta["data"]["modalities"]))
  return predict_stages(task, model, data, np.asarray(idx), batch_size)


def train_fold(config: ml_collections.ConfigDict, method: str, data: SleepData,
               split: Mapping[str, np.ndarray], *, seed: int, fold: int | str,
               log_rows: list[dict[str, Any]] | None = None, writer=None) -> dict[str, Any]:
  """Trains one method on one fold and tests the best-validation model.

  Args:
    config: the SleepMG config.
    method: one of METHODS.
    data: the in-memory dataset.
    split: {"train", "validation", "test"} epoch indices (`split_fold`; test may be empty).
    seed: run seed (parameter init, data order, dropout and noise keys).
    fold: fold number, or "all" for the model trained on every subject (logging, key folding).
    log_rows: if given, per-step metric rows are appended (method, seed, fold, step, ...).
    writer: optional `MetricWriter` for scalars.

  Returns:
    {"y_true": (N_test,), "y_pred": (N_test,), "best_step": int, "best_val_accuracy": float,
     "steps": int, "task", "best": eval-mode best model, "final": eval-mode final model,
     "num_domains": int}.
  """
  spec = method_spec(method, config)
  modalities = tuple(config.data.modalities)
  channels = {m: data.channels[m] for m in modalities}
  train_subjects = sorted(set(data.subject[split["train"]]))
  domain_index = {s: i for i, s in enumerate(train_subjects)}
  fold_index = config.num_folds if fold == "all" else int(fold)
  run_seed = seed * 1000 + fold_index
  model = build_model(config, spec, channels, len(train_subjects), run_seed)
  # RBG keys: XLA's RngBitGenerator compiles much faster on CPU than unrolled threefry, and the
  # keys only drive dropout masks and OGM-GE noise.
  key = jax.random.fold_in(jax.random.key(seed, impl="rbg"), fold_index)
  task, state = init_state(config, spec, model, modalities, channels, key=key)
  mesh = mesh_lib.make_data_mesh(config.get("num_devices"))
  state = mesh_lib.put(state, mesh_lib.state_sharding(state, mesh))
  rng = np.random.default_rng(run_seed)
  train_idx = split["train"]

  def batches():
    for idx in inputs.index_batches(train_idx.size, config.batch_size, rng):
      yield _batch(data, train_idx[idx], modalities, batch_size=config.batch_size, domain_index=domain_index)

  def on_log(rows):
    if log_rows is None:
      return
    for step, m in rows:
      row = {"method": method, "seed": seed, "fold": fold, "step": int(step) - 1}
      for k, v in m.items():
        v = np.asarray(v)
        row[k] = float(v) if v.ndim == 0 else [float(x) for x in v]
      log_rows.append(row)

  val_idx = split["validation"] if split["validation"].size else split["train"]
  validation = stage_evaluator(task, data, val_idx, config.eval_batch_size)

  def evaluate(state):
    pred = validation.predict(task.eval_model(state))
    return {"validation/accuracy": float(np.mean(pred["logits"].argmax(-1) == pred["label"]))}

  result = loop_lib.train(
      state, state_lib.make_train_step(task, mesh, state), batches(), steps=int(config.steps),
      log_every=config.log_every, to_device=functools.partial(mesh_lib.global_batch, mesh=mesh),
      hparams=hparams(config, spec), writer=writer, prefix=f"{method}/seed{seed}/fold{fold}/", on_log=on_log,
      evaluate=evaluate, eval_every=config.eval_every, select=("validation/accuracy", "max"),
      progress=config.progress_bar, desc=f"{method} seed {seed} fold {fold}")
  best = task.eval_model(result.best_or_final())
  y_pred = predict_stages(task, best, data, split["test"], config.eval_batch_size)
  return {"y_true": data.stage[split["test"]], "y_pred": y_pred, "best_step": result.best_step,
          "best_val_accuracy": result.best_metric, "steps": result.steps, "task": task, "best": best,
          "final": task.eval_model(result.state), "num_domains": len(train_subjects)}


def model_metadata(config, data: SleepData, method: str, seed: int, fold, run: Mapping[str, Any],
                   test_subjects: Sequence[str]) -> dict[str, Any]:
  """What a user of a saved SleepMG model needs: its input layout and the run that made it."""
  return {"task": "sleepmg", "method": method, "seed": int(seed), "fold": fold,
          "test_subjects": list(test_subjects), "best_step": run["best_step"],
          "best_validation_accuracy": run["best_val_accuracy"],
          "data": {"name": config.data.name if config.data.source == "tfds" else "toy",
                   "builder_config": config.data.builder_config if config.data.source == "tfds" else None,
                   "modalities": list(config.data.modalities),
                   "channels": {m: int(data.channels[m]) for m in config.data.modalities},
                   "sfreq": 100.0, "epoch_s": 30.0, "units": "uV"},
          # The stage logits are G_y of the model's output dict: model(signals)["logits_y"].
          "output": "logits_y", "grouping": "per_modality" if method_spec(method, config).per_modality else ALL_GROUP,
          # What `sleepjax.stage` reads to prepare a new recording (docs/staging.md); absent in
          # models saved before it, which `sleepjax.staging` stages with the documented defaults.
          "input": data.input}


def _save(workdir, name: str, model, metadata, description: str, *, default: bool = False) -> None:
  models_lib.save(model, pathlib.Path(workdir) / "model" / name, label_names=stages.STAGE_NAMES, metadata=metadata)
  models_lib.saving.register(workdir, name, {"description": description, "step": metadata.get("best_step")},
                             default=default)


def run_method(config: ml_collections.ConfigDict, method: str, data: SleepData, *, seed: int,
               log_rows: list[dict[str, Any]] | None = None, writer=None, workdir=None) -> dict[str, Any]:
  """Subject-wise k-fold CV of one method and seed; metrics on predictions pooled over folds.

  With `workdir`, each fold's best model is saved to `model/<method>/seed<seed>/fold<k>/best`.

  Returns:
    {"metrics": `metrics.summarize` dict (accuracy, macro_f1, kappa, f1/W..f1/REM, ...),
     "confusion": (5, 5) int counts, "folds": per-fold {"test_subjects", "accuracy", "best_step",
     "model"}, "y_true", "y_pred": pooled test stages (lists, fold order)}.
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
    name = f"{method}/seed{seed}/fold{k}/best"
    fold_info.append({"test_subjects": list(test_subjects), "best_step": res["best_step"],
                      "best_val_accuracy": res["best_val_accuracy"],
                      "accuracy": float(np.mean(res["y_true"] == res["y_pred"])), "model": f"model/{name}"})
    if workdir is not None:
      _save(workdir, name, res["best"], model_metadata(config, data, method, seed, k, res, test_subjects),
            f"{METHOD_NAMES.get(method, method)} seed {seed}, fold {k}: best validation accuracy; "
            f"test subjects {', '.join(test_subjects)}")
    logging.info("%s seed %d fold %d: test accuracy %.4f (best val step %d)", method, seed, k,
                 fold_info[-1]["accuracy"], res["best_step"])
  return {"metrics": metrics_lib.summarize(cm, stages.STAGE_NAMES), "confusion": cm.matrix.tolist(),
          "folds": fold_info, "y_true": np.concatenate(y_true).tolist(),
          "y_pred": np.concatenate(y_pred).tolist()}


def train_all_subjects(config: ml_collections.ConfigDict, method: str, data: SleepData, *, seed: int,
                       workdir) -> dict[str, Any]:
  """Trains one model on every subject (validation split as in the folds) and saves best and final.

  This is the model to apply to new recordings: `model/<method>/seed<seed>/all/{best,final}`.
  """
  split = split_fold(data, (), val_fraction=config.val_fraction, val_by_subject=config.val_by_subject,
                     seed=seed * 1000 + config.num_folds)
  res = train_fold(config, method, data, split, seed=seed, fold="all")
  name = f"{method}/seed{seed}/all"
  meta = model_metadata(config, data, method, seed, "all", res, ())
  default = method == config.methods[0] and seed == config.seeds[0]
  _save(workdir, f"{name}/best", res["best"], meta,
        f"{METHOD_NAMES.get(method, method)} seed {seed}, all subjects: best validation accuracy", default=default)
  _save(workdir, f"{name}/final", res["final"], {**meta, "best_step": res["steps"]},
        f"{METHOD_NAMES.get(method, method)} seed {seed}, all subjects: after the last step")
  return res


# ----------------------------------------------------------------------------------------------
# Reports.
# ----------------------------------------------------------------------------------------------

TABLE_COLUMNS = (("Accuracy", "accuracy"), ("Macro F1", "macro_f1"), ("Kappa", "kappa"),
                 ("Wake", "f1/W"), ("N1", "f1/N1"), ("N2", "f1/N2"), ("N3", "f1/N3"), ("REM", "f1/REM"))


def results_rows(results: Mapping[str, Sequence[Mapping[str, float]]], dataset: str) -> list[dict[str, Any]]:
  """The paper's Table 1 layout: one row per method, overall results then F1 per stage.

  Args:
    results: {method: [metrics dict per seed]}.
    dataset: dataset label for the first column.

  Returns:
    Rows {"Dataset", "Method", "Accuracy", ..., "REM", "Seeds"} with "mean ± std" cells over seeds
    (just the mean for one seed).
  """
  rows = report_lib.mean_std_rows({METHOD_NAMES.get(m, m): runs for m, runs in results.items()},
                                  [k for _, k in TABLE_COLUMNS], label="Method")
  return [{"Dataset": dataset, "Method": r["Method"], **{c: r[k] for c, k in TABLE_COLUMNS}, "Seeds": r["n_runs"]}
          for r in rows]


def imbalance_curves(log_rows: Sequence[Mapping[str, Any]], *, seed: int, fold: int = 0) -> dict:
  """{method label: {"imbalance_y" / "imbalance_d": (steps, degrees)}} of one seed and fold (Fig. 4)."""
  by_method = collections.defaultdict(list)
  for r in log_rows:
    if r["seed"] == seed and r["fold"] == fold:
      by_method[r["method"]].append(r)
  curves = {}
  for method, rows in by_method.items():
    rows = sorted(rows, key=lambda r: r["step"])
    steps = np.array([r["step"] for r in rows])
    # None: a strict-JSON null read back from imbalance.jsonl (no such head).
    curves[METHOD_NAMES.get(method, method)] = {
        key: (steps, np.array([np.nan if r[key] is None else r[key] for r in rows], np.float64))
        for key in ("imbalance_y", "imbalance_d")}
  return curves


def _write_reports(work: pathlib.Path, config, label: str, results, runs, log_rows, new_rows) -> str:
  """Appends `new_rows` to imbalance.jsonl, rewrites imbalance.png and results.md/.csv/.json.

  Returns the Markdown table.
  """
  with open(work / "imbalance.jsonl", "a", encoding="utf-8") as f:
    for row in new_rows:
      # Methods without a domain head log NaN for it; strict JSON readers need null.
      f.write(json.dumps(report_lib.jsonable(row), allow_nan=False) + "\n")
  plots.imbalance(imbalance_curves(log_rows, seed=int(config.seeds[0])), work / "imbalance.png",
                  smooth=int(config.plot_smoothing))
  rows = results_rows(results, label)
  paths = report_lib.write_results(work, "results", rows, floatfmt=".4f")
  with open(paths["json"], "w", encoding="utf-8") as f:
    json.dump(report_lib.jsonable({"config": config.to_dict(), "table": rows, "runs": runs}), f, indent=1, default=str)
  return paths["md"].read_text(encoding="utf-8")


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
    config_lib.ConfigError: the config cannot run (before any data is read).
    ValueError: too few subjects for the folds.
  """
  validate_config(config)
  work = pathlib.Path(workdir)
  work.mkdir(parents=True, exist_ok=True)
  (work / "config.json").write_text(config.to_json_best_effort(indent=2), encoding="utf-8")
  if data is None:
    data = load_data(config)
  logging.info("SleepMG data: %d epochs, %d subjects, channels %s", len(data),
               len(set(data.subject)), data.channels)
  log_rows: list[dict[str, Any]] = []
  results: dict[str, list[dict[str, float]]] = {}
  runs = []
  label = config.get("dataset_label") or (config.data.name if config.data.source == "tfds" else "toy")
  table = ""
  n_logged = 0
  (work / "imbalance.jsonl").write_text("", encoding="utf-8")  # Appended per (method, seed) below.
  with writer_lib.MetricWriter(work, tensorboard=config.tensorboard) as writer:
    for method in config.methods:
      for seed in config.seeds:
        out = run_method(config, method, data, seed=int(seed), log_rows=log_rows, writer=writer, workdir=work)
        if config.all_subjects_model:
          train_all_subjects(config, method, data, seed=int(seed), workdir=work)
        results.setdefault(method, []).append(out["metrics"])
        runs.append({"method": method, "seed": int(seed), **out})
        if seed == config.seeds[0]:
          plots.confusion_matrix(np.asarray(out["confusion"]), stages.STAGE_NAMES, work / f"confusion_{method}.png",
                                 title=f"{METHOD_NAMES.get(method, method)} (pooled over folds)")
        # Reports are rewritten after every (method, seed): an interrupted multi-hour run keeps
        # the table of everything finished so far.
        table = _write_reports(work, config, label, results, runs, log_rows, log_rows[n_logged:])
        n_logged = len(log_rows)
  print(f"\nSubject-wise cross-validation, metrics pooled over folds ({work / 'results.md'}):\n{table}",
        flush=True)
  return {"results": results, "table": table, "runs": runs}
