"""Optax pieces: every trainer's optimiser (`make_optimizer`) and SleepMG's per-modality balance.

`modality_balance` multiplies the gradient of each modality's block of a shared linear head by
that modality's metric rho^{a,u} (SleepMG Eq. 7), before the optimiser's moment estimates see it
(Eq. 8-12). SleepMG's W_a = [W_a^1 | ... | W_a^U] acts on the fused feature f as W_a f, so its
column blocks act on the modalities' features. A Flax `Linear` kernel is stored transposed, as
(in_features, out_features) = (F, K), and computes f @ kernel: the paper's column block W_a^u is
therefore the ROW block kernel[o_u : o_u + F_u, :] here. Biases are shared by all modalities and
are not scaled.

Chaining: `make_optimizer(OptimizerConfig(name="adam", b1=0.5), first=modality_balance(...))`; optax.chain
forwards the extra keyword `rho=` to every member (Adam ignores it), so the trainer calls
`tx.update(grads, opt_state, params, rho={"y": rho_y, "d": rho_d})`.

Note (docs/specification.md §4.5): Adam divides by the root of its second-moment estimate, so a rho that
stayed constant over steps would cancel; rho acts through its variation from step to step. The
SGD variant (`OptimizerConfig(name="sgd")`) keeps the scale.

References:
  SleepMG (ACM MM 2024), Eq. 7-12.
  Kingma, D. & Ba, J. (2015). Adam: a method for stochastic optimization. ICLR.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

PathLike = Sequence[str]


def path_names(path: Sequence[Any]) -> tuple[str, ...]:
  """A pytree key path as plain strings, without the trailing `value` of NNX variables.

  Args:
    path: a `jax.tree_util` key path (DictKey / GetAttrKey / SequenceKey entries).

  Returns:
    e.g. ("head_y", "kernel") for both a plain nested dict and an `nnx.State` of Params.
  """
  names = []
  for k in path:
    if isinstance(k, jax.tree_util.DictKey):
      names.append(str(k.key))
    elif isinstance(k, jax.tree_util.GetAttrKey):
      names.append(k.name)
    elif isinstance(k, jax.tree_util.SequenceKey):
      names.append(str(k.idx))
    else:
      names.append(str(k))
  if names and names[-1] == "value":
    names.pop()
  return tuple(names)


def block_scale(rho: jax.Array, block_sizes: Sequence[int]) -> jax.Array:
  """Row scale vector of a head kernel: rho^u repeated over the F_u rows of block u.

  Args:
    rho: (U,) float per-modality factors.
    block_sizes: U ints F_u.

  Returns:
    (sum_u F_u,) float32.

  Raises:
    ValueError: rho's length differs from the number of blocks.
  """
  rho = jnp.asarray(rho, jnp.float32)
  if rho.shape != (len(block_sizes),):
    raise ValueError(f"rho has shape {rho.shape}, expected ({len(block_sizes)},) for blocks {tuple(block_sizes)}")
  return jnp.repeat(rho, jnp.asarray(block_sizes), total_repeat_length=int(sum(block_sizes)))


class ModalityBalanceState(NamedTuple):
  """Stateless: rho arrives with every update."""


def modality_balance(
    kernel_paths: Mapping[str, PathLike] | Callable[[tuple[str, ...]], str | None],
    block_sizes: Sequence[int],
) -> optax.GradientTransformationExtraArgs:
  """SleepMG Eq. 7 as an optax transform: scale each modality's row block of the head kernels.

  Args:
    kernel_paths: which leaves are head kernels, either {head: path} (e.g. {"y": ("head_y",
      "kernel"), "d": ("head_d", "kernel")}; paths as returned by `path_names`) or a partition
      function path -> head name or None.
    block_sizes: U ints F_u = 256 C_u, the rows of each modality's block, in fused order.

  Returns:
    A transform whose `update(updates, state, params=None, *, rho)` takes `rho` = {head: (U,)
    float}, multiplies rows [o_u, o_u + F_u) of that head's kernel update by rho[head][u], and
    returns every other leaf unchanged (the same array object, so bit-identical). A head named by
    the partition but absent from `rho` is left unscaled (the y-only / d-only ablations).

  Raises (at update time):
    ValueError: `rho` is missing, a head kernel's rows differ from sum(block_sizes), or a head
      named in `kernel_paths` (mapping form) matches no leaf.
  """
  block_sizes = tuple(int(b) for b in block_sizes)
  if callable(kernel_paths):
    partition = kernel_paths
    expected = None
  else:
    lookup = {tuple(p): head for head, p in kernel_paths.items()}
    partition = lookup.get
    expected = set(kernel_paths)

  def init_fn(params):
    del params
    return ModalityBalanceState()

  def update_fn(updates, state, params=None, *, rho: Mapping[str, jax.Array] | None = None,
                **extra_args):
    del params, extra_args
    if rho is None:
      raise ValueError("modality_balance.update needs rho={head: (U,) array}")
    seen = set()

    def scale(path, g):
      head = partition(path_names(path))
      if head is None:
        return g
      seen.add(head)
      if head not in rho:
        return g
      if g.ndim != 2 or g.shape[0] != sum(block_sizes):
        raise ValueError(f"head {head!r} kernel update has shape {g.shape}; expected "
                         f"({sum(block_sizes)}, K) rows = blocks {block_sizes}")
      return g * block_scale(rho[head], block_sizes).astype(g.dtype)[:, None]

    out = jax.tree_util.tree_map_with_path(scale, updates)
    if expected is not None and expected - seen:
      raise ValueError(f"modality_balance: no kernel found for heads {sorted(expected - seen)}")
    return out, state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Every trainer's optimiser, as a hashable value (the jitted step builds its transform from it).

  Attributes:
    name: "sgd" (momentum SGD; the SleepFM reference), "adam" (SleepMG: b1 0.5, b2 0.999) or
      "adamw" (decoupled weight decay; the transfer paper: lr 1e-4).
    learning_rate: peak step size.
    schedule: "constant"; "step" (multiply by `decay_factor` at each of `decay_steps`, the SleepFM
      reference); "cosine" (linear warm-up over `warmup_steps` from 0, then cosine decay to
      `learning_rate * final_fraction` at `total_steps`).
    decay_steps, decay_factor: the step schedule.
    warmup_steps, final_fraction, total_steps: the cosine schedule.
    momentum: SGD momentum (0.9).
    b1, b2: Adam / AdamW decay rates.
    weight_decay: L2 weight decay (SGD: added to the gradient; AdamW: decoupled; Adam: must be 0).
    grad_clip_norm: clip the global gradient norm to this value first (0: off).
    frozen: top-level parameter names (e.g. ("encoder",)) whose updates are exactly zero
      (`optax.set_to_zero`, so that weight decay cannot move them either).
  """

  name: str = "adamw"
  learning_rate: float = 1e-3
  schedule: str = "constant"
  decay_steps: tuple[int, ...] = ()
  decay_factor: float = 0.1
  warmup_steps: int = 0
  final_fraction: float = 0.0
  total_steps: int = 1
  momentum: float = 0.9
  b1: float = 0.9
  b2: float = 0.999
  weight_decay: float = 0.0
  grad_clip_norm: float = 0.0
  frozen: tuple[str, ...] = ()

  def __post_init__(self):
    if self.name not in OPTIMIZERS:
      raise ValueError(f"optimizer.name must be one of {OPTIMIZERS}, got {self.name!r}")
    if self.schedule not in SCHEDULES:
      raise ValueError(f"optimizer.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
    if self.name == "adam" and self.weight_decay:
      raise ValueError("optimizer.weight_decay needs name 'adamw' or 'sgd' (Adam has no weight decay)")
    if not self.learning_rate > 0:
      raise ValueError(f"optimizer.learning_rate must be > 0, got {self.learning_rate}")
    object.__setattr__(self, "decay_steps", tuple(int(s) for s in self.decay_steps))
    object.__setattr__(self, "frozen", tuple(str(f) for f in self.frozen))

  @classmethod
  def from_config(cls, config: Mapping[str, Any], **overrides) -> "OptimizerConfig":
    """From a config's `optimizer` block (a ConfigDict or dict); `overrides` win (e.g. total_steps)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in dict(config).items() if k in fields}
    values.update(overrides)
    return cls(**values)

  def replace(self, **changes) -> "OptimizerConfig":
    return dataclasses.replace(self, **changes)


def learning_rate_schedule(config: OptimizerConfig) -> optax.Schedule | float:
  """The step size per step: a float for "constant", else an optax schedule."""
  if config.schedule == "constant":
    return config.learning_rate
  if config.schedule == "step":
    return optax.piecewise_constant_schedule(config.learning_rate,
                                             {int(s): config.decay_factor for s in config.decay_steps})
  warmup = int(config.warmup_steps)
  return optax.warmup_cosine_decay_schedule(
      0.0, config.learning_rate, warmup_steps=warmup, decay_steps=max(int(config.total_steps), warmup + 1),
      end_value=config.learning_rate * float(config.final_fraction))


def _top_level_labels(frozen: tuple[str, ...]):
  def labels(params):
    def label(path, _):
      return "frozen" if path_names(path)[:1] and path_names(path)[0] in frozen else "trainable"
    return jax.tree_util.tree_map_with_path(label, params)
  return labels


def make_optimizer(config: OptimizerConfig, *,
                   first: optax.GradientTransformation | None = None) -> optax.GradientTransformationExtraArgs:
  """The optax transform of an `OptimizerConfig`, for every trainer.

  Order: [first] -> gradient clipping -> the optimiser on its schedule; with `frozen`, the frozen
  top-level parameters get `optax.set_to_zero` instead of all of it.

  Args:
    config: the optimiser.
    first: a transform applied to the raw gradients before everything else, e.g. SleepMG's
      `modality_balance` (its extra `rho=` argument is forwarded by `optax.chain`).

  Returns:
    A transform whose `update` accepts extra keyword arguments.
  """
  schedule = learning_rate_schedule(config)
  if config.name == "sgd":
    tx = optax.sgd(schedule, momentum=config.momentum)
    if config.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
  elif config.name == "adam":
    tx = optax.adam(schedule, b1=config.b1, b2=config.b2)
  else:
    tx = optax.adamw(schedule, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay)
  if config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  if config.frozen:
    tx = optax.multi_transform({"frozen": optax.set_to_zero(), "trainable": tx},
                               _top_level_labels(config.frozen))
  if first is not None:
    return optax.chain(first, tx)
  return optax.with_extra_args_support(tx)
