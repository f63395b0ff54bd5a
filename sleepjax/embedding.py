"""Embeddings of a recording from a saved set-transformer: `sleepjax.embed(recording, model)`.

  import sleepjax
  emb = sleepjax.embed("night.edf", "/tmp/sleepjax/pretrain")   # or a staging workdir
  emb["token/bas"]            # (N * S, E) float32: one row per 5-s token of the modality
  emb["token_onset_s"]        # (N * S,) seconds from the recording's start
  emb["epoch/bas"]            # (N, E): the mean of each 30-s epoch's tokens
  emb["present/bas"]          # bool: False when the recording lacks the modality (rows are NaN)

The recording is prepared as `sleepjax.stage` prepares it (docs/staging.md); which models, how
their input is found, and the file formats of `sleepjax-embed`: docs/embeddings.md.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from sleepjax import staging as staging_lib
from sleepjax.hypnogram import EPOCH_S


class EmbeddingModel:
  """A saved encoder, pretraining model or staging model, with the input spec that prepares recordings.

  Attributes:
    model: the loaded module (`SetTransformerEncoder`, `MultiModalEncoder` or `SequenceStager`).
    groups: {encoder modality: (dataset modalities concatenated along channels)}.
    input: the `staging.InputSpec` (montage, sfreq, preprocessing).
    window_epochs: epochs encoded together (the pretraining window; 1 for a staging model,
      whose encoder sees one epoch at a time).
    channel_agnostic: the spec's channels come from the recording (every file channel typed to a
      modality), not from a fixed montage.
    name: the model's folder.
  """

  def __init__(self, model, groups, input_spec, *, window_epochs: int, channel_agnostic: bool, name: str,
               sequence_stager=None):
    self.model = model
    self.groups = {g: tuple(ms) for g, ms in groups.items()}
    self.input = input_spec
    self.window_epochs = int(window_epochs)
    self.channel_agnostic = channel_agnostic
    self.name = name
    self.sequence_stager = sequence_stager

  @property
  def encoder_config(self):
    from sleepjax.models import encoder as encoder_lib  # pylint: disable=g-import-not-at-top
    m = self.model
    if isinstance(m, encoder_lib.SetTransformerEncoder):
      return m.config
    return m.encoder_config if hasattr(m, "encoder_config") else m.config


def _builder_preprocessing(data: Mapping[str, Any]) -> dict[str, Any] | None:
  """sfreq, lowpass_at_nyquist and zscore of a dataset's builder config, when its module imports."""
  name, config = data.get("name"), data.get("builder_config")
  if not name:
    return None
  try:
    module = importlib.import_module(f"tfds_builders.{name}")
  except ImportError:
    return None
  builder = getattr(module, "Builder", None)
  for cfg in getattr(builder, "BUILDER_CONFIGS", ()):
    if cfg.name == config and hasattr(cfg, "sfreq"):
      return {"sfreq": float(cfg.sfreq), "lowpass_at_nyquist": bool(getattr(cfg, "lowpass_at_nyquist", False)),
              "zscore": bool(getattr(cfg, "zscore", False))}
  return None


def load_embedding_model(path: str | os.PathLike, name: str | None = None) -> EmbeddingModel:
  """Loads a model to embed recordings with.

  Args:
    path: a pretraining workdir (its `MultiModalEncoder`), a saved `SetTransformerEncoder`, or a
      staging workdir / model (`sleepjax.train.staging`); see `sleepjax.models.saving.resolve`.
    name: a model of the workdir's index (default: its default).

  Returns:
    An `EmbeddingModel`. A pretraining model has no montage of its own: every file channel that
    the alias table types as one of its modalities is used (the set-transformer takes any channel
    set), and the preprocessing is its dataset builder config's (with a warning when that builder
    cannot be imported: SleepFM-Clinical's low-pass and z-score are then assumed).

  Raises:
    FileNotFoundError: nothing saved at `path`.
    ValueError: the model holds no set-transformer.
  """
  from sleepjax import models as models_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.models import encoder as encoder_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.models import multimodal  # pylint: disable=g-import-not-at-top
  from sleepjax.models import stager as stager_lib  # pylint: disable=g-import-not-at-top
  info = models_lib.load_info(path, name)
  where = info["path"]
  meta = info.get("metadata") or {}
  model = models_lib.load(where)
  if isinstance(model, stager_lib.SequenceStager):
    spec = staging_lib.InputSpec.from_metadata(meta["input"], where)
    runner = staging_lib.SequenceStagerRunner(model, spec, window_epochs=int(meta.get("window_epochs", 20)), name=where)
    return EmbeddingModel(model, {m: (m,) for m in model.modalities}, spec, window_epochs=1,
                          channel_agnostic=False, name=where, sequence_stager=runner)
  if not isinstance(model, (encoder_lib.SetTransformerEncoder, multimodal.MultiModalEncoder)):
    raise ValueError(f"{where}: a {info['architecture']} is not an encoder sleepjax.embed can use")
  data = meta.get("data") or {}
  if isinstance(model, multimodal.MultiModalEncoder):
    groups = {g: tuple(data.get("modality_groups", {}).get(g, (g,))) for g in model.modalities}
  else:
    groups = {m: (m,) for m in data.get("modalities", ("eeg", "eog", "emg", "ecg", "resp"))}
  if meta.get("input"):
    spec = staging_lib.InputSpec.from_metadata(meta["input"], where)
    agnostic = False
  else:
    pre = _builder_preprocessing(data)
    if pre is None:
      warnings.warn(f"{where}: no preprocessing saved and dataset builder {data.get('name')!r} not importable; "
                    "assuming SleepFM-Clinical's low-pass at Nyquist and per-night z-score",
                    staging_lib.StagingWarning, stacklevel=2)
      pre = {"sfreq": float(data.get("sfreq", 128.0)), "lowpass_at_nyquist": True, "zscore": True}
    modalities = [m for ms in groups.values() for m in ms]
    spec = staging_lib.InputSpec({m: () for m in modalities}, sfreq=pre["sfreq"],
                                 lowpass_at_nyquist=pre["lowpass_at_nyquist"], zscore=pre["zscore"])
    agnostic = True
  cfg = model.config
  if abs(EPOCH_S * cfg.sfreq / cfg.patch_size - round(EPOCH_S * cfg.sfreq / cfg.patch_size)) > 1e-9:
    raise ValueError(f"{where}: {cfg.patch_size}-sample patches at {cfg.sfreq:g} Hz do not tile 30-s epochs")
  return EmbeddingModel(model, groups, spec, window_epochs=int(data.get("window_epochs", 1)),
                        channel_agnostic=agnostic, name=where)


def _spec_for(model: EmbeddingModel, labels) -> staging_lib.InputSpec:
  """The input spec; a channel-agnostic model takes every file channel of its modalities."""
  if not model.channel_agnostic:
    return model.input
  from sleepjax.data.channels import channel_modality  # pylint: disable=g-import-not-at-top
  montage = {m: tuple((lab, (lab,)) for lab in labels if channel_modality(lab) == m) for m in model.input.montage}
  return staging_lib.InputSpec(montage, sfreq=model.input.sfreq, lowpass_at_nyquist=model.input.lowpass_at_nyquist,
                               zscore=model.input.zscore)


def _encode(encoder, batch):
  out = encoder.encode_groups(batch["signals"], batch["mask"], train=False)
  return {g: tok for g, (tok, _) in out.items()}


def _encode_multimodal(model, batch):
  return {g: tok for g, (tok, _) in model(batch["signals"], batch["mask"], train=False).items()}


def embed(recording, model, *, montage=None, name: str | None = None, batch_size: int = 64) -> dict[str, Any]:
  """Per-token and per-epoch embeddings of a recording, per modality.

  Args:
    recording: an EDF/EDF+ path or an `mne.io.Raw`.
    model: a path (see `load_embedding_model`) or an `EmbeddingModel`.
    montage: see `sleepjax.staging.assign_channels` (models with a montage only).
    name: which model of a workdir.
    batch_size: windows per forward pass.

  Returns:
    A flat dict of arrays (what `np.savez` writes):
      "epoch_onset_s": (N,) float64 seconds of the epochs embedded (every complete 30-s epoch
        whose samples are finite);
      "token_onset_s": (N * S,) float64, S = 30 s / patch seconds tokens per epoch;
      for each encoder modality g: "token/<g>" (N * S, E) float32, "epoch/<g>" (N, E) float32
        (the mean of the epoch's tokens), "present/<g>" () bool (False: the recording has no
        channel of g, and its rows are NaN);
      a staging model adds "epoch/sequence" (N, D') float32, its sequence model's epoch embedding.
    Plus "record_id" and "channels" (str: "model channel=file label" joined by ";").

  Warns:
    StagingWarning: modalities or channels the recording lacks (masked).

  Raises:
    RecordingError: the recording is unreadable or has no channel of the model's modalities.
  """
  if not isinstance(model, EmbeddingModel):
    model = load_embedding_model(model, name)
  if model.channel_agnostic:
    _, _, _, labels = staging_lib._open(recording)  # pylint: disable=protected-access
    spec = _spec_for(model, labels)
    if not any(spec.montage.values()):
      where = os.fspath(recording) if isinstance(recording, (str, os.PathLike)) else "recording"
      raise staging_lib.RecordingError(where, f"no channel of the model's modalities {sorted(spec.montage)}; "
                                       f"the recording has {labels}")
    # Absent modalities get one masked zero channel (an empty set cannot be tokenized).
    spec = staging_lib.InputSpec({m: chans or ((f"{m} (absent)", ()),) for m, chans in spec.montage.items()},
                                 sfreq=spec.sfreq, lowpass_at_nyquist=spec.lowpass_at_nyquist, zscore=spec.zscore)
  else:
    spec = model.input
  with warnings.catch_warnings():
    # The absent placeholders are expected here; the warning below names the absent modalities.
    if model.channel_agnostic:
      warnings.simplefilter("ignore", staging_lib.StagingWarning)
    prep = staging_lib.prepare(recording, spec, montage=montage, stacklevel=2)
  groups = model.groups
  sig = {g: np.concatenate([prep.signals[m] for m in ms], axis=1) for g, ms in groups.items()}
  msk = {g: np.concatenate([prep.mask[m] for m in ms]) for g, ms in groups.items()}
  absent = [g for g, mk in msk.items() if not mk.any()]
  if absent and model.channel_agnostic:
    warnings.warn(f"{prep.path or 'recording'}: modalities {absent} absent (found {prep.labels}); masked",
                  staging_lib.StagingWarning, stacklevel=2)
  tokens = _tokens(model, sig, msk, batch_size)
  n = prep.epoch_index.size
  s = next(iter(tokens.values())).shape[1] if tokens else 0
  onsets = prep.epoch_index.astype(np.float64) * EPOCH_S
  out: dict[str, Any] = {"epoch_onset_s": onsets,
                         "token_onset_s": (onsets[:, None] + np.arange(s) * (EPOCH_S / max(s, 1))).reshape(-1)}
  for g, tok in tokens.items():
    tok = tok.astype(np.float32)
    if g in absent:
      tok = np.full_like(tok, np.nan)
    out[f"token/{g}"] = tok.reshape(n * s, -1)
    out[f"epoch/{g}"] = tok.mean(axis=1)
    out[f"present/{g}"] = np.asarray(g not in absent)
  if model.sequence_stager is not None:
    out["epoch/sequence"] = model.sequence_stager.embed(prep.signals, prep.mask)["epoch_embedding"]
  out["record_id"] = np.asarray(prep.record_id)
  out["channels"] = np.asarray(";".join(f"{k}={v}" for k, v in prep.channels.items()))
  return out


def _tokens(model: EmbeddingModel, sig, msk, batch_size) -> dict[str, np.ndarray]:
  """{group: (N, S, E)} tokens of the N epochs, encoded in windows of `window_epochs`."""
  from sleepjax.evaluation import inference  # pylint: disable=g-import-not-at-top
  from sleepjax.models import multimodal  # pylint: disable=g-import-not-at-top
  if isinstance(model.model, multimodal.MultiModalEncoder):
    apply = inference.Apply(_encode_multimodal, model.model)
  else:
    encoder = getattr(model.model, "encoder", None) if hasattr(model.model, "epoch_tokens") else model.model
    apply = inference.Apply(_encode, encoder)
  n = next(iter(sig.values())).shape[0]
  w = max(1, min(model.window_epochs, n))
  n_win = -(-n // w)
  b = max(1, min(batch_size, n_win))
  out: dict[str, list[np.ndarray]] = {g: [] for g in sig}
  for a in range(0, n_win, b):
    idx = np.arange(a, a + b)
    batch_sig, batch_mask = {}, {}
    for g, x in sig.items():
      windows = np.zeros((b, w) + x.shape[1:], np.float32)
      for i, k in enumerate(idx):
        part = x[k * w:(k + 1) * w]
        windows[i, :part.shape[0]] = part
      # (b, w, C, T) -> (b, C, w * T): the window as one continuous signal per channel.
      batch_sig[g] = windows.transpose(0, 2, 1, 3).reshape(b, x.shape[1], w * x.shape[2])
      batch_mask[g] = np.broadcast_to(msk[g], (b, msk[g].size)).copy()
    res = apply({"signals": batch_sig, "mask": batch_mask})
    for g, tok in res.items():
      tok = np.asarray(tok)  # (b, w * S, E)
      out[g].append(tok.reshape(b * w, tok.shape[1] // w, tok.shape[2]))
  return {g: np.concatenate(v)[:n] for g, v in out.items()}


__all__ = ["EmbeddingModel", "embed", "load_embedding_model"]
