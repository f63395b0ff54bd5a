"""Optax pieces for sleepjax: SleepMG's per-modality balance transform and the SleepMG optimisers.

`modality_balance` multiplies the gradient of each modality's block of a shared linear head by
that modality's metric rho^{a,u} (SleepMG Eq. 7), before the optimiser's moment estimates see it
(Eq. 8-12). SleepMG's W_a = [W_a^1 | ... | W_a^U] acts on the fused feature f as W_a f, so its
column blocks act on the modalities' features. A Flax `Linear` kernel is stored transposed, as
(in_features, out_features) = (F, K), and computes f @ kernel: the paper's column block W_a^u is
therefore the ROW block kernel[o_u : o_u + F_u, :] here. Biases are shared by all modalities and
are not scaled.

Chaining: `optax.chain(modality_balance(...), optax.adam(1e-3, b1=0.5, b2=0.999))`; optax.chain
forwards the extra keyword `rho=` to every member (Adam ignores it), so the trainer calls
`tx.update(grads, opt_state, params, rho={"y": rho_y, "d": rho_d})`.

Note (SPEC section 3): Adam divides by the root of its second-moment estimate, so a rho that
stayed constant over steps would cancel; rho acts through its variation from step to step. The
SGD variant (`sleepmg_optimizer(..., kind="sgd")`) keeps the scale.

References:
  SleepMG (ACM MM 2024), Eq. 7-12.
  Kingma, D. & Ba, J. (2015). Adam: a method for stochastic optimization. ICLR.
"""

from __future__ import annotations

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


def sleepmg_optimizer(*, kind: str = "adam", learning_rate: float = 1e-3, b1: float = 0.5,
                      b2: float = 0.999, momentum: float = 0.9,
                      balance: optax.GradientTransformationExtraArgs | None = None,
                      ) -> optax.GradientTransformationExtraArgs:
  """The SleepMG optimiser, optionally preceded by the balance transform.

  Args:
    kind: "adam" (the paper: lr 1e-3, b1 0.5, b2 0.999) or "sgd" (momentum SGD, the ablation in
      which a constant rho is not cancelled by Adam's normalisation).
    learning_rate: step size.
    b1, b2: Adam decay rates.
    momentum: SGD momentum.
    balance: a `modality_balance` transform to chain first, or None.

  Returns:
    An optax transform accepting extra keyword arguments (e.g. `rho=`).

  Raises:
    ValueError: unknown kind.
  """
  if kind == "adam":
    opt = optax.adam(learning_rate, b1=b1, b2=b2)
  elif kind == "sgd":
    opt = optax.sgd(learning_rate, momentum=momentum)
  else:
    raise ValueError(f"unknown optimiser kind {kind!r}; expected 'adam' or 'sgd'")
  if balance is None:
    return optax.with_extra_args_support(opt)
  return optax.chain(balance, opt)
