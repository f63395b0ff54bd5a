"""In-memory stand-ins for prepared TFDS splits (docs/architecture.md §3), for trainer tests."""

from __future__ import annotations

import numpy as np

# Dataset modality -> channel count of the fake montage.
MONTAGE = {"eeg": 3, "eog": 2, "emg": 1, "ecg": 1, "resp": 1}


def fake_source(*, n_subjects: int = 3, epochs_per_record: int = 8, samples_per_epoch: int = 128,
                seed: int = 0) -> list[dict]:
  """A list of epoch examples whose signals depend on the stage (so there is something to learn).

  Each stage has its own dominant frequency, shared by all modalities with modality-specific
  noise, so the modalities of one window agree with each other (a contrastive signal).
  """
  rng = np.random.default_rng(seed)
  examples = []
  t = np.arange(samples_per_epoch) / samples_per_epoch
  for s in range(n_subjects):
    record = f"FK{s:03d}1E0"
    for e in range(epochs_per_record):
      stage = int(rng.integers(0, 5))
      phase = rng.uniform(0, 2 * np.pi)
      base = np.sin(2 * np.pi * (2 + 3 * stage) * t + phase)
      signals, positions, names = {}, {}, {}
      for m, c in MONTAGE.items():
        noise = rng.normal(0, 0.3, (c, samples_per_epoch))
        signals[m] = (base[None] * (1 + np.arange(c)[:, None]) + noise).astype(np.float32)
        pos = rng.normal(size=(c, 3))
        pos /= np.linalg.norm(pos, axis=-1, keepdims=True)
        positions[m] = (pos if m in ("eeg", "eog") else np.full((c, 3), np.nan)).astype(np.float32)
        names[m] = np.asarray([f"{m}{i}" for i in range(c)], dtype=object)
      examples.append({"signals": signals, "positions": positions, "channel_names": names,
                       "stage": stage, "subject_id": f"FK{s:03d}", "record_id": record,
                       "epoch_index": e})
  return examples


import pytest  # noqa: E402


def tiny_pretrain_config(**overrides):
  """configs/pretrain.py:tiny shrunk to a compile-in-seconds encoder on the fake montage.

  Args:
    **overrides: dotted config paths -> values, e.g. `**{"optimizer.name": "adamw", "steps": 2}`.
  """
  from configs import pretrain as pretrain_config  # pylint: disable=g-import-not-at-top
  c = pretrain_config.get_config("tiny")
  c.unlock()
  c.model.encoder.update({"patch_size": 32, "embed_dim": 16, "num_heads": 2, "pooling_heads": 2, "ff_dim": 32,
                          "num_layers": 1, "tokenizer_widths": (4, 8, 8, 8, 8, 8),
                          "channel_encoding": True})
  c.data.window_epochs = 2
  # Two encoder modalities keep compile times short; LOO with M=2 is the CLIP loss.
  c.data.modality_groups = {"bas": ("eeg", "eog"), "ecg": ("ecg",)}
  c.batch_size = 8
  c.steps = 4
  c.log_every = 2
  c.checkpoint_every = 2
  return apply_overrides(c, overrides)


# The compile-in-seconds encoder of the fine-tuning tests (single- and multilabel).
TINY_TRANSFER_ENCODER = {"patch_size": 32, "embed_dim": 16, "num_heads": 2, "pooling_heads": 2, "ff_dim": 32,
                         "num_layers": 1,
                         "tokenizer_widths": (4, 8, 8, 8, 8, 8), "channel_encoding": False, "window_s": 2.0}


def apply_overrides(config, overrides):
  """Sets dotted config paths (`{"optimizer.name": "adamw"}`) as `--config.x.y=v` would; returns config."""
  for key, value in overrides.items():
    *parents, leaf = key.split(".")
    target = config
    for parent in parents:
      target = target[parent]
    target[leaf] = value
  return config


@pytest.fixture(name="fake_source")
def fake_source_fixture():
  """The `fake_source` factory (call it with keyword arguments)."""
  return fake_source
