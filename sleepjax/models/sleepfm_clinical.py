"""The official SleepFM-Clinical weights in JAX: a PyTorch `SetTransformer` state dict <-> `SetTransformerEncoder`.

  encoder = sleepfm_clinical.load_torch_checkpoint("best.pt")            # needs torch
  encoder = sleepfm_clinical.from_torch_state_dict({k: v.numpy() for k, v in sd.items()})

The name and layout mapping: docs/sleepfm_clinical_weights.md. The reference model
has no channel encoding; its attention head counts are not stored in the weights (the base model's
`num_heads` and `pooling_head` are both 8, the defaults here).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from flax import nnx
import jax
import numpy as np

from sleepjax.models import encoder as encoder_lib

# Keys that wrap the model's state dict in training checkpoints, tried in order.
_WRAPPERS = ("state_dict", "model_state_dict", "model", "module")
_TOK = "patch_embedding.tokenizer."


def _unwrap(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
  sd = dict(state_dict)
  for key in _WRAPPERS:
    if key in sd and isinstance(sd[key], Mapping):
      return _unwrap(sd[key])
  out = {}
  for k, v in sd.items():
    k = re.sub(r"^(module\.|_orig_mod\.)+", "", k)  # DataParallel / torch.compile prefixes.
    if hasattr(v, "detach"):  # A torch tensor given by mistake: accept it.
      v = v.detach().cpu().numpy()
    out[k] = np.asarray(v)
  return out


def _need(sd, key: str) -> np.ndarray:
  if key not in sd:
    raise KeyError(f"SleepFM-Clinical state dict has no {key!r} (keys start with "
                   f"{sorted({k.split('.')[0] for k in sd})})")
  return sd[key]


def infer_config(state_dict: Mapping[str, Any], *, num_heads: int = 8, pooling_heads: int = 8,
                 dropout: float = 0.3, sfreq: float = 128.0) -> encoder_lib.EncoderConfig:
  """The `EncoderConfig` of a state dict: patch size, tokenizer widths, E, layers and ff width.

  Args:
    state_dict: name -> array of the official `SetTransformer` (possibly wrapped, see
      `from_torch_state_dict`).
    num_heads, pooling_heads: attention heads (not recoverable from the weights; 8 and 8 in the
      base model).
    dropout: training-time dropout (0.3 in the base model; irrelevant for inference).
    sfreq: the rate the patches assume (128 Hz).

  Raises:
    KeyError: a tensor of the architecture is missing.
    ValueError: E is not divisible by a head count.
  """
  sd = _unwrap(state_dict)
  convs = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(re.escape(_TOK) + r"(\d+)\.weight", k))
                 and sd[k].ndim == 3)
  if not convs:
    raise KeyError("SleepFM-Clinical state dict has no patch_embedding.tokenizer convolutions")
  widths = tuple(int(sd[f"{_TOK}{i}.weight"].shape[0]) for i in convs)
  first_ln = _need(sd, f"{_TOK}{convs[0] + 3}.weight")  # LayerNorm([C, L]) after the first conv.
  patch_size = 2 * int(first_ln.shape[1])
  linear = max(int(m.group(1)) for k in sd if (m := re.fullmatch(re.escape(_TOK) + r"(\d+)\.weight", k)))
  embed_dim = int(sd[f"{_TOK}{linear}.weight"].shape[0])
  layers = {int(m.group(1)) for k in sd if (m := re.match(r"transformer_encoder\.layers\.(\d+)\.", k))}
  ff_dim = int(_need(sd, "spatial_pooling.transformer_layer.linear1.weight").shape[0])
  for name, heads in (("num_heads", num_heads), ("pooling_heads", pooling_heads)):
    if embed_dim % heads:
      raise ValueError(f"{name}={heads} does not divide the embedding width {embed_dim}")
  return encoder_lib.EncoderConfig(patch_size=patch_size, embed_dim=embed_dim, num_layers=len(layers),
                                   num_heads=num_heads, pooling_heads=pooling_heads, ff_dim=ff_dim, dropout=dropout,
                                   tokenizer_widths=widths, channel_encoding=False, sfreq=sfreq,
                                   window_s=300.0)


def _attention_to_jax(sd, prefix: str, heads: int) -> dict:
  w, b = _need(sd, prefix + "self_attn.in_proj_weight"), _need(sd, prefix + "self_attn.in_proj_bias")
  e = w.shape[1]
  d = e // heads
  out = {}
  for i, name in enumerate(("query", "key", "value")):
    wi, bi = w[i * e:(i + 1) * e], b[i * e:(i + 1) * e]
    out[name] = {"kernel": wi.T.reshape(e, heads, d), "bias": bi.reshape(heads, d)}
  out["out"] = {"kernel": _need(sd, prefix + "self_attn.out_proj.weight").T.reshape(heads, d, e),
                "bias": _need(sd, prefix + "self_attn.out_proj.bias")}
  return out


def _layer_to_jax(sd, prefix: str, heads: int) -> dict:
  lin = lambda n: {"kernel": _need(sd, f"{prefix}{n}.weight").T, "bias": _need(sd, f"{prefix}{n}.bias")}
  norm = lambda n: {"scale": _need(sd, f"{prefix}{n}.weight"), "bias": _need(sd, f"{prefix}{n}.bias")}
  return {"attn": _attention_to_jax(sd, prefix, heads), "ff": {"fc1": lin("linear1"), "fc2": lin("linear2")},
          "norm1": norm("norm1"), "norm2": norm("norm2")}


def _params_to_jax(sd, cfg: encoder_lib.EncoderConfig) -> tuple[dict, dict]:
  convs, norms, lns = {}, {}, {}
  stats = {}
  for j in range(len(cfg.tokenizer_widths)):
    i = 4 * j
    convs[j] = {"kernel": np.transpose(_need(sd, f"{_TOK}{i}.weight"), (2, 1, 0)), "bias": _need(sd, f"{_TOK}{i}.bias")}
    norms[j] = {"scale": _need(sd, f"{_TOK}{i + 1}.weight"), "bias": _need(sd, f"{_TOK}{i + 1}.bias")}
    stats[j] = {"mean": _need(sd, f"{_TOK}{i + 1}.running_mean"), "var": _need(sd, f"{_TOK}{i + 1}.running_var")}
    lns[j] = {"scale": _need(sd, f"{_TOK}{i + 3}.weight").T, "bias": _need(sd, f"{_TOK}{i + 3}.bias").T}
  linear = 4 * len(cfg.tokenizer_widths) + 2
  params = {
      "tokenizer": {"convs": convs, "batch_norms": norms, "layer_norms": lns,
                    "proj": {"kernel": _need(sd, f"{_TOK}{linear}.weight").T, "bias": _need(sd, f"{_TOK}{linear}.bias")}},
      "channel_pool": {"layer": _layer_to_jax(sd, "spatial_pooling.transformer_layer.", cfg.pooling_heads)},
      "time_norm": {"scale": _need(sd, "layer_norm.weight"), "bias": _need(sd, "layer_norm.bias")},
      "layers": {i: _layer_to_jax(sd, f"transformer_encoder.layers.{i}.", cfg.num_heads)
                 for i in range(cfg.num_layers)},
      "time_pool": {"layer": _layer_to_jax(sd, "temporal_pooling.transformer_layer.", cfg.pooling_heads)},
  }
  return params, {"tokenizer": {"batch_norms": stats}}


def from_torch_state_dict(state_dict: Mapping[str, Any], *, num_heads: int = 8, pooling_heads: int = 8,
                          dropout: float = 0.3) -> encoder_lib.SetTransformerEncoder:
  """A `SetTransformerEncoder` holding the weights of an official SleepFM-Clinical `SetTransformer`.

  Args:
    state_dict: name -> NumPy array (`{k: v.numpy() for k, v in torch.load(path).items()}`), possibly
      nested under "state_dict" / "model_state_dict" / "model", names possibly prefixed "module.".
    num_heads, pooling_heads, dropout: see `infer_config`.

  Returns:
    The encoder in eval mode; `encoder(x, mask, train=False)` computes the reference's
    `SetTransformer.forward(x, ~mask)` (tokens, pooled) on (B, C, T) inputs.

  Raises:
    KeyError: a tensor is missing. ValueError: a tensor has another shape than the architecture.
  """
  sd = _unwrap(state_dict)
  cfg = infer_config(sd, num_heads=num_heads, pooling_heads=pooling_heads, dropout=dropout)
  model = encoder_lib.SetTransformerEncoder(cfg, rngs=nnx.Rngs(0))
  params, stats = _params_to_jax(sd, cfg)
  for kind, values in ((nnx.Param, params), (nnx.BatchStat, stats)):
    target = nnx.state(model, kind)
    pure = nnx.to_pure_dict(target)

    def check(path, want, got):
      if np.shape(want) != np.shape(got):
        raise ValueError(f"SleepFM-Clinical weight for {jax.tree_util.keystr(path)} has shape {np.shape(got)}, "
                         f"the architecture needs {np.shape(want)}")
      return np.asarray(got, np.asarray(want).dtype)

    nnx.replace_by_pure_dict(target, jax.tree_util.tree_map_with_path(check, pure, _like(pure, values)))
    nnx.update(model, target)
  model.eval()
  return model


def _like(template, values):
  """`values` (nested dicts) in the structure of `template` (integer list keys as nnx uses them)."""
  if isinstance(template, Mapping):
    return {k: _like(v, values[k]) for k, v in template.items()}
  return values


def to_torch_state_dict(encoder: encoder_lib.SetTransformerEncoder) -> dict[str, np.ndarray]:
  """The official state-dict names and layouts of a `SetTransformerEncoder` (the inverse mapping).

  Raises:
    ValueError: the encoder has a channel encoding (the reference has none).
  """
  cfg = encoder.config
  if encoder.channel_encoding is not None:
    raise ValueError("the SleepFM-Clinical SetTransformer has no channel encoding")
  p = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(encoder, nnx.Param)))
  st = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(encoder, nnx.BatchStat)))
  sd = {}
  tok = p["tokenizer"]
  for j in range(len(cfg.tokenizer_widths)):
    i = 4 * j
    sd[f"{_TOK}{i}.weight"] = np.transpose(tok["convs"][j]["kernel"], (2, 1, 0))
    sd[f"{_TOK}{i}.bias"] = tok["convs"][j]["bias"]
    sd[f"{_TOK}{i + 1}.weight"] = tok["batch_norms"][j]["scale"]
    sd[f"{_TOK}{i + 1}.bias"] = tok["batch_norms"][j]["bias"]
    sd[f"{_TOK}{i + 1}.running_mean"] = st["tokenizer"]["batch_norms"][j]["mean"]
    sd[f"{_TOK}{i + 1}.running_var"] = st["tokenizer"]["batch_norms"][j]["var"]
    sd[f"{_TOK}{i + 3}.weight"] = tok["layer_norms"][j]["scale"].T
    sd[f"{_TOK}{i + 3}.bias"] = tok["layer_norms"][j]["bias"].T
  linear = 4 * len(cfg.tokenizer_widths) + 2
  sd[f"{_TOK}{linear}.weight"] = tok["proj"]["kernel"].T
  sd[f"{_TOK}{linear}.bias"] = tok["proj"]["bias"]

  def layer(prefix, lp):
    attn = lp["attn"]
    e = attn["query"]["kernel"].shape[0]
    sd[prefix + "self_attn.in_proj_weight"] = np.concatenate(
        [attn[n]["kernel"].reshape(e, e).T for n in ("query", "key", "value")])
    sd[prefix + "self_attn.in_proj_bias"] = np.concatenate([attn[n]["bias"].reshape(e) for n in ("query", "key", "value")])
    sd[prefix + "self_attn.out_proj.weight"] = attn["out"]["kernel"].reshape(e, e).T
    sd[prefix + "self_attn.out_proj.bias"] = attn["out"]["bias"]
    for n, src in (("linear1", "fc1"), ("linear2", "fc2")):
      sd[f"{prefix}{n}.weight"] = lp["ff"][src]["kernel"].T
      sd[f"{prefix}{n}.bias"] = lp["ff"][src]["bias"]
    for n in ("norm1", "norm2"):
      sd[f"{prefix}{n}.weight"] = lp[n]["scale"]
      sd[f"{prefix}{n}.bias"] = lp[n]["bias"]

  layer("spatial_pooling.transformer_layer.", p["channel_pool"]["layer"])
  sd["layer_norm.weight"], sd["layer_norm.bias"] = p["time_norm"]["scale"], p["time_norm"]["bias"]
  for i in range(cfg.num_layers):
    layer(f"transformer_encoder.layers.{i}.", p["layers"][i])
  layer("temporal_pooling.transformer_layer.", p["time_pool"]["layer"])
  return sd


def load_torch_checkpoint(path: str | os.PathLike, **kwargs) -> encoder_lib.SetTransformerEncoder:
  """`from_torch_state_dict` of a `torch.save`d checkpoint (needs the optional `torch` extra).

  Raises:
    FileNotFoundError: no file at `path`. ImportError: torch is not installed.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such checkpoint file")
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("reading a PyTorch checkpoint needs torch: pip install 'sleepjax[torch]'") from e
  state = torch.load(path, map_location="cpu", weights_only=True)

  def numpy(tree):
    if isinstance(tree, Mapping):
      return {k: numpy(v) for k, v in tree.items()}
    return tree.detach().cpu().numpy() if hasattr(tree, "detach") else tree

  return from_torch_state_dict(numpy(state), **kwargs)
