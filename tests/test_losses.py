"""Known-answer tests for sleepjax.losses (docs/specification.md §2.2)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import log_loss

from sleepjax import losses


# ----------------------------------------------------------------------------------------------
# Plain float64 NumPy references, written from the formulas of docs/specification.md §2.2 with loops.


def _np_normalise(z):
  return z / np.linalg.norm(z, axis=-1, keepdims=True)


def _np_ce_rows(logits):
  """sum over rows b of -log softmax(logits[b])[b]."""
  total = 0.0
  for b in range(logits.shape[0]):
    row = logits[b]
    log_norm = math.log(sum(math.exp(v - row.max()) for v in row)) + row.max()
    total += log_norm - row[b]
  return total


def _np_loo(zs, t):
  zs = [_np_normalise(np.asarray(z, np.float64)) for z in zs]
  m, b = len(zs), zs[0].shape[0]
  s = math.exp(t)
  total = 0.0
  for i in range(m):
    zbar = sum(zs[j] for j in range(m) if j != i) / (m - 1)
    logits = s * zs[i] @ zbar.T
    total += _np_ce_rows(logits) + _np_ce_rows(logits.T)
  return total / (2 * m * b)


def _np_pairwise(zs, t):
  zs = [_np_normalise(np.asarray(z, np.float64)) for z in zs]
  m, b = len(zs), zs[0].shape[0]
  s = math.exp(t)
  total = 0.0
  for i in range(m):
    for j in range(i + 1, m):
      total += _np_ce_rows(s * zs[i] @ zs[j].T) + _np_ce_rows(s * zs[j] @ zs[i].T)
  return total / (m * (m - 1) * b)


def _embeddings(m=3, b=6, d=5, seed=0):
  rng = np.random.default_rng(seed)
  # Different norms per row check that the loss normalises inside.
  return {f"mod{i}": (rng.normal(size=(b, d)) * rng.uniform(0.5, 3.0, size=(b, 1))).astype(np.float32)
          for i in range(m)}


# ----------------------------------------------------------------------------------------------
# Contrastive losses.


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("t", [0.0, 1.3])
def test_loo_matches_numpy_reference(m, t):
  emb = _embeddings(m=m, seed=m)
  loss, aux = losses.loo_contrastive_loss(emb, jnp.float32(t))
  expected = _np_loo(list(emb.values()), t)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  # The per-modality losses average to the total.
  np.testing.assert_allclose(np.mean([float(v) for v in aux["loss"].values()]), expected, rtol=1e-5)
  assert set(aux["accuracy"]) == set(emb)


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("t", [0.0, 1.3])
def test_pairwise_matches_numpy_reference(m, t):
  emb = _embeddings(m=m, seed=10 + m)
  loss, aux = losses.pairwise_contrastive_loss(emb, jnp.float32(t))
  np.testing.assert_allclose(float(loss), _np_pairwise(list(emb.values()), t), rtol=1e-5)
  assert len(aux["loss"]) == m * (m - 1) // 2


def test_loo_target_is_not_renormalised():
  # A reference that renormalises zbar_{-i} gives a different number for M >= 3.
  emb = _embeddings(m=3, seed=7)
  zs = [_np_normalise(np.asarray(z, np.float64)) for z in emb.values()]
  renorm = 0.0
  for i in range(3):
    zbar = _np_normalise(sum(zs[j] for j in range(3) if j != i) / 2)
    renorm += _np_ce_rows(zs[i] @ zbar.T) + _np_ce_rows(zbar @ zs[i].T)
  renorm /= 2 * 3 * zs[0].shape[0]
  loss, _ = losses.loo_contrastive_loss(emb, 0.0)
  assert abs(float(loss) - renorm) > 1e-3
  np.testing.assert_allclose(float(loss), _np_loo(list(emb.values()), 0.0), rtol=1e-5)


def test_array_input_equals_dict_input():
  emb = _embeddings(m=3)
  stacked = jnp.stack(list(emb.values()))
  for fn in (losses.loo_contrastive_loss, losses.pairwise_contrastive_loss):
    np.testing.assert_allclose(float(fn(stacked, 0.5)[0]), float(fn(emb, 0.5)[0]), rtol=1e-6)


def test_two_modalities_loo_equals_pairwise():
  emb = _embeddings(m=2)
  np.testing.assert_allclose(float(losses.loo_contrastive_loss(emb, 0.7)[0]),
                             float(losses.pairwise_contrastive_loss(emb, 0.7)[0]), rtol=1e-6)


def test_identical_embeddings_large_scale_loss_vanishes():
  rng = np.random.default_rng(3)
  # Orthogonal rows keep the off-diagonal similarities at 0, so the loss is ~B exp(-s).
  base = np.linalg.qr(rng.normal(size=(8, 8)))[0].astype(np.float32)
  emb = {m: base for m in ("eeg", "ecg", "resp")}
  for fn in (losses.loo_contrastive_loss, losses.pairwise_contrastive_loss):
    small, _ = fn(emb, 0.0)
    large, aux = fn(emb, math.log(100.0))
    assert float(small) > 0.5
    assert float(large) < 1e-6
    for acc in aux["accuracy"].values():
      assert float(acc) == 1.0


def test_accuracy_counts_top1_retrieval():
  # Modality b is a's rows shifted by one, so a retrieves the wrong row everywhere.
  a = np.eye(4, dtype=np.float32)
  _, aux = losses.pairwise_contrastive_loss({"a": a, "b": np.roll(a, 1, axis=0)}, 3.0)
  assert float(aux["accuracy"]["a-b"]) == 0.0
  _, aux = losses.pairwise_contrastive_loss({"a": a, "b": a}, 3.0)
  assert float(aux["accuracy"]["a-b"]) == 1.0


def test_mask_equals_dropping_the_samples():
  emb = _embeddings(m=3, b=7, seed=5)
  mask = np.array([1, 1, 0, 1, 0, 1, 1], bool)
  kept = {k: v[mask] for k, v in emb.items()}
  garbage = {k: np.where(mask[:, None], v, 1e3).astype(np.float32) for k, v in emb.items()}
  for fn in (losses.loo_contrastive_loss, losses.pairwise_contrastive_loss):
    full, aux_full = fn(garbage, 0.4, mask=mask)
    ref, aux_ref = fn(kept, 0.4)
    np.testing.assert_allclose(float(full), float(ref), rtol=1e-5)
    for k in aux_ref["accuracy"]:
      np.testing.assert_allclose(float(aux_full["accuracy"][k]), float(aux_ref["accuracy"][k]))
    grads = jax.grad(lambda e: fn(e, 0.4, mask=mask)[0])(garbage)
    for k, g in grads.items():
      assert np.all(np.isfinite(g))
      np.testing.assert_array_equal(np.asarray(g)[~mask], 0.0)


def test_gradient_of_log_scale_is_finite_and_jits():
  emb = _embeddings(m=3)
  g = jax.jit(jax.grad(lambda t: losses.loo_contrastive_loss(emb, t)[0]))(jnp.float32(0.0))
  assert np.isfinite(float(g)) and float(g) != 0.0


def test_contrastive_bad_input():
  with pytest.raises(ValueError, match="at least 2 modalities"):
    losses.loo_contrastive_loss({"eeg": np.zeros((4, 3), np.float32)}, 0.0)
  with pytest.raises(ValueError, match="same"):
    losses.pairwise_contrastive_loss({"eeg": np.zeros((4, 3)), "ecg": np.zeros((5, 3))}, 0.0)
  with pytest.raises(ValueError, match="mask"):
    losses.loo_contrastive_loss(_embeddings(b=6), 0.0, mask=np.ones(5, bool))


def test_clamp_log_scale():
  np.testing.assert_array_equal(losses.clamp_log_scale(jnp.array([-0.5, 0.0, 2.0])), [0.0, 0.0, 2.0])


# ----------------------------------------------------------------------------------------------
# Cross-entropy.


def test_cross_entropy_matches_sklearn_and_ignores_unscored():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(10, 5)).astype(np.float32)
  labels = np.array([0, 1, 2, 3, 4, -1, 2, -1, 0, 4])
  keep = labels >= 0
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  expected = log_loss(labels[keep], probs[keep], labels=range(5))
  np.testing.assert_allclose(float(losses.cross_entropy(logits, labels)), expected, rtol=1e-5)
  np.testing.assert_allclose(float(losses.cross_entropy(logits, labels, reduction="sum")),
                             expected * keep.sum(), rtol=1e-5)
  per = np.asarray(losses.cross_entropy(logits, labels, reduction="none"))
  assert per.shape == (10,)
  np.testing.assert_array_equal(per[~keep], 0.0)
  # No gradient flows into logits of unscored epochs.
  g = jax.grad(lambda x: losses.cross_entropy(x, labels))(jnp.asarray(logits))
  np.testing.assert_array_equal(np.asarray(g)[~keep], 0.0)
  assert np.all(np.asarray(g)[keep] != 0.0)


def test_cross_entropy_mask_and_leading_dims():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(2, 3, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 3))
  mask = np.array([[1, 0, 1], [1, 1, 0]], bool)
  masked = losses.cross_entropy(logits, labels, mask=mask)
  same = losses.cross_entropy(logits, np.where(mask, labels, -1))
  np.testing.assert_allclose(float(masked), float(same), rtol=1e-6)
  assert float(losses.cross_entropy(logits, np.full((2, 3), -1))) == 0.0


def test_cross_entropy_label_smoothing():
  logits = np.array([[2.0, 0.0, -1.0]], np.float32)
  labels = np.array([0])
  eps = 0.1
  log_p = logits[0] - np.log(np.exp(logits[0]).sum())
  target = np.array([1 - eps + eps / 3, eps / 3, eps / 3])
  np.testing.assert_allclose(float(losses.cross_entropy(logits, labels, label_smoothing=eps)),
                             -(target * log_p).sum(), rtol=1e-6)


def test_cross_entropy_class_weights_match_sklearn_sample_weights():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(7, 3)).astype(np.float32)
  labels = np.array([0, 0, 1, 2, 2, 2, -1])  # The unscored position carries no weight.
  weights = np.array([0.5, 2.0, 1.0])
  keep = labels >= 0
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  expected = log_loss(labels[keep], probs[keep], sample_weight=weights[labels[keep]], labels=[0, 1, 2])
  got = float(losses.cross_entropy(logits, labels, class_weights=weights))
  assert got == pytest.approx(expected, rel=1e-5)
  per = np.asarray(losses.cross_entropy(logits, labels, class_weights=weights, reduction="none"))
  unweighted = np.asarray(losses.cross_entropy(logits, labels, reduction="none"))
  np.testing.assert_allclose(per[keep], weights[labels[keep]] * unweighted[keep], rtol=1e-6)
  assert per[~keep].tolist() == [0.0]
  with pytest.raises(ValueError, match="class_weights"):
    losses.cross_entropy(logits, labels, class_weights=np.ones(4))


def test_cross_entropy_bad_input():
  with pytest.raises(ValueError, match="reduction"):
    losses.cross_entropy(np.zeros((2, 3)), np.zeros(2, int), reduction="max")
  with pytest.raises(ValueError, match="shape"):
    losses.cross_entropy(np.zeros((2, 3)), np.zeros(3, int))
  with pytest.raises(ValueError, match="label_smoothing"):
    losses.cross_entropy(np.zeros((2, 3)), np.zeros(2, int), label_smoothing=1.0)


# ----------------------------------------------------------------------------------------------
# Gradient reversal.


@pytest.mark.parametrize("ratio", [0.1, 1.0, 2.5])
def test_gradient_reversal_known_answer(ratio):
  x = jnp.array([[1.0, -2.0], [0.5, 3.0]])
  w = jnp.array([[3.0, 1.0], [-1.0, 2.0]])
  np.testing.assert_array_equal(losses.gradient_reversal(x, ratio), x)
  g_plain = jax.grad(lambda x: jnp.sum(jnp.sin(x) * w))(x)
  g_rev = jax.grad(lambda x: jnp.sum(jnp.sin(losses.gradient_reversal(x, ratio)) * w))(x)
  np.testing.assert_allclose(g_rev, -ratio * g_plain, rtol=1e-6)
  # lambda is a schedule value, not a parameter.
  g_ratio = jax.grad(lambda r: jnp.sum(losses.gradient_reversal(x, r) * w))(jnp.float32(ratio))
  assert float(g_ratio) == 0.0


def test_gradient_reversal_does_not_recompile_when_ratio_changes():
  traces = []

  @jax.jit
  def grad_fn(x, ratio):
    traces.append(1)  # Runs only while tracing.
    return jax.grad(lambda x: jnp.sum(losses.gradient_reversal(x, ratio) ** 2))(x)

  x = jnp.arange(3.0)
  for ratio in (0.0, 0.1, 0.5, 1.0):
    np.testing.assert_allclose(grad_fn(x, jnp.float32(ratio)), -ratio * 2 * x, rtol=1e-6)
  assert len(traces) == 1
