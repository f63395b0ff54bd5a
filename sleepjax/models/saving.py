"""Models saved and loaded at the model level: weights + the config that rebuilds the module.

A saved model is a folder (docs/architecture.md §7):

  <model dir>/config.json   {"format": "sleepjax.model", "format_version": 1, "architecture": name,
                             "config": the module's get_config(), "label_names": [...] or null,
                             "metadata": {...}}
  <model dir>/weights/      orbax checkpoint of {"params": ..., "model_state": ...} (nested dicts)

A trainer's workdir keeps its models under `<workdir>/model/`, with `index.json` naming them and
the default one. Loading needs no optimizer, no trainer and no experiment config.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

FORMAT = "sleepjax.model"
FORMAT_VERSION = 1
INDEX = "index.json"
MODEL_ROOT = "model"
# What is saved beside the parameters: every non-parameter variable but the RNG streams
# (BatchNorm running statistics); the streams are reseeded at every training step.
MODEL_STATE = nnx.All(nnx.Not(nnx.Param), nnx.Not(nnx.RngState))


def _architectures() -> dict[str, type]:
  # Imported here: the model modules import this one's helpers only through sleepjax.models.
  from sleepjax.models import encoder, multimodal, sleepmg, stager, transfer  # pylint: disable=g-import-not-at-top
  return {cls.__name__: cls for cls in (multimodal.MultiModalEncoder, encoder.SetTransformerEncoder,
                                        transfer.TransferModel, sleepmg.SleepMGModel, stager.SequenceStager)}


def architecture_name(model: nnx.Module) -> str:
  """The registry name of a model's class.

  Raises:
    TypeError: the class cannot be saved (it is not one of sleepjax's models).
  """
  name = type(model).__name__
  if name not in _architectures():
    raise TypeError(f"cannot save a {name}: savable architectures are {sorted(_architectures())}")
  return name


def _pure(state) -> dict:
  return jax.tree.map(np.asarray, nnx.to_pure_dict(jax.device_get(state)))


def save(model: nnx.Module, path: str | os.PathLike, *, label_names: Sequence[str] | None = None,
         metadata: Mapping[str, Any] | None = None) -> pathlib.Path:
  """Saves a model's parameters, model state (BatchNorm statistics) and the config that rebuilds it.

  Args:
    model: a sleepjax module (`MultiModalEncoder`, `SetTransformerEncoder`, `TransferModel`,
      `SleepMGModel`, `SequenceStager`).
    path: the model folder (created; an existing one is overwritten).
    label_names: the K output names of a classifier, in logit order (e.g. W, N1, N2, N3, REM).
    metadata: JSON-able facts a user of the model needs (data it was trained on, preprocessing,
      the run that made it, its test metric...).

  Returns:
    The model folder.

  Raises:
    TypeError: an unknown architecture or metadata that is not JSON-able.
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top  # Lazy: seconds to import.
  path = pathlib.Path(path).absolute()
  config = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": architecture_name(model),
            "config": model.get_config(), "label_names": None if label_names is None else list(label_names),
            "metadata": dict(metadata or {})}
  text = json.dumps(config, indent=2)  # Fails (TypeError) before anything is written.
  weights = {"params": _pure(nnx.state(model, nnx.Param)), "model_state": _pure(nnx.state(model, MODEL_STATE))}
  path.mkdir(parents=True, exist_ok=True)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(path / "weights", weights, force=True)
  checkpointer.wait_until_finished()
  checkpointer.close()
  if jax.process_index() == 0:
    (path / "config.json").write_text(text + "\n", encoding="utf-8")
  return path


def _read_json(path: pathlib.Path) -> dict:
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: not valid JSON ({e})") from e


def _is_model_dir(path: pathlib.Path) -> bool:
  cfg = path / "config.json"
  return cfg.is_file() and _read_json(cfg).get("format") == FORMAT


def resolve(path: str | os.PathLike, name: str | None = None) -> pathlib.Path:
  """The model folder meant by `path`: a model folder, a `model/` root, or a trainer's workdir.

  Args:
    path: a model folder (has a sleepjax `config.json`), a folder with `index.json` (a workdir's
      `model/`), or a workdir holding `model/index.json`.
    name: a model of the index (e.g. "best", "sleepmg/seed0/all/best"); default: the index's
      default model.

  Raises:
    FileNotFoundError: `path` does not exist or holds no saved model, or `name` is not in the
      index (the message lists the names there).
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such file or directory")
  if _is_model_dir(path) and name is None:
    return path
  root = path if (path / INDEX).is_file() else path / MODEL_ROOT
  if not (root / INDEX).is_file():
    raise FileNotFoundError(f"{path}: no saved model (expected a model folder with config.json, or "
                            f"{MODEL_ROOT}/{INDEX} in a workdir written by `python -m sleepjax.main`)")
  index = _read_json(root / INDEX)
  name = name or index["default"]
  if name not in index["models"]:
    raise FileNotFoundError(f"{root}: no model {name!r}; saved: {sorted(index['models'])}")
  return root / name


def list_models(path: str | os.PathLike) -> dict[str, Any]:
  """The index of a workdir's models: {"default": name, "models": {name: description}}."""
  path = pathlib.Path(path)
  root = path if (path / INDEX).is_file() else path / MODEL_ROOT
  if not (root / INDEX).is_file():
    raise FileNotFoundError(f"{path}: no {MODEL_ROOT}/{INDEX}")
  return _read_json(root / INDEX)


def register(workdir: str | os.PathLike, name: str, description: Mapping[str, Any], *,
             default: bool = False) -> None:
  """Adds (or replaces) `name` in `<workdir>/model/index.json`; the first model is the default.

  Only process 0 writes. `name` is the model folder relative to `<workdir>/model/`.
  """
  if jax.process_index() != 0:
    return
  root = pathlib.Path(workdir) / MODEL_ROOT
  root.mkdir(parents=True, exist_ok=True)
  index = _read_json(root / INDEX) if (root / INDEX).is_file() else {"default": None, "models": {}}
  index["models"][name] = dict(description)
  if default or index["default"] is None:
    index["default"] = name
  tmp = root / (INDEX + ".tmp")
  tmp.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
  os.replace(tmp, root / INDEX)


def load_info(path: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
  """The saved model's config.json (architecture, config, label_names, metadata) plus its "path"."""
  model_dir = resolve(path, name)
  info = _read_json(model_dir / "config.json")
  if info.get("format") != FORMAT or int(info.get("format_version", 0)) > FORMAT_VERSION:
    raise ValueError(f"{model_dir}/config.json: not a sleepjax model of format version <= {FORMAT_VERSION}")
  info["path"] = str(model_dir)
  return info


def load(path: str | os.PathLike, name: str | None = None) -> nnx.Module:
  """Restores a saved model, with no optimizer and no trainer, in eval mode.

  Args:
    path: a model folder, a workdir's `model/`, or a workdir (see `resolve`).
    name: which model of a workdir (default: the index's default).

  Returns:
    The module with its saved parameters and BatchNorm statistics; `model.eval()` has been called
    (Dropout off, BatchNorm on running statistics for modules that read those flags).

  Raises:
    FileNotFoundError: nothing saved at `path` (or no model `name`).
    ValueError: the weights do not match the config (shapes or structure).
  """
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  info = load_info(path, name)
  # Absolute: orbax's metadata() of a relative path finds no item metadata (returns None).
  model_dir = pathlib.Path(info["path"]).absolute()
  cls = _architectures().get(info["architecture"])
  if cls is None:
    raise ValueError(f"{model_dir}: unknown architecture {info['architecture']!r}")
  model = cls.from_config(info["config"], rngs=nnx.Rngs(0))
  params, model_state = nnx.state(model, nnx.Param), nnx.state(model, MODEL_STATE)
  target = {"params": _abstract(params), "model_state": _abstract(model_state)}
  checkpointer = ocp.StandardCheckpointer()
  try:
    stored = checkpointer.metadata(model_dir / "weights")
    check_same_arrays(getattr(stored, "item_metadata", stored), target, f"{model_dir}/weights: does not match its config.json")
    restored = checkpointer.restore(model_dir / "weights", target)
  except (KeyError, TypeError) as e:
    raise ValueError(f"{model_dir}/weights: does not match its config.json: {e}") from e
  finally:
    checkpointer.close()
  nnx.replace_by_pure_dict(params, restored["params"])
  nnx.replace_by_pure_dict(model_state, restored["model_state"])
  nnx.update(model, params, model_state)
  model.eval()
  return model


def check_same_arrays(stored, target, message: str) -> None:
  """Raises ValueError unless two trees have the same paths, shapes and dtypes.

  Orbax restores an array of another shape than its target's without complaint (it returns the
  stored shape), so a restore is checked against the stored metadata first.

  Args:
    stored: the checkpoint's metadata tree (leaves with `.shape` and `.dtype`).
    target: the tree to restore into (leaves with `.shape` and `.dtype`).
    message: the start of the error message (names the file).
  """
  def flat(tree):
    # Integer keys (list indices) are stored as strings: compare paths as "/"-joined strings.
    return {"/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path): x
            for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]}

  flat_stored = flat(dict(getattr(stored, "tree", stored)))
  flat_target = flat(dict(target))
  missing = sorted(set(flat_target) - set(flat_stored))
  extra = sorted(set(flat_stored) - set(flat_target))
  if missing or extra:
    raise ValueError(f"{message}: arrays missing {missing[:3]}, unexpected {extra[:3]}")
  for path, want in flat_target.items():
    got = flat_stored[path]
    if jax.dtypes.issubdtype(want.dtype, jax.dtypes.prng_key):
      want = jax.eval_shape(jax.random.key_data, want)  # Typed PRNG keys are stored as their key data.
    if tuple(got.shape) != tuple(want.shape) or np.dtype(got.dtype) != np.dtype(want.dtype):
      raise ValueError(f"{message}: {path} is {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}")


def _abstract(state) -> dict:
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), nnx.to_pure_dict(state))
