"""The SleepFM-Clinical set-transformer and its LOO step in PyTorch, from torch's standard layers.

The same architecture as `sleepjax.models.encoder.SetTransformerEncoder` (docs/specification.md
§2.1) without channel encoding, built from `nn.Conv1d`, `nn.BatchNorm1d`, `nn.LayerNorm` and
`nn.TransformerEncoderLayer`, with the same parameter count (`parameter_count`; 4.83 M at the
SleepFM-Clinical size), one shared encoder called once per modality, the leave-one-out
contrastive loss and SGD with momentum 0.9. It is the reference the JAX step is timed against
(`benchmarks/pretrain_throughput.py`, `benchmarks/gpu_check.py`); `torch` is an optional
benchmark dependency (`pip install -e ".[benchmarks]"` does not install it: see
benchmarks/README.md).

Not a port of the official code (which this file does not copy): a re-implementation for timing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def _conv_lengths(patch_size: int, num_blocks: int) -> list[int]:
  lengths, length = [], patch_size
  for _ in range(num_blocks):
    length = (length - 1) // 2 + 1
    lengths.append(length)
  return lengths


class Tokenizer(nn.Module):
  """Six blocks Conv1d(k5, s2, p2) -> BatchNorm1d -> ELU -> LayerNorm([C, L]); mean over L; Linear(128, E).

  One `nn.Sequential` named `tokenizer`, so that the state-dict names are those of the official
  SleepFM-Clinical checkpoints (`patch_embedding.tokenizer.<i>.*`; see
  `sleepjax.models.sleepfm_clinical`).
  """

  def __init__(self, patch_size: int, widths, embed_dim: int):
    super().__init__()
    self.patch_size = patch_size
    chans = (1,) + tuple(widths)
    lengths = _conv_lengths(patch_size, len(widths))
    layers = []
    for c_in, c_out, length in zip(chans[:-1], chans[1:], lengths):
      layers += [nn.Conv1d(c_in, c_out, 5, stride=2, padding=2), nn.BatchNorm1d(c_out), nn.ELU(),
                 nn.LayerNorm([c_out, length])]
    layers += [nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(chans[-1], embed_dim)]
    self.tokenizer = nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    """x: (B, C, T) -> (B, C, S, E)."""
    b, c, t = x.shape
    s = t // self.patch_size
    return self.tokenizer(x.reshape(b * c * s, 1, self.patch_size)).reshape(b, c, s, -1)


class Pooling(nn.Module):
  """One post-norm transformer layer over a set of tokens, then the (masked) mean over the set."""

  def __init__(self, embed_dim: int, heads: int, ff_dim: int, dropout: float):
    super().__init__()
    self.transformer_layer = nn.TransformerEncoderLayer(embed_dim, heads, ff_dim, dropout, batch_first=True,
                                                        norm_first=False)

  def forward(self, x: torch.Tensor, padding: torch.Tensor | None = None) -> torch.Tensor:
    """x: (N, L, E); padding: optional (N, L) bool, True = padded (PyTorch's key-padding convention)."""
    if padding is None:
      return self.transformer_layer(x).mean(dim=1)
    h = self.transformer_layer(x, src_key_padding_mask=padding)
    keep = (~padding).float().unsqueeze(-1)
    return (h * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)


def sinusoidal(num_tokens: int, embed_dim: int) -> torch.Tensor:
  pos = torch.arange(num_tokens, dtype=torch.float64)[:, None]
  div = torch.exp(torch.arange(0, embed_dim, 2, dtype=torch.float64) * (-math.log(10000.0) / embed_dim))
  pe = torch.zeros(num_tokens, embed_dim, dtype=torch.float64)
  pe[:, 0::2] = torch.sin(pos * div)
  pe[:, 1::2] = torch.cos(pos * div)[:, : embed_dim // 2]
  return pe.float()


class SetTransformer(nn.Module):
  """Tokenizer -> channel pooling -> sinusoidal PE + LayerNorm -> pre-norm layers -> temporal pooling.

  Attribute names follow the official checkpoints: patch_embedding, spatial_pooling, layer_norm,
  transformer_encoder (an `nn.TransformerEncoder`), temporal_pooling.
  """

  def __init__(self, *, patch_size=640, embed_dim=128, num_layers=6, num_heads=8, pooling_heads=8, ff_dim=2048,
               dropout=0.3, widths=(4, 8, 16, 32, 64, 128)):
    super().__init__()
    self.embed_dim = embed_dim
    self.patch_embedding = Tokenizer(patch_size, widths, embed_dim)
    self.spatial_pooling = Pooling(embed_dim, pooling_heads, ff_dim, dropout)
    self.layer_norm = nn.LayerNorm(embed_dim)
    layer = nn.TransformerEncoderLayer(embed_dim, num_heads, ff_dim, dropout, batch_first=True, norm_first=True)
    self.transformer_encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
    self.temporal_pooling = Pooling(embed_dim, pooling_heads, ff_dim, dropout)

  def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (B, C, T); mask: optional (B, C) bool, True = real channel -> (tokens (B, S, E), pooled (B, E))."""
    tokens = self.patch_embedding(x)  # (B, C, S, E)
    b, c, s, e = tokens.shape
    if c == 1:
      h = tokens[:, 0]
    else:
      padding = None if mask is None else (~mask.bool())[:, None, :].expand(b, s, c).reshape(b * s, c)
      h = self.spatial_pooling(tokens.transpose(1, 2).reshape(b * s, c, e), padding).reshape(b, s, e)
    h = self.layer_norm(h + sinusoidal(s, e).to(h.device, h.dtype))
    h = self.transformer_encoder(h)
    return h, self.temporal_pooling(h)


class LOOModel(nn.Module):
  """One shared encoder for every modality and the logit-scale exponent t (initialised at 0)."""

  def __init__(self, **encoder_kwargs):
    super().__init__()
    self.encoder = SetTransformer(**encoder_kwargs)
    self.log_scale = nn.Parameter(torch.zeros(()))

  def forward(self, signals: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {m: self.encoder(x)[1] for m, x in signals.items()}


def loo_loss(pooled: Mapping[str, torch.Tensor], log_scale: torch.Tensor) -> torch.Tensor:
  """SleepFM's leave-one-out loss (docs/specification.md §2.2): mean of both CE directions over modalities."""
  z = {m: F.normalize(v.float(), dim=-1) for m, v in pooled.items()}
  total = sum(z.values())
  scale = log_scale.exp()
  labels = torch.arange(next(iter(z.values())).shape[0], device=log_scale.device)
  losses = []
  for m, zi in z.items():
    target = (total - zi) / (len(z) - 1)
    logits = scale * zi @ target.T
    losses.append(0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)))
  return sum(losses) / len(losses)


def parameter_count(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def make_step(model: LOOModel, *, lr: float = 1e-3, momentum: float = 0.9, autocast_dtype=None):
  """step(signals) -> loss: one SGD-momentum update with t clamped >= 0 (`autocast_dtype`: e.g. torch.bfloat16)."""
  opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
  device_type = next(model.parameters()).device.type

  def step(signals):
    opt.zero_grad(set_to_none=True)
    if autocast_dtype is None:
      loss = loo_loss(model(signals), model.log_scale)
    else:
      with torch.autocast(device_type, dtype=autocast_dtype):
        loss = loo_loss(model(signals), model.log_scale)
    loss.backward()
    opt.step()
    with torch.no_grad():
      model.log_scale.clamp_(min=0.0)
    return loss

  return step


def to_torch(signals: Mapping[str, np.ndarray], device="cpu") -> dict[str, torch.Tensor]:
  return {m: torch.from_numpy(np.ascontiguousarray(x)).to(device) for m, x in signals.items()}
