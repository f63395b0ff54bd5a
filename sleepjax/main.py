r"""sleepjax command-line entry point, intentionally kept short.

  python -m sleepjax.main --config=configs/pretrain.py --workdir=/tmp/sleepjax/pretrain
  python -m sleepjax.main --config=configs/pretrain.py:tiny --workdir=/tmp/w --config.steps=20
  python -m sleepjax.main --config=configs/sleepmg.py --workdir=/tmp/sleepmg

The config's `task` field picks the trainer: each trainer exposes
`train_and_evaluate(config, workdir)`.
"""

import importlib

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (a Python file with get_config(arg)).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and reports.")
flags.mark_flags_as_required(["config", "workdir"])

# task name -> module with train_and_evaluate(config, workdir).
TASKS = {
    "pretrain": "sleepjax.train.pretrain",
    "sleepmg": "sleepjax.train.sleepmg",
    "finetune": "sleepjax.train.finetune",
}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # Orbax and TFDS log every file operation at INFO; users see the progress bar and tables.
    logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  if config.task not in TASKS:
    raise app.UsageError(f"Unknown task {config.task!r}; expected one of {sorted(TASKS)}.")
  logging.info("task=%s workdir=%s", config.task, _WORKDIR.value)
  trainer = importlib.import_module(TASKS[config.task])
  trainer.train_and_evaluate(config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
