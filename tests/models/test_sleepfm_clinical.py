"""The SleepFM-Clinical weight converter: PyTorch state dict <-> SetTransformerEncoder.

The PyTorch side is benchmarks/torch_baseline.py's `SetTransformer`, built from torch's standard
layers under the official checkpoints' names; these tests skip with a reason without torch.
"""

import pathlib
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from sleepjax.models import encoder as encoder_lib
from sleepjax.models import sleepfm_clinical

torch = pytest.importorskip("torch", reason="torch is not installed (optional `torch` extra)")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import torch_baseline  # noqa: E402  pylint: disable=g-import-not-at-top

SIZES = dict(patch_size=64, embed_dim=32, num_layers=2, num_heads=4, pooling_heads=2, ff_dim=48, dropout=0.3,
             widths=(4, 8, 8, 16, 16, 32))


def _torch_model(seed=0):
  torch.manual_seed(seed)
  model = torch_baseline.SetTransformer(**SIZES)
  with torch.no_grad():  # Non-trivial BatchNorm statistics and LayerNorm affines.
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm1d):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
      if isinstance(m, torch.nn.LayerNorm):
        m.weight.uniform_(0.5, 1.5)
        m.bias.uniform_(-0.2, 0.2)
  return model.eval()


def _numpy(sd):
  return {k: v.detach().numpy() for k, v in sd.items() if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("channels", [1, 3])
def test_converted_weights_compute_the_torch_models_function(channels):
  model = _torch_model()
  encoder = sleepfm_clinical.from_torch_state_dict({"state_dict": {f"module.{k}": v for k, v in _numpy(model.state_dict()).items()}},
                                                   num_heads=4, pooling_heads=2)
  cfg = encoder.config
  assert (cfg.patch_size, cfg.embed_dim, cfg.num_layers, cfg.ff_dim, cfg.tokenizer_widths) == (64, 32, 2, 48, (4, 8, 8, 16, 16, 32))
  rng = np.random.default_rng(0)
  x = rng.normal(scale=3.0, size=(2, channels, 4 * 64)).astype(np.float32)
  mask = np.ones((2, channels), bool)
  if channels > 1:
    mask[1, -1] = False  # A padded channel in the second window.
  with torch.no_grad():
    tokens_ref, pooled_ref = model(torch.from_numpy(x), torch.from_numpy(mask))
  tokens, pooled = encoder(x, mask, train=False)
  np.testing.assert_allclose(np.asarray(tokens), tokens_ref.numpy(), rtol=1e-4, atol=2e-5)
  np.testing.assert_allclose(np.asarray(pooled), pooled_ref.numpy(), rtol=1e-4, atol=2e-5)


def test_round_trip_is_bit_identical_and_shapes_are_checked():
  encoder = encoder_lib.SetTransformerEncoder(encoder_lib.sleepfm_clinical(), rngs=nnx.Rngs(3))
  sd = sleepfm_clinical.to_torch_state_dict(encoder)
  torch_model = torch_baseline.SetTransformer()
  missing, unexpected = torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
  assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing)
  back = sleepfm_clinical.from_torch_state_dict(sd)
  assert back.config == encoder.config.replace(dropout=0.3)
  for kind in (nnx.Param, nnx.BatchStat):
    for a, b in zip(jax.tree.leaves(nnx.state(encoder, kind)), jax.tree.leaves(nnx.state(back, kind))):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  bad = dict(sd)
  bad["layer_norm.weight"] = np.ones(7, np.float32)
  with pytest.raises(ValueError, match="time_norm.*has shape \\(7,\\)"):
    sleepfm_clinical.from_torch_state_dict(bad)
  with pytest.raises(KeyError, match="spatial_pooling.transformer_layer.linear1.weight"):
    sleepfm_clinical.from_torch_state_dict({k: v for k, v in sd.items() if "spatial_pooling" not in k})


def test_load_torch_checkpoint(tmp_path):
  model = _torch_model()
  torch.save({"model_state_dict": model.state_dict(), "epoch": 3}, tmp_path / "best.pt")
  encoder = sleepfm_clinical.load_torch_checkpoint(tmp_path / "best.pt", num_heads=4, pooling_heads=2)
  assert encoder.config.embed_dim == 32
  with pytest.raises(FileNotFoundError, match="no such checkpoint"):
    sleepfm_clinical.load_torch_checkpoint(tmp_path / "typo.pt")
