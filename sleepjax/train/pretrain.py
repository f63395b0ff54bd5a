"""SleepFM-style multimodal contrastive pretraining, data parallel with jit + NamedSharding.

One pure train step, jitted once with the state donated; the batch is sharded over the `data`
mesh axis and the state replicated (HOUSE_STYLE; `jax.pmap` is in maintenance mode). Orbax keeps
checkpoints in `<workdir>/checkpoints` (state, optimizer, RNG and the input position); a second
run with the same workdir resumes from the latest one. At the end the encoder is evaluated on
held-out subjects with a frozen-embedding linear probe (pretrained vs the same encoder at random
init) and cross-modal retrieval.

References:
  Thapa et al., "SleepFM: Multi-modal Representation Learning for Sleep Across Brain Activity, ECG
  and Respiratory Signals", ICML 2024 (leave-one-out contrastive learning).
  SleepFM-Clinical (Nature Medicine 2025): set-transformer encoder, 5-min windows at 128 Hz.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pathlib
import time
from typing import Any, Mapping

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
import tqdm

from sleepjax import losses
from sleepjax.data import pipeline
from sleepjax.data import summary as summary_lib
from sleepjax.evaluation import probe as probe_lib
from sleepjax.evaluation import report as report_lib
from sleepjax.models import encoder as encoder_lib
from sleepjax.models import multimodal
from sleepjax.train import common

Batch = Mapping[str, Any]


# ----------------------------------------------------------------------------------------------
# Model and optimizer.
# ----------------------------------------------------------------------------------------------


def encoder_config(config: ml_collections.ConfigDict) -> encoder_lib.EncoderConfig:
  """EncoderConfig from `config.model.encoder` (every field) and `config.model.dtype`."""
  fields = config.model.encoder.to_dict()
  fields["tokenizer_widths"] = tuple(fields["tokenizer_widths"])
  dtype = config.model.get("dtype", "float32")
  return encoder_lib.EncoderConfig(**fields, dtype=None if dtype == "float32" else jnp.dtype(dtype))


def build_model(config: ml_collections.ConfigDict, modalities: tuple[str, ...]) -> multimodal.MultiModalEncoder:
  return multimodal.MultiModalEncoder(
      modalities, encoder_config(config), shared=config.model.shared_encoder,
      log_scale_init=float(config.model.get("log_scale_init", 0.0)), rngs=nnx.Rngs(params=config.seed, dropout=config.seed + 1))


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """The learning rate per step (`config.optimizer.schedule`).

    "step" (default): `decay_steps` lists the steps at which the rate is multiplied by
      `decay_factor` (optax.piecewise_constant_schedule), the SleepFM reference.
    "cosine": linear warm-up over `warmup_steps` from 0, then cosine decay to
      `learning_rate * final_fraction` at `config.steps` (optax.warmup_cosine_decay_schedule).

  Raises:
    ValueError: unknown schedule name.
  """
  opt = config.optimizer
  name = opt.get("schedule", "step")
  if name == "step":
    return optax.piecewise_constant_schedule(
        opt.learning_rate, {int(s): opt.decay_factor for s in opt.decay_steps})
  if name == "cosine":
    warmup = int(opt.get("warmup_steps", 0))
    return optax.warmup_cosine_decay_schedule(
        0.0, opt.learning_rate, warmup_steps=warmup, decay_steps=max(int(config.steps), warmup + 1),
        end_value=opt.learning_rate * float(opt.get("final_fraction", 0.0)))
  raise ValueError(f"config.optimizer.schedule must be 'step' or 'cosine', got {name!r}")


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """SGD momentum 0.9 (the SleepFM reference) or AdamW, on `learning_rate_schedule(config)`.

  Raises:
    ValueError: unknown optimizer or schedule name.
  """
  opt = config.optimizer
  schedule = learning_rate_schedule(config)
  if opt.name == "sgd":
    tx = optax.sgd(schedule, momentum=opt.momentum)
    if opt.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(opt.weight_decay), tx)
  elif opt.name == "adamw":
    tx = optax.adamw(schedule, weight_decay=opt.weight_decay)
  else:
    raise ValueError(f"config.optimizer.name must be 'sgd' or 'adamw', got {opt.name!r}")
  if opt.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), tx)
  return tx


@dataclasses.dataclass(frozen=True, eq=False)
class Static:
  """What jit closes over: the module structure, its RNG streams, the optimizer and the loss name."""
  graphdef: Any
  rng_state: Any
  tx: optax.GradientTransformation
  loss: str


def init_state(config: ml_collections.ConfigDict, modalities: tuple[str, ...]) -> tuple[Static, dict[str, Any]]:
  """Builds the model and returns (static parts, train state).

  The train state is a pytree of arrays, saved and restored bit-exactly by orbax:
  {"step": () int32, "params": nnx.State, "batch_stats": nnx.State, "opt_state": optax state,
  "rng": (2,) uint32 base key}. Dropout keys are derived from (rng, step), so the RNG streams
  inside the module need no checkpointing.
  """
  model = build_model(config, modalities)
  graphdef, params, batch_stats, rng_state = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  tx = make_optimizer(config)
  state = {
      "step": jnp.zeros((), jnp.int32),
      "params": params,
      "batch_stats": batch_stats,
      "opt_state": tx.init(params),
      "rng": jax.random.PRNGKey(config.seed + 2),
  }
  return Static(graphdef, rng_state, tx, config.loss), state


def model_from(static: Static, params, batch_stats) -> multimodal.MultiModalEncoder:
  """Merges the graph definition with params and batch statistics into a module."""
  # Fresh Variable objects at the current trace level: NNX forbids mutating (reseeding, updating
  # BatchNorm statistics) Variables created at another trace level, e.g. outside jax.grad.
  fresh = lambda tree: jax.tree.map(lambda x: x, tree)
  return nnx.merge(static.graphdef, fresh(params), fresh(batch_stats), fresh(static.rng_state))


def clamp_log_scale(params):
  """Keeps the contrastive logit-scale exponent t >= 0 after every update (SPEC 2, losses)."""
  def clamp(path, x):
    # The Param sits at ("log_scale", .value) in an nnx.State, ("log_scale",) in a pure dict.
    keys = [getattr(k, "key", None) for k in path]
    return losses.clamp_log_scale(x) if keys[:1] == ["log_scale"] else x
  return jax.tree_util.tree_map_with_path(clamp, params)


def contrastive_loss(loss_name: str, outputs, log_scale):
  """LOO (default) or pairwise loss on the pooled embeddings of every modality."""
  pooled = {m: out[1] for m, out in outputs.items()}
  if loss_name == "loo":
    return losses.loo_contrastive_loss(pooled, log_scale)
  if loss_name == "pairwise":
    return losses.pairwise_contrastive_loss(pooled, log_scale)
  raise ValueError(f"config.loss must be 'loo' or 'pairwise', got {loss_name!r}")


def train_step(static: Static, state: dict[str, Any], batch: Batch):
  """One pure contrastive update (no logging, no host RNG, no Python branching on values).

  Args:
    static: module structure, RNG streams and optimizer (closed over by jit).
    state: the train state pytree (see `init_state`), replicated over the mesh.
    batch: {"signals": {m: (B, C, T) float32}, "mask": {m: (B, C) bool}, "positions":
      {m: (B, C, 3) float32}}, sharded over the batch axis.

  Returns:
    (new_state, metrics): metrics are scalars (loss, grad_norm, log_scale and the loss's aux:
    per-modality losses and top-1 retrieval accuracy).
  """
  # Why fold in the step: every step gets fresh dropout masks, and a resumed run gets exactly the
  # masks the uninterrupted run would have had.
  step_key = jax.random.fold_in(state["rng"], state["step"])

  def loss_fn(params):
    model = model_from(static, params, state["batch_stats"])
    nnx.reseed(model, dropout=step_key)
    outputs = model(batch["signals"], batch["mask"], batch.get("positions"), train=True)
    loss, aux = contrastive_loss(static.loss, outputs, model.log_scale[...])
    return loss, (aux, nnx.state(model, nnx.BatchStat))

  (loss, (aux, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  updates, opt_state = static.tx.update(grads, state["opt_state"], state["params"])
  params = clamp_log_scale(optax.apply_updates(state["params"], updates))
  new_state = {"step": state["step"] + 1, "params": params, "batch_stats": batch_stats,
               "opt_state": opt_state, "rng": state["rng"]}
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
             "log_scale": params["log_scale"][...],
             **{f"loss/{m}": v for m, v in aux["loss"].items()},
             **{f"retrieval_top1/{m}": v for m, v in aux["accuracy"].items()}}
  return new_state, metrics


# ----------------------------------------------------------------------------------------------
# Input.
# ----------------------------------------------------------------------------------------------


def modality_groups(config) -> dict[str, tuple[str, ...]]:
  """Encoder modality -> dataset modalities concatenated along channels (pipeline `modalities`).

  SleepFM-Clinical feeds EEG and EOG together as one "BAS" (brain activity signals) modality:
  `config.data.modality_groups = {"bas": ("eeg", "eog"), ...}`. Without groups every dataset
  modality in `config.data.modalities` is its own encoder modality.
  """
  groups = config.data.get("modality_groups")
  if groups:
    return {k: tuple(v) for k, v in groups.items()}
  return {m: (m,) for m in config.data.modalities}


def channel_caps(config) -> dict[str, int] | None:
  caps = config.data.get("channel_caps")
  return dict(caps) if caps else None


def load_source(config, split: str):
  """Prepares (first call builds) the configured TFDS dataset and opens `split`."""
  if config.data.get("builder_module"):
    # Registers the builder with TFDS; sleepjax itself never imports tfds_builders.
    importlib.import_module(config.data.builder_module)
  return pipeline.data_source(config.data.name, split, data_dir=config.data.data_dir,
                              config=config.data.builder_config, manual_dir=config.data.manual_dir)


def encoder_modalities(config) -> tuple[str, ...]:
  return tuple(modality_groups(config))


# ----------------------------------------------------------------------------------------------
# Checkpoints.
# ----------------------------------------------------------------------------------------------


def checkpoint_manager(workdir: str, config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
      max_to_keep=config.keep_checkpoints, save_interval_steps=1, create=True)
  return ocp.CheckpointManager(pathlib.Path(workdir).absolute() / "checkpoints", options=options)


def save_checkpoint(mngr: ocp.CheckpointManager, state, data_state: Mapping[str, Any]) -> None:
  step = int(jax.device_get(state["step"]))
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          data=ocp.args.JsonSave(dict(data_state))))
  mngr.wait_until_finished()


def restore_checkpoint(mngr: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """Restores (state, input-pipeline state) from `step` (default: the latest)."""
  step = mngr.latest_step() if step is None else step
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                                        data=ocp.args.JsonRestore()))
  return restored["state"], restored["data"]


# ----------------------------------------------------------------------------------------------
# The loop.
# ----------------------------------------------------------------------------------------------


def make_jitted_step(static: Static, mesh, state):
  """jit(train_step) with the state replicated and donated and the batch sharded over `data`."""
  rep = common.replicated(mesh)
  state_sharding = jax.tree.map(lambda _: rep, state)
  return jax.jit(functools.partial(train_step, static),
                 in_shardings=(state_sharding, common.data_sharded(mesh)),
                 out_shardings=(state_sharding, rep),
                 donate_argnums=(0,))


def train(config: ml_collections.ConfigDict, workdir: str, *, train_source=None) -> tuple[Static, dict[str, Any], dict[str, Any]]:
  """Runs (or resumes) pretraining; returns (static, final state, initial state).

  Args:
    config: see configs/pretrain.py.
    workdir: checkpoints, metrics.jsonl, tensorboard/ and reports go here.
    train_source: a random-access source of epoch examples (default: the configured TFDS split).

  Raises:
    common.NonFiniteLossError: the loss became NaN/inf; the last good checkpoint is kept.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  mesh = common.make_data_mesh(config.get("num_devices"))
  n_dev = mesh.devices.size
  if config.batch_size % (n_dev) != 0:
    raise ValueError(f"batch_size {config.batch_size} must be divisible by the {n_dev} devices of the mesh")
  local_batch = config.batch_size // jax.process_count()

  static, state = init_state(config, encoder_modalities(config))
  init_params = jax.tree.map(jnp.copy, {"params": state["params"], "batch_stats": state["batch_stats"]})
  state = jax.device_put(state, common.replicated(mesh))

  if train_source is None:
    train_source = load_source(config, config.data.train_split)
  dataset = pipeline.make_dataset(
      train_source, window_epochs=config.data.window_epochs, batch_size=local_batch,
      channel_caps=channel_caps(config), modalities=modality_groups(config),
      seed=config.seed, shuffle=True, num_epochs=None, drop_remainder=True,
      shard_index=jax.process_index(), shard_count=jax.process_count())
  data_iter = iter(dataset)

  mngr = checkpoint_manager(str(workdir), config)
  if mngr.latest_step() is not None:
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state, data_state = restore_checkpoint(mngr, abstract)
    data_iter.set_state(data_state)
    logging.info("Resumed from %s at step %d", mngr.directory, int(state["step"]))
    print(f"Resuming from checkpoint at step {int(state['step'])} in {mngr.directory}")

  step_fn = make_jitted_step(static, mesh, state)
  writer = common.MetricWriter(workdir)
  start_step = int(jax.device_get(state["step"]))
  windows_per_step = config.batch_size
  bar = tqdm.tqdm(total=config.steps, initial=start_step, desc="pretrain", unit="step",
                  disable=jax.process_index() != 0 or not config.get("progress_bar", True))
  t_last, step_last = time.perf_counter(), start_step
  pending = None
  for step in range(start_step, config.steps):
    batch = next(data_iter)
    state, metrics = step_fn(state, common.global_batch(batch, mesh))
    pending = metrics
    done = step + 1
    bar.update(1)
    is_log = done % config.log_every == 0 or done == config.steps
    is_ckpt = done % config.checkpoint_every == 0 or done == config.steps
    if is_log or is_ckpt:
      # Fetching to host only every N steps keeps the device busy (HOUSE_STYLE).
      scalars = {f"train/{k}": float(v) for k, v in jax.device_get(pending).items()}
      if not np.isfinite(scalars["train/loss"]) or not np.isfinite(scalars["train/grad_norm"]):
        writer.close()
        bar.close()
        last = mngr.latest_step()
        raise common.NonFiniteLossError(
            f"non-finite loss ({scalars['train/loss']}) or gradient norm at step {done}; stopping. "
            f"The last good checkpoint (step {last}) is kept in {mngr.directory}. "
            "Lower the learning rate or enable optimizer.grad_clip_norm.")
      now = time.perf_counter()
      rate = (done - step_last) / max(now - t_last, 1e-9)
      scalars["train/steps_per_s"] = rate
      scalars["train/windows_per_s"] = rate * windows_per_step
      t_last, step_last = now, done
      writer.write_scalars(done, scalars)
      bar.set_postfix(loss=f"{scalars['train/loss']:.3f}", steps_s=f"{rate:.2f}",
                      windows_s=f"{rate * windows_per_step:.1f}")
    if is_ckpt:
      save_checkpoint(mngr, state, data_iter.get_state())
  bar.close()
  writer.close()
  mngr.close()
  return static, state, init_params


# ----------------------------------------------------------------------------------------------
# Evaluation: frozen-embedding linear probe and cross-modal retrieval.
# ----------------------------------------------------------------------------------------------


@nnx.jit
def _eval_forward(model, signals, mask, positions):
  # Module-level so that the compiled function is cached across calls (pretrained and random init
  # share one graph definition).
  return model(signals, mask, positions, train=False)


def embed_epochs(static: Static, params, batch_stats, source, config, *, max_windows: int | None = None):
  """Per-30-s-epoch embeddings of every window of `source`, frozen encoder in eval mode.

  Each epoch's embedding is the mean of the encoder's output tokens that fall inside the epoch,
  per modality; modalities are concatenated (as SleepFM's linear probe uses them).

  Returns:
    dict with "features" (N, M*E) float32, "stage" (N,) int32, "subject" (N,) object,
    "pooled" {modality: (W, E)} window embeddings for retrieval.
  """
  model = model_from(static, params, batch_stats)
  ds = pipeline.iterate_windows(
      source, window_epochs=config.data.window_epochs, batch_size=config.eval.batch_size,
      channel_caps=channel_caps(config), modalities=modality_groups(config))
  feats, stages, subjects, pooled = [], [], [], {}
  seen = 0
  for batch in ds:
    outputs = _eval_forward(model, batch["signals"], batch["mask"], batch.get("positions"))
    per_mod = []
    for m in sorted(outputs):
      tokens, window_emb = (np.asarray(x) for x in outputs[m])
      b, s, e = tokens.shape
      l = config.data.window_epochs
      per_mod.append(tokens.reshape(b, l, s // l, e).mean(axis=2))  # (B, L, E)
      pooled.setdefault(m, []).append(window_emb)
    f = np.concatenate(per_mod, axis=-1)  # (B, L, M*E)
    feats.append(f.reshape(-1, f.shape[-1]))
    stages.append(np.asarray(batch["stage"]).reshape(-1))
    subjects.append(np.repeat(np.asarray(batch["subject"]), config.data.window_epochs))
    seen += len(f)
    if max_windows is not None and seen >= max_windows:
      break
  return {"features": np.concatenate(feats), "stage": np.concatenate(stages),
          "subject": np.concatenate(subjects),
          "pooled": {m: np.concatenate(v) for m, v in pooled.items()}}


def evaluate(config, workdir, static: Static, state, init_params, *, fit_source=None, test_source=None) -> list[dict[str, Any]]:
  """Linear probe (pretrained vs random init) + retrieval on held-out subjects; writes reports."""
  fit_source = fit_source or load_source(config, config.eval.fit_split)
  test_source = test_source or load_source(config, config.eval.test_split)
  rows = []
  for name, p in (("pretrained", {"params": state["params"], "batch_stats": state["batch_stats"]}),
                  ("random_init", init_params)):
    p = jax.device_get(p)
    fit = embed_epochs(static, p["params"], p["batch_stats"], fit_source, config,
                       max_windows=config.eval.max_fit_windows)
    test = embed_epochs(static, p["params"], p["batch_stats"], test_source, config)
    keep_fit, keep_test = fit["stage"] >= 0, test["stage"] >= 0
    result = probe_lib.linear_probe(fit["features"][keep_fit], fit["stage"][keep_fit],
                                    test["features"][keep_test], test["stage"][keep_test],
                                    seed=config.seed)
    retrieval = probe_lib.retrieval_top1(test["pooled"])
    row = {"encoder": name, "accuracy": result["accuracy"], "macro_f1": result["macro_f1"],
           "kappa": result["kappa"],
           **{f"retrieval_top1/{m}": v for m, v in retrieval.items()},
           "n_fit_epochs": int(keep_fit.sum()), "n_test_epochs": int(keep_test.sum())}
    rows.append(row)
  report_lib.write_results(workdir, "probe", rows)
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
  """The main job: pretrain (or resume), then probe on held-out subjects; prints the table.

  Args:
    config: configs/pretrain.py.
    workdir: where checkpoints, metrics and the probe report (probe.md/.csv/.json) go.

  Returns:
    The probe table rows (pretrained and random-init encoders).
  """
  common.maybe_initialize_distributed()
  if jax.process_index() == 0:
    # The fine-tuning trainer rebuilds the encoder of a checkpoint from this file.
    pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
    (pathlib.Path(workdir) / "config.json").write_text(config.to_json_best_effort(indent=2), encoding="utf-8")
  # Each split is prepared (built on first use) and opened once, for the summary, training and the probe.
  splits = (config.data.train_split, config.eval.fit_split, config.eval.test_split)
  sources = {split: load_source(config, split) for split in dict.fromkeys(splits)}
  print_dataset_summary(config, sources)
  if config.get("summary_only", False):
    return []
  static, state, init_params = train(config, workdir, train_source=sources[config.data.train_split])
  rows = evaluate(config, workdir, static, state, init_params, fit_source=sources[config.eval.fit_split],
                  test_source=sources[config.eval.test_split])
  table = report_lib.format_table(rows)
  print("\nLinear probe on frozen embeddings, pretrained vs random init "
        f"(fit on '{config.eval.fit_split}', tested on '{config.eval.test_split}'):\n{table}", flush=True)
  return rows
