"""The contrastive pretraining task: SleepFM's LOO / pairwise loss as a `state.Task`.

Kept apart from `pretrain` (the protocol: data, checkpoints, probe) so that it imports with
jax, flax and optax alone: `benchmarks/gpu_check.py` times it where the data stack (TFDS, grain,
MNE) is not installed. Methods: docs/specification.md §2.2.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from flax import nnx
import jax

from sleepjax import losses
from sleepjax import optim
from sleepjax.train import state as state_lib


def contrastive_loss(loss_name: str, pooled: Mapping[str, jax.Array], log_scale: jax.Array):
  """LOO (default) or pairwise loss on the pooled embeddings {modality: (B, E)}; (loss, aux)."""
  if loss_name == "loo":
    return losses.loo_contrastive_loss(pooled, log_scale)
  return losses.pairwise_contrastive_loss(pooled, log_scale)


def clamp_log_scale(params):
  """Keeps the contrastive logit-scale exponent t >= 0 (docs/specification.md §2.2)."""
  def clamp(path, x):
    # The Param sits at ("log_scale", .value) in an nnx.State, ("log_scale",) in a pure dict.
    return losses.clamp_log_scale(x) if optim.path_names(path)[:1] == ("log_scale",) else x
  return jax.tree_util.tree_map_with_path(clamp, params)


@dataclasses.dataclass(frozen=True)
class ContrastiveTask(state_lib.Task):
  """The contrastive update: dropout reseeded from the step key, t clamped after the update.

  Batch: {"signals": {m: (B, C, T) float32}, "mask": {m: (B, C) bool}, "positions":
  {m: (B, C, 3) float32}} (`pipeline.make_dataset`). Metrics: loss, grad_norm, log_scale, and
  per modality loss/<m> and retrieval_top1/<m> (the batch's top-1 retrieval accuracy).
  """
  graphdef: Any
  optimizer: optim.OptimizerConfig
  loss_name: str = "loo"

  def loss(self, model, batch, rng, hparams):
    del hparams
    nnx.reseed(model, dropout=rng)
    outputs = model(batch["signals"], batch["mask"], batch.get("positions"), train=True)
    loss, aux = contrastive_loss(self.loss_name, {m: out[1] for m, out in outputs.items()}, model.log_scale[...])
    metrics = {"log_scale": model.log_scale[...],
               **{f"loss/{m}": v for m, v in aux["loss"].items()},
               **{f"retrieval_top1/{m}": v for m, v in aux["accuracy"].items()}}
    return loss, {"metrics": metrics}

  def constrain(self, params):
    return clamp_log_scale(params)

  def validation_loss(self, model, batch):
    """The contrastive loss of a batch in inference mode (the held-out loss of `eval_every`)."""
    outputs = model(batch["signals"], batch["mask"], batch.get("positions"), train=False)
    loss, _ = contrastive_loss(self.loss_name, {m: out[1] for m, out in outputs.items()}, model.log_scale[...])
    return loss
