"""Flax NNX models, and saving and loading them at the model level.

  model = sleepjax.models.load("/tmp/sleepjax/pretrain")      # a workdir, its model/, or a model folder
  sleepjax.models.save(model, "/tmp/my_model", label_names=("W", "N1", "N2", "N3", "REM"))
"""

from sleepjax.models.saving import list_models, load, load_info, save

__all__ = ["list_models", "load", "load_info", "save"]
