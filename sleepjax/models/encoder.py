"""SleepFM-Clinical "set transformer" encoder (docs/specification.md §2.1).

For one modality's signals x (B, C, T) with a channel mask (B, C):

1. `PatchTokenizer`: each channel is cut into S = T / P patches of P samples; every patch goes
   through six blocks Conv1d(kernel 5, stride 2, padding 2) -> BatchNorm -> ELU -> LayerNorm over
   (length, channels) jointly (widths 1->4->8->16->32->64->128), a mean over length and
   Linear(128, E). Gives (B, C, S, E).
2. Optional channel positional encoding (`channel_encoding.ChannelPositionalEncoding`), added to
   every token of a channel.
3. Channel pooling (`AttentionPooling` over C, per time step): one post-norm transformer encoder
   layer with a key-padding mask, then a masked mean over channels. Skipped when C == 1. (B, S, E).
4. Sinusoidal temporal position encoding + LayerNorm, then a pre-norm transformer over the S
   tokens. Output tokens (B, S, E).
5. Temporal pooling: the same attention-pooling block over S (no mask). Output (B, E).

Source: SleepFM-Clinical (Thapa et al., Nature Medicine 2025), as described in docs/specification.md §2.1; the
transfer paper's smaller variant (1-s patches, 3 layers; arXiv 2605.02500).

Padded channels (mask False) never influence real outputs: their samples are zeroed, they are
left out of the BatchNorm batch statistics (so padding invariance holds in training mode too), they
are never attended to, and they are left out of the channel mean. A recording whose real channel
count is 1 but that is padded to C > 1 runs the channel-attention layer, while C == 1 skips it
statically, so the two are not interchangeable.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from sleepjax.models.channel_encoding import ChannelPositionalEncoding


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Hyper-parameters of `SetTransformerEncoder`.

  Attributes:
    patch_size: P, samples per token (640 = 5 s at 128 Hz in SleepFM-Clinical; 128 = 1 s in the
      transfer paper).
    embed_dim: E, token width (128).
    num_layers: pre-norm transformer layers over time (6 in SleepFM-Clinical, 3 in the transfer
      paper).
    num_heads: attention heads of the temporal transformer layers (8).
    pooling_heads: attention heads of the channel- and time-pooling blocks (8). SleepFM-Clinical
      keeps this as a field of its own (`pooling_head`) beside `num_heads`.
    ff_dim: feed-forward width of every transformer layer (2048, PyTorch's default, in the
      reference).
    dropout: dropout rate in the transformer and pooling layers (0.3).
    tokenizer_widths: output widths of the six conv blocks (4, 8, 16, 32, 64, 128).
    channel_encoding: add the electrode-position channel encoding (docs/specification.md §2.3) before channel pooling.
    reference_truncation: reproduce the reference's channel-encoding truncation bug (ablation).
    bn_momentum: BatchNorm running-average decay; 0.9 equals PyTorch's momentum=0.1 default.
    sfreq: sampling frequency in Hz the patch size assumes (documentation and `num_tokens`).
    window_s: window length in seconds (300 = 5 min in SleepFM-Clinical).
    dtype: computation dtype (None = float32; jnp.bfloat16 on accelerators). BatchNorm and
      LayerNorm statistics are always computed in float32 by Flax.
    param_dtype: parameter dtype (float32).
  """

  patch_size: int = 640
  embed_dim: int = 128
  num_layers: int = 6
  num_heads: int = 8
  pooling_heads: int = 8
  ff_dim: int = 2048
  dropout: float = 0.3
  tokenizer_widths: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
  channel_encoding: bool = False
  reference_truncation: bool = False
  bn_momentum: float = 0.9
  sfreq: float = 128.0
  window_s: float = 300.0
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @property
  def window_samples(self) -> int:
    """T, samples per window at `sfreq`."""
    return int(round(self.window_s * self.sfreq))

  @property
  def num_tokens(self) -> int:
    """S, tokens per window (60 for SleepFM-Clinical's 5-min windows of 5-s patches)."""
    return self.window_samples // self.patch_size

  def replace(self, **changes) -> "EncoderConfig":
    """A copy with some fields changed (e.g. `sleepfm_clinical().replace(channel_encoding=True)`)."""
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    """Every field as JSON-able values (dtypes by name, e.g. "bfloat16"; None = float32 compute)."""
    fields = dataclasses.asdict(self)
    fields["tokenizer_widths"] = list(self.tokenizer_widths)
    for key in ("dtype", "param_dtype"):
      fields[key] = None if fields[key] is None else jnp.dtype(fields[key]).name
    return fields

  @classmethod
  def from_dict(cls, fields: dict[str, Any]) -> "EncoderConfig":
    """Inverse of `to_dict`; also accepts a config's `model.encoder` fields (no dtype keys).

    Raises:
      TypeError: an unknown field.
    """
    fields = dict(fields)
    if "tokenizer_widths" in fields:
      fields["tokenizer_widths"] = tuple(int(w) for w in fields["tokenizer_widths"])
    for key in ("dtype", "param_dtype"):
      if fields.get(key) is not None:
        fields[key] = jnp.dtype(fields[key])
    if fields.get("dtype") is not None and fields["dtype"] == jnp.float32:
      fields["dtype"] = None
    return cls(**fields)

  # The presets are also reachable from the class, so a config can name one by string
  # (`getattr(EncoderConfig, "tiny")()`).
  @staticmethod
  def sleepfm_clinical() -> "EncoderConfig":
    """See the module-level `sleepfm_clinical`."""
    return sleepfm_clinical()

  @staticmethod
  def transfer() -> "EncoderConfig":
    """See the module-level `transfer`."""
    return transfer()

  @staticmethod
  def tiny() -> "EncoderConfig":
    """See the module-level `tiny`."""
    return tiny()


def sleepfm_clinical() -> EncoderConfig:
  """SleepFM-Clinical: E=128, 6 layers, 8 heads, dropout 0.3, 5-s patches at 128 Hz, 5-min windows."""
  return EncoderConfig(patch_size=640, embed_dim=128, num_layers=6, num_heads=8, pooling_heads=8, ff_dim=2048,
                       dropout=0.3, sfreq=128.0, window_s=300.0)


def transfer() -> EncoderConfig:
  """The transfer paper's smaller variant: 1-s patches (128 samples at 128 Hz), 3 layers, 60-s windows."""
  return EncoderConfig(patch_size=128, embed_dim=128, num_layers=3, num_heads=8, pooling_heads=8, ff_dim=2048,
                       dropout=0.3, sfreq=128.0, window_s=60.0)


def tiny() -> EncoderConfig:
  """A seconds-on-CPU variant for tests and notebooks: E=32, 1 layer, 2 (pooling) heads, ff 64, 0.25-s patches."""
  return EncoderConfig(patch_size=32, embed_dim=32, num_layers=1, num_heads=2, pooling_heads=2, ff_dim=64,
                       dropout=0.1, sfreq=128.0, window_s=2.0)


def _conv_lengths(patch_size: int, num_blocks: int) -> list[int]:
  # Conv1d(kernel 5, stride 2, padding 2) maps length L to floor((L - 1) / 2) + 1 = ceil(L / 2).
  lengths, length = [], patch_size
  for _ in range(num_blocks):
    length = (length - 1) // 2 + 1
    lengths.append(length)
  return lengths


class _JointLayerNorm(nnx.Module):
  """LayerNorm over (length, channels) jointly, with an elementwise affine of that shape.

  Equals PyTorch's `nn.LayerNorm([channels, length])` of the reference on an NCL tensor; here the
  layout is NLC.
  """

  def __init__(self, length: int, features: int, *, epsilon: float = 1e-5, dtype=None,
               param_dtype=jnp.float32):
    self.epsilon = epsilon
    self.dtype = dtype
    self.scale = nnx.Param(jnp.ones((length, features), param_dtype))
    self.bias = nnx.Param(jnp.zeros((length, features), param_dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    """x: (N, L, F) -> (N, L, F)."""
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=(-2, -1), keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=(-2, -1), keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
    y = y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)
    return y.astype(self.dtype or x.dtype)


def _group_batch_norm(bn: nnx.BatchNorm, x: jax.Array, mask: jax.Array, bounds: Sequence[int]) -> jax.Array:
  """`bn` in training mode with separate batch statistics per group of rows, in one pass.

  Equals `bn(x[group g], mask=mask[group g])` for g = 0, 1, ... in turn: each group is normalised
  with its own masked mean and (biased, E[x^2] - E[x]^2, clipped at 0) variance, as Flax's
  BatchNorm computes them, and the running averages take the groups' statistics one after the
  other. The groups are static, contiguous row ranges, so each group's statistics are plain
  reductions over a slice (fused by XLA, no copy) and the rows are normalised in one elementwise
  pass with their group's statistics.

  Args:
    bn: the BatchNorm module (its scale, bias, running mean and variance, momentum, epsilon).
    x: (N, L, F) activations.
    mask: (N, 1, 1) bool, True = the row counts in its group's statistics.
    bounds: G + 1 static row offsets, group g = rows [bounds[g], bounds[g + 1]).

  Returns:
    (N, L, F) normalised activations in the module's dtype.
  """
  x32 = x.astype(jnp.promote_types(bn.dtype or x.dtype, jnp.float32))
  w = mask.astype(x32.dtype)  # (N, 1, 1)
  mean_run, var_run = bn.mean[...], bn.var[...]
  row_mu, row_var = [], []
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    xg, wg = x32[lo:hi], w[lo:hi]
    count = jnp.sum(wg) * x.shape[1]
    mu = jnp.sum(xg * wg, axis=(0, 1)) / count  # (F,)
    var = jnp.maximum(0.0, jnp.sum(jnp.square(xg) * wg, axis=(0, 1)) / count - jnp.square(mu))
    mean_run = bn.momentum * mean_run + (1 - bn.momentum) * jax.lax.stop_gradient(mu)
    var_run = bn.momentum * var_run + (1 - bn.momentum) * jax.lax.stop_gradient(var)
    row_mu.append(jnp.broadcast_to(mu, (hi - lo, mu.shape[0])))
    row_var.append(jnp.broadcast_to(var, (hi - lo, var.shape[0])))
  bn.mean[...] = mean_run
  bn.var[...] = var_run
  row_mu, row_var = jnp.concatenate(row_mu), jnp.concatenate(row_var)  # (N, F): each row's group statistics
  y = (x32 - row_mu[:, None]) * (jax.lax.rsqrt(row_var + bn.epsilon) * bn.scale[...])[:, None] + bn.bias[...]
  return y.astype(bn.dtype or x.dtype)


class PatchTokenizer(nnx.Module):
  """Per-channel patch tokenizer: six conv blocks, mean over length, Linear(128, E).

  Args:
    config: `EncoderConfig` (patch_size, tokenizer_widths, embed_dim, bn_momentum, dtypes).
    rngs: nnx.Rngs for parameter initialisation.

  Raises:
    ValueError: if patch_size < 1.
  """

  def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
    if config.patch_size < 1:
      raise ValueError(f"PatchTokenizer: patch_size must be >= 1, got {config.patch_size}")
    self.patch_size = config.patch_size
    widths = (1,) + tuple(config.tokenizer_widths)
    lengths = _conv_lengths(config.patch_size, len(config.tokenizer_widths))
    convs, norms, lns = [], [], []
    for c_in, c_out, length in zip(widths[:-1], widths[1:], lengths):
      convs.append(nnx.Conv(c_in, c_out, kernel_size=(5,), strides=(2,), padding=((2, 2),), dtype=config.dtype,
                            param_dtype=config.param_dtype, rngs=rngs))
      norms.append(nnx.BatchNorm(c_out, momentum=config.bn_momentum, epsilon=1e-5, dtype=config.dtype,
                                 param_dtype=config.param_dtype, rngs=rngs))
      lns.append(_JointLayerNorm(length, c_out, dtype=config.dtype, param_dtype=config.param_dtype))
    self.convs = nnx.List(convs)
    self.batch_norms = nnx.List(norms)
    self.layer_norms = nnx.List(lns)
    self.proj = nnx.Linear(widths[-1], config.embed_dim, dtype=config.dtype, param_dtype=config.param_dtype,
                           rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array, *, train: bool) -> jax.Array:
    """Tokenizes every channel.

    Args:
      x: (B, C, T) float32 signals (uV or z-scored), T a multiple of patch_size.
      mask: (B, C) bool, True = real channel. Padded channels are left out of the BatchNorm batch
        statistics; their tokens are computed but meaningless.
      train: BatchNorm uses (and updates) batch statistics when True, running averages when False.

    Returns:
      (B, C, S, E) tokens, S = T / patch_size.
    """
    return self.tokenize_groups([x], [mask], train=train)[0]

  def tokenize_groups(self, xs: Sequence[jax.Array], masks: Sequence[jax.Array], *,
                      train: bool) -> list[jax.Array]:
    """Tokenizes several groups of signals in one pass, with BatchNorm statistics per group.

    The result equals calling the tokenizer once per group in order (each group's BatchNorm batch
    statistics are its own, and the running averages are updated group after group, as the
    reference's one call of a shared encoder per modality does), but the convolutions, ELUs and
    LayerNorms of every group run as one batch: one copy of the graph to compile instead of one
    per modality.

    Args:
      xs: G arrays (B_g, C_g, T_g) float32, each T_g a multiple of patch_size.
      masks: G arrays (B_g, C_g) bool, True = real channel.
      train: BatchNorm on batch statistics (and updating the running averages) when True.

    Returns:
      G arrays (B_g, C_g, S_g, E), S_g = T_g / patch_size.
    """
    patches, patch_masks, shapes = [], [], []
    for x, mask in zip(xs, masks):
      b, c, t = x.shape
      s = t // self.patch_size
      shapes.append((b, c, s))
      patches.append(x.reshape(b * c * s, self.patch_size, 1))  # (B*C*S, P, 1)
      m = jnp.broadcast_to(mask[:, :, None], (b, c, s)).reshape(b * c * s, 1, 1)
      # An all-padded group would give BatchNorm an empty mean (NaN running statistics forever):
      # then use every patch instead; the outputs are all masked downstream anyway.
      patch_masks.append(m | ~jnp.any(m))
    sizes = [p.shape[0] for p in patches]
    bounds = np.cumsum([0] + sizes)
    h = patches[0] if len(patches) == 1 else jnp.concatenate(patches)  # (N, P, 1)
    patch_mask = patch_masks[0] if len(patch_masks) == 1 else jnp.concatenate(patch_masks)  # (N, 1, 1)
    for conv, bn, ln in zip(self.convs, self.batch_norms, self.layer_norms):
      h = conv(h)
      if train and len(sizes) > 1:
        h = _group_batch_norm(bn, h, patch_mask, [int(b) for b in bounds])
      else:
        h = bn(h, use_running_average=not train, mask=patch_mask)
      h = ln(jax.nn.elu(h))
    h = self.proj(jnp.mean(h, axis=1))  # (N, E)
    return [h[lo:hi].reshape(b, c, s, -1) for lo, hi, (b, c, s) in zip(bounds[:-1], bounds[1:], shapes)]


class _FeedForward(nnx.Module):
  """Linear(E, ff) -> ReLU -> Dropout -> Linear(ff, E), as PyTorch's TransformerEncoderLayer."""

  def __init__(self, embed_dim: int, ff_dim: int, dropout: float, *, dtype, param_dtype, rngs: nnx.Rngs):
    self.fc1 = nnx.Linear(embed_dim, ff_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.fc2 = nnx.Linear(ff_dim, embed_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    return self.fc2(self.dropout(jax.nn.relu(self.fc1(x)), deterministic=not train))


class TransformerLayer(nnx.Module):
  """One transformer encoder layer (self-attention + ReLU feed-forward), post- or pre-norm.

  Post-norm: x = LN(x + Drop(MHA(x))); x = LN(x + Drop(FF(x))) (Vaswani et al. 2017; PyTorch's
  default `norm_first=False`, used by the reference's pooling blocks).
  Pre-norm: x = x + Drop(MHA(LN(x))); x = x + Drop(FF(LN(x))) (`norm_first=True`, the reference's
  temporal transformer).

  Args:
    embed_dim: E.
    num_heads: attention heads (E must be divisible by it).
    ff_dim: feed-forward width.
    dropout: rate for attention weights, the feed-forward hidden layer and both residual branches.
      The attention-weight mask is drawn per element (batch row, head, query, key), as PyTorch's
      `nn.MultiheadAttention` does; Flax's default would share one mask over batch and heads.
    pre_norm: pre-norm if True, post-norm if False.
    dtype, param_dtype: computation and parameter dtypes.
    rngs: nnx.Rngs.
  """

  def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float, *, pre_norm: bool, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.pre_norm = pre_norm
    self.attn = nnx.MultiHeadAttention(num_heads, embed_dim, dropout_rate=dropout, broadcast_dropout=False,
                                       decode=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.ff = _FeedForward(embed_dim, ff_dim, dropout, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm1 = nnx.LayerNorm(embed_dim, epsilon=1e-5, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm2 = nnx.LayerNorm(embed_dim, epsilon=1e-5, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.drop1 = nnx.Dropout(dropout, rngs=rngs)
    self.drop2 = nnx.Dropout(dropout, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, train: bool,
               blocks: jax.Array | None = None) -> jax.Array:
    """Applies the layer.

    Args:
      x: (N, L, E) tokens.
      mask: optional (N, L) bool key-padding mask, True = may be attended to.
      train: dropout on when True.
      blocks: optional (L, L) bool, True where query i may attend to key j (a block-diagonal
        mask keeps several sets of tokens apart in one call).

    Returns:
      (N, L, E).
    """
    attn_mask = None if mask is None else mask[:, None, None, :]  # (N, 1 head, 1 query, L keys)
    if blocks is not None:
      attn_mask = blocks[None, None] if attn_mask is None else attn_mask & blocks[None, None]
    det = not train
    if self.pre_norm:
      h = self.norm1(x)
      x = x + self.drop1(self.attn(h, mask=attn_mask, deterministic=det), deterministic=det)
      return x + self.drop2(self.ff(self.norm2(x), train=train), deterministic=det)
    x = self.norm1(x + self.drop1(self.attn(x, mask=attn_mask, deterministic=det), deterministic=det))
    return self.norm2(x + self.drop2(self.ff(x, train=train), deterministic=det))


class AttentionPooling(nnx.Module):
  """One post-norm transformer layer over a set of tokens, then a (masked) mean over the set.

  The reference's pooling block, used over channels (with the channel mask) and over time (no mask).

  Args:
    embed_dim, num_heads, ff_dim, dropout, dtype, param_dtype: as `TransformerLayer`.
    rngs: nnx.Rngs.
  """

  def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float, *, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.layer = TransformerLayer(embed_dim, num_heads, ff_dim, dropout, pre_norm=False, dtype=dtype,
                                  param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, train: bool) -> jax.Array:
    """Pools a set of tokens.

    Args:
      x: (N, L, E) tokens.
      mask: optional (N, L) bool, True = real token; masked tokens are neither attended to nor
        averaged. A row with no real token pools to zeros.
      train: dropout on when True.

    Returns:
      (N, E).
    """
    h = self.layer(x, mask, train=train)
    if mask is None:
      return jnp.mean(h, axis=1)
    weights = mask[..., None].astype(h.dtype)
    return jnp.sum(h * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)

  def pool_sets(self, x: jax.Array, mask: jax.Array, sizes: Sequence[int], *, train: bool) -> list[jax.Array]:
    """Pools several sets of tokens laid side by side, each set apart from the others.

    Equals calling the block once per set: attention is restricted to each set by a
    block-diagonal mask, and each set is averaged over its own real tokens.

    Args:
      x: (N, L, E) tokens, L = sum(sizes), the sets contiguous in order.
      mask: (N, L) bool, True = real token.
      sizes: the sets' lengths.
      train: dropout on when True.

    Returns:
      One (N, E) array per set.
    """
    bounds = np.cumsum([0] + list(sizes))
    owner = np.repeat(np.arange(len(sizes)), sizes)
    blocks = jnp.asarray(owner[:, None] == owner[None, :])  # (L, L), static
    h = self.layer(x, mask, train=train, blocks=blocks)
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
      w = mask[:, lo:hi, None].astype(h.dtype)
      out.append(jnp.sum(h[:, lo:hi] * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0))
    return out


def sinusoidal_position_encoding(num_tokens: int, embed_dim: int) -> np.ndarray:
  """Transformer sinusoidal position encoding (Vaswani et al. 2017, section 3.5).

  PE[s, 2i] = sin(s / 10000^(2i/E)), PE[s, 2i+1] = cos(s / 10000^(2i/E)).

  Args:
    num_tokens: S.
    embed_dim: E.

  Returns:
    (S, E) float32 NumPy array.
  """
  pos = np.arange(num_tokens, dtype=np.float64)[:, None]
  div = np.exp(np.arange(0, embed_dim, 2, dtype=np.float64) * (-math.log(10000.0) / embed_dim))
  pe = np.zeros((num_tokens, embed_dim), np.float64)
  pe[:, 0::2] = np.sin(pos * div)
  pe[:, 1::2] = np.cos(pos * div)[:, : embed_dim // 2]
  return pe.astype(np.float32)


class SetTransformerEncoder(nnx.Module):
  """SleepFM-Clinical's channel-agnostic encoder for one modality (docs/specification.md §2.1).

  Args:
    config: `EncoderConfig` (see the presets `sleepfm_clinical()`, `transfer()`, `tiny()`).
    rngs: nnx.Rngs; a "dropout" stream is used for dropout if present, else the default stream.

  Raises:
    ValueError: if embed_dim is not divisible by num_heads or pooling_heads, or is odd with
      channel_encoding on.
  """

  def __init__(self, config: EncoderConfig, *, rngs: nnx.Rngs):
    for field in ("num_heads", "pooling_heads"):
      if config.embed_dim % getattr(config, field):
        raise ValueError(f"SetTransformerEncoder: embed_dim {config.embed_dim} is not divisible by "
                         f"{field} {getattr(config, field)}")
    self.config = config
    e, kw = config.embed_dim, dict(dtype=config.dtype, param_dtype=config.param_dtype)
    self.tokenizer = PatchTokenizer(config, rngs=rngs)
    self.channel_encoding = (ChannelPositionalEncoding(e, reference_truncation=config.reference_truncation,
                                                       rngs=rngs, **kw)
                             if config.channel_encoding else None)
    self.channel_pool = AttentionPooling(e, config.pooling_heads, config.ff_dim, config.dropout, rngs=rngs, **kw)
    self.time_norm = nnx.LayerNorm(e, epsilon=1e-5, rngs=rngs, **kw)
    self.layers = nnx.List([
        TransformerLayer(e, config.num_heads, config.ff_dim, config.dropout, pre_norm=True, rngs=rngs, **kw)
        for _ in range(config.num_layers)])
    self.time_pool = AttentionPooling(e, config.pooling_heads, config.ff_dim, config.dropout, rngs=rngs, **kw)

  def get_config(self) -> dict:
    """{"encoder": EncoderConfig fields} (`from_config` rebuilds the module)."""
    return {"encoder": self.config.to_dict()}

  @classmethod
  def from_config(cls, config: dict, *, rngs: nnx.Rngs) -> "SetTransformerEncoder":
    """Inverse of `get_config` (fresh parameters from `rngs`)."""
    return cls(EncoderConfig.from_dict(config["encoder"]), rngs=rngs)

  def __call__(self, x: jax.Array, mask: jax.Array | None = None, positions: jax.Array | None = None, *,
               train: bool) -> tuple[jax.Array, jax.Array]:
    """Encodes a window of one modality.

    Args:
      x: (B, C, T) float32 signals of one modality (uV, or z-scored per channel), T a multiple of
        `config.patch_size`; C is the modality's channel cap.
      mask: (B, C) bool, True = real channel; None means all real. Padded channels may hold
        anything finite.
      positions: (B, C, 3) float32 electrode (x, y, z) on the unit sphere, or None. Used only when
        `config.channel_encoding`; NaN/zero/masked positions (and None) give no channel code.
      train: dropout on and BatchNorm on batch statistics (updating the running averages) when True.

    Returns:
      tokens: (B, S, E) per-time-step embeddings, S = T / patch_size.
      pooled: (B, E) window embedding.

    Raises:
      ValueError: on shapes that do not match (x not 3-D, T not a multiple of the patch size,
        mask or positions of the wrong shape).
    """
    return self.encode_groups({"x": x}, {"x": mask}, {"x": positions}, train=train)["x"]

  def encode_groups(self, signals: Mapping[str, jax.Array], masks: Mapping[str, jax.Array | None] | None = None,
                    positions: Mapping[str, jax.Array | None] | None = None, *,
                    train: bool) -> dict[str, tuple[jax.Array, jax.Array]]:
    """Encodes several modalities with this one (shared) encoder, in one pass.

    The result equals `self(x_m, ...)` for each modality m in turn (SleepFM-Clinical calls its
    shared encoder once per modality; BatchNorm keeps per-modality batch statistics, see
    `PatchTokenizer.tokenize_groups`), but every stage runs once for all modalities: the tokenizer
    on all patches, channel pooling on all channels side by side with a block-diagonal attention
    mask, and the temporal transformer and pooling on the modalities stacked along the batch. The
    compiled step then holds one copy of the encoder instead of one per modality. Dropout masks
    are drawn for the joint arrays (the same distribution as separate calls, other draws).

    Args:
      signals: modality -> (B, C_m, T) float32; B and T must be equal across modalities, T a
        positive multiple of the patch size.
      masks: modality -> (B, C_m) bool or None (all real).
      positions: modality -> (B, C_m, 3) float32 or None (used with `config.channel_encoding`).
      train: dropout on and BatchNorm on batch statistics when True.

    Returns:
      modality -> (tokens (B, S, E), pooled (B, E)), in the order of `signals`.

    Raises:
      ValueError: on shapes that do not match (see `__call__`), or B / T differing across modalities.
    """
    cfg = self.config
    masks, positions = dict(masks or {}), dict(positions or {})
    names = list(signals)
    xs, ms, ps = [], [], []
    for name in names:
      x = jnp.asarray(signals[name])
      if x.ndim != 3:
        raise ValueError(f"SetTransformerEncoder: x must be (B, C, T), got shape {x.shape}")
      b, c, t = x.shape
      if t % cfg.patch_size or t == 0:
        raise ValueError(f"SetTransformerEncoder: T={t} samples is not a positive multiple of the patch size "
                         f"{cfg.patch_size} ({cfg.patch_size / cfg.sfreq:g} s at {cfg.sfreq:g} Hz)")
      mask = masks.get(name)
      mask = jnp.ones((b, c), bool) if mask is None else jnp.asarray(mask, bool)
      if mask.shape != (b, c):
        raise ValueError(f"SetTransformerEncoder: mask must be (B, C) = {(b, c)}, got {mask.shape}")
      pos = positions.get(name)
      if pos is not None and jnp.shape(pos) != (b, c, 3):
        raise ValueError(f"SetTransformerEncoder: positions must be (B, C, 3) = {(b, c, 3)}, "
                         f"got {jnp.shape(pos)}")
      # Padded channels are zeroed so that garbage (even inf) there cannot reach any real output.
      xs.append(jnp.where(mask[:, :, None], x, jnp.zeros_like(x)))
      ms.append(mask)
      ps.append(pos)
    if len({x.shape[0] for x in xs}) > 1 or len({x.shape[2] for x in xs}) > 1:
      raise ValueError(f"SetTransformerEncoder.encode_groups: modalities need one batch size and one length, "
                       f"got {{{', '.join(f'{n}: {tuple(x.shape)}' for n, x in zip(names, xs))}}}")
    b, s = xs[0].shape[0], xs[0].shape[2] // cfg.patch_size
    tokens = self.tokenizer.tokenize_groups(xs, ms, train=train)  # [(B, C_m, S, E)]
    if self.channel_encoding is not None:
      for i, pos in enumerate(ps):
        if pos is not None:
          tokens[i] = tokens[i] + self.channel_encoding(pos, ms[i])[:, :, None, :].astype(tokens[i].dtype)
    # Channel pooling per time step; a single channel has nothing to attend to and skips it.
    pooled = [tok[:, 0] if tok.shape[1] == 1 else None for tok in tokens]  # (B, S, E) each
    multi = [i for i, tok in enumerate(tokens) if tok.shape[1] > 1]
    if multi:
      sizes = [tokens[i].shape[1] for i in multi]
      joint = jnp.concatenate([tokens[i] for i in multi], axis=1)  # (B, sum C, S, E)
      per_step = jnp.swapaxes(joint, 1, 2).reshape(b * s, sum(sizes), -1)  # (B*S, sum C, E)
      step_mask = jnp.concatenate([ms[i] for i in multi], axis=1)
      step_mask = jnp.broadcast_to(step_mask[:, None, :], (b, s, sum(sizes))).reshape(b * s, sum(sizes))
      for i, h in zip(multi, self.channel_pool.pool_sets(per_step, step_mask, sizes, train=train)):
        pooled[i] = h.reshape(b, s, -1)
    # The temporal transformer and pooling on every modality at once, stacked along the batch.
    h = pooled[0] if len(pooled) == 1 else jnp.concatenate(pooled, axis=0)  # (G*B, S, E)
    h = self.time_norm(h + jnp.asarray(sinusoidal_position_encoding(s, cfg.embed_dim), h.dtype))
    for layer in self.layers:
      h = layer(h, train=train)
    window = self.time_pool(h, train=train)  # (G*B, E)
    return {name: (h[i * b:(i + 1) * b], window[i * b:(i + 1) * b]) for i, name in enumerate(names)}
