"""One train state and one jitted train-step factory for every trainer.

The train state is a dict pytree (big_vision's layout), saved and restored whole by orbax:

  {"step":        () int32, steps done,
   "params":      nnx.State of the model's nnx.Param variables,
   "model_state": nnx.State of every other variable (BatchNorm statistics, RNG streams),
   "opt_state":   the optax state,
   "rng":         the run's base PRNG key}

A trainer describes its update by a `Task`: a hashable value holding the model's graph
definition and the optimiser config, with the loss (and optional gradient and parameter hooks).
`make_train_step` jits one pure step for a task, with the state donated and replicated and the
batch sharded over the `data` mesh axis; tasks that compare equal share one compiled step (the
seeds of a run, the folds of a cross-validation with equal shapes).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sleepjax import optim
from sleepjax.train import mesh as mesh_lib

State = dict[str, Any]


class Task:
  """What one training step computes; subclasses are frozen dataclasses (hashable: static under jit).

  A subclass has the fields `graphdef` (the model's `nnx.GraphDef`, in training mode) and
  `optimizer` (an `optim.OptimizerConfig`), and implements `loss`. The step (`train_step`):

    rng = fold_in(state["rng"], state["step"])     # fresh, reproducible keys at every step
    loss, aux = task.loss(model, batch, rng, hparams)
    grads, update_kwargs, metrics = task.update_gradients(grads, params, batch, aux, rng, hparams)
    params = task.constrain(apply_updates(params, tx.update(grads, ..., **update_kwargs)))

  Why fold in the step: every step gets fresh dropout masks, and a resumed run gets exactly the
  masks the uninterrupted run would have had.
  """

  graphdef: Any
  optimizer: optim.OptimizerConfig

  def make_tx(self) -> optax.GradientTransformationExtraArgs:
    """The optax transform (built inside the jitted step from the hashable config)."""
    return optim.make_optimizer(self.optimizer)

  def loss(self, model: nnx.Module, batch: Mapping[str, Any], rng: jax.Array,
           hparams: Mapping[str, jax.Array]) -> tuple[jax.Array, dict[str, Any]]:
    """(scalar loss, aux); `aux["metrics"]` (scalars or small arrays) joins the step's metrics."""
    raise NotImplementedError

  def update_gradients(self, grads, params, batch, aux, rng, hparams) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(gradients, extra keyword arguments of `tx.update`, extra metrics); default: unchanged."""
    del params, batch, aux, rng, hparams
    return grads, {}, {}

  def constrain(self, params):
    """Parameters after every update (e.g. a clamp); default: unchanged."""
    return params


def dropout_key(seed: int) -> jax.Array:
  """The PRNG key of a run's dropout (and other training-time) randomness.

  RBG keys (XLA's RngBitGenerator): on CPU they compile in a fraction of the time of threefry,
  which is unrolled at every dropout site (32 in a 6-layer encoder); the keys only drive dropout
  masks and noise, never parameter initialisation.
  """
  return jax.random.key(seed, impl="rbg")


def split_model(model: nnx.Module) -> tuple[Any, nnx.State, nnx.State]:
  """(graphdef, params, model_state): nnx.Param variables and everything else."""
  return nnx.split(model, nnx.Param, ...)


def merge_model(graphdef: Any, params, model_state) -> nnx.Module:
  """The module of a graph definition and its states (fresh Variable objects).

  Fresh Variables at the current trace level: NNX forbids mutating (reseeding, updating BatchNorm
  statistics) Variables created at another trace level, e.g. outside `jax.grad`.
  """
  fresh = lambda tree: jax.tree.map(lambda x: x, tree)
  return nnx.merge(graphdef, fresh(params), fresh(model_state))


def init_state(model: nnx.Module, optimizer: optim.OptimizerConfig | optax.GradientTransformation,
               rng: jax.Array) -> tuple[Any, State]:
  """Splits `model` and returns (graphdef, train state) with a fresh optimizer state.

  Args:
    model: the freshly initialised module (in training mode).
    optimizer: an `OptimizerConfig`, or the task's transform (`task.make_tx()`) when the task
      chains something before the optimiser.
    rng: the run's base PRNG key.
  """
  graphdef, params, model_state = split_model(model)
  tx = optim.make_optimizer(optimizer) if isinstance(optimizer, optim.OptimizerConfig) else optimizer
  return graphdef, {"step": jnp.zeros((), jnp.int32), "params": params, "model_state": model_state,
                    "opt_state": tx.init(params), "rng": rng}


def train_step(task: Task, state: State, batch: Mapping[str, Any],
               hparams: Mapping[str, jax.Array]) -> tuple[State, dict[str, jax.Array]]:
  """One pure update (no logging, no host RNG, no Python branching on traced values).

  Args:
    task: the trainer's `Task` (static).
    state: the train state (module docstring).
    batch: the task's batch of arrays.
    hparams: traced scalars the task reads (e.g. SleepMG's gradient-reversal ratio), replicated.

  Returns:
    (new state, metrics): "loss", "grad_norm" (of the raw gradients) and the task's metrics.
  """
  rng = jax.random.fold_in(state["rng"], state["step"])
  tx = task.make_tx()

  def loss_fn(params):
    model = merge_model(task.graphdef, params, state["model_state"])
    loss, aux = task.loss(model, batch, rng, hparams)
    return loss, (aux, nnx.state(model, nnx.Not(nnx.Param)))

  (loss, (aux, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux.get("metrics", {})}
  grads, update_kwargs, extra = task.update_gradients(grads, state["params"], batch, aux, rng, hparams)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"], **update_kwargs)
  params = task.constrain(optax.apply_updates(state["params"], updates))
  new_state = {"step": state["step"] + 1, "params": params, "model_state": model_state,
               "opt_state": opt_state, "rng": state["rng"]}
  return new_state, {**metrics, **extra}


@functools.lru_cache(maxsize=64)
def _jit_step(task: Task, mesh, treedef):
  del treedef  # Part of the cache key only: the shardings below follow the state's structure.
  rep = mesh_lib.replicated(mesh)
  return jax.jit(functools.partial(train_step, task),
                 in_shardings=(rep, mesh_lib.data_sharded(mesh), rep), out_shardings=(rep, rep),
                 donate_argnums=(0,))


def make_train_step(task: Task, mesh, state: State):
  """`train_step` of `task` jitted once: state replicated and donated, batch sharded over `data`.

  Calls with an equal task, the same mesh and a state of the same structure return the same
  compiled function, so the seeds (and equal-shaped folds) of a run compile once.

  Args:
    task: the trainer's `Task`.
    mesh: the data mesh (`mesh.make_data_mesh`).
    state: a train state (its structure; values are not used).

  Returns:
    step(state, batch, hparams={}) -> (state, metrics); `batch` leaves have the batch size as
    their leading axis (divisible by the mesh size).
  """
  jitted = _jit_step(task, mesh, jax.tree.structure(state))

  def step(state: State, batch: Mapping[str, Any], hparams: Mapping[str, Any] | None = None):
    return jitted(state, batch, {} if hparams is None else dict(hparams))

  return step


def is_key(x) -> bool:
  return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def host_copy(tree):
  """A host copy of a pytree of arrays that survives donation of the device buffers.

  On CPU `np.asarray(device_array)` can alias the device buffer, which the next (donating) step
  reuses; `np.array` copies. PRNG key arrays are copied through their key data.
  """
  def copy(x):
    if is_key(x):
      return jax.random.wrap_key_data(np.array(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    return np.array(jax.device_get(x))
  return jax.tree.map(copy, tree)


def model_from_state(graphdef: Any, state: Mapping[str, Any]) -> nnx.Module:
  """The module held by a train state (or a `host_copy` of its "params" and "model_state")."""
  return nnx.merge(graphdef, state["params"], state["model_state"])
