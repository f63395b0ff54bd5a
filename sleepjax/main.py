r"""sleepjax command-line entry point, intentionally kept short.

  python -m sleepjax.main --config=configs/pretrain.py --workdir=/tmp/sleepjax/pretrain
  python -m sleepjax.main --config=configs/pretrain.py:tiny --workdir=/tmp/w --config.steps=20
  python -m sleepjax.main --config=configs/sleepmg.py --workdir=/tmp/sleepmg
  python -m sleepjax.main --config=configs/staging.py:tiny --workdir=/tmp/staging_tiny

The config's `task` field picks the trainer: each trainer exposes `validate_config(config)` and
`train_and_evaluate(config, workdir)`. A config that cannot run (an unknown variant, a misspelled
field, an unknown optimizer or method, a period below 1) is reported in one line, before any data
is built, with exit status 2; `--verbosity=1` shows the traceback.
"""

import importlib
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (a Python file with get_config(arg)).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, models and reports.")
flags.mark_flags_as_required(["config", "workdir"])

# task name -> module with validate_config(config) and train_and_evaluate(config, workdir).
TASKS = {
    "pretrain": "sleepjax.train.pretrain",
    "sleepmg": "sleepjax.train.sleepmg",
    "finetune": "sleepjax.train.finetune",
    "staging": "sleepjax.train.staging",
}


def _fail(message: str) -> None:
  print(f"sleepjax: error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(2)


def _verbose(argv) -> bool:
  return any(a.startswith(("--verbosity", "-v=")) for a in argv)


def _config_error(text: str, argv) -> str:
  """One line out of ml_collections' and absl's multi-line config errors."""
  text = str(text).replace("\\n", "\n")
  missing = re.search(r"No such file or directory: '([^']+)'", text)
  if missing:
    return f"config file {missing.group(1)!r} not found"
  hint = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  if hint:
    wrong = [a.split("=", 1)[0] for a in argv if re.search(rf"\.{re.escape(hint.group(2))}(=|$)", a.split("=", 1)[0])]
    where = wrong[0] if wrong else hint.group(2)
    return f"unknown config field {where}; did you mean {hint.group(1)!r}?"
  raised = re.findall(r"(?:\w+\.)*(\w+(?:Error|Exception)): (.+)", text)
  if raised:
    return raised[-1][1]
  return text


def parse_flags(argv):
  """absl's flag parsing, with a one-line message for a config that does not load.

  A misspelled `--config.field=...` or an unknown `--config=FILE:variant` raises inside
  ml_collections, and absl would print its traceback.
  """
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, OSError, TypeError, ValueError) as e:
    if _verbose(argv):
      raise
    _fail(_config_error(e.args[0] if e.args else e, argv))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # Orbax and TFDS log every file operation at INFO; users see the progress bar and tables.
    logging.set_verbosity(logging.WARNING)
  try:
    config = _CONFIG.value
    task = config.get("task")
  except OSError as e:  # config_flags defers a file that did not load to the first access.
    if flags.FLAGS["verbosity"].present:
      raise
    _fail(_config_error(e, sys.argv))
  if task not in TASKS:
    _fail(f"config task {config.get('task')!r} is not one of {sorted(TASKS)}")
  trainer = importlib.import_module(TASKS[config.task])
  from sleepjax.train import config as config_lib  # pylint: disable=g-import-not-at-top
  try:
    trainer.validate_config(config)
  except config_lib.ConfigError as e:
    if flags.FLAGS["verbosity"].present:
      raise
    _fail(e)
  logging.info("task=%s workdir=%s", config.task, _WORKDIR.value)
  from sleepjax.data import errors as data_errors  # pylint: disable=g-import-not-at-top
  from sleepjax.train import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.train import loop as loop_lib  # pylint: disable=g-import-not-at-top
  try:
    trainer.train_and_evaluate(config, _WORKDIR.value)
  except (checkpoint_lib.CheckpointError, loop_lib.NonFiniteLossError, data_errors.RecordingError) as e:
    # A full disk, a diverged run or unusable input data: one line (exit 1), not a traceback.
    if flags.FLAGS["verbosity"].present:
      raise
    print(f"sleepjax: error: {' '.join(str(e).split())}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
