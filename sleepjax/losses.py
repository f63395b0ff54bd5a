"""Losses as pure functions of arrays.

* `cross_entropy`: softmax cross-entropy over K classes that ignores unscored labels (< 0).
* `multilabel_bce`: sigmoid binary cross-entropy of a multilabel head (PTB-XL / CODE-15 labels).
* `gradient_reversal`: the gradient reversal layer of domain-adversarial training
  (Ganin & Lempitsky 2015; used by SleepMG for its subject discriminator G_d).
* `loo_contrastive_loss` / `pairwise_contrastive_loss`: SleepFM's leave-one-out and CLIP-style
  pairwise contrastive losses (docs/specification.md §2.2).
* `clamp_log_scale`: keeps the learnable log logit scale t >= 0 after every update.

Nothing here owns parameters, RNGs or jit: the trainers in `sleepjax.train` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax

_REDUCTIONS = ("mean", "sum", "none")


def cross_entropy(logits: jax.Array, labels: jax.Array, *, mask: jax.Array | None = None,
                  label_smoothing: float = 0.0, reduction: str = "mean",
                  class_weights=None) -> jax.Array:
  """Softmax cross-entropy that never trains on unscored epochs.

  Positions whose label is negative (AASM `UNSCORED` = -1, `MOVEMENT` = -2) or whose `mask` is
  False contribute zero loss and zero gradient, and are not counted by the mean.

  With label smoothing eps the target is (1 - eps) * one_hot + eps / K (Szegedy et al. 2016,
  "Rethinking the Inception architecture", section 7; the transfer paper uses eps = 0.1).

  Args:
    logits: (..., K) float, unnormalised class scores.
    labels: (...) int, class indices in [0, K); negative values are ignored.
    mask: optional (...) bool, True where the position counts.
    label_smoothing: eps in [0, 1).
    reduction: "mean" (sum over counted positions / their number, 0 when none counts), "sum", or
      "none" (per-position losses, 0 where ignored).
    class_weights: optional (K,) float weights w_c of the classes (e.g. sklearn's "balanced"
      n / (K n_c)): each position's loss is multiplied by w_{label}, and "mean" becomes the
      weighted mean sum_i w_{y_i} CE_i / sum_i w_{y_i} (King & Zeng 2001).

  Returns:
    A float32 scalar for "mean"/"sum", or a (...) float32 array for "none".

  Raises:
    ValueError: on an unknown reduction, a label_smoothing outside [0, 1), or shapes that do
      not match (labels/mask must equal logits.shape[:-1]; class_weights must be (K,)).
  """
  if reduction not in _REDUCTIONS:
    raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1), got {label_smoothing}")
  logits = jnp.asarray(logits)
  labels = jnp.asarray(labels)
  if logits.ndim < 1 or labels.shape != logits.shape[:-1]:
    raise ValueError(f"cross_entropy: labels shape {labels.shape} must equal logits shape "
                     f"{logits.shape} without its last (class) axis")
  if mask is not None and jnp.shape(mask) != labels.shape:
    raise ValueError(f"cross_entropy: mask shape {jnp.shape(mask)} must equal labels shape {labels.shape}")
  num_classes = logits.shape[-1]
  valid = labels >= 0
  if mask is not None:
    valid = valid & jnp.asarray(mask, bool)
  # Ignored positions get a harmless in-range label; their loss is zeroed below (and the zero
  # is selected with `where`, so no gradient flows back into their logits).
  safe_labels = jnp.where(valid, labels, 0)
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  targets = jax.nn.one_hot(safe_labels, num_classes, dtype=jnp.float32)
  if label_smoothing > 0.0:
    targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
  per_position = -jnp.sum(targets * log_probs, axis=-1)
  weight = valid.astype(jnp.float32)
  if class_weights is not None:
    class_weights = jnp.asarray(class_weights, jnp.float32)
    if class_weights.shape != (num_classes,):
      raise ValueError(f"cross_entropy: class_weights shape {class_weights.shape} must be ({num_classes},)")
    weight = weight * class_weights[safe_labels]
  per_position = jnp.where(valid, per_position * weight, 0.0)
  if reduction == "none":
    return per_position
  total = jnp.sum(per_position)
  if reduction == "sum":
    return total
  if class_weights is None:
    return total / jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  return total / jnp.maximum(jnp.sum(weight), 1e-12)


def multilabel_bce(logits: jax.Array, labels: jax.Array, *, mask: jax.Array | None = None,
                   label_smoothing: float = 0.0, reduction: str = "mean") -> jax.Array:
  """Sigmoid binary cross-entropy of a multilabel head, averaged over labels.

  Per example n: (1 / L) sum_l -[t_nl log sigmoid(z_nl) + (1 - t_nl) log(1 - sigmoid(z_nl))] with the
  smoothed target t = y (1 - eps) + eps / 2: each label is its own two-class problem, so label
  smoothing moves eps / 2 of the mass to the other outcome (Szegedy et al. 2016 with K = 2;
  `optax.smooth_labels` on [1 - y, y]). The transfer paper trains its ECG head (CODE-15, six labels)
  with BCE (docs/specification.md §3.3) and smooths labels by 0.1 throughout.

  Args:
    logits: (N, L) float, one logit per label.
    labels: (N, L) {0, 1} int or float targets.
    mask: optional (N,) bool, True where the example counts (padding rows are False).
    label_smoothing: eps in [0, 1).
    reduction: "mean" (over counted examples; 0 when none counts) or "none" ((N,) per-example
      losses, 0 where masked).

  Returns:
    A float32 scalar ("mean") or (N,) float32 ("none").

  Raises:
    ValueError: shapes differ, eps outside [0, 1), or an unknown reduction.
  """
  if reduction not in ("mean", "none"):
    raise ValueError(f"multilabel_bce: reduction must be 'mean' or 'none', got {reduction!r}")
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"multilabel_bce: label_smoothing must be in [0, 1), got {label_smoothing}")
  logits = jnp.asarray(logits, jnp.float32)
  if logits.ndim != 2 or jnp.shape(labels) != logits.shape:
    raise ValueError(f"multilabel_bce: labels shape {jnp.shape(labels)} must equal logits shape {logits.shape} (N, L)")
  targets = jnp.asarray(labels, jnp.float32) * (1.0 - label_smoothing) + 0.5 * label_smoothing
  per_example = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1)
  valid = jnp.ones(logits.shape[0], bool) if mask is None else jnp.asarray(mask, bool)
  per_example = jnp.where(valid, per_example, 0.0)
  if reduction == "none":
    return per_example
  return jnp.sum(per_example) / jnp.maximum(jnp.sum(valid), 1)


@jax.custom_vjp
def _reverse(x: jax.Array, ratio: jax.Array) -> jax.Array:
  return x


def _reverse_fwd(x, ratio):
  return x, ratio


def _reverse_bwd(ratio, g):
  # ratio is a schedule value (lambda), not something to learn: its cotangent is zero.
  return (-ratio.astype(g.dtype) * g, jnp.zeros_like(ratio))


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def gradient_reversal(x: jax.Array, ratio: jax.Array | float) -> jax.Array:
  """Gradient reversal layer: identity forward, -ratio * g backward.

  Placed between the fused features f and the domain discriminator G_d, it lets G_d minimise its
  loss while the feature extractors maximise it (Ganin & Lempitsky 2015, "Unsupervised domain
  adaptation by backpropagation", eq. 9-10; SleepMG uses lambda = 0.1 on ISRUC-S3 and 1.0 on
  MASS-SS3).

  Args:
    x: any-shape float array (the features).
    ratio: scalar float (Python float or array), lambda >= 0. It is an ordinary traced argument,
      so a schedule of lambda values under `jax.jit` does not recompile. Its gradient is zero.

  Returns:
    x unchanged (same shape and dtype).
  """
  return _reverse(x, jnp.asarray(ratio, dtype=jnp.float32))


def clamp_log_scale(log_scale: jax.Array) -> jax.Array:
  """Keeps the contrastive log logit scale t >= 0 (so s = exp(t) >= 1), as SleepFM does.

  The pretraining trainer applies this after every optimiser update (docs/specification.md §2.2).

  Args:
    log_scale: scalar (or any-shape) float array t.

  Returns:
    max(t, 0), same shape and dtype.
  """
  log_scale = jnp.asarray(log_scale)
  return jnp.maximum(log_scale, jnp.zeros_like(log_scale))


def _stack_modalities(embeddings: Mapping[str, jax.Array] | jax.Array, fn: str) -> tuple[list[str], jax.Array]:
  """(names, (M, B, D) float32) from a dict of (B, D) arrays or an (M, B, D) array."""
  if isinstance(embeddings, Mapping):
    names = [str(k) for k in embeddings]
    arrays = [jnp.asarray(v) for v in embeddings.values()]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
      raise ValueError(f"{fn}: every modality's embeddings must have the same (B, D) shape, got "
                       f"{dict(zip(names, (a.shape for a in arrays)))}")
    z = jnp.stack(arrays) if arrays else jnp.zeros((0, 0, 0))
  else:
    z = jnp.asarray(embeddings)
    names = [str(i) for i in range(z.shape[0])] if z.ndim == 3 else []
  if z.ndim != 3:
    raise ValueError(f"{fn}: embeddings must be a dict of (B, D) arrays or an (M, B, D) array, "
                     f"got shape {z.shape}")
  if z.shape[0] < 2:
    raise ValueError(f"{fn}: a contrastive loss needs at least 2 modalities, got {z.shape[0]}")
  if z.shape[1] < 1:
    raise ValueError(f"{fn}: empty batch")
  return names, z.astype(jnp.float32)


def _l2_normalise(z: jax.Array) -> jax.Array:
  # The epsilon keeps an all-zero embedding (e.g. a padded batch row) finite.
  return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def _sample_mask(mask: jax.Array | None, batch: int, fn: str) -> jax.Array:
  if mask is None:
    return jnp.ones((batch,), bool)
  mask = jnp.asarray(mask, bool)
  if mask.shape != (batch,):
    raise ValueError(f"{fn}: mask must have shape (B,) = ({batch},), got {mask.shape}")
  return mask


def _symmetric_ce(logits: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Sums of CE(logits, diag) over rows and of CE(logits^T, diag), plus top-1 hits of the rows.

  Args:
    logits: (B, B) float32, rows are queries, columns are candidates; positives on the diagonal.
    valid: (B,) bool; invalid samples are neither queries nor candidates.

  Returns:
    (row CE sum, column CE sum, number of valid rows whose argmax is the diagonal).
  """
  # A very negative finite value rather than -inf: a fully masked row must stay finite so that
  # `where` can zero it without NaN gradients.
  neg = jnp.finfo(logits.dtype).min / 2
  pair_valid = valid[:, None] & valid[None, :]
  masked = jnp.where(pair_valid, logits, neg)
  diag = jnp.arange(logits.shape[0])
  row_ce = -jax.nn.log_softmax(masked, axis=1)[diag, diag]
  col_ce = -jax.nn.log_softmax(masked, axis=0)[diag, diag]
  hits = jnp.argmax(masked, axis=1) == diag
  return (jnp.sum(jnp.where(valid, row_ce, 0.0)), jnp.sum(jnp.where(valid, col_ce, 0.0)),
          jnp.sum(valid & hits).astype(jnp.float32))


def loo_contrastive_loss(embeddings: Mapping[str, jax.Array] | jax.Array, log_scale: jax.Array, *,
                         mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, Any]]:
  """SleepFM's leave-one-out (LOO) contrastive loss.

  With z_i the L2-normalised embeddings of modality i (B, D), M modalities and s = exp(t):

    zbar_{-i} = (1/(M-1)) sum_{j != i} z_j                       (NOT renormalised)
    L_LOO = (1/(2 M B)) sum_i [ CE(s z_i zbar_{-i}^T, diag) + CE((s z_i zbar_{-i}^T)^T, diag) ]

  with CE summed over the batch rows (Thapa et al. 2024, "SleepFM", ICML, section 3;
  docs/specification.md §2.2).

  Args:
    embeddings: dict modality -> (B, D) float (any norm; normalised here), or an (M, B, D) array.
    log_scale: scalar float t; the logit scale is exp(t).
    mask: optional (B,) bool, True for real samples. Masked samples are neither queries nor
      negatives, and B in the normalisation becomes the number of real samples (at least 1).

  Returns:
    (loss, aux): loss is a float32 scalar; aux = {"loss": {modality: scalar}, "accuracy":
    {modality: scalar}} where aux["loss"][i] = (CE_rows + CE_cols) / (2 B) (so the loss is their
    mean over modalities) and aux["accuracy"][i] is the top-1 retrieval accuracy of z_i among the
    LOO targets zbar_{-i} of the batch. Modalities of an array input are named "0", "1", ...

  Raises:
    ValueError: on fewer than 2 modalities, mismatched shapes, or a mask of the wrong shape.
  """
  names, z = _stack_modalities(embeddings, "loo_contrastive_loss")
  num_mod, batch, _ = z.shape
  valid = _sample_mask(mask, batch, "loo_contrastive_loss")
  n_valid = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  z = _l2_normalise(z)
  scale = jnp.exp(jnp.asarray(log_scale, jnp.float32))
  total = jnp.sum(z, axis=0)  # (B, D)
  per_loss, per_acc = {}, {}
  loss = jnp.float32(0.0)
  for i, name in enumerate(names):
    target = (total - z[i]) / (num_mod - 1)  # (B, D) zbar_{-i}
    logits = scale * z[i] @ target.T  # (B, B)
    row, col, hits = _symmetric_ce(logits, valid)
    per_loss[name] = (row + col) / (2.0 * n_valid)
    per_acc[name] = hits / n_valid
    loss = loss + row + col
  loss = loss / (2.0 * num_mod * n_valid)
  return loss, {"loss": per_loss, "accuracy": per_acc}


def pairwise_contrastive_loss(embeddings: Mapping[str, jax.Array] | jax.Array, log_scale: jax.Array, *,
                              mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, Any]]:
  """CLIP-style pairwise contrastive loss over all modality pairs.

    L_pair = (1/(M (M-1) B)) sum_{i<j} [ CE(s z_i z_j^T, diag) + CE(s z_j z_i^T, diag) ]

  with z L2-normalised, s = exp(t), CE summed over batch rows (Radford et al. 2021, "CLIP";
  SleepFM's pairwise baseline; docs/specification.md §2.2). For M = 2 it equals the LOO loss.

  Args:
    embeddings: dict modality -> (B, D) float, or an (M, B, D) array.
    log_scale: scalar float t.
    mask: optional (B,) bool, True for real samples (as in `loo_contrastive_loss`).

  Returns:
    (loss, aux): aux = {"loss": {"a-b": (CE_ab + CE_ba) / (2 B)}, "accuracy": {"a-b": top-1
    accuracy of z_a retrieving z_b}} for each pair a < b in input order.

  Raises:
    ValueError: as `loo_contrastive_loss`.
  """
  names, z = _stack_modalities(embeddings, "pairwise_contrastive_loss")
  num_mod, batch, _ = z.shape
  valid = _sample_mask(mask, batch, "pairwise_contrastive_loss")
  n_valid = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  z = _l2_normalise(z)
  scale = jnp.exp(jnp.asarray(log_scale, jnp.float32))
  per_loss, per_acc = {}, {}
  loss = jnp.float32(0.0)
  for i in range(num_mod):
    for j in range(i + 1, num_mod):
      logits = scale * z[i] @ z[j].T  # (B, B)
      # CE(s z_j z_i^T) over rows is CE over the columns of s z_i z_j^T.
      row, col, hits = _symmetric_ce(logits, valid)
      key = f"{names[i]}-{names[j]}"
      per_loss[key] = (row + col) / (2.0 * n_valid)
      per_acc[key] = hits / n_valid
      loss = loss + row + col
  loss = loss / (num_mod * (num_mod - 1) * n_valid)
  return loss, {"loss": per_loss, "accuracy": per_acc}
