"""Channel positional encoding from electrode coordinates (docs/specification.md §2.3, the transfer paper).

Each EEG/EOG channel is placed by its electrode's (x, y, z) on the unit sphere (MNE
`standard_1005`; a bipolar "A-B" derivation at the midpoint of A and B; see
`sleepjax.data.channels.electrode_position`). The encoding is a bank of 3-D Fourier features

  phase(k, p) = (2 pi / w) * (kx (px + m) + ky (py + m) + kz (pz + m)),  m = 0.4, w = 1 + 2 m,

for integer frequencies k = (kx, ky, kz) in {0..F-1}^3, features [cos(phase), sin(phase)] of
length E, followed by Linear(E, E, no bias) -> GELU -> LayerNorm. The margin m shifts the cube
[-1, 1]^3 holding the sphere to [-0.6, 1.4]^3 and w = 1.8 is one period of the lowest non-zero
frequency, so no two points of the cube share a phase at k = (1, 0, 0) etc.

The reference implementation has a bug: with F = 8 and E = 128 it builds 512 phases in
(kx, ky, kz) row-major order (kx varying slowest) and keeps the first E/2 = 64, all of which have
kx = 0. The encoding then ignores left/right, so C3 and C4 (O1 and O2, ...) get the same code up
to their small y/z asymmetry. Here F = the smallest integer with F^3 >= E/2 (F = 4 for E = 128,
exactly E/2 phases) and the frequencies are ordered from low to high total frequency
kx + ky + kz (ties in (kx, ky, kz) lexicographic order), so that when F^3 > E/2 only the highest
frequencies are cut. `reference_truncation=True` reproduces the bug for ablations.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

MARGIN = 0.4
REFERENCE_NUM_FREQS = 8


def default_num_freqs(embed_dim: int) -> int:
  """The smallest F with F^3 >= E/2, so that no useful frequency is truncated.

  Computed with integers: a floating-point cube root rounds 27 ** (1/3) up to 3.0000000000000004.

  Args:
    embed_dim: E, the (even) encoding length.

  Returns:
    F >= 1.

  Raises:
    ValueError: if E is not a positive even integer.
  """
  if embed_dim <= 0 or embed_dim % 2:
    raise ValueError(f"channel encoding: embed_dim must be a positive even integer, got {embed_dim}")
  half = embed_dim // 2
  f = max(1, int(round(half ** (1.0 / 3.0))) - 1)
  while f ** 3 < half:
    f += 1
  return f


def fourier_frequencies(embed_dim: int, *, reference_truncation: bool = False) -> np.ndarray:
  """The E/2 integer frequency vectors k used by the encoding, in order.

  Args:
    embed_dim: E (even).
    reference_truncation: if True, F = 8 and (kx, ky, kz) row-major order (kx slowest), keeping
      the first E/2: the reference's bug (all kx = 0 for E <= 128). If False, F =
      `default_num_freqs(E)` and order by kx + ky + kz, then lexicographically.

  Returns:
    (E/2, 3) int32 array of (kx, ky, kz).

  Raises:
    ValueError: if E is not a positive even integer, or (reference mode) E/2 > 512.
  """
  half = embed_dim // 2
  if reference_truncation:
    if embed_dim <= 0 or embed_dim % 2:
      raise ValueError(f"channel encoding: embed_dim must be a positive even integer, got {embed_dim}")
    f = REFERENCE_NUM_FREQS
    grid = list(itertools.product(range(f), repeat=3))
  else:
    f = default_num_freqs(embed_dim)
    grid = sorted(itertools.product(range(f), repeat=3), key=lambda k: (sum(k), k))
  if len(grid) < half:
    raise ValueError(f"channel encoding: {len(grid)} frequencies (F={f}) cannot fill E/2={half} phases")
  return np.asarray(grid[:half], np.int32)


def valid_positions(positions: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Which channels have a usable electrode position.

  A position is unusable when any coordinate is NaN/inf (not an electrode: ECG, EMG, ...), when it
  is exactly (0, 0, 0) (the batch contract replaces NaN by 0; no electrode sits at the sphere's
  centre), or when the channel is masked out.

  Args:
    positions: (..., 3) float32 (x, y, z) on the unit sphere.
    mask: optional (...) bool channel mask, True = real channel.

  Returns:
    (...) bool.
  """
  positions = jnp.asarray(positions)
  ok = jnp.all(jnp.isfinite(positions), axis=-1) & jnp.any(positions != 0, axis=-1)
  if mask is not None:
    ok = ok & jnp.asarray(mask, bool)
  return ok


def fourier_features(positions: jax.Array, embed_dim: int, *, reference_truncation: bool = False,
                     mask: jax.Array | None = None) -> jax.Array:
  """[cos(phase), sin(phase)] of the electrode positions (before the learned projection).

  Args:
    positions: (..., 3) float32, electrode (x, y, z) on the unit sphere; x left(-)/right(+),
      y posterior(-)/anterior(+), z inferior(-)/superior(+).
    embed_dim: E (even).
    reference_truncation: reproduce the reference's frequency truncation (see module docstring).
    mask: optional (...) bool channel mask.

  Returns:
    (..., E) float32; rows with an unusable position (see `valid_positions`) are zero.
  """
  freqs = jnp.asarray(fourier_frequencies(embed_dim, reference_truncation=reference_truncation),
                      jnp.float32)  # (E/2, 3)
  positions = jnp.asarray(positions, jnp.float32)
  ok = valid_positions(positions, mask)
  # NaNs are replaced before the trig functions so that no NaN reaches a gradient.
  safe = jnp.where(ok[..., None], positions, 0.0)
  width = 1.0 + 2.0 * MARGIN
  phase = (2.0 * math.pi / width) * ((safe + MARGIN) @ freqs.T)  # (..., E/2)
  features = jnp.concatenate([jnp.cos(phase), jnp.sin(phase)], axis=-1)
  return jnp.where(ok[..., None], features, 0.0)


class ChannelPositionalEncoding(nnx.Module):
  """Learned channel code from electrode position: Fourier features -> Linear -> GELU -> LayerNorm.

  Source: the transfer paper ("Pretraining on Sleep Data Improves non-Sleep Biosignal Tasks",
  arXiv 2605.02500), as described in docs/specification.md §2.3, with the frequency truncation fixed (§2.3.3).

  Args:
    embed_dim: E, the token width of the encoder (even).
    reference_truncation: reproduce the reference bug (F = 8, first E/2 phases, all kx = 0).
    dtype: computation dtype (e.g. jnp.bfloat16 on accelerators); None keeps float32.
    param_dtype: parameter dtype.
    rngs: nnx.Rngs for parameter initialisation.

  Raises:
    ValueError: if embed_dim is not a positive even integer.
  """

  def __init__(self, embed_dim: int, *, reference_truncation: bool = False, dtype=None,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    default_num_freqs(embed_dim)  # Validates E.
    self.embed_dim = embed_dim
    self.reference_truncation = reference_truncation
    self.proj = nnx.Linear(embed_dim, embed_dim, use_bias=False, dtype=dtype, param_dtype=param_dtype,
                           rngs=rngs)
    self.norm = nnx.LayerNorm(embed_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

  def __call__(self, positions: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Encodes electrode positions.

    Args:
      positions: (B, C, 3) float32 (or any (..., 3)), electrode (x, y, z) on the unit sphere.
      mask: optional (B, C) bool channel mask, True = real channel.

    Returns:
      (B, C, E): the channel code; exactly zero for channels without a usable position (NaN, all
      zero, or masked), so that non-electrode channels (ECG, EMG, respiration) get no code.
    """
    ok = valid_positions(positions, mask)
    features = fourier_features(positions, self.embed_dim, reference_truncation=self.reference_truncation,
                                mask=mask)
    # Exact (erf) GELU, as torch.nn.GELU in the reference.
    code = self.norm(jax.nn.gelu(self.proj(features), approximate=False))
    return jnp.where(ok[..., None], code, jnp.zeros_like(code))
