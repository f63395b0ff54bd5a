"""One config schema for every task: shared fields, encoder and optimizer presets, validation.

Each trainer defines its full default config (`default_config()`, every field documented there)
from `common(task)`; the files in `configs/` start from it and set their variants. `validate`
checks a config against its trainer's defaults before any data is built or anything compiled, and
raises `ConfigError` with a one-line message (`python -m sleepjax.main` prints it, no traceback).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from sleepjax import optim
from sleepjax.models import encoder as encoder_lib


class ConfigError(ValueError):
  """A config that cannot run: an unknown field, variant or name, or a value out of range."""


def placeholder(field_type):
  """None that can still be set from the command line (`--config.data.manual_dir=/path`)."""
  return ml_collections.config_dict.placeholder(field_type)


def encoder(preset: str = "sleepfm_clinical", **changes) -> ml_collections.ConfigDict:
  """Every field of `EncoderConfig` from a preset ("sleepfm_clinical", "transfer", "tiny").

  All fields are spelled out so that any can be overridden (`--config.model.encoder.num_layers=4`);
  the dtypes are `model.dtype`.

  Raises:
    ConfigError: unknown preset or field.
  """
  presets = ("sleepfm_clinical", "transfer", "tiny")
  if preset not in presets:
    raise ConfigError(f"unknown encoder preset {preset!r}; presets: {', '.join(presets)}")
  try:
    fields = getattr(encoder_lib, preset)().replace(**changes).to_dict()
  except TypeError as e:
    raise ConfigError(f"encoder preset {preset!r}: {e}") from e
  fields.pop("dtype")
  fields.pop("param_dtype")
  return ml_collections.ConfigDict(fields)


def encoder_config(model_config: ml_collections.ConfigDict) -> encoder_lib.EncoderConfig:
  """`EncoderConfig` from `config.model.encoder` (every field) and `config.model.dtype`."""
  fields = model_config.encoder.to_dict()
  dtype = model_config.get("dtype", "float32")
  return encoder_lib.EncoderConfig.from_dict({**fields, "dtype": None if dtype == "float32" else dtype})


def optimizer(**values) -> ml_collections.ConfigDict:
  """An `optimizer` block with every field of `optim.OptimizerConfig` (total_steps comes from `steps`)."""
  fields = {f.name: f.default for f in dataclasses.fields(optim.OptimizerConfig) if f.name != "total_steps"}
  unknown = set(values) - set(fields)
  if unknown:
    raise ConfigError(f"unknown optimizer fields {sorted(unknown)}; fields: {sorted(fields)}")
  fields.update(values)
  return ml_collections.ConfigDict(fields)


def optimizer_config(block: ml_collections.ConfigDict, steps: int) -> optim.OptimizerConfig:
  """The hashable `OptimizerConfig` of an `optimizer` block.

  Raises:
    ConfigError: an unknown optimizer or schedule name, or a bad value.
  """
  try:
    return optim.OptimizerConfig.from_config(block.to_dict(), total_steps=int(steps))
  except ValueError as e:
    raise ConfigError(str(e)) from e


def common(task: str) -> ml_collections.ConfigDict:
  """The fields every task has, with their shared names.

  task; seeds (one run per seed); batch_size and eval_batch_size; steps (optimizer updates per
  run); log_every (metrics fetched, checked for NaN and written); optimizer (`optimizer()`);
  num_devices (None: every device); progress_bar; tensorboard; data.{builder_module, name,
  builder_config, data_dir, manual_dir, manual_dir_required}. Every workdir gets config.json,
  metrics.jsonl, results.{md,csv,json} and model/ (`sleepjax.models.load`).
  """
  c = ml_collections.ConfigDict()
  c.task = task
  c.seeds = (0,)
  c.batch_size = 16
  c.eval_batch_size = 64
  c.steps = 1000
  c.log_every = 50
  c.optimizer = optimizer()
  c.num_devices = placeholder(int)
  c.progress_bar = True
  c.tensorboard = True
  c.data = ml_collections.ConfigDict()
  # The builder module is imported to register the TFDS builder (sleepjax never imports
  # tfds_builders itself; it reads prepared datasets by name).
  c.data.builder_module = placeholder(str)
  c.data.name = ""
  c.data.builder_config = placeholder(str)
  c.data.data_dir = placeholder(str)  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  c.data.manual_dir = placeholder(str)
  # True: a missing manual_dir is an error (never a download) unless the dataset is built already.
  c.data.manual_dir_required = False
  return c


def _paths(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in config.items():
    path = f"{prefix}{key}"
    out[path] = value
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(_paths(value, path + "."))
  return out


def _one_line(text: str) -> str:
  return " ".join(str(text).split())


def check_known_fields(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict, *,
                       free_form: Iterable[str] = ()) -> None:
  """Every field of `config` must be a field of the trainer's `defaults`.

  Args:
    config: the config to run.
    defaults: the trainer's `default_config()`.
    free_form: fields whose keys are data, not schema (e.g. "data.modality_groups").

  Raises:
    ConfigError: naming the first unknown field and the closest known one.
  """
  free_form = tuple(free_form)
  known = _paths(defaults)
  for path in _paths(config):
    if path in known or any(path.startswith(f + ".") for f in free_form):
      continue
    parent, _, leaf = path.rpartition(".")
    siblings = [p.rpartition(".")[2] for p in known if p.rpartition(".")[0] == parent]
    close = difflib.get_close_matches(leaf, siblings, n=1)
    hint = f"; did you mean {(parent + '.' if parent else '') + close[0]!r}?" if close else ""
    raise ConfigError(f"unknown config field {path!r} for task {config.task!r}{hint}")


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
  """Raises ConfigError unless `value` is one of `choices`."""
  if value not in choices:
    raise ConfigError(f"config.{name}={value!r} is not one of {', '.join(map(repr, choices))}")


def check_subset(name: str, values: Sequence[Any], choices: Sequence[Any]) -> None:
  """Raises ConfigError unless `values` is a non-empty subset of `choices`."""
  values = tuple(values)
  unknown = [v for v in values if v not in choices]
  if unknown or not values:
    what = f"unknown {unknown}" if unknown else "empty"
    raise ConfigError(f"config.{name}: {what}; expected names among {', '.join(map(repr, choices))}")


def check_positive(config: ml_collections.ConfigDict, names: Iterable[str]) -> None:
  """Each named (dotted) field must be an integer >= 1."""
  for name in names:
    value = config
    for part in name.split("."):
      value = value[part]
    if value is None or int(value) != value or value < 1:
      raise ConfigError(f"config.{name} must be an integer >= 1, got {value!r}")


def validate_common(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict, *,
                    free_form: Iterable[str] = (), periods: Iterable[str] = ()) -> None:
  """The checks every task shares: known fields, seeds, sizes and periods, the optimizer.

  Raises:
    ConfigError: one line naming the field.
  """
  check_known_fields(config, defaults, free_form=free_form)
  if not tuple(config.seeds):
    raise ConfigError("config.seeds is empty")
  check_positive(config, ("steps", "batch_size", "eval_batch_size", "log_every", *periods))
  if config.num_devices is not None and config.num_devices < 1:
    raise ConfigError(f"config.num_devices must be >= 1 or None, got {config.num_devices}")
  optimizer_config(config.optimizer, config.steps)


def variant_error(path: str, variant: str, variants: Iterable[str]) -> ConfigError:
  """The error of an unknown `--config=<path>:<variant>`, listing the valid ones."""
  return ConfigError(f"unknown {path} variant {variant!r}; variants: {', '.join(variants)}")


def one_line(error: BaseException) -> str:
  """An exception as one line (for the command line)."""
  return _one_line(error)
