"""Models saved and loaded at the model level (`sleepjax.models.save` / `load`)."""

import json

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sleepjax import models
from sleepjax.models import encoder as encoder_lib
from sleepjax.models import multimodal
from sleepjax.models import saving
from sleepjax.models import sleepmg
from sleepjax.models import transfer

TINY = encoder_lib.tiny().replace(channel_encoding=True)


def _weights(model):
  return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, saving.MODEL_STATE))] + \
         [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


@pytest.mark.parametrize("build", [
    lambda: multimodal.MultiModalEncoder(("bas", "ecg"), TINY, log_scale_init=2.0, rngs=nnx.Rngs(1)),
    lambda: multimodal.MultiModalEncoder(("bas", "ecg"), TINY, shared=False, rngs=nnx.Rngs(1)),
    lambda: encoder_lib.SetTransformerEncoder(TINY.replace(dtype=jnp.bfloat16), rngs=nnx.Rngs(4)),
    lambda: transfer.TransferModel(TINY, 3, hidden_dim=8, mask_rate=0.3, rngs=nnx.Rngs(2)),
    lambda: sleepmg.SleepMGModel({"eeg": 2, "emg": 1}, num_domains=3, dropout_rate=0.4, rngs=nnx.Rngs(3)),
], ids=["multimodal", "multimodal_separate", "encoder_bf16", "transfer", "sleepmg"])
def test_round_trip_is_bit_exact_and_rebuilds_the_module(build, tmp_path):
  model = build()
  # Non-trivial BatchNorm statistics, so that model state is really saved.
  for variable in jax.tree.leaves(nnx.state(model, nnx.BatchStat), is_leaf=lambda v: isinstance(v, nnx.Variable)):
    variable[...] = variable[...] + 0.25
  path = models.save(model, tmp_path / "m", label_names=("a", "b", "c"), metadata={"task": "test", "step": 7})
  loaded = models.load(path)
  assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
  for a, b in zip(_weights(model), _weights(loaded)):
    np.testing.assert_array_equal(a, b)
  info = models.load_info(path)
  assert info["label_names"] == ["a", "b", "c"] and info["metadata"] == {"task": "test", "step": 7}
  assert json.loads((path / "config.json").read_text())["architecture"] == type(model).__name__


def test_workdir_index_names_the_default_and_lists_the_others(tmp_path):
  a = encoder_lib.SetTransformerEncoder(TINY, rngs=nnx.Rngs(0))
  b = encoder_lib.SetTransformerEncoder(TINY, rngs=nnx.Rngs(1))
  for name, model, default in (("run/best", a, True), ("run/final", b, False)):
    models.save(model, tmp_path / "model" / name)
    saving.register(tmp_path, name, {"step": 1}, default=default)
  assert models.list_models(tmp_path) == {"default": "run/best", "models": {"run/best": {"step": 1},
                                                                           "run/final": {"step": 1}}}
  np.testing.assert_array_equal(np.asarray(models.load(tmp_path).time_norm.scale[...]),
                                np.asarray(a.time_norm.scale[...]))
  np.testing.assert_array_equal(np.asarray(models.load(tmp_path / "model", "run/final").tokenizer.proj.kernel[...]),
                                np.asarray(b.tokenizer.proj.kernel[...]))
  with pytest.raises(FileNotFoundError, match="no model 'run/worst'; saved: \\['run/best', 'run/final'\\]"):
    models.load(tmp_path, "run/worst")


def test_load_from_a_relative_path(tmp_path, monkeypatch):
  # `sleepjax-stage night.edf --model w` from the workdir's parent: orbax needs absolute paths.
  model = encoder_lib.SetTransformerEncoder(TINY, rngs=nnx.Rngs(5))
  models.save(model, tmp_path / "w" / "model" / "best")
  saving.register(tmp_path / "w", "best", {"step": 1}, default=True)
  monkeypatch.chdir(tmp_path)
  loaded = models.load("w")
  np.testing.assert_array_equal(np.asarray(loaded.tokenizer.proj.kernel[...]),
                                np.asarray(model.tokenizer.proj.kernel[...]))


def test_bad_paths_and_mismatched_weights_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such file"):
    models.load(tmp_path / "typo")
  with pytest.raises(FileNotFoundError, match="no saved model"):
    models.load(tmp_path)
  path = models.save(encoder_lib.SetTransformerEncoder(TINY, rngs=nnx.Rngs(0)), tmp_path / "m")
  info = json.loads((path / "config.json").read_text())
  info["config"]["encoder"]["ff_dim"] = 8  # Orbax alone would restore the stored shape silently.
  (path / "config.json").write_text(json.dumps(info))
  with pytest.raises(ValueError, match="does not match its config.json: params/.*/ff/fc1/bias is float32\\[64\\], expected float32\\[8\\]"):
    models.load(path)
  with pytest.raises(TypeError, match="cannot save a Linear"):
    models.save(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), tmp_path / "linear")


def test_loaded_model_computes_the_same_outputs_in_eval_mode(tmp_path):
  model = transfer.TransferModel(TINY, 3, rngs=nnx.Rngs(0))
  x = np.random.default_rng(0).normal(size=(2, 3, 64)).astype(np.float32)
  mask = np.ones((2, 3), bool)
  loaded = models.load(models.save(model, tmp_path / "t"))
  np.testing.assert_array_equal(np.asarray(model(x, mask, train=False)), np.asarray(loaded(x, mask, train=False)))
