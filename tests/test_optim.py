"""Known-answer tests: SleepMG scores (Eq. 4-6), the balance transform (Eq. 7) and OGM-GE."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from sleepjax import optim
from sleepjax.models import sleepmg


# ---------------------------------------------------------------------------------------------
# Scores s, rho and the imbalance degree.


def test_rho_two_modalities_hand_computed():
  # v = (3, 1): s = (3/4, 1/4); both deviations (1/4)^2, so each ratio is 1/2.
  out = sleepmg.balance_scores(jnp.array([3.0, 1.0]))
  np.testing.assert_allclose(out["s"], [0.75, 0.25], rtol=1e-6)
  np.testing.assert_allclose(out["rho"], [math.tanh(0.5)] * 2, rtol=1e-6)
  np.testing.assert_allclose(out["imbalance"], 2 * 0.25**2, rtol=1e-6)


def test_rho_three_modalities_hand_computed():
  # v = (2, 1, 1): s = (1/2, 1/4, 1/4); deviations from 1/3: (1/36, 1/144, 1/144), sum 1/24;
  # ratios (2/3, 1/6, 1/6).
  out = sleepmg.balance_scores(jnp.array([2.0, 1.0, 1.0]))
  np.testing.assert_allclose(out["s"], [0.5, 0.25, 0.25], rtol=1e-6)
  np.testing.assert_allclose(out["rho"], np.tanh([2 / 3, 1 / 6, 1 / 6]), rtol=1e-5)
  np.testing.assert_allclose(out["imbalance"], 1 / 24, rtol=1e-5)


def test_rho_all_equal_guard():
  out = sleepmg.balance_scores(jnp.array([5.0, 5.0, 5.0, 5.0]))
  np.testing.assert_allclose(out["s"], [0.25] * 4)
  np.testing.assert_allclose(out["rho"], [math.tanh(0.25)] * 4, rtol=1e-6)
  assert float(out["imbalance"]) == 0.0
  # No counted epoch at all: v = 0 everywhere.
  out = sleepmg.balance_scores(jnp.zeros(2))
  np.testing.assert_allclose(out["s"], [0.5, 0.5])
  np.testing.assert_allclose(out["rho"], [math.tanh(0.5)] * 2, rtol=1e-6)


def test_rho_guard_has_finite_gradient_free_jit():
  # The guard must not produce NaN under jit either (where-with-safe-denominator pattern).
  out = jax.jit(sleepmg.balance_scores)(jnp.ones(3))
  assert np.all(np.isfinite(out["rho"]))


def test_performance_values_hand_computed():
  # U=2 modalities, B=3 epochs, K=2 classes; row 2 is unscored (-1), row 1 masked out.
  logits = jnp.array([[[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]],
                      [[math.log(3.0), 0.0], [0.0, 0.0], [0.0, 9.0]]])
  labels = jnp.array([0, 0, -1])
  v = sleepmg.performance_values(logits, labels, mask=jnp.array([True, False, True]))
  np.testing.assert_allclose(v, [0.5, 0.75], rtol=1e-6)
  v = sleepmg.performance_values(logits, jnp.array([0, 0, 1]))
  np.testing.assert_allclose(v, [0.5 + 0.75 + 1 / (1 + math.exp(10)), 0.75 + 0.5 + 1 / (1 + math.exp(-9))],
                             rtol=1e-5)


def test_modality_logits_equal_zero_padded_head():
  rng = np.random.default_rng(0)
  f1, f2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
  kernel, bias = rng.normal(size=(5, 6)), rng.normal(size=(6,))
  out = sleepmg.modality_logits([jnp.asarray(f1), jnp.asarray(f2)], jnp.asarray(kernel), jnp.asarray(bias))
  pad1 = np.concatenate([f1, np.zeros((4, 2))], axis=1)
  pad2 = np.concatenate([np.zeros((4, 3)), f2], axis=1)
  np.testing.assert_allclose(out[0], pad1 @ kernel + bias, rtol=1e-5)
  np.testing.assert_allclose(out[1], pad2 @ kernel + bias, rtol=1e-5)
  with pytest.raises(ValueError, match="sum to"):
    sleepmg.modality_logits([jnp.asarray(f1)], jnp.asarray(kernel), jnp.asarray(bias))


def test_ogm_ge_two_modalities_is_the_original_rule():
  coeff, ratio = sleepmg.ogm_ge_coefficients(jnp.array([3.0, 1.0]), alpha=0.1)
  np.testing.assert_allclose(ratio, [3.0, 1 / 3], rtol=1e-6)
  np.testing.assert_allclose(coeff, [1 - math.tanh(0.3), 1.0], rtol=1e-6)
  # One-vs-rest with U=3: ratio_1 = 4 / mean(1, 1) = 4.
  coeff, ratio = sleepmg.ogm_ge_coefficients(jnp.array([4.0, 1.0, 1.0]), alpha=0.1)
  np.testing.assert_allclose(ratio, [4.0, 0.4, 0.4], rtol=1e-6)
  np.testing.assert_allclose(coeff, [1 - math.tanh(0.4), 1.0, 1.0], rtol=1e-6)
  with pytest.raises(ValueError, match="two modalities"):
    sleepmg.ogm_ge_coefficients(jnp.array([1.0]))


# ---------------------------------------------------------------------------------------------
# The balance transform.

BLOCKS = (2, 3)  # F = 5 fused features: modality 0 owns kernel rows 0-1, modality 1 rows 2-4.
PATHS = {"y": ("head_y", "kernel"), "d": ("head_d", "kernel")}


def _toy_tree(seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  return {"head_y": {"kernel": f(5, 3), "bias": f(3)}, "head_d": {"kernel": f(5, 4), "bias": f(4)},
          "extractors": {"eeg": {"conv": {"kernel": f(7, 1, 2)}}}}


def test_block_scale_rows():
  np.testing.assert_array_equal(optim.block_scale(jnp.array([2.0, 3.0]), BLOCKS), [2, 2, 3, 3, 3])
  with pytest.raises(ValueError, match="rho has shape"):
    optim.block_scale(jnp.ones(3), BLOCKS)


def test_balance_scales_row_blocks_exactly_and_leaves_the_rest():
  tree = _toy_tree()
  tx = optim.modality_balance(PATHS, BLOCKS)
  rho = {"y": jnp.array([0.5, 2.0]), "d": jnp.array([3.0, 0.25])}
  out, _ = tx.update(tree, tx.init(tree), rho=rho)
  ky, kd = np.asarray(tree["head_y"]["kernel"]), np.asarray(tree["head_d"]["kernel"])
  # Row blocks of the Flax (in, out) kernel = the paper's column blocks W^u.
  np.testing.assert_array_equal(out["head_y"]["kernel"][:2], ky[:2] * np.float32(0.5))
  np.testing.assert_array_equal(out["head_y"]["kernel"][2:], ky[2:] * np.float32(2.0))
  np.testing.assert_array_equal(out["head_d"]["kernel"][:2], kd[:2] * np.float32(3.0))
  np.testing.assert_array_equal(out["head_d"]["kernel"][2:], kd[2:] * np.float32(0.25))
  for path in (("head_y", "bias"), ("head_d", "bias"), ("extractors", "eeg", "conv", "kernel")):
    a, b = tree, out
    for k in path:
      a, b = a[k], b[k]
    assert b is a  # Untouched leaves are passed through, hence bit-identical.


def test_balance_head_absent_from_rho_is_unscaled_and_partition_function():
  tree = _toy_tree()
  tx = optim.modality_balance(lambda p: "y" if p == ("head_y", "kernel") else None, BLOCKS)
  out, _ = tx.update(tree, tx.init(tree), rho={"y": jnp.array([0.0, 1.0])})
  np.testing.assert_array_equal(out["head_y"]["kernel"][:2], 0.0)
  np.testing.assert_array_equal(out["head_y"]["kernel"][2:], tree["head_y"]["kernel"][2:])
  assert out["head_d"]["kernel"] is tree["head_d"]["kernel"]


def test_balance_errors():
  tree = _toy_tree()
  tx = optim.modality_balance(PATHS, BLOCKS)
  with pytest.raises(ValueError, match="needs rho"):
    tx.update(tree, tx.init(tree))
  with pytest.raises(ValueError, match="rows"):
    optim.modality_balance(PATHS, (2, 2)).update(tree, (), rho={"y": jnp.ones(2), "d": jnp.ones(2)})
  with pytest.raises(ValueError, match="no kernel found"):
    optim.modality_balance({"y": ("head_q", "kernel")}, BLOCKS).update(tree, (), rho={"y": jnp.ones(2)})


def test_balance_on_nnx_state_paths():
  # nnx.State leaves are Variables (paths end in `.value`); the Flax kernel is (in, out).
  lin = nnx.Linear(5, 3, rngs=nnx.Rngs(0))
  state = nnx.state(lin, nnx.Param)
  tx = optim.modality_balance({"y": ("kernel",)}, BLOCKS)
  out, _ = tx.update(state, tx.init(state), rho={"y": jnp.array([2.0, 0.0])})
  k = np.asarray(state["kernel"][...])
  np.testing.assert_array_equal(np.asarray(out["kernel"][...])[:2], 2 * k[:2])
  np.testing.assert_array_equal(np.asarray(out["kernel"][...])[2:], 0.0)
  np.testing.assert_array_equal(np.asarray(out["bias"][...]), np.asarray(state["bias"][...]))


def test_adam_after_balance_differs_from_adam_only_in_the_blocks():
  params = _toy_tree(0)
  tx_bal = optim.make_optimizer(optim.OptimizerConfig(name="adam", learning_rate=1e-3, b1=0.5, b2=0.999),
                                first=optim.modality_balance(PATHS, BLOCKS))
  tx_adam = optax.adam(1e-3, b1=0.5, b2=0.999)
  s_bal, s_adam, s_ref = tx_bal.init(params), tx_adam.init(params), tx_adam.init(params)
  # Varying rho over steps (with a constant rho Adam would cancel it up to epsilon).
  rhos = [{"y": jnp.array([0.2, 0.9]), "d": jnp.array([1.0, 0.5])},
          {"y": jnp.array([0.9, 0.1]), "d": jnp.array([0.3, 0.7])},
          {"y": jnp.array([0.5, 0.5]), "d": jnp.array([0.8, 0.2])}]
  for t, rho in enumerate(rhos):
    grads = _toy_tree(10 + t)
    u_bal, s_bal = tx_bal.update(grads, s_bal, params, rho=rho)
    u_adam, s_adam = tx_adam.update(grads, s_adam, params)
    # Reference: plain Adam fed the hand-scaled gradients (SleepMG Eq. 7 then Eq. 8-12).
    scaled = jax.tree.map(lambda x: x, grads)
    for h in ("y", "d"):
      k = scaled[f"head_{h}"]["kernel"]
      scaled[f"head_{h}"]["kernel"] = k * np.repeat(np.asarray(rho[h]), BLOCKS)[:, None].astype(np.float32)
    u_ref, s_ref = tx_adam.update(scaled, s_ref, params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), u_bal, u_ref)
    for path in (("head_y", "bias"), ("head_d", "bias")):
      np.testing.assert_array_equal(u_bal[path[0]][path[1]], u_adam[path[0]][path[1]])
    np.testing.assert_array_equal(u_bal["extractors"]["eeg"]["conv"]["kernel"],
                                  u_adam["extractors"]["eeg"]["conv"]["kernel"])
  # After varying rho the kernel updates really differ from plain Adam's.
  assert not np.allclose(u_bal["head_y"]["kernel"], u_adam["head_y"]["kernel"], rtol=1e-3)


def test_make_optimizer_kinds_accept_extra_args_and_reject_unknown_names():
  params = _toy_tree()
  for name in optim.OPTIMIZERS:
    tx = optim.make_optimizer(optim.OptimizerConfig(name=name))
    upd, _ = tx.update(params, tx.init(params), params, rho={"y": jnp.ones(2)})  # extra arg ignored
    assert jax.tree.structure(upd) == jax.tree.structure(params)
  with pytest.raises(ValueError, match="optimizer.name"):
    optim.OptimizerConfig(name="rmsprop")
  with pytest.raises(ValueError, match="weight_decay"):
    optim.OptimizerConfig(name="adam", weight_decay=1e-4)


def test_frozen_parameters_get_exactly_zero_updates_even_with_weight_decay():
  params = _toy_tree()
  tx = optim.make_optimizer(optim.OptimizerConfig(name="adamw", weight_decay=0.1, frozen=("extractors",)))
  upd, _ = tx.update(_toy_tree(1), tx.init(params), params)
  assert all(np.all(np.asarray(u) == 0) for u in jax.tree.leaves(upd["extractors"]))
  assert all(np.any(np.asarray(u) != 0) for u in jax.tree.leaves(upd["head_y"]))
