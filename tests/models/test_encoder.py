"""Tests of the set-transformer encoder and the multimodal wrapper (docs/specification.md §2.1).

Compilation dominates the cost of these tests on a CPU (every new array shape or config compiles
the model again), so the numerical tests share one config (`CFG`) and a few shapes -- B=2, T=64
samples, patches of 32 (S=2), and C in {1, 3, 5} -- run under one `nnx.jit` function, and the
shape grid is checked by abstract evaluation (`jax.eval_shape` traces the whole model without
compiling it).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sleepjax import losses
from sleepjax.models import encoder as encoder_lib
from sleepjax.models import multimodal

TOL = dict(rtol=2e-4, atol=2e-5)
B, T = 2, 64


def _config(**changes):
  return encoder_lib.tiny().replace(**changes)


# The numerical tests share this config; passing positions=None adds no channel code, which is
# the encoder without channel encoding (and shares the compiled programs).
CFG = encoder_lib.tiny().replace(dropout=0.0, channel_encoding=True)


def _rngs(params=0, dropout=1):
  # The "rbg" PRNG compiles about twice as fast as threefry on a CPU, and initialisation
  # compiles one random-number program per parameter shape.
  return nnx.Rngs(params=jax.random.key(params, impl="rbg"), dropout=jax.random.key(dropout, impl="rbg"))


def _signals(b, c, t, seed=0):
  return np.random.default_rng(seed).normal(scale=20.0, size=(b, c, t)).astype(np.float32)


def _positions(b, c, seed=0):
  p = np.random.default_rng(seed).normal(size=(b, c, 3))
  return (p / np.linalg.norm(p, axis=-1, keepdims=True)).astype(np.float32)


def _pad(x, mask, positions, extra, seed=1):
  """Appends `extra` masked channels of garbage (huge values, NaN, inf) to every example."""
  rng = np.random.default_rng(seed)
  b, _, t = x.shape
  garbage = rng.normal(scale=1e4, size=(b, extra, t)).astype(np.float32)
  garbage[:, 0, :5] = np.nan
  garbage[:, -1, -3:] = np.inf
  xp = np.concatenate([x, garbage], axis=1)
  mp = np.concatenate([mask, np.zeros((b, extra), bool)], axis=1)
  pp = np.concatenate([positions, rng.normal(size=(b, extra, 3)).astype(np.float32)], axis=1)
  return xp, mp, pp


def _batch_stats(model):
  return jax.tree.leaves(nnx.state(model, nnx.BatchStat))


@pytest.mark.parametrize("b,c,t,p,channel_encoding", [
    (2, 3, 128, 32, False),
    (1, 4, 96, 16, True),
    (3, 1, 64, 64, True),
    (2, 2, 640 * 3, 640, True),
])
def test_shapes(b, c, t, p, channel_encoding, train=True):
  cfg = _config(patch_size=p, channel_encoding=channel_encoding)
  mask = np.ones((b, c), bool)
  mask[0, -1] = c == 1  # A padded channel whenever there is more than one.

  def apply(x, mask, positions):
    return encoder_lib.SetTransformerEncoder(cfg, rngs=nnx.Rngs(0))(x, mask, positions, train=train)

  tokens, pooled = jax.eval_shape(apply, _signals(b, c, t), mask, _positions(b, c))
  assert (tokens.shape, tokens.dtype) == ((b, t // p, cfg.embed_dim), jnp.float32)
  assert (pooled.shape, pooled.dtype) == ((b, cfg.embed_dim), jnp.float32)


def test_shapes_eval_mode():
  test_shapes(2, 3, 128, 32, True, train=False)


@pytest.mark.parametrize("shared", [True, False])
def test_multimodal_shapes_and_sharing(shared):
  cfg = _config(channel_encoding=True)
  signals = {"bas": _signals(B, 3, T), "ecg": _signals(B, 1, 96, seed=1)}
  mask = {"bas": np.array([[1, 1, 0], [1, 1, 1]], bool), "ecg": np.ones((B, 1), bool)}
  positions = {"bas": _positions(B, 3), "ecg": np.full((B, 1, 3), np.nan, np.float32)}

  def apply(signals, mask, positions):
    model = multimodal.MultiModalEncoder(("bas", "ecg"), cfg, shared=shared, rngs=nnx.Rngs(0))
    return model(signals, mask, positions, train=True)

  out = jax.eval_shape(apply, signals, mask, positions)
  assert list(out) == ["bas", "ecg"]
  assert [o[0].shape for o in out.values()] == [(B, 2, 32), (B, 3, 32)]
  assert [o[1].shape for o in out.values()] == [(B, 32), (B, 32)]

  model = nnx.eval_shape(lambda: multimodal.MultiModalEncoder(("bas", "ecg"), cfg, shared=shared,
                                                              rngs=nnx.Rngs(0)))
  assert (model.encoder_for("bas") is model.encoder_for("ecg")) == shared
  assert model.log_scale.shape == ()
  n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  n_encoder = sum(x.size for x in jax.tree.leaves(nnx.state(model.encoder_for("bas"), nnx.Param)))
  assert n_params == (1 if shared else 2) * n_encoder + 1
  with pytest.raises(KeyError, match="emg"):
    model.encoder_for("emg")
  with pytest.raises(ValueError, match="distinct"):
    multimodal.MultiModalEncoder(("bas", "bas"), cfg, rngs=nnx.Rngs(0))


@functools.partial(nnx.jit, static_argnames="train")
def _apply(model, x, mask, positions, train):
  """The encoder under nnx.jit: one compilation per (config, shapes), BatchNorm updates kept."""
  return model(x, mask, positions, train=train)


def test_padding_invariance_train_and_eval_mode():
  # Dropout off so that both calls see the same randomness; BatchNorm on batch statistics.
  x = _signals(B, 3, T)
  mask = np.array([[1, 1, 1], [1, 1, 0]], bool)  # The reference itself has a padded channel.
  pos = _positions(B, 3)
  xp, mp, pp = _pad(x, mask, pos, extra=2)
  ref = encoder_lib.SetTransformerEncoder(CFG, rngs=_rngs())
  padded = nnx.clone(ref)
  stats_before = [np.array(s) for s in _batch_stats(ref)]
  tok_r, pool_r = _apply(ref, x, mask, pos, train=True)
  tok_p, pool_p = _apply(padded, xp, mp, pp, train=True)
  np.testing.assert_allclose(tok_p, tok_r, **TOL)
  np.testing.assert_allclose(pool_p, pool_r, **TOL)
  # The running averages were updated, from real channels only.
  assert any(not np.allclose(a, b) for a, b in zip(_batch_stats(ref), stats_before))
  for a, b in zip(_batch_stats(padded), _batch_stats(ref)):
    np.testing.assert_allclose(a, b, **TOL)
  # Eval mode on the updated running averages.
  tok_r, pool_r = _apply(ref, x, mask, pos, train=False)
  tok_p, pool_p = _apply(padded, xp, mp, pp, train=False)
  np.testing.assert_allclose(tok_p, tok_r, **TOL)
  np.testing.assert_allclose(pool_p, pool_r, **TOL)
  assert np.all(np.isfinite(pool_p))
  # A mask is needed: the same garbage unmasked changes the output.
  assert not np.allclose(_apply(padded, np.nan_to_num(xp), np.ones_like(mp), pp, train=False)[1], pool_r,
                         atol=1e-3)


def test_channel_permutation_invariance():
  x, mask, pos = _pad(_signals(B, 3, T, seed=3), np.array([[1, 1, 1], [1, 0, 1]], bool), _positions(B, 3), 2)
  perm = np.array([2, 0, 4, 3, 1])
  model = encoder_lib.SetTransformerEncoder(CFG, rngs=_rngs())
  permuted = nnx.clone(model)
  # Without channel encoding (no positions; eval mode, to compile one program less) ...
  tok, pool = _apply(model, x, mask, None, train=False)
  tok_p, pool_p = _apply(permuted, x[:, perm], mask[:, perm], None, train=False)
  np.testing.assert_allclose(tok_p, tok, **TOL)
  np.testing.assert_allclose(pool_p, pool, **TOL)
  for train in (True, False):
    # ... and with it, when the positions move with their channels (BatchNorm statistics too).
    tok, pool = _apply(model, x, mask, pos, train=train)
    tok_p, pool_p = _apply(permuted, x[:, perm], mask[:, perm], pos[:, perm], train=train)
    np.testing.assert_allclose(tok_p, tok, **TOL)
    np.testing.assert_allclose(pool_p, pool, **TOL)
  # Channel encoding makes the encoder see where each signal comes from.
  assert not np.allclose(_apply(model, x[:, perm], mask[:, perm], pos, train=False)[1], pool, atol=1e-4)


def test_channel_encoding_tells_identical_signals_apart():
  model = encoder_lib.SetTransformerEncoder(CFG, rngs=_rngs())
  x = _signals(B, 3, T)
  x[:, 1] = x[:, 0]  # Same signal on two channels: only their positions tell them apart.
  mask = np.array([[1, 1, 0], [1, 1, 0]], bool)
  pos = _positions(B, 3)
  _, pool = _apply(model, x, mask, pos, train=False)
  # Still a set: swapping the two channels together with their positions changes nothing.
  _, pool_swapped = _apply(model, x, mask, pos[:, [1, 0, 2]], train=False)
  np.testing.assert_allclose(pool_swapped, pool, **TOL)
  # Moving one electrode changes the embedding; unknown (NaN) positions give yet another one.
  moved = pos.copy()
  moved[:, 1] = -pos[:, 1]
  assert not np.allclose(_apply(model, x, mask, moved, train=False)[1], pool, atol=1e-4)
  assert not np.allclose(_apply(model, x, mask, np.full_like(pos, np.nan), train=False)[1], pool, atol=1e-4)


def test_single_channel_skips_channel_attention():
  model = encoder_lib.SetTransformerEncoder(CFG, rngs=_rngs())
  x = _signals(B, 1, T)
  tokens, pooled = _apply(model, x, np.ones((B, 1), bool), None, train=False)
  assert tokens.shape == (B, 2, 32) and np.all(np.isfinite(pooled))
  # Changing the channel-pooling weights changes nothing when C == 1 ...
  changed = nnx.clone(model)
  layer = changed.channel_pool.layer
  layer.ff.fc1.kernel[...] = layer.ff.fc1.kernel[...] * 3.0 + 1.0
  tokens2, pooled2 = _apply(changed, x, np.ones((B, 1), bool), None, train=False)
  np.testing.assert_array_equal(tokens2, tokens)
  np.testing.assert_array_equal(pooled2, pooled)
  # ... but it does with more channels.
  x5, mask5 = _signals(B, 5, T), np.ones((B, 5), bool)
  assert not np.allclose(_apply(changed, x5, mask5, None, train=False)[1],
                         _apply(model, x5, mask5, None, train=False)[1])


def test_eval_is_deterministic_and_train_uses_dropout():
  cfg = _config(dropout=0.1)
  model = encoder_lib.SetTransformerEncoder(cfg, rngs=_rngs())
  x = _signals(B, 3, T)
  a = _apply(model, x, None, None, train=False)[1]
  b = _apply(model, x, None, None, train=False)[1]
  np.testing.assert_array_equal(a, b)
  # The dropout stream advances between calls: two training passes differ.
  c = _apply(model, x, None, None, train=True)[1]
  d = _apply(model, x, None, None, train=True)[1]
  assert not np.allclose(c, d)


def test_functional_jit_matches_nnx_jit():
  # The form the trainers use at the jit boundary: split outside, merge inside, and hand the
  # updated BatchNorm statistics back out.
  x, mask, pos = _signals(B, 5, T), np.array([[1, 1, 0, 1, 0], [1, 1, 1, 0, 0]], bool), _positions(B, 5)
  model = encoder_lib.SetTransformerEncoder(CFG, rngs=_rngs())
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  @jax.jit
  def pure(params, rest, x, mask, pos):
    m = nnx.merge(graphdef, params, rest)
    out = m(x, mask, pos, train=True)
    return out, nnx.state(m, nnx.BatchStat)

  (tokens, pooled), stats = pure(params, rest, x, mask, pos)
  tok_n, pool_n = _apply(model, x, mask, pos, train=True)
  np.testing.assert_allclose(tokens, tok_n, **TOL)
  np.testing.assert_allclose(pooled, pool_n, **TOL)
  for a, b in zip(jax.tree.leaves(stats), _batch_stats(model)):
    np.testing.assert_allclose(a, b, **TOL)


def test_contrastive_gradients_are_finite_and_ignore_padding_garbage():
  model = encoder_lib.SetTransformerEncoder(CFG, rngs=_rngs())
  x, mask, _ = _pad(_signals(B, 3, T), np.ones((B, 3), bool), _positions(B, 3), extra=2)
  clean = np.where(mask[:, :, None], x, 0.0).astype(np.float32)

  @nnx.jit
  def value_and_grad(m, x):
    def loss_fn(m):
      tokens, pooled = m(x, mask, train=True)
      # Two "views" of the window stand in for two modalities.
      return losses.loo_contrastive_loss({"pooled": pooled, "tokens": tokens.mean(1)}, 0.5)[0]
    return nnx.value_and_grad(loss_fn)(m)

  loss_garbage, grads = value_and_grad(nnx.clone(model), x)
  loss_clean, grads_clean = value_and_grad(nnx.clone(model), clean)
  np.testing.assert_allclose(loss_garbage, loss_clean, rtol=1e-5)
  assert float(jnp.abs(grads.tokenizer.convs[0].kernel[...]).sum()) > 0.0
  for a, b in zip(jax.tree.leaves(nnx.state(grads, nnx.Param)),
                  jax.tree.leaves(nnx.state(grads_clean, nnx.Param))):
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-6)


def test_bfloat16_compute_dtype():
  cfg = _config(dtype=jnp.bfloat16)

  def apply(x):
    model = encoder_lib.SetTransformerEncoder(cfg, rngs=nnx.Rngs(0))
    return model(x, None, train=True), model.tokenizer.proj.kernel[...]

  (tokens, pooled), kernel = jax.eval_shape(apply, _signals(B, 3, T))
  assert tokens.dtype == pooled.dtype == jnp.bfloat16
  assert kernel.dtype == jnp.float32


def test_presets():
  clinical = encoder_lib.sleepfm_clinical()
  assert (clinical.embed_dim, clinical.num_layers, clinical.num_heads, clinical.dropout) == (128, 6, 8, 0.3)
  assert (clinical.patch_size, clinical.ff_dim, clinical.num_tokens) == (640, 2048, 60)
  assert (encoder_lib.transfer().patch_size, encoder_lib.transfer().num_layers) == (128, 3)
  assert encoder_lib.EncoderConfig.tiny() == encoder_lib.tiny()
  # The reference architecture builds (abstractly, without allocating parameters).
  abstract = nnx.eval_shape(lambda: encoder_lib.SetTransformerEncoder(clinical, rngs=nnx.Rngs(0)))
  assert abstract.tokenizer.proj.kernel.shape == (128, 128)
  assert len(abstract.layers) == 6
  assert abstract.layers[0].ff.fc1.kernel.shape == (128, 2048)


def test_bad_input_raises():
  model = nnx.eval_shape(lambda: encoder_lib.SetTransformerEncoder(_config(), rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match="multiple of the patch size"):
    model(_signals(1, 2, 70), None, train=False)
  with pytest.raises(ValueError, match="mask"):
    model(_signals(1, 2, 64), np.ones((1, 3), bool), train=False)
  with pytest.raises(ValueError, match="positions"):
    model(_signals(1, 2, 64), None, np.zeros((1, 2, 2), np.float32), train=False)
  with pytest.raises(ValueError, match=r"\(B, C, T\)"):
    model(np.zeros((2, 64), np.float32), None, train=False)
  with pytest.raises(ValueError, match="divisible"):
    encoder_lib.SetTransformerEncoder(_config(num_heads=3), rngs=nnx.Rngs(0))


def test_attention_dropout_is_drawn_per_batch_row_and_head():
  # PyTorch's nn.MultiheadAttention (the reference) draws its attention-weight dropout per element;
  # Flax's default would share one mask over the batch and the heads.
  layer = encoder_lib.TransformerLayer(8, 2, 16, 0.5, pre_norm=True, rngs=_rngs())
  assert layer.attn.broadcast_dropout is False
  row = np.random.default_rng(0).normal(size=(1, 6, 8)).astype(np.float32)
  x = jnp.asarray(np.repeat(row, 4, axis=0))  # Four identical batch rows.
  out = np.asarray(layer.attn(x, deterministic=False))
  assert not np.allclose(out[0], out[1])  # Different masks for identical rows.
  np.testing.assert_allclose(np.asarray(layer.attn(x, deterministic=True))[0],
                             np.asarray(layer.attn(x, deterministic=True))[3], rtol=1e-6)


def test_pooling_heads_is_a_field_of_its_own():
  cfg = _config(embed_dim=16, num_heads=4, pooling_heads=2)
  enc = encoder_lib.SetTransformerEncoder(cfg, rngs=_rngs())
  assert enc.channel_pool.layer.attn.num_heads == 2 and enc.time_pool.layer.attn.num_heads == 2
  assert all(layer.attn.num_heads == 4 for layer in enc.layers)
  assert encoder_lib.sleepfm_clinical().pooling_heads == 8
  with pytest.raises(ValueError, match="pooling_heads 3"):
    encoder_lib.SetTransformerEncoder(_config(embed_dim=16, num_heads=4, pooling_heads=3), rngs=_rngs())
  # The JSON form round-trips (saved models rebuild their encoder from it).
  bf16 = cfg.replace(dtype=jnp.bfloat16)
  assert encoder_lib.EncoderConfig.from_dict(bf16.to_dict()) == bf16
  assert encoder_lib.EncoderConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("train", [False, True])
def test_joint_encoding_of_modalities_equals_one_call_per_modality(train):
  # MultiModalEncoder(shared=True) encodes every modality in one pass (one copy of the graph to
  # compile); it must compute what one encoder call per modality computes, BatchNorm running
  # statistics included (updated modality after modality).
  cfg = CFG.replace(dropout=0.0)
  channels = {"bas": 3, "ecg": 1, "resp": 5}
  signals = {m: _signals(B, c, T, seed=i) for i, (m, c) in enumerate(channels.items())}
  masks = {m: np.arange(c)[None].repeat(B, 0) < max(1, c - 1) for m, c in channels.items()}  # One padded channel.
  positions = {m: _positions(B, c, seed=i) for i, (m, c) in enumerate(channels.items())}
  joint = multimodal.MultiModalEncoder(tuple(channels), cfg, rngs=_rngs())
  separate = multimodal.MultiModalEncoder(tuple(channels), cfg, rngs=_rngs())
  got = joint(signals, masks, positions, train=train)
  want = {m: separate.encoder(signals[m], masks[m], positions[m], train=train) for m in channels}
  for m in channels:
    for g, w in zip(got[m], want[m]):
      np.testing.assert_allclose(np.asarray(g), np.asarray(w), **TOL)
  for a, b in zip(jax.tree.leaves(nnx.state(joint, nnx.BatchStat)), jax.tree.leaves(nnx.state(separate, nnx.BatchStat))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  if train:  # The running statistics really moved (three updates, one per modality).
    assert any(np.abs(np.asarray(v) - 1.0).max() > 1e-3
               for v in jax.tree.leaves(nnx.state(joint.encoder.tokenizer.batch_norms[0], nnx.BatchStat)))
  with pytest.raises(ValueError, match="one batch size and one length"):
    joint.encoder.encode_groups({"a": signals["bas"], "b": signals["ecg"][:1]}, train=False)
