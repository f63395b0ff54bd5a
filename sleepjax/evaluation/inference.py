"""Jitted inference of an NNX module: split once, one compiled function per (function, graph)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from flax import nnx
import jax


@functools.partial(jax.jit, static_argnums=(0, 1))
def _apply(fn, graphdef, state, batch):
  return fn(nnx.merge(graphdef, state), batch)


class Apply:
  """`fn(model, batch)` jitted, for a fixed model.

  `fn` must be a module-level function (it keys the compilation cache together with the model's
  graph definition, so models of one architecture share the compiled function).

  Args:
    fn: (module, batch of arrays) -> outputs; runs under jit.
    model: the module (its current parameters and model state are captured when constructed).
  """

  def __init__(self, fn: Callable[[nnx.Module, Mapping[str, Any]], Any], model: nnx.Module):
    self.fn = fn
    self.graphdef, self.state = nnx.split(model)

  def __call__(self, batch: Mapping[str, Any]):
    return _apply(self.fn, self.graphdef, self.state, dict(batch))
