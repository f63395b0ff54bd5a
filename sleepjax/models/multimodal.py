"""SleepFM's multimodal encoder: one set-transformer per modality group and the logit scale.

SleepFM-Clinical (Nature Medicine) shares one `SetTransformerEncoder` across modalities (BAS =
EEG+EOG, ECG, EMG, RESP); the original SleepFM (ICML 2024) had one encoder per modality. Both are
this one class (`shared=True` / `shared=False`), as docs/specification.md §2.1.5 describes: a config option, not a
second code base. The learnable scalar `log_scale` (t, s = exp(t), initialised at 0 by default) belongs to
the contrastive loss (`sleepjax.losses.loo_contrastive_loss`); the pretraining trainer clamps it
to t >= 0 after every update (`sleepjax.losses.clamp_log_scale`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from sleepjax.models.encoder import EncoderConfig, SetTransformerEncoder


class MultiModalEncoder(nnx.Module):
  """Encodes every modality of a batch with the SleepFM set-transformer.

  With `shared=True` every modality goes through the same encoder (and the same BatchNorm running
  statistics, updated once per modality call, as the reference does by calling its shared encoder
  once per modality).

  Args:
    modalities: modality names, e.g. ("bas", "ecg", "emg", "resp") or ("eeg", "eog", "ecg").
    config: `EncoderConfig` of the encoder(s).
    shared: one encoder for all modalities (SleepFM-Clinical) or one per modality (SleepFM-ICML).
    log_scale_init: initial t (SleepFM: 0, i.e. s = 1; docs/specification.md §2.2). It must be >= 0 (the
      trainer keeps t >= 0). CLIP (Radford et al. 2021) starts at log(1 / 0.07) = 2.66, which
      short runs need: at s = 1 the logits of unit-norm embeddings span only [-1, 1].
    rngs: nnx.Rngs.

  Raises:
    ValueError: on an empty or repeated modality list, or a negative log_scale_init.
  """

  def __init__(self, modalities: Sequence[str], config: EncoderConfig, *, shared: bool = True,
               log_scale_init: float = 0.0, rngs: nnx.Rngs):
    modalities = tuple(str(m) for m in modalities)
    if not log_scale_init >= 0:
      raise ValueError(f"MultiModalEncoder: log_scale_init must be >= 0 (t >= 0), got {log_scale_init}")
    if not modalities or len(set(modalities)) != len(modalities):
      raise ValueError(f"MultiModalEncoder: modalities must be non-empty and distinct, got {modalities}")
    self.modalities = modalities
    self.shared = shared
    self.config = config
    self.log_scale_init = float(log_scale_init)
    if shared:
      self.encoder = SetTransformerEncoder(config, rngs=rngs)
      self.encoders = None
    else:
      self.encoder = None
      self.encoders = nnx.Dict({m: SetTransformerEncoder(config, rngs=rngs) for m in modalities})
    self.log_scale = nnx.Param(jnp.full((), log_scale_init, jnp.float32))

  def get_config(self) -> dict:
    """The constructor arguments as JSON-able values (`from_config` rebuilds the module)."""
    return {"modalities": list(self.modalities), "encoder": self.config.to_dict(), "shared": self.shared,
            "log_scale_init": self.log_scale_init}

  @classmethod
  def from_config(cls, config: Mapping, *, rngs: nnx.Rngs) -> "MultiModalEncoder":
    """Inverse of `get_config` (fresh parameters from `rngs`)."""
    return cls(tuple(config["modalities"]), EncoderConfig.from_dict(config["encoder"]), shared=config["shared"],
               log_scale_init=config["log_scale_init"], rngs=rngs)

  def encoder_for(self, modality: str) -> SetTransformerEncoder:
    """The encoder used for `modality`."""
    if modality not in self.modalities:
      raise KeyError(f"MultiModalEncoder: unknown modality {modality!r}; known: {self.modalities}")
    return self.encoder if self.shared else self.encoders[modality]

  def __call__(self, signals: Mapping[str, jax.Array], mask: Mapping[str, jax.Array] | None = None,
               positions: Mapping[str, jax.Array] | None = None, *,
               train: bool) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Encodes the modalities present in `signals`.

    Args:
      signals: modality -> (B, C_m, T) float32 (uV or z-scored); C_m is the modality's channel cap.
        Every key must be one of `modalities`; a subset may be given.
      mask: modality -> (B, C_m) bool, True = real channel (a missing key means all real).
      positions: modality -> (B, C_m, 3) float32 electrode positions, or None (used only with
        `config.channel_encoding`; a missing key means no positions).
      train: dropout and BatchNorm batch statistics on when True.

    Returns:
      modality -> (tokens (B, S, E), pooled (B, E)), in the order of `signals`.

    Raises:
      KeyError: on a modality that is not one of `modalities`.
      ValueError: on bad shapes (see `SetTransformerEncoder.__call__`).
    """
    mask = mask or {}
    positions = positions or {}
    for modality in signals:
      self.encoder_for(modality)  # Unknown modality: KeyError.
    shapes = {(jnp.shape(x)[0], jnp.shape(x)[-1]) for x in signals.values()}
    if self.shared and len(shapes) == 1:
      # One pass of the shared encoder for every modality (one copy of its graph to compile).
      return self.encoder.encode_groups(signals, mask, positions, train=train)
    return {modality: self.encoder_for(modality)(x, mask.get(modality), positions.get(modality), train=train)
            for modality, x in signals.items()}
