"""sleepjax: sleep biosignal foundation models in JAX/Flax.

Subpackages:
  data:        EDF reading and validation, montages, stage maps, synthetic PSG, input pipelines.
  models:      Flax NNX modules (set-transformer encoder, channel encoding, FeatureNet, SleepMG).
  losses:      contrastive (leave-one-out, pairwise) and classification losses.
  optim:       optax pieces (SleepMG per-modality balance transform, schedules).
  train:       one trainer per task (pretrain, sleepmg, finetune, staging).
  evaluation:  confusion-matrix metrics, linear probes, reports and plots.

Top-level shortcuts, imported on first use so that `import sleepjax` stays light:
  sleepjax.stage(recording, model) -> sleepjax.Hypnogram   (sleepjax.staging, docs/staging.md)
  sleepjax.embed(recording, model) -> dict of arrays       (sleepjax.embedding, docs/embeddings.md)
"""

__version__ = "0.1.0"

_LAZY = {"stage": ("sleepjax.staging", "stage"), "load_stager": ("sleepjax.staging", "load_stager"),
         "Hypnogram": ("sleepjax.hypnogram", "Hypnogram"), "embed": ("sleepjax.embedding", "embed")}


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    module, attr = _LAZY[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
  raise AttributeError(f"module 'sleepjax' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_LAZY))
