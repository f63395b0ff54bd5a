"""FeatureNet (MSTGCN / SleepMG backbone): flattened sizes by arithmetic, shapes, channel layout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from sleepjax.models import featurenet


def test_flattened_sizes_by_arithmetic():
  # Small branch: conv k=50 s=6 'valid' on 3000 samples -> floor((3000 - 50) / 6) + 1 = 492;
  # pool 16 -> 30; three 'same' convs keep 30; pool 8 -> 3; 3 x 64 filters = 192.
  # Large branch: conv k=400 s=50 -> floor((3000 - 400) / 50) + 1 = 53; pool 8 -> 6; pool 4 -> 1;
  # 1 x 64 = 64.
  lengths = featurenet.branch_lengths(3000)
  assert lengths == {"small": (492, 30, 3), "large": (53, 6, 1)}
  assert lengths["small"][-1] * 64 == featurenet.SMALL_BRANCH_FEATURES == 192
  assert lengths["large"][-1] * 64 == featurenet.LARGE_BRANCH_FEATURES == 64
  assert featurenet.FEATURES_PER_CHANNEL == 256


@pytest.mark.parametrize("batch", [1, 3])
def test_featurenet_shape(batch):
  net = featurenet.FeatureNet(rngs=nnx.Rngs(0))
  net.eval()
  out = jax.eval_shape(net, jax.ShapeDtypeStruct((batch, 3000), jnp.float32))
  assert out.shape == (batch, 256) and out.dtype == jnp.float32


@pytest.mark.parametrize("channels,share", [(1, True), (2, True), (2, False)])
def test_modality_featurenet_shape_and_params(channels, share):
  net = featurenet.ModalityFeatureNet(channels, share_channel_weights=share, rngs=nnx.Rngs(0))
  net.eval()
  out = jax.eval_shape(net, jax.ShapeDtypeStruct((2, channels, 3000), jnp.float32))
  assert out.shape == (2, 256 * channels) == (2, net.num_features)
  n_params = sum(x.size for x in jax.tree.leaves(nnx.state(net, nnx.Param)))
  one = sum(x.size for x in jax.tree.leaves(nnx.state(featurenet.FeatureNet(rngs=nnx.Rngs(0)), nnx.Param)))
  assert n_params == (one if share else channels * one)


def test_shared_channels_are_column_blocks_of_the_per_channel_net():
  net = featurenet.ModalityFeatureNet(2, rngs=nnx.Rngs(0))
  net.eval()  # Running statistics: per-row outputs do not depend on the rest of the batch.
  x = jax.random.normal(jax.random.key(1), (3, 2, 3000)) * 20.0  # ~20 uV
  both = nnx.jit(lambda m, x: m(x))(net, x)
  single = nnx.jit(lambda m, x: m.nets[0](x))(net, x[:, 1])
  np.testing.assert_allclose(both[:, 256:], single, rtol=1e-4, atol=1e-5)
  assert not np.allclose(both[:, :256], both[:, 256:])


def test_dropout_needs_a_key_in_train_mode_and_is_random():
  net = featurenet.FeatureNet(rngs=nnx.Rngs(0))
  x = jnp.ones((2, 3000))
  net.train()
  fwd = nnx.jit(lambda m, x, k: m(x, rngs=nnx.Rngs(dropout=k)))
  a = fwd(net, x, jax.random.key(0))
  b = fwd(net, x, jax.random.key(1))
  assert a.shape == (2, 256) and not np.allclose(a, b)


def test_bad_input_shapes():
  with pytest.raises(ValueError, match=r"\(B, 3000\)"):
    featurenet.FeatureNet(rngs=nnx.Rngs(0))(jnp.ones((2, 2999)))
  with pytest.raises(ValueError, match="expected"):
    featurenet.ModalityFeatureNet(2, rngs=nnx.Rngs(0))(jnp.ones((2, 3, 3000)))
  with pytest.raises(ValueError, match="at least one channel"):
    featurenet.ModalityFeatureNet(0, rngs=nnx.Rngs(0))


def test_gradients_are_finite_through_both_branches():
  # XLA's CPU backend at --xla_backend_optimization_level=0 computed NaN here (the suite no
  # longer sets it); the trainer stops on a NaN gradient norm.
  x = jax.random.normal(jax.random.key(0), (8, featurenet.EPOCH_SAMPLES)) * 20.0
  net = featurenet.FeatureNet(rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(net, nnx.Param, ...)

  def loss(params):
    model = nnx.merge(graphdef, params, rest, copy=True)
    return jnp.sum(model(x, rngs=nnx.Rngs(dropout=jax.random.key(1))) ** 2)

  grads = jax.jit(jax.grad(loss))(params)
  leaves = jax.tree.leaves(grads)
  assert len(leaves) == 24  # 8 conv kernels, 8 BatchNorm scales and 8 biases.
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert all(float(jnp.abs(g).max()) > 0 for g in leaves)
