"""The transfer paper's downstream model: set-transformer encoder, masked-time augmentation, MLP head.

Reference: "Pretraining on Sleep Data Improves non-Sleep Biosignal Tasks", arXiv 2605.02500
(docs/specification.md §3).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from sleepjax.models import encoder as encoder_lib


class TransferModel(nnx.Module):
  """Set-transformer encoder + masked-time augmentation + MLP head.

  Per-token embeddings (B, S, E) -> in training, each token is dropped with probability
  `mask_rate` -> mean over the kept tokens -> Linear(E, H) -> GELU -> Dropout -> Linear(H, K).

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
    self.num_classes = int(num_classes)
    self.hidden_dim = int(hidden_dim)
    self.head_dropout = float(head_dropout)
    self.mask_rate = float(mask_rate)
    self.encoder = encoder_lib.SetTransformerEncoder(encoder_config, rngs=rngs)
    self.head = nnx.Dict({
        "hidden": nnx.Linear(e, hidden_dim, rngs=rngs),
        "dropout": nnx.Dropout(head_dropout, rngs=rngs),
        "out": nnx.Linear(hidden_dim, num_classes, rngs=rngs),
    })

  def get_config(self) -> dict:
    """The constructor arguments as JSON-able values (`from_config` rebuilds the module)."""
    return {"encoder": self.encoder.config.to_dict(), "num_classes": self.num_classes,
            "hidden_dim": self.hidden_dim, "head_dropout": self.head_dropout, "mask_rate": self.mask_rate}

  @classmethod
  def from_config(cls, config: Mapping, *, rngs: nnx.Rngs) -> "TransferModel":
    """Inverse of `get_config` (fresh parameters from `rngs`)."""
    config = dict(config)
    enc = encoder_lib.EncoderConfig.from_dict(config.pop("encoder"))
    return cls(enc, config.pop("num_classes"), rngs=rngs, **config)

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
