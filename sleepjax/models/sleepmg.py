"""SleepMG: multimodal generalisable sleep staging with inter-modal balance (docs/specification.md §4).

The model: one FeatureNet stack per modality u (EEG, EOG, EMG, ECG) gives f^u (B, 256 C_u); the
fused feature is f = concat_u f^u (B, F) with F = sum_u 256 C_u. Two single linear layers read f:
G_y (F -> 5 AASM stages) and G_d (F -> number of training subjects, the "domains"), the latter
behind a gradient reversal layer with ratio lambda, so that one loss L_y + L_d trains G_d to
recognise the subject while the feature extractors learn to hide it (the paper's L = L_y - L_d
seen from the features).

Per-modality scores (SleepMG Eq. 3-6). Write W_a = [W_a^1 | ... | W_a^U] for the column blocks of
G_a acting on f (a in {y, d}). Then

  logits_a^u = W_a^u f^u + b_a                    (= G_a applied to f^u zero-padded to width F)
  v^{a,u}    = sum_i softmax(logits_a^u)_i[true label of i]                         (Eq. 4)
  s^{a,u}    = v^{a,u} / sum_u' v^{a,u'}                                            (Eq. 5)
  rho^{a,u}  = tanh( (s^{a,u} - 1/U)^2 / sum_u' (s^{a,u'} - 1/U)^2 )               (Eq. 6)
  imbalance  = sum_u (s^{a,u} - 1/U)^2                                   (Fig. 4, section 5.5)

NB Flax's `Linear` computes f @ kernel with kernel (F, K): the column block W_a^u of the paper
is the ROW block kernel[offset_u : offset_u + F_u, :] here.

All-equal guard: when every s^{a,u} equals 1/U the ratio in Eq. 6 is 0/0. The ratios
r_u = d_u / sum d always sum to 1, and a symmetric state has no reason to favour a modality,
so the guard sets r_u = 1/U and rho^{a,u} = tanh(1/U) for every u: the limit of Eq. 6 along any
symmetric approach to balance, and the value every ratio takes on average. (Under Adam a
constant common factor cancels anyway; under SGD tanh(1/U) < 1 simply shrinks the step a
little, exactly as Eq. 6 does near balance.) Likewise when sum_u v^{a,u} = 0 (no counted epoch
in the batch) s^{a,u} = 1/U.

References:
  SleepMG (ACM MM 2024), section 4, Eq. 1-7; Fig. 3 (zero-padding); Fig. 4 (imbalance degree).
  Ganin, Y. & Lempitsky, V. (2015). Unsupervised domain adaptation by backpropagation. ICML.
  Peng, X. et al. (2022). Balanced multimodal learning via on-the-fly gradient modulation
    (OGM-GE). CVPR. (The one-vs-rest generalisation in `ogm_ge_coefficients`.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from sleepjax import losses
from sleepjax.data import stages
from sleepjax.models import featurenet


class SleepMGModel(nnx.Module):
  """Per-modality FeatureNets -> concat -> G_y and (behind a GRL) G_d.

  The same class builds every method of the SleepMG comparison: NaiveMG/OGM-GE/SleepMG use one
  group per modality and a domain head; the "FeatureNet" baseline uses a single group holding all
  channels and no domain head (`num_domains=0`).

  Call: `model(signals, *, grl_ratio=0.0, rngs=None)` with `signals` {group: (B, C_g, 3000)
  float32 uV at 100 Hz}; `grl_ratio` a scalar (traced; lambda of the GRL); `rngs` an
  `nnx.Rngs` with a `dropout` stream in train mode. Returns a dict:
    "features": {group: (B, 256 C_g)}, "fused": (B, F), "logits_y": (B, 5),
    "logits_d": (B, K_d) (only with a domain head).

  Raises:
    ValueError: a group is missing from `signals` or has the wrong channel count.
  """

  def __init__(self, channels: Mapping[str, int], *, num_stages: int = stages.NUM_STAGES,
               num_domains: int = 0, share_channel_weights: bool = True,
               dropout_rate: float = 0.5, bn_momentum: float = 0.9, rngs: nnx.Rngs):
    """Builds the extractors and heads.

    Args:
      channels: ordered {group: C_g}; the order fixes the column blocks of f (e.g.
        {"eeg": 6, "eog": 2, "emg": 1, "ecg": 1} for ISRUC-S3 / MASS-SS3 in SleepMG).
      num_stages: K_y (5 AASM stages).
      num_domains: K_d, number of training subjects; 0 builds no domain head.
      share_channel_weights: see `featurenet.ModalityFeatureNet`.
      dropout_rate: FeatureNet dropout (0.5).
      bn_momentum: FeatureNet BatchNorm running-average decay.
      rngs: parameter initialisation keys.

    Raises:
      ValueError: no groups, or a group with no channel.
    """
    if not channels:
      raise ValueError("SleepMGModel needs at least one modality")
    self.groups = tuple(channels)
    # Static attributes stay hashable (tuples), so that graph definitions can key jit caches.
    self.channel_counts = tuple(int(channels[g]) for g in self.groups)
    self.num_stages = int(num_stages)
    self.share_channel_weights = bool(share_channel_weights)
    self.dropout_rate = float(dropout_rate)
    self.bn_momentum = float(bn_momentum)
    self.extractors = nnx.Dict({
        g: featurenet.ModalityFeatureNet(
            c, share_channel_weights=share_channel_weights, dropout_rate=dropout_rate,
            bn_momentum=bn_momentum, rngs=rngs)
        for g, c in zip(self.groups, self.channel_counts)})
    self.block_sizes = featurenet.modality_widths(self.channel_counts)
    width = sum(self.block_sizes)
    self.head_y = nnx.Linear(width, num_stages, rngs=rngs)
    self.num_domains = int(num_domains)
    self.head_d = nnx.Linear(width, num_domains, rngs=rngs) if num_domains > 0 else None

  def get_config(self) -> dict:
    """The constructor arguments as JSON-able values (`from_config` rebuilds the module)."""
    return {"channels": dict(zip(self.groups, self.channel_counts)), "num_stages": self.num_stages,
            "num_domains": self.num_domains, "share_channel_weights": self.share_channel_weights,
            "dropout_rate": self.dropout_rate, "bn_momentum": self.bn_momentum}

  @classmethod
  def from_config(cls, config: Mapping, *, rngs: nnx.Rngs) -> "SleepMGModel":
    """Inverse of `get_config` (fresh parameters from `rngs`)."""
    config = dict(config)
    return cls(dict(config.pop("channels")), rngs=rngs, **config)

  def __call__(self, signals: Mapping[str, jax.Array], *, grl_ratio: jax.Array | float = 0.0,
               rngs: nnx.Rngs | None = None) -> dict:
    missing = [g for g in self.groups if g not in signals]
    if missing:
      raise ValueError(f"signals lack modalities {missing}; the model was built for {self.groups}")
    feats = {g: self.extractors[g](signals[g], rngs=rngs) for g in self.groups}
    fused = jnp.concatenate([feats[g] for g in self.groups], axis=-1)  # (B, F)
    out = {"features": feats, "fused": fused, "logits_y": self.head_y(fused)}
    if self.head_d is not None:
      out["logits_d"] = self.head_d(losses.gradient_reversal(fused, grl_ratio))
    return out


def modality_logits(features: Sequence[jax.Array], kernel: jax.Array, bias: jax.Array) -> jax.Array:
  """Per-modality logits of a shared linear head: logits^u = W^u f^u + b (SleepMG Eq. 3, Fig. 3).

  Equal to applying the head to f^u zero-padded to the fused width, without building the padding.

  Args:
    features: U arrays f^u, each (B, F_u) float32, in the order of the head's row blocks.
    kernel: (F, K) float32 Flax kernel, F = sum_u F_u; rows [o_u, o_u + F_u) act on f^u.
    bias: (K,) float32.

  Returns:
    (U, B, K) float32 logits.

  Raises:
    ValueError: the feature widths do not add up to the kernel's rows.
  """
  widths = [f.shape[-1] for f in features]
  if sum(widths) != kernel.shape[0]:
    raise ValueError(f"feature widths {widths} sum to {sum(widths)}, kernel has {kernel.shape[0]} rows")
  out, offset = [], 0
  for f, w in zip(features, widths):
    out.append(f @ kernel[offset:offset + w] + bias)
    offset += w
  return jnp.stack(out)


def performance_values(logits: jax.Array, labels: jax.Array, *,
                       mask: jax.Array | None = None) -> jax.Array:
  """v^{a,u}: the batch sum of each modality's softmax probability of the true label (Eq. 4).

  Args:
    logits: (U, B, K) float per-modality logits.
    labels: (B,) int true stage or domain; negative labels (unscored) do not count.
    mask: optional (B,) bool, False for padding rows.

  Returns:
    (U,) float32.
  """
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  valid = labels >= 0
  if mask is not None:
    valid = valid & mask
  safe = jnp.where(valid, labels, 0)
  p_true = jnp.take_along_axis(probs, safe[None, :, None], axis=-1)[..., 0]  # (U, B)
  return jnp.sum(jnp.where(valid[None], p_true, 0.0), axis=-1)


def balance_scores(values: jax.Array) -> dict[str, jax.Array]:
  """Scores s, metrics rho and the imbalance degree from performance values (Eq. 5-6, Fig. 4).

  Args:
    values: (U,) float v^{a,u} >= 0.

  Returns:
    {"s": (U,) s^{a,u}, "rho": (U,) rho^{a,u}, "imbalance": () sum_u (s^{a,u} - 1/U)^2}, float32.
    All-equal guard (module docstring): rho = tanh(1/U) when every s^{a,u} = 1/U; s = 1/U when
    sum_u v^{a,u} = 0.
  """
  values = jnp.asarray(values, jnp.float32)
  u = values.shape[0]
  total = jnp.sum(values)
  s = jnp.where(total > 0, values / jnp.where(total > 0, total, 1.0), 1.0 / u)
  dev = (s - 1.0 / u) ** 2
  dev_total = jnp.sum(dev)
  ratio = jnp.where(dev_total > 0, dev / jnp.where(dev_total > 0, dev_total, 1.0), 1.0 / u)
  return {"s": s, "rho": jnp.tanh(ratio), "imbalance": dev_total}


def head_balance(features: Sequence[jax.Array], kernel: jax.Array, bias: jax.Array,
                 labels: jax.Array, *, mask: jax.Array | None = None) -> dict[str, jax.Array]:
  """v, s, rho and the imbalance degree of one head (a = y or d) for a batch (Eq. 3-6).

  Gradients do not flow through the scores (they steer the update; they are not a loss).

  Args:
    features: U arrays f^u (B, F_u) float32.
    kernel: (F, K) Flax kernel of G_a; bias: (K,).
    labels: (B,) int true labels of head a (stage or training-subject index).
    mask: optional (B,) bool.

  Returns:
    {"v": (U,), "s": (U,), "rho": (U,), "imbalance": ()} float32.
  """
  features = [jax.lax.stop_gradient(f) for f in features]
  logits = modality_logits(features, jax.lax.stop_gradient(kernel), jax.lax.stop_gradient(bias))
  v = performance_values(logits, labels, mask=mask)
  return {"v": v, **balance_scores(v)}


def ogm_ge_coefficients(values: jax.Array, alpha: float = 0.1) -> tuple[jax.Array, jax.Array]:
  """OGM-GE modulation coefficients generalised to U modalities by one-vs-rest ratios.

  Peng et al. (2022) compare two modalities: ratio = score_1 / score_2 and the dominant one (ratio
  > 1) has its encoder gradients scaled by 1 - tanh(alpha * ratio), the other by 1. With U
  modalities each modality is compared with the mean score of the others:
  ratio_u = v_u / mean_{u' != u} v_{u'}; coefficient_u = 1 - tanh(alpha * ratio_u) if
  ratio_u > 1 else 1. For U = 2 this is exactly the original rule.

  Args:
    values: (U,) float scores v^{y,u} (sum of true-class softmax probabilities), U >= 2.
    alpha: modulation strength (0.1 in OGM-GE and the SleepMG comparison).

  Returns:
    ((U,) coefficients in (0, 1], (U,) ratios), float32.

  Raises:
    ValueError: fewer than two modalities.
  """
  values = jnp.asarray(values, jnp.float32)
  u = values.shape[0]
  if u < 2:
    raise ValueError(f"OGM-GE needs at least two modalities, got {u}")
  rest = (jnp.sum(values) - values) / (u - 1)
  ratio = values / jnp.maximum(rest, 1e-12)
  coeff = jnp.where(ratio > 1.0, 1.0 - jnp.tanh(alpha * ratio), 1.0)
  return coeff, ratio
