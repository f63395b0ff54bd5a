"""FeatureNet: the dual-scale CNN feature extractor of MSTGCN, used as SleepMG's backbone.

One FeatureNet maps one channel of one 30-s epoch (3000 samples at 100 Hz) to 256 features:
a small-kernel branch that resolves high-frequency detail (spindles, alpha, EMG bursts) and a
large-kernel branch that sees slow waves and eye movements. Layer by layer (docs/specification.md §4.2):

  small branch: Conv(1->32, k=50, stride 6, valid) BN ReLU -> MaxPool 16/16 -> Dropout 0.5
                -> 3 x [Conv(64, k=8, same) BN ReLU] -> MaxPool 8/8 -> flatten
                lengths: 3000 -> 492 -> 30 -> 30 -> 3; 3 x 64 = 192 features
  large branch: Conv(1->64, k=400, stride 50, valid) BN ReLU -> MaxPool 8/8 -> Dropout 0.5
                -> 3 x [Conv(64, k=6, same) BN ReLU] -> MaxPool 4/4 -> flatten
                lengths: 3000 -> 53 -> 6 -> 6 -> 1; 1 x 64 = 64 features

Channel handling (`ModalityFeatureNet`): MSTGCN turns every channel into one graph node whose
256 features come from the same FeatureNet applied channel by channel, so by default the C_u
channels of a modality share one FeatureNet (weights tied, run as a batch of C_u signals) and the
modality's feature is the concatenation of the C_u per-channel vectors, 256 * C_u wide, in
montage order. Sharing keeps the parameter count independent of the montage and lets a
derivation that is weak on one night borrow the filters learnt on its neighbours;
`share_channel_weights=False` gives every channel its own FeatureNet (an ablation).

References:
  Jia, Z. et al. (2021). Multi-View Spatial-Temporal Graph Convolutional Networks With Domain
    Generalization for Sleep Stage Classification (MSTGCN). IEEE TNSRE 29. (FeatureNet.)
  SleepMG (ACM MM 2024), section 5.2: FeatureNet as the backbone of NaiveMG and SleepMG.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

# Input length fixed by the architecture: the flattened widths below hold only for it.
EPOCH_SAMPLES = 3000  # 30 s at 100 Hz.
SMALL_BRANCH_FEATURES = 192
LARGE_BRANCH_FEATURES = 64
FEATURES_PER_CHANNEL = SMALL_BRANCH_FEATURES + LARGE_BRANCH_FEATURES  # 256


def _conv_out_len(n: int, kernel: int, stride: int) -> int:
  return (n - kernel) // stride + 1


def branch_lengths(num_samples: int = EPOCH_SAMPLES) -> dict[str, tuple[int, ...]]:
  """Temporal length after each stage of both branches ('valid' convs and pools, floor).

  Args:
    num_samples: samples per channel and epoch.

  Returns:
    {"small": (conv1, pool1, pool2), "large": (conv1, pool1, pool2)} lengths in samples.
  """
  s1 = _conv_out_len(num_samples, 50, 6)
  s2 = s1 // 16
  s3 = s2 // 8
  l1 = _conv_out_len(num_samples, 400, 50)
  l2 = l1 // 8
  l3 = l2 // 4
  return {"small": (s1, s2, s3), "large": (l1, l2, l3)}


class _ConvBNReLU(nnx.Module):
  """Conv1d -> BatchNorm -> ReLU on (B, T, C) inputs."""

  def __init__(self, in_features: int, out_features: int, kernel: int, stride: int,
               padding: str, *, bn_momentum: float, rngs: nnx.Rngs):
    # No conv bias: the BatchNorm shift that follows makes it redundant.
    self.conv = nnx.Conv(in_features, out_features, kernel_size=(kernel,), strides=(stride,),
                         padding=padding, use_bias=False, rngs=rngs)
    self.bn = nnx.BatchNorm(out_features, momentum=bn_momentum, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.relu(self.bn(self.conv(x)))


def _max_pool(x: jax.Array, size: int) -> jax.Array:
  """Non-overlapping max pool over time of (B, T, C); a ragged tail is dropped (floor)."""
  b, t, c = x.shape
  n = t // size
  return x[:, : n * size].reshape(b, n, size, c).max(axis=2)


class FeatureNet(nnx.Module):
  """MSTGCN FeatureNet: one channel of a 30-s epoch -> 256 features (docs/specification.md §4.2).

  Call with `x`: (B, 3000) float32 signal in microvolts at 100 Hz (one channel per row), and
  optionally `rngs` (an `nnx.Rngs` with a `dropout` stream, or a key) when in train mode.
  Returns (B, 256) float32: the 192 small-branch features followed by the 64 large-branch ones,
  each branch flattened time-major (t0 all 64 filters, t1 ...).

  Raises:
    ValueError: if the input is not (B, 3000).
  """

  def __init__(self, *, dropout_rate: float = 0.5, bn_momentum: float = 0.9,
               rngs: nnx.Rngs):
    """Builds the two branches.

    Args:
      dropout_rate: dropout after the first pool of each branch (0.5 in MSTGCN/SleepMG).
      bn_momentum: running-statistics decay of BatchNorm (0.9 = PyTorch's momentum 0.1).
      rngs: parameter initialisation keys.
    """
    m = bn_momentum
    self.small_in = _ConvBNReLU(1, 32, 50, 6, "VALID", bn_momentum=m, rngs=rngs)
    self.small_convs = nnx.List([
        _ConvBNReLU(32 if i == 0 else 64, 64, 8, 1, "SAME", bn_momentum=m, rngs=rngs)
        for i in range(3)])
    self.large_in = _ConvBNReLU(1, 64, 400, 50, "VALID", bn_momentum=m, rngs=rngs)
    self.large_convs = nnx.List([
        _ConvBNReLU(64, 64, 6, 1, "SAME", bn_momentum=m, rngs=rngs) for _ in range(3)])
    # Dropout keys come from the caller at each call (explicit per-step keys in the trainer).
    self.dropout = nnx.Dropout(dropout_rate)

  def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | jax.Array | None = None) -> jax.Array:
    if x.ndim != 2 or x.shape[-1] != EPOCH_SAMPLES:
      raise ValueError(
          f"FeatureNet expects (B, {EPOCH_SAMPLES}) = 30 s at 100 Hz per channel, got {x.shape}")
    x = x[..., None]  # (B, T, 1)
    small = _max_pool(self.small_in(x), 16)
    small = self.dropout(small, rngs=rngs)
    for layer in self.small_convs:
      small = layer(small)
    small = _max_pool(small, 8)  # (B, 3, 64)
    large = _max_pool(self.large_in(x), 8)
    large = self.dropout(large, rngs=rngs)
    for layer in self.large_convs:
      large = layer(large)
    large = _max_pool(large, 4)  # (B, 1, 64)
    b = x.shape[0]
    return jnp.concatenate([small.reshape(b, -1), large.reshape(b, -1)], axis=-1)


class ModalityFeatureNet(nnx.Module):
  """FeatureNet(s) for one modality: (B, C_u, 3000) -> (B, 256 * C_u).

  Call with `x`: (B, C_u, 3000) float32 microvolts at 100 Hz, channels in montage order, and
  optionally `rngs` for dropout. Returns (B, 256 * C_u) float32, channel c occupying columns
  [256 c, 256 (c + 1)).

  Raises:
    ValueError: if the channel count differs from the one the module was built for.
  """

  def __init__(self, num_channels: int, *, share_channel_weights: bool = True,
               dropout_rate: float = 0.5, bn_momentum: float = 0.9, rngs: nnx.Rngs):
    """Builds one shared FeatureNet, or one per channel.

    Args:
      num_channels: C_u, channels of this modality.
      share_channel_weights: one FeatureNet applied to every channel (MSTGCN's per-node
        extractor; default) or one FeatureNet per channel.
      dropout_rate: see `FeatureNet`.
      bn_momentum: see `FeatureNet`.
      rngs: parameter initialisation keys.

    Raises:
      ValueError: if num_channels < 1.
    """
    if num_channels < 1:
      raise ValueError(f"a modality needs at least one channel, got {num_channels}")
    self.num_channels = num_channels
    self.share_channel_weights = share_channel_weights
    n_nets = 1 if share_channel_weights else num_channels
    self.nets = nnx.List([
        FeatureNet(dropout_rate=dropout_rate, bn_momentum=bn_momentum, rngs=rngs)
        for _ in range(n_nets)])

  @property
  def num_features(self) -> int:
    return FEATURES_PER_CHANNEL * self.num_channels

  def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | jax.Array | None = None) -> jax.Array:
    if x.ndim != 3 or x.shape[1] != self.num_channels:
      raise ValueError(
          f"expected (B, {self.num_channels}, {EPOCH_SAMPLES}) for this modality, got {x.shape}")
    b, c, t = x.shape
    if self.share_channel_weights:
      # Channels folded into the batch: one BatchNorm over all channels, as a per-node extractor.
      feats = self.nets[0](x.reshape(b * c, t), rngs=rngs).reshape(b, c, FEATURES_PER_CHANNEL)
    else:
      feats = jnp.stack([net(x[:, i], rngs=rngs) for i, net in enumerate(self.nets)], axis=1)
    return feats.reshape(b, c * FEATURES_PER_CHANNEL)  # (B, 256 C_u)


def modality_widths(channels_per_modality: Sequence[int]) -> tuple[int, ...]:
  """Feature widths 256 * C_u of the modalities in order (the SleepMG column-block sizes)."""
  return tuple(FEATURES_PER_CHANNEL * int(c) for c in channels_per_modality)
