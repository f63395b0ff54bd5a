"""A sequence sleep stager on set-transformer tokens (SleepFM-Clinical's staging recipe, docs/staging.md).

Per 30-s epoch and modality, the shared `SetTransformerEncoder` pools the channels and gives one
token per patch (5 s); the modalities a recording has are averaged token by token; a transformer
and an optional bidirectional LSTM run over the tokens of a window of epochs; the tokens of each
epoch are averaged and a linear head gives its 5 stage logits.

Reference: Thapa et al., SleepFM-Clinical, Nature Medicine 2025 (sleep-staging head: a
transformer then a bidirectional LSTM over the pretrained 5-s embeddings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from sleepjax.data import stages as stages_lib
from sleepjax.models.encoder import EncoderConfig
from sleepjax.models.encoder import SetTransformerEncoder
from sleepjax.models.encoder import TransformerLayer
from sleepjax.models.encoder import sinusoidal_position_encoding


class SequenceStager(nnx.Module):
  """Stages windows of consecutive 30-s epochs from per-modality channel sets.

  Args:
    modalities: modality names in input order (e.g. ("eeg", "eog", "emg", "ecg")).
    channels: {modality: C_m}, the channel count of each modality's input.
    encoder: `EncoderConfig` of the shared set-transformer; 30 s * sfreq must be a multiple of its
      patch size (S = 30 s / patch seconds tokens per epoch).
    model_dim: D, width of the sequence model.
    num_layers: transformer layers over the window's tokens.
    num_heads: their attention heads (D must be divisible by it).
    ff_dim: their feed-forward width.
    lstm_hidden: hidden units per direction of the bidirectional LSTM after the transformer
      (SleepFM-Clinical); 0: no LSTM.
    dropout: rate in the sequence model.
    num_classes: K (5 AASM stages).
    rngs: nnx.Rngs.

  Raises:
    ValueError: no modality, a modality without channels, or an epoch that is not a whole number
      of patches.
  """

  def __init__(self, modalities: Sequence[str], channels: Mapping[str, int], encoder: EncoderConfig, *,
               model_dim: int = 64, num_layers: int = 1, num_heads: int = 4, ff_dim: int = 128,
               lstm_hidden: int = 0, dropout: float = 0.1, num_classes: int = stages_lib.NUM_STAGES,
               rngs: nnx.Rngs):
    self.modalities = tuple(str(m) for m in modalities)
    if not self.modalities:
      raise ValueError("SequenceStager: no modality")
    # Tuples, not dicts: the graph definition must be hashable (it keys the jit cache).
    self.channels = tuple((m, int(channels[m])) for m in self.modalities)
    if min(c for _, c in self.channels) < 1:
      raise ValueError(f"SequenceStager: every modality needs >= 1 channel, got {dict(self.channels)}")
    epoch_samples = 30.0 * encoder.sfreq
    if abs(epoch_samples / encoder.patch_size - round(epoch_samples / encoder.patch_size)) > 1e-9:
      raise ValueError(f"SequenceStager: a 30-s epoch at {encoder.sfreq:g} Hz is not a whole number of "
                       f"{encoder.patch_size}-sample patches")
    self.encoder_config = encoder
    self.epoch_samples = int(round(epoch_samples))
    self.tokens_per_epoch = self.epoch_samples // encoder.patch_size
    self.hparams = (("model_dim", int(model_dim)), ("num_layers", int(num_layers)), ("num_heads", int(num_heads)),
                    ("ff_dim", int(ff_dim)), ("lstm_hidden", int(lstm_hidden)), ("dropout", float(dropout)),
                    ("num_classes", int(num_classes)))
    self.encoder = SetTransformerEncoder(encoder, rngs=rngs)
    self.proj = nnx.Linear(encoder.embed_dim, model_dim, rngs=rngs)
    self.norm = nnx.LayerNorm(model_dim, epsilon=1e-5, rngs=rngs)
    self.layers = nnx.List([TransformerLayer(model_dim, num_heads, ff_dim, dropout, pre_norm=True, rngs=rngs)
                            for _ in range(num_layers)])
    if lstm_hidden:
      self.lstm = nnx.Bidirectional(nnx.RNN(nnx.OptimizedLSTMCell(model_dim, lstm_hidden, rngs=rngs)),
                                    nnx.RNN(nnx.OptimizedLSTMCell(model_dim, lstm_hidden, rngs=rngs)))
      out_dim = 2 * lstm_hidden
    else:
      self.lstm = None
      out_dim = model_dim
    self.head = nnx.Linear(out_dim, num_classes, rngs=rngs)

  def get_config(self) -> dict[str, Any]:
    """The constructor arguments as JSON-able values (`from_config` rebuilds the module)."""
    return {"modalities": list(self.modalities), "channels": dict(self.channels),
            "encoder": self.encoder_config.to_dict(), **dict(self.hparams)}

  @classmethod
  def from_config(cls, config: Mapping[str, Any], *, rngs: nnx.Rngs) -> "SequenceStager":
    """Inverse of `get_config` (fresh parameters from `rngs`)."""
    c = dict(config)
    return cls(c.pop("modalities"), c.pop("channels"), EncoderConfig.from_dict(c.pop("encoder")), rngs=rngs, **c)

  def epoch_tokens(self, signals: Mapping[str, jax.Array], mask: Mapping[str, jax.Array], *,
                   train: bool) -> dict[str, jax.Array]:
    """Per-modality 5-s tokens of every epoch.

    Args:
      signals: {modality: (B, L, C_m, T) float32}, T = 30 s * sfreq.
      mask: {modality: (B, C_m) bool} True = real channel (per window: a channel is present or
        absent for the whole recording).
      train: dropout and BatchNorm batch statistics.

    Returns:
      {modality: (B, L, S, E) float32} (finite also where every channel is masked).
    """
    xs = {m: jnp.asarray(signals[m]) for m in self.modalities}
    b, length = next(iter(xs.values())).shape[:2]
    flat = {m: x.reshape((b * length,) + x.shape[2:]) for m, x in xs.items()}
    masks = {m: jnp.repeat(jnp.asarray(mask[m], bool), length, axis=0) for m in self.modalities}
    out = self.encoder.encode_groups(flat, masks, train=train)
    return {m: tok.reshape(b, length, tok.shape[1], tok.shape[2]) for m, (tok, _) in out.items()}

  def __call__(self, signals: Mapping[str, jax.Array], mask: Mapping[str, jax.Array],
               epoch_mask: jax.Array | None = None, *, train: bool,
               stop_encoder_gradient: bool = False) -> dict[str, jax.Array]:
    """Stage logits of every epoch of a batch of windows.

    Args:
      signals: {modality: (B, L, C_m, T) float32} microvolts (or z-scored, as the model's data).
      mask: {modality: (B, C_m) bool} True = real channel; a modality without any real channel
        is left out of the modality average.
      epoch_mask: (B, L) bool, True = a real epoch (False: padding at the end of a night);
        None: all real.
      train: dropout and BatchNorm batch statistics.
      stop_encoder_gradient: a frozen encoder (no gradient reaches it; it runs in inference mode).

    Returns:
      {"logits": (B, L, K) float32, "epoch_embedding": (B, L, D') float32 (the head's input),
       "tokens": {modality: (B, L, S, E)}}.
    """
    # A frozen encoder runs in inference mode: no dropout, running BatchNorm statistics kept.
    tokens = self.epoch_tokens(signals, mask, train=train and not stop_encoder_gradient)
    if stop_encoder_gradient:
      tokens = jax.tree.map(jax.lax.stop_gradient, tokens)
    b, length, s, _ = next(iter(tokens.values())).shape
    present = jnp.stack([jnp.any(jnp.asarray(mask[m], bool), axis=1) for m in self.modalities], axis=1)  # (B, M)
    weights = present.astype(jnp.float32) / jnp.maximum(present.sum(axis=1, keepdims=True), 1)
    fused = sum(weights[:, i, None, None, None] * tokens[m] for i, m in enumerate(self.modalities))
    if epoch_mask is None:
      epoch_mask = jnp.ones((b, length), bool)
    epoch_mask = jnp.asarray(epoch_mask, bool)
    h = self.proj(fused.reshape(b, length * s, -1))
    h = self.norm(h + jnp.asarray(sinusoidal_position_encoding(length * s, h.shape[-1])))
    token_mask = jnp.repeat(epoch_mask, s, axis=1)
    for layer in self.layers:
      h = layer(h, token_mask, train=train)
    if self.lstm is not None:
      # Padding only follows the real epochs, so sequence lengths keep the backward pass exact.
      h = self.lstm(h, seq_lengths=token_mask.sum(axis=1).astype(jnp.int32))
    e = h.reshape(b, length, s, -1).mean(axis=2)
    return {"logits": self.head(e).astype(jnp.float32), "epoch_embedding": e, "tokens": tokens}
