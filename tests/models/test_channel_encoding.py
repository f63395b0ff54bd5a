"""Tests of the electrode-position channel encoding (docs/specification.md §2.3)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sleepjax.models import channel_encoding as ce


def _electrode(label):
  """Unit-sphere position of a 10-05 electrode: the project's lookup, else MNE's montage directly."""
  try:
    from sleepjax.data.channels import electrode_position  # pylint: disable=import-outside-toplevel
    return np.asarray(electrode_position(label), np.float32)
  except ImportError:
    import mne  # pylint: disable=import-outside-toplevel
    pos = np.asarray(mne.channels.make_standard_montage("standard_1005").get_positions()["ch_pos"][label])
    return (pos / np.linalg.norm(pos)).astype(np.float32)


def _mirror(p):
  """The left/right mirror image: where the homologous electrode sits on a symmetric head."""
  return np.array([-p[0], p[1], p[2]], np.float32)


def _rngs(seed):
  return nnx.Rngs(params=jax.random.key(seed, impl="rbg"))


@pytest.mark.parametrize("embed_dim,expected", [(2, 1), (16, 2), (32, 3), (54, 3), (56, 4), (128, 4), (130, 5)])
def test_default_num_freqs_is_smallest_cube_covering_half(embed_dim, expected):
  f = ce.default_num_freqs(embed_dim)
  assert f == expected
  assert f ** 3 >= embed_dim // 2 > (f - 1) ** 3


@pytest.mark.parametrize("embed_dim", [0, 7, -4])
def test_bad_embed_dim_raises(embed_dim):
  with pytest.raises(ValueError, match="even"):
    ce.default_num_freqs(embed_dim)
  with pytest.raises(ValueError, match="even"):
    ce.ChannelPositionalEncoding(embed_dim, rngs=nnx.Rngs(0))


def test_fixed_frequencies_cover_every_axis_low_first():
  k = ce.fourier_frequencies(128)
  assert k.shape == (64, 3)
  # E = 128: exactly the 4^3 cube, each vector once.
  assert {tuple(r) for r in k} == set(itertools.product(range(4), repeat=3))
  totals = k.sum(axis=1)
  assert np.all(np.diff(totals) >= 0)
  np.testing.assert_array_equal(k[:4], [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]])
  # E = 32: 16 of the 27 vectors of {0,1,2}^3; all with total frequency <= 2 are kept.
  k = ce.fourier_frequencies(32)
  assert len({tuple(r) for r in k}) == 16
  low = {v for v in itertools.product(range(3), repeat=3) if sum(v) <= 2}
  assert low <= {tuple(r) for r in k}


def test_reference_truncation_keeps_only_kx_zero():
  k = ce.fourier_frequencies(128, reference_truncation=True)
  assert k.shape == (64, 3)
  # The reference bug: 8^3 = 512 phases in row-major order, of which the first 64 have kx = 0.
  assert np.all(k[:, 0] == 0)
  np.testing.assert_array_equal(k[:9], [[0, 0, z] for z in range(8)] + [[0, 1, 0]])


@pytest.mark.parametrize("reference_truncation", [False, True])
def test_fourier_features_known_answer(reference_truncation):
  embed_dim = 32
  pos = np.array([[0.3, -0.5, 0.81], [-0.9, 0.1, 0.42]], np.float32)
  pos /= np.linalg.norm(pos, axis=1, keepdims=True)
  # Written from docs/specification.md §2.3.2 directly.
  if reference_truncation:
    ks = list(itertools.product(range(8), repeat=3))[:embed_dim // 2]
  else:
    ks = sorted(itertools.product(range(3), repeat=3), key=lambda k: (sum(k), k))[:embed_dim // 2]
  m, w = 0.4, 1.8
  expected = np.zeros((2, embed_dim))
  for row, p in enumerate(pos.astype(np.float64)):
    for j, (kx, ky, kz) in enumerate(ks):
      phase = 2 * math.pi / w * (kx * (p[0] + m) + ky * (p[1] + m) + kz * (p[2] + m))
      expected[row, j] = math.cos(phase)
      expected[row, embed_dim // 2 + j] = math.sin(phase)
  got = ce.fourier_features(pos, embed_dim, reference_truncation=reference_truncation)
  np.testing.assert_allclose(got, expected, atol=2e-5)


def test_c3_and_c4_get_different_codes_unlike_the_reference():
  c3, c4 = _electrode("C3"), _electrode("C4")
  assert c3[0] < -0.5 and c4[0] > 0.5  # Left and right hemisphere.
  fixed = np.asarray(ce.fourier_features(np.stack([c3, c4]), 128))
  ref = np.asarray(ce.fourier_features(np.stack([c3, c4]), 128, reference_truncation=True))
  # The fixed features see the hemisphere ...
  assert np.abs(fixed[0] - fixed[1]).max() > 1.0
  # ... the reference's see only the small y/z asymmetry of the template head.
  assert np.linalg.norm(ref[0] - ref[1]) < 0.1 * np.linalg.norm(fixed[0] - fixed[1])
  # On a symmetric head (C4 = mirror of C3) the reference codes are identical, before the Linear
  # and after it with any weights; the fixed ones are not.
  pair = np.stack([c3, _mirror(c3)])[None]  # (1, 2, 3)
  ref = np.asarray(ce.fourier_features(pair, 128, reference_truncation=True))
  np.testing.assert_array_equal(ref[0, 0], ref[0, 1])
  for seed in range(3):
    buggy = ce.ChannelPositionalEncoding(128, reference_truncation=True, rngs=_rngs(seed))
    fixed_module = ce.ChannelPositionalEncoding(128, rngs=_rngs(seed))
    code = np.asarray(buggy(pair))
    np.testing.assert_array_equal(code[0, 0], code[0, 1])
    code = np.asarray(fixed_module(pair))
    assert np.abs(code[0, 0] - code[0, 1]).max() > 0.1


def test_homologous_pairs_differ_with_the_fixed_encoding():
  module = ce.ChannelPositionalEncoding(128, rngs=_rngs(0))
  pairs = [("O1", "O2"), ("F3", "F4"), ("C3", "C4")]
  pos = np.stack([np.stack([_electrode(a), _electrode(b)]) for a, b in pairs])  # (3, 2, 3)
  code = np.asarray(module(pos))
  assert code.shape == (3, 2, 128)
  for i in range(3):
    assert np.abs(code[i, 0] - code[i, 1]).max() > 0.1


def test_unknown_or_masked_positions_give_zero_code():
  module = ce.ChannelPositionalEncoding(32, rngs=_rngs(0))
  pos = np.stack([_electrode("Cz"), _electrode("ECG"), np.zeros(3, np.float32), _electrode("O1")])[None]
  mask = np.array([[True, True, True, False]])
  assert np.all(np.isnan(pos[0, 1]))  # ECG has no electrode position.
  code = np.asarray(module(pos, mask))
  assert np.abs(code[0, 0]).max() > 0.1
  np.testing.assert_array_equal(code[0, 1:], 0.0)
  np.testing.assert_array_equal(ce.valid_positions(pos, mask), [[True, False, False, False]])

  # No NaN leaks into the parameter gradients through the unknown position.
  def loss(m):
    return jnp.sum(m(pos, mask) ** 2)

  grads = nnx.grad(loss)(module)
  leaves = jax.tree.leaves(nnx.state(grads, nnx.Param))
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert any(np.abs(g).sum() > 0 for g in leaves)


def test_code_is_layer_normalised_and_has_no_bias():
  module = ce.ChannelPositionalEncoding(32, rngs=_rngs(1))
  assert module.proj.bias is None
  code = np.asarray(module(np.stack([_electrode("C3"), _electrode("Pz")])[None]))
  np.testing.assert_allclose(code.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(code.std(-1), 1.0, rtol=1e-2)
