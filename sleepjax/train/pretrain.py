"""SleepFM-style multimodal contrastive pretraining (leave-one-out or pairwise), data parallel.

The task: one set-transformer encoder per modality group (or one shared, SleepFM-Clinical), the
LOO or pairwise contrastive loss on the pooled window embeddings, the logit-scale exponent
t clamped to t >= 0 after every update. The protocol: train for `steps` on the training split
(resuming from `<workdir>/checkpoints`), save the encoder to `<workdir>/model/`, then probe it on
held-out subjects (frozen-embedding linear probe against the same encoder at random init, and
cross-modal retrieval). Methods: docs/specification.md §2.

References:
  Thapa et al., "SleepFM: Multi-modal Representation Learning for Sleep Across Brain Activity, ECG
  and Respiratory Signals", ICML 2024 (leave-one-out contrastive learning).
  Thapa et al., SleepFM-Clinical, Nature Medicine 2025 (set-transformer encoder, 5-min windows).
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Mapping

from flax import nnx
import jax
import ml_collections
import numpy as np

from sleepjax import models as models_lib
from sleepjax.data import pipeline
from sleepjax.data import summary as summary_lib
from sleepjax.evaluation import evaluators
from sleepjax.evaluation import inference
from sleepjax.evaluation import report as report_lib
from sleepjax.models import multimodal
from sleepjax.train import checkpoint as checkpoint_lib
from sleepjax.train import config as config_lib
from sleepjax.train import inputs
from sleepjax.train.contrastive import ContrastiveTask
from sleepjax.train import loop as loop_lib
from sleepjax.train import mesh as mesh_lib
from sleepjax.train import state as state_lib
from sleepjax.train import writer as writer_lib

LOSSES = ("loo", "pairwise")
# Fields whose keys are data (modality names), not schema.
FREE_FORM = ("data.modality_groups", "data.channel_caps")


def default_config() -> ml_collections.ConfigDict:
  """Every field of a pretraining config, with the SleepFM reference values (configs/pretrain.py)."""
  c = config_lib.common("pretrain")
  c.data.builder_module = "tfds_builders.synthetic_psg"
  c.data.name = "synthetic_psg"
  c.data.builder_config = "default"
  c.data.modalities = ("eeg", "eog", "emg", "ecg", "resp")
  # SleepFM-Clinical feeds EEG + EOG as one "BAS" (brain activity signals) modality.
  c.data.modality_groups = {"bas": ("eeg", "eog"), "ecg": ("ecg",), "emg": ("emg",), "resp": ("resp",)}
  # Channel caps per encoder modality (static shapes: pad to the cap and mask); None: the
  # dataset's own counts. SleepFM-Clinical: BAS 10, ECG 2, EMG 4, RESP 7.
  c.data.channel_caps = None
  c.data.window_epochs = 10  # 5-min windows of ten 30-s epochs (SleepFM-Clinical).
  c.data.train_split = "train"

  c.model = ml_collections.ConfigDict()
  c.model.encoder = config_lib.encoder("sleepfm_clinical")
  c.model.dtype = "float32"  # bfloat16 on accelerators.
  c.model.shared_encoder = True  # False: one encoder per modality (SleepFM-ICML style).
  c.model.log_scale_init = 0.0  # t of the logit scale s = exp(t): 0 in SleepFM.

  c.loss = "loo"  # loo | pairwise
  # SleepFM reference: SGD, momentum 0.9, lr 1e-3, step decay x0.1.
  c.optimizer = config_lib.optimizer(name="sgd", learning_rate=1e-3, schedule="step", momentum=0.9)

  c.batch_size = 32
  c.steps = 1000
  c.checkpoint_every = 250
  c.keep_checkpoints = 3
  c.summary_only = False  # True: build the dataset, print its summary, stop.
  c.eval_batch_size = 32
  # Held-out contrastive loss every eval_every steps (None: off); the lowest one's encoder is
  # saved as model/best beside model/final.
  c.eval_every = config_lib.placeholder(int)

  c.eval = ml_collections.ConfigDict()
  # SleepFM's probe: a logistic regression fitted on the training subjects' frozen embeddings
  # (their labels were never used in pretraining) and tested on held-out subjects.
  c.eval.fit_split = "train"
  c.eval.test_split = "validation+test"
  c.eval.max_fit_windows = config_lib.placeholder(int)
  c.eval.validation_split = "validation"  # For eval_every.
  c.eval.max_validation_windows = 64
  return c


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects a config that cannot run, before any data is built.

  Raises:
    config_lib.ConfigError: unknown field or name, or a value out of range (one line).
  """
  # eval_every None is "off"; 0 is a mistake, not "off".
  periods = ["checkpoint_every", "keep_checkpoints"] + (["eval_every"] if config.get("eval_every") is not None else [])
  config_lib.validate_common(config, default_config(), free_form=FREE_FORM, periods=periods)
  config_lib.check_choice("loss", config.loss, LOSSES)
  if len(tuple(config.seeds)) != 1:
    raise config_lib.ConfigError(f"config.seeds={tuple(config.seeds)}: pretraining runs one seed per workdir")
  config_lib.check_positive(config, ("data.window_epochs",))
  unknown = sorted({m for members in modality_groups(config).values() for m in members}
                   - set(config.data.modalities))
  if unknown:
    raise config_lib.ConfigError(f"config.data.modality_groups uses {unknown}, not in config.data.modalities")


# ----------------------------------------------------------------------------------------------
# Model and task.
# ----------------------------------------------------------------------------------------------


def modality_groups(config) -> dict[str, tuple[str, ...]]:
  """Encoder modality -> dataset modalities concatenated along channels (pipeline `modalities`).

  Without groups every dataset modality in `config.data.modalities` is its own encoder modality.
  """
  groups = config.data.get("modality_groups")
  if groups:
    return {k: tuple(v) for k, v in groups.items()}
  return {m: (m,) for m in config.data.modalities}


def encoder_modalities(config) -> tuple[str, ...]:
  return tuple(modality_groups(config))


def channel_caps(config) -> dict[str, int] | None:
  caps = config.data.get("channel_caps")
  return dict(caps) if caps else None


def seed(config) -> int:
  return int(tuple(config.seeds)[0])


def build_model(config: ml_collections.ConfigDict, modalities: tuple[str, ...]) -> multimodal.MultiModalEncoder:
  """The encoder(s) and logit scale at initialisation (`config.seeds[0]`)."""
  s = seed(config)
  return multimodal.MultiModalEncoder(
      modalities, config_lib.encoder_config(config.model), shared=config.model.shared_encoder,
      log_scale_init=float(config.model.log_scale_init),
      rngs=nnx.Rngs(params=s, dropout=state_lib.dropout_key(s + 1)))


def init_state(config: ml_collections.ConfigDict, modalities: tuple[str, ...]) -> tuple[ContrastiveTask, dict]:
  """(task, train state) of a fresh encoder; the state's rng is `state.dropout_key(seed + 2)`."""
  model = build_model(config, modalities)
  opt = config_lib.optimizer_config(config.optimizer, config.steps)
  graphdef, state = state_lib.init_state(model, opt, state_lib.dropout_key(seed(config) + 2))
  return ContrastiveTask(graphdef, opt, config.loss), state


# ----------------------------------------------------------------------------------------------
# Training.
# ----------------------------------------------------------------------------------------------


def _validation_fn(task: ContrastiveTask, config, source):
  """state -> {"validation/loss"}: mean inference-mode loss over the first windows of `source`."""
  windows = list(pipeline.iterate_windows(
      source, window_epochs=config.data.window_epochs, batch_size=config.eval_batch_size,
      channel_caps=channel_caps(config), modalities=modality_groups(config)))
  n_max = int(config.eval.max_validation_windows)
  batches, n = [], 0
  for b in windows:
    # Full batches only: a contrastive loss depends on the batch size.
    if len(b["record_id"]) == config.eval_batch_size and n < n_max:
      batches.append({k: b[k] for k in ("signals", "mask", "positions")})
      n += len(b["record_id"])
  if not batches:
    raise ValueError(f"config.eval.validation_split={config.eval.validation_split!r} has fewer than "
                     f"eval_batch_size={config.eval_batch_size} windows")

  def evaluate(state):
    apply = inference.Apply(task.validation_loss, state_lib.model_from_state(task.graphdef, state))
    return {"validation/loss": float(np.mean([float(apply(b)) for b in batches]))}

  return evaluate


def train(config: ml_collections.ConfigDict, workdir: str, *, train_source=None, validation_source=None):
  """Runs (or resumes) pretraining and saves `<workdir>/model/final` (and `best` with eval_every).

  Args:
    config: see `default_config` and configs/pretrain.py.
    workdir: checkpoints/, metrics.jsonl, tensorboard/, model/ go here.
    train_source: a random-access source of epoch examples (default: the configured split).
    validation_source: the held-out source of `eval_every` (default: `eval.validation_split`).

  Returns:
    (task, final train state, the encoder at initialisation as an nnx.Module).

  Raises:
    loop.NonFiniteLossError: the loss became NaN/inf; the last checkpoint is kept.
    checkpoint_lib.CheckpointError: a checkpoint could not be written (e.g. disk full).
    ValueError: batch_size not divisible by the devices of the mesh.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = mesh_lib.make_data_mesh(config.get("num_devices"))
  n_dev = mesh.devices.size
  if config.batch_size % n_dev:
    raise ValueError(f"batch_size {config.batch_size} must be divisible by the {n_dev} devices of the mesh")

  task, state = init_state(config, encoder_modalities(config))
  initial = state_lib.model_from_state(task.graphdef, state_lib.host_copy(
      {"params": state["params"], "model_state": state["model_state"]}))
  shardings = mesh_lib.state_sharding(state, mesh)
  state = mesh_lib.put(state, shardings)

  if train_source is None:
    train_source = inputs.open_splits(config.data, [config.data.train_split])[config.data.train_split]
  dataset = pipeline.make_dataset(
      train_source, window_epochs=config.data.window_epochs, batch_size=config.batch_size // jax.process_count(),
      channel_caps=channel_caps(config), modalities=modality_groups(config), seed=seed(config), shuffle=True,
      num_epochs=None, drop_remainder=True, shard_index=jax.process_index(), shard_count=jax.process_count())
  data_iter = iter(dataset)

  checkpointer = checkpoint_lib.Checkpointer(workdir / "checkpoints", keep=config.keep_checkpoints)
  resumed = None
  restored = checkpointer.restore_latest(state, shardings)  # The newest intact step.
  if restored is not None:
    state, data_state = restored
    data_iter.set_state(data_state)
    resumed = int(jax.device_get(state["step"]))
    print(f"Resuming from checkpoint at step {resumed} in {checkpointer.directory}", flush=True)

  evaluate = None
  if config.get("eval_every"):
    if validation_source is None:
      validation_source = inputs.open_splits(config.data, [config.eval.validation_split])[config.eval.validation_split]
    evaluate = _validation_fn(task, config, validation_source)
  step_fn = state_lib.make_train_step(task, mesh, state)
  try:
    with writer_lib.MetricWriter(workdir, tensorboard=config.tensorboard, resume_step=resumed) as writer:
      result = loop_lib.train(
          state, step_fn, data_iter, steps=config.steps, log_every=config.log_every,
          to_device=functools.partial(mesh_lib.global_batch, mesh=mesh), writer=writer,
          checkpointer=checkpointer, checkpoint_every=config.checkpoint_every, data_iterator=data_iter,
          evaluate=evaluate, eval_every=config.get("eval_every"),
          select=("validation/loss", "min") if evaluate else None,
          progress=config.progress_bar, desc="pretrain", items_per_step=config.batch_size)
  finally:
    checkpointer.close()
  metadata = model_metadata(config)
  final = state_lib.model_from_state(task.graphdef, result.state)
  models_lib.save(final, workdir / "model" / "final", metadata={**metadata, "step": result.steps})
  models_lib.saving.register(workdir, "final", {"step": result.steps, "description": "encoder after the last step"},
                             default=result.best is None)
  if result.best is not None:
    best = state_lib.model_from_state(task.graphdef, result.best)
    models_lib.save(best, workdir / "model" / "best",
                    metadata={**metadata, "step": result.best_step, "validation_loss": result.best_metric})
    models_lib.saving.register(workdir, "best", {"step": result.best_step, "validation_loss": result.best_metric,
                                                 "description": "lowest held-out contrastive loss"}, default=True)
  return task, result.state, initial


def model_metadata(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """What a user of the saved encoder needs: its input data layout and the run that made it."""
  enc = config_lib.encoder_config(config.model)
  return {"task": "pretrain", "loss": config.loss,
          "data": {"name": config.data.name, "builder_config": config.data.builder_config,
                   "modality_groups": {k: list(v) for k, v in modality_groups(config).items()},
                   "channel_caps": channel_caps(config), "window_epochs": int(config.data.window_epochs),
                   "sfreq": enc.sfreq}}


# ----------------------------------------------------------------------------------------------
# Evaluation: frozen-embedding linear probe and cross-modal retrieval.
# ----------------------------------------------------------------------------------------------


def evaluate(config, workdir, model: nnx.Module, initial: nnx.Module, *, fit_source, test_source) -> list[dict[str, Any]]:
  """Linear probe and retrieval of the pretrained and the random-init encoder; writes results.*.

  Returns:
    Rows {"encoder": "pretrained" | "random_init", accuracy, macro_f1, kappa, ...,
    "retrieval_top1/<m>", n_fit_epochs, n_test_epochs}.
  """
  embedder = evaluators.WindowEmbedder(window_epochs=config.data.window_epochs, modalities=modality_groups(config),
                                       channel_caps=channel_caps(config), batch_size=config.eval_batch_size)
  probe = evaluators.LinearProbe(fit_source, test_source, embedder, max_fit_windows=config.eval.max_fit_windows,
                                 seed=seed(config))
  retrieval = evaluators.Retrieval(test_source, embedder)
  rows = []
  for name, m in (("pretrained", model), ("random_init", initial)):
    row = {"encoder": name, **probe.run(m)[0]}
    row.update({f"retrieval_top1/{r['modality']}": r["top1"] for r in retrieval.run(m)})
    rows.append(row)
  columns = ["encoder", "accuracy", "macro_f1", "kappa",
             *[k for k in rows[0] if k.startswith("retrieval_top1/")], "n_fit_epochs", "n_test_epochs"]
  if jax.process_index() == 0:
    report_lib.write_results(workdir, "results", rows, columns=columns)
  return rows


def print_dataset_summary(config, sources: Mapping[str, Any]) -> str:
  """Prints subjects, recordings and epochs per stage of every split in `sources` (split -> source)."""
  summaries = {split: summary_lib.split_summary(source) for split, source in sources.items()}
  title = f"Dataset {config.data.name}/{config.data.builder_config}"
  if config.data.name == "synthetic_psg":
    title += " (SYNTHETIC signals from sleepjax.data.synthetic, not real recordings)"
  text = summary_lib.format_summary(title, summaries)
  print(text, flush=True)
  return text


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """The main job: pretrain (or resume), save the encoder, probe it on held-out subjects.

  Args:
    config: configs/pretrain.py.
    workdir: checkpoints, metrics, model/ and the probe table (results.md/.csv/.json).

  Returns:
    The probe table rows (pretrained and random-init encoders).

  Raises:
    config_lib.ConfigError: the config cannot run (before any data is built).
  """
  validate_config(config)
  mesh_lib.maybe_initialize_distributed()
  workdir = pathlib.Path(workdir)
  if jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2), encoding="utf-8")
  splits = [config.data.train_split, config.eval.fit_split, config.eval.test_split]
  if config.get("eval_every"):
    splits.append(config.eval.validation_split)
  # Each split is prepared (built on first use) and opened once, for the summary, training and the probe.
  sources = inputs.open_splits(config.data, splits)
  print_dataset_summary(config, {s: sources[s] for s in dict.fromkeys(splits[:3])})
  if config.summary_only:
    return []
  task, state, initial = train(config, workdir, train_source=sources[config.data.train_split],
                               validation_source=sources.get(config.eval.validation_split))
  model = state_lib.model_from_state(task.graphdef, state)
  rows = evaluate(config, workdir, model, initial, fit_source=sources[config.eval.fit_split],
                  test_source=sources[config.eval.test_split])
  table = report_lib.format_table(rows, ["encoder", "accuracy", "macro_f1", "kappa",
                                         *[k for k in rows[0] if k.startswith("retrieval_top1/")]])
  print("\nLinear probe on frozen embeddings, pretrained vs random init "
        f"(fit on '{config.eval.fit_split}', tested on '{config.eval.test_split}'):\n{table}", flush=True)
  return rows
