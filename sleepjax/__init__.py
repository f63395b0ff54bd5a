"""sleepjax: sleep biosignal foundation models in JAX/Flax.

Subpackages:
  data:        EDF reading and validation, montages, stage maps, synthetic PSG, input pipelines.
  models:      Flax NNX modules (set-transformer encoder, channel encoding, FeatureNet, SleepMG).
  losses:      contrastive (leave-one-out, pairwise) and classification losses.
  optim:       optax pieces (SleepMG per-modality balance transform, schedules).
  train:       one trainer per task (pretrain, sleepmg, finetune).
  evaluation:  confusion-matrix metrics, linear probes, reports and plots.
"""

__version__ = "0.1.0"
