"""Opening a config's TFDS dataset: the builder registration and the manual-download rule, once."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from typing import Any

import ml_collections
import numpy as np

from sleepjax.data import pipeline


def open_dataset(data: ml_collections.ConfigDict):
  """Builds (on first use) and returns the TFDS builder named by a config's `data` block.

  Imports `data.builder_module` first, which registers the builder with TFDS (sleepjax never
  imports tfds_builders itself).

  Args:
    data: needs name, builder_config, data_dir, manual_dir; optional builder_module and
      manual_dir_required (True: no manual_dir and no finished build is an error, never a
      download: for datasets the project has no copy of).

  Returns:
    The prepared `tfds.core.DatasetBuilder`.

  Raises:
    ValueError: manual_dir_required and neither a manual_dir nor a finished build.
  """
  if data.get("builder_module"):
    importlib.import_module(data.builder_module)
  if data.get("manual_dir_required") and not data.manual_dir:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  # Lazy: seconds to import.
    full = f"{data.name}/{data.builder_config}" if data.builder_config else data.name
    if not tfds.builder(full, data_dir=data.data_dir).is_prepared():
      raise ValueError(
          f"{full} is not built in data_dir={data.data_dir!r} and config.data.manual_dir is unset: pass "
          f"--config.data.manual_dir=/path/to/your/{data.name} files (see tfds_builders/{data.name}/README.md)")
  return pipeline.prepare(data.name, data.data_dir, config=data.builder_config, manual_dir=data.manual_dir)


def open_splits(data: ml_collections.ConfigDict, splits: Iterable[str]) -> dict[str, Any]:
  """{split: random-access source} of a config's dataset, each split opened once."""
  builder = open_dataset(data)
  return {split: builder.as_data_source(split=split) for split in dict.fromkeys(splits)}


def index_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
  """Endless training batches of indices into range(n): shuffled passes, full batches only.

  Each pass is a fresh permutation from `rng`; the last incomplete batch of a pass is dropped.
  When n < batch_size, every batch is drawn with replacement instead.

  Raises:
    ValueError: n < 1 (no training example).
  """
  if n < 1:
    raise ValueError("no training examples")
  while True:
    order = rng.permutation(n)
    if n < batch_size:
      yield rng.choice(n, batch_size, replace=True)
      continue
    for i in range(0, n - batch_size + 1, batch_size):
      yield order[i:i + batch_size]
