r"""Throughput of one SleepFM-Clinical leave-one-out pretraining step (windows/s).

The step is SleepFM-Clinical's at full size (docs/specification.md §2.1.5): 5-min windows at 128 Hz (T = 38400
samples), channels BAS (EEG+EOG) 10, RESP 7, ECG 2, EMG 4 (every channel real), one shared
set-transformer encoder with E=128, 6 layers, 8 heads, feed-forward 2048, dropout 0.3 and 5-s
patches of 640 samples (S = 60 tokens), the LOO contrastive loss, and SGD with momentum 0.9.
By default it is the trainer's own pure step (`sleepjax.train.state.train_step` of `pretrain.ContrastiveTask`), jitted with
the state donated, exactly as `train()` runs it.

Every (batch size, dtype) runs in a fresh subprocess so that compile time and peak memory are
not polluted by the previous configuration. Reported per configuration:
  compile_s     lowering + XLA compilation of the jitted step (lower_s, the tracing and lowering
                to StableHLO alone, is in the JSON),
  step_ms       median wall time of `--steps` steps after `--warmup` warm-up steps,
  windows/s     batch size / median step time,
  peak_mem_MiB  peak resident set size of the process on CPU (ru_maxrss; includes Python, JAX
                and the compiled program), or the device's peak_bytes_in_use on an accelerator.

Reference: `benchmarks/torch_baseline.py` (the same architecture in PyTorch) ran this LOO step at
2.2-2.4 windows/s at batch 4 and 8 on this project's 2-core CPU (torch 2.13, 2 threads;
benchmarks/README.md); `--torch` measures it in the same run.

  python benchmarks/pretrain_throughput.py                       # batch 4 and 8, float32, 5 steps
  python benchmarks/pretrain_throughput.py --batch_sizes=4 --dtype=bfloat16 --steps=10
  python benchmarks/pretrain_throughput.py --profile             # + where the time goes
  python benchmarks/pretrain_throughput.py --tokenizer_variants=5520   # tokenizer formulations only

`--profile` adds forward+backward timings of the parts of the encoder (tokenizer, channel
pooling, temporal transformer + pooling) on the same inputs, and `--trace_dir=DIR` writes a
`jax.profiler` trace of the timed steps for TensorBoard/Perfetto.

`--tokenizer_variants=N` skips the step and instead times equivalent formulations of the patch
tokenizer's six conv blocks (NWC, NCW, mixed layouts, polyphase stride-1 convolutions, im2col for
the first block) forward and forward+backward on N patches, by CPU time, with each variant's
deviation from the NWC formulation that `PatchTokenizer` runs.

Numbers measured on a shared machine are noisy: re-measure on a quiet one with the command above.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

# SleepFM-Clinical channel caps (docs/specification.md §2.1.5): BAS = EEG + EOG.
CHANNELS = {"bas": 10, "resp": 7, "ecg": 2, "emg": 4}
WINDOW_SAMPLES = 300 * 128  # 5 min at 128 Hz.


def _parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch_sizes", default="4,8", help="comma-separated batch sizes (windows per step)")
  p.add_argument("--dtype", default="float32", help="computation dtype(s), comma-separated: float32,bfloat16")
  p.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported; >= 5 advised)")
  p.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
  p.add_argument("--impl", choices=("auto", "trainer", "local"), default="auto",
                 help="trainer: sleepjax.train.state.train_step (pretrain.ContrastiveTask); local: this file's equivalent "
                      "step; auto: trainer if importable")
  p.add_argument("--preset", choices=("sleepfm_clinical", "tiny"), default="sleepfm_clinical",
                 help="encoder preset; tiny (2-s windows, E=32) only checks that the script runs")
  p.add_argument("--channel_encoding", action="store_true",
                 help="add the electrode channel encoding (transfer paper); SleepFM-Clinical has none")
  p.add_argument("--torch", choices=("auto", "on", "off"), default="auto",
                 help="time benchmarks/torch_baseline.py's PyTorch step on the same inputs, alternating with the "
                      "JAX step (auto: when torch is importable)")
  p.add_argument("--omp_wait_policy", default="PASSIVE",
                 help="OMP_WAIT_POLICY of the measuring processes (PASSIVE: PyTorch's idle OpenMP threads do not "
                      "spin during the JAX steps; '' keeps the environment's)")
  p.add_argument("--profile", action="store_true", help="also time the encoder's parts (fwd+bwd)")
  p.add_argument("--trace_dir", default=None, help="write a jax.profiler trace of the timed steps here")
  p.add_argument("--output_json", default=None, help="also write the rows as JSON here")
  p.add_argument("--tokenizer_variants", type=int, default=0, metavar="N",
                 help="instead of the step: micro-benchmark equivalent formulations of the tokenizer's six "
                      "conv blocks (forward+backward to the parameters) on N patches of 640 samples "
                      "(5520 = 4 windows x 23 channels x 60 patches)")
  p.add_argument("--reps", type=int, default=3, help="repeats per variant in --tokenizer_variants (min is kept)")
  p.add_argument("--_child", default=None, help=argparse.SUPPRESS)  # "batch,dtype": run one config.
  return p.parse_args(argv)


# ----------------------------------------------------------------------------------------------
# One configuration (runs in a subprocess).
# ----------------------------------------------------------------------------------------------


def _encoder_config(dtype_name: str, channel_encoding: bool, preset: str = "sleepfm_clinical"):
  import jax.numpy as jnp
  from sleepjax.models import encoder as encoder_lib

  cfg = getattr(encoder_lib, preset)()
  dtype = {"float32": None, "bfloat16": jnp.bfloat16}[dtype_name]
  return dataclasses.replace(cfg, dtype=dtype, channel_encoding=channel_encoding)


def _make_batch(batch_size: int, window_samples: int = WINDOW_SAMPLES, seed: int = 0):
  import numpy as np

  rng = np.random.default_rng(seed)
  signals = {m: rng.standard_normal((batch_size, c, window_samples), dtype=np.float32) for m, c in CHANNELS.items()}
  mask = {m: np.ones((batch_size, c), bool) for m, c in CHANNELS.items()}
  # Positions on the unit sphere (only used with --channel_encoding).
  pos = {m: rng.standard_normal((batch_size, c, 3)).astype(np.float32) for m, c in CHANNELS.items()}
  pos = {m: p / np.linalg.norm(p, axis=-1, keepdims=True) for m, p in pos.items()}
  return {"signals": signals, "mask": mask, "positions": pos}


def _build_model(cfg, modalities):
  """The trainer's MultiModalEncoder when available, else an equivalent shared-encoder wrapper."""
  from flax import nnx
  import jax.numpy as jnp

  try:
    from sleepjax.models import multimodal
    from sleepjax.train import state as state_lib
    # As the trainer: RBG dropout keys (state.dropout_key).
    return multimodal.MultiModalEncoder(modalities, cfg, shared=True,
                                        rngs=nnx.Rngs(params=0, dropout=state_lib.dropout_key(1))), "MultiModalEncoder"
  except ImportError:
    from sleepjax.models import encoder as encoder_lib

    class SharedEncoder(nnx.Module):
      """One SetTransformerEncoder applied to every modality + the LOO logit-scale exponent t."""

      def __init__(self):
        self.encoder = encoder_lib.SetTransformerEncoder(cfg, rngs=nnx.Rngs(params=0, dropout=1))
        self.log_scale = nnx.Param(jnp.zeros((), jnp.float32))

      def __call__(self, signals, mask, positions=None, *, train):
        return {m: self.encoder(signals[m], mask[m], None if positions is None else positions[m], train=train)
                for m in signals}

    return SharedEncoder(), "SetTransformerEncoder (local wrapper; sleepjax.models.multimodal missing)"


def _local_step(graphdef, tx):
  """The trainer's step written out: LOO loss on pooled embeddings, SGD momentum, t clamped >= 0."""
  from flax import nnx
  import jax
  import optax
  from sleepjax import losses

  def step(state, batch):
    key = jax.random.fold_in(state["rng"], state["step"])

    def loss_fn(params):
      # copy=True: fresh Variables at this trace level, so that BatchNorm statistics and the
      # dropout RNG can be updated inside grad/jit (flax 0.12 raises TraceContextError otherwise).
      model = nnx.merge(graphdef, params, state["model_state"], copy=True)
      nnx.reseed(model, dropout=key)
      out = model(batch["signals"], batch["mask"], batch.get("positions"), train=True)
      loss, _ = losses.loo_contrastive_loss({m: o[1] for m, o in out.items()}, model.log_scale[...])
      return loss, nnx.state(model, nnx.Not(nnx.Param))

    (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: losses.clamp_log_scale(x) if "log_scale" in jax.tree_util.keystr(path) else x, params)
    return {**state, "step": state["step"] + 1, "params": params, "model_state": model_state,
            "opt_state": opt_state}, {"loss": loss}

  return step


def _torch_step(cfg, batch, dtype_name: str, args):
  """(step, inputs) of benchmarks/torch_baseline.py at the same sizes, or (None, None) without torch."""
  if args.torch == "off" or args.channel_encoding:
    return None, None
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    if args.torch == "on":
      raise
    print("[benchmark] torch is not installed: no PyTorch column", file=sys.stderr)
    return None, None
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import torch_baseline  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count() or 1)
  model = torch_baseline.LOOModel(patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, num_layers=cfg.num_layers,
                                  num_heads=cfg.num_heads, pooling_heads=cfg.pooling_heads, ff_dim=cfg.ff_dim,
                                  dropout=cfg.dropout, widths=cfg.tokenizer_widths)
  autocast = torch.bfloat16 if dtype_name == "bfloat16" else None
  import numpy as np  # pylint: disable=g-import-not-at-top
  return torch_baseline.make_step(model, autocast_dtype=autocast), torch_baseline.to_torch(
      {m: np.asarray(x) for m, x in batch["signals"].items()})


def _peak_memory_mib() -> tuple[float, str]:
  import jax

  dev = jax.devices()[0]
  if dev.platform != "cpu":
    stats = dev.memory_stats() or {}
    if "peak_bytes_in_use" in stats:
      return stats["peak_bytes_in_use"] / 2**20, f"{dev.platform} peak_bytes_in_use"
  # ru_maxrss is in KiB on Linux (bytes on macOS).
  kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  if sys.platform == "darwin":
    kib /= 1024
  return kib / 1024, "process peak RSS"


def _cpu_s() -> float:
  """User + system CPU seconds of this process, all threads."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def _time(fn, *args, reps: int) -> tuple[float, float]:
  """Median wall seconds and median CPU seconds of `reps` calls."""
  import jax

  times, cpus = [], []
  for _ in range(reps):
    t0, c0 = time.perf_counter(), _cpu_s()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
    cpus.append(_cpu_s() - c0)
  return statistics.median(times), statistics.median(cpus)


def _profile_parts(model, batch, reps: int) -> list[dict]:
  """Forward+backward wall time of the encoder's parts on the benchmark's inputs."""
  from flax import nnx
  import jax
  import jax.numpy as jnp

  enc = model.encoder if hasattr(model, "encoder") else getattr(model, "encoders", None)
  if enc is None or not hasattr(enc, "tokenizer"):
    # MultiModalEncoder keeps its shared encoder under some attribute; find it.
    enc = next((v for v in vars(model).values() if hasattr(v, "tokenizer")), None)
  if enc is None:
    return [{"part": "(encoder not found: skipped)"}]
  graphdef, params, rest = nnx.split(enc, nnx.Param, ...)
  signals = {m: jnp.asarray(x) for m, x in batch["signals"].items()}
  masks = {m: jnp.asarray(x) for m, x in batch["mask"].items()}
  b = next(iter(signals.values())).shape[0]
  e = enc.config.embed_dim

  def tok_loss(p):
    e_ = nnx.merge(graphdef, p, rest, copy=True)
    return sum(jnp.mean(e_.tokenizer(signals[m], masks[m], train=True).astype(jnp.float32) ** 2) for m in signals)

  # Token inputs for the transformer parts: shaped as the tokenizer's outputs.
  toks = {m: jax.random.normal(jax.random.key(0), (b, c, enc.config.num_tokens, e)) for m, c in CHANNELS.items()}

  def chan_loss(p):
    e_ = nnx.merge(graphdef, p, rest, copy=True)
    total = 0.0
    for m, t in toks.items():
      c, s = t.shape[1], t.shape[2]
      if c == 1:
        continue
      per_step = jnp.swapaxes(t, 1, 2).reshape(b * s, c, e)
      total = total + jnp.mean(e_.channel_pool(per_step, jnp.ones((b * s, c), bool), train=True) ** 2)
    return total

  def time_loss(p):
    e_ = nnx.merge(graphdef, p, rest, copy=True)
    total = 0.0
    for m, t in toks.items():
      h = e_.time_norm(t[:, 0])
      for layer in e_.layers:
        h = layer(h, train=True)
      total = total + jnp.mean(e_.time_pool(h, train=True) ** 2)
    return total

  def full_loss(p):
    e_ = nnx.merge(graphdef, p, rest, copy=True)
    return sum(jnp.mean(e_(signals[m], masks[m], train=True)[1] ** 2) for m in signals)

  rows = []
  for name, fn in (("tokenizer (6 conv blocks, all modalities)", tok_loss),
                   ("channel pooling (post-norm layer over C)", chan_loss),
                   ("temporal transformer (6 layers) + pooling", time_loss),
                   ("whole encoder (sum of the above + glue)", full_loss)):
    g = jax.jit(jax.grad(fn))
    t0 = time.perf_counter()
    jax.block_until_ready(g(params))
    compile_s = time.perf_counter() - t0
    wall, cpu = _time(g, params, reps=reps)
    rows.append({"part": name, "fwd_bwd_ms": 1e3 * wall, "cpu_ms": 1e3 * cpu, "compile_s": compile_s})
  return rows


def run_one(batch_size: int, dtype_name: str, args) -> dict:
  """Compiles and times the LOO step for one configuration; returns a row of measurements."""
  from flax import nnx
  import jax
  import jax.numpy as jnp

  cfg = _encoder_config(dtype_name, args.channel_encoding, args.preset)
  modalities = tuple(CHANNELS)
  model, model_name = _build_model(cfg, modalities)
  from sleepjax import optim
  from sleepjax.train import state as state_lib
  # SleepFM reference optimiser: SGD, momentum 0.9, lr 1e-3.
  opt = optim.OptimizerConfig(name="sgd", learning_rate=1e-3, momentum=0.9)
  tx = optim.make_optimizer(opt)
  graphdef, state = state_lib.init_state(model, opt, state_lib.dropout_key(2))  # the trainer's RBG key

  batch = jax.tree.map(jnp.asarray, _make_batch(batch_size, cfg.window_samples))
  if not args.channel_encoding:
    batch.pop("positions")

  impl, compiled, compile_s, lower_s = args.impl, None, None, None
  if impl in ("auto", "trainer"):
    try:
      from sleepjax.train import pretrain
      task = pretrain.ContrastiveTask(graphdef, opt, "loo")
      jitted = jax.jit(lambda s, b: state_lib.train_step(task, s, b, {}), donate_argnums=(0,))
      t0 = time.perf_counter()
      lowered = jitted.lower(state, batch)
      lower_s = time.perf_counter() - t0
      compiled = lowered.compile()
      compile_s = time.perf_counter() - t0
      impl = "trainer"
    except Exception as e:  # pylint: disable=broad-except
      if impl == "trainer":
        raise
      print(f"[benchmark] the trainer's step is unusable ({type(e).__name__}: {str(e)[:200]}); "
            "timing the equivalent local step instead", file=sys.stderr)
  if compiled is None:
    jitted = jax.jit(_local_step(graphdef, tx), donate_argnums=(0,))
    t0 = time.perf_counter()
    lowered = jitted.lower(state, batch)
    lower_s = time.perf_counter() - t0
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    impl = "local"

  for _ in range(args.warmup):
    state, metrics = compiled(state, batch)
  jax.block_until_ready(state)
  torch_step, torch_batch = _torch_step(cfg, batch, dtype_name, args)
  if torch_step is not None:
    for _ in range(args.warmup):
      torch_step(torch_batch)
  times, cpus, torch_times = [], [], []
  if args.trace_dir:
    jax.profiler.start_trace(os.path.join(args.trace_dir, f"b{batch_size}_{dtype_name}"))
  for _ in range(args.steps):
    # JAX and PyTorch steps alternate on the same inputs, so that both see the same machine load.
    t0, c0 = time.perf_counter(), _cpu_s()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
    cpus.append(_cpu_s() - c0)
    if torch_step is not None:
      t0 = time.perf_counter()
      float(torch_step(torch_batch))
      torch_times.append(time.perf_counter() - t0)
  if args.trace_dir:
    jax.profiler.stop_trace()
  loss = jax.device_get(metrics["loss"])
  # The loss's aux may carry per-modality losses under "loss"; their mean is the LOO loss.
  loss = float(sum(loss.values()) / len(loss)) if isinstance(loss, dict) else float(loss)
  med = statistics.median(times)
  peak, peak_kind = _peak_memory_mib()
  row = {
      "batch": batch_size, "dtype": dtype_name, "impl": impl, "model": model_name, "preset": args.preset,
      "compile_s": compile_s, "lower_s": lower_s, "step_ms": 1e3 * med, "step_ms_min": 1e3 * min(times),
      "step_ms_max": 1e3 * max(times), "windows_per_s": batch_size / med,
      # CPU seconds per step (all threads) are far less sensitive to other processes than wall
      # time; on an idle machine with n cores, wall time >= cpu time / n.
      "cpu_s_per_step": statistics.median(cpus), "cpu_count": os.cpu_count(),
      "torch_windows_per_s": batch_size / statistics.median(torch_times) if torch_times else None,
      "jax_vs_torch": statistics.median(torch_times) / med if torch_times else None,
      "peak_mem_MiB": peak, "peak_mem_kind": peak_kind, "loss": loss, "steps": args.steps,
      "device": f"{jax.devices()[0].platform}:{jax.devices()[0].device_kind} x{jax.device_count()}",
  }
  if args.profile:
    row["profile"] = _profile_parts(nnx.merge(graphdef, state["params"], state["model_state"]),
                                    _make_batch(batch_size, cfg.window_samples), reps=max(3, args.steps // 2))
  return row


# ----------------------------------------------------------------------------------------------
# Driver.
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# Tokenizer micro-benchmark: equivalent formulations of the six conv blocks.
# ----------------------------------------------------------------------------------------------


def _tokenizer_variants(num_patches: int, reps: int) -> list[dict]:
  """CPU ms of forward and forward+backward of the tokenizer's conv blocks, per formulation.

  Every variant computes the same function as `PatchTokenizer`'s blocks in training mode
  (Conv1d(k5, s2, p2) -> masked BatchNorm -> ELU -> LayerNorm over (length, channels) with its
  (L, C) affine, then the mean over length), with the gradient taken with respect to the
  parameters only, as in the training step. Variants:
    nwc             XLA convolutions in (N, L, C) layout: what `PatchTokenizer` runs;
    ncw             the same in (N, C, L) layout (the length axis minor: vectorises better
                    while C is 1..16);
    ncw<k>_nwc      NCW for the first k blocks, then NWC;
    polyphase       each stride-2 k5 conv as one stride-1 k3 conv on the free reshape
                    (N, L, C) -> (N, L/2, 2C) (even and odd phases side by side);
    im2col1         the first block (1 input channel) as a matmul with a (L/2, 5) patch matrix.
  Returns one dict per variant with fwd_ms, fwd_bwd_ms (minimum CPU ms of `reps` calls),
  compile_s and the largest deviation from `nwc` (forward relative, gradient relative).
  """
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax import lax

  widths = (1, 4, 8, 16, 32, 64, 128)
  lengths = (320, 160, 80, 40, 20, 10)
  rng = np.random.default_rng(0)
  params = [dict(w=jnp.asarray(rng.normal(size=(5, ci, co)).astype(np.float32) / np.sqrt(5 * ci)),
                 b=jnp.asarray(0.1 * rng.normal(size=(co,)).astype(np.float32)),
                 bn_scale=jnp.asarray(1 + 0.1 * rng.normal(size=(co,)).astype(np.float32)),
                 bn_bias=jnp.asarray(0.1 * rng.normal(size=(co,)).astype(np.float32)),
                 ln_scale=jnp.asarray(1 + 0.1 * rng.normal(size=(l, co)).astype(np.float32)),
                 ln_bias=jnp.asarray(0.1 * rng.normal(size=(l, co)).astype(np.float32)))
            for ci, co, l in zip(widths[:-1], widths[1:], lengths)]
  x = jnp.asarray(rng.normal(size=(num_patches, 640)).astype(np.float32))
  mask = jnp.ones((num_patches, 1, 1), bool).at[: num_patches // 23].set(False)  # some padded channels
  cot = jnp.asarray(rng.normal(size=(num_patches, 128)).astype(np.float32))

  def norms(h, p, ch_axis):
    red = (0, 2) if ch_axis == 1 else (0, 1)
    per_ch = (lambda v: v[:, None]) if ch_axis == 1 else (lambda v: v)
    mean = jnp.mean(h, red, keepdims=True, where=mask)
    var = jnp.maximum(jnp.mean(h * h, red, keepdims=True, where=mask) - mean * mean, 0.0)
    h = (h - mean) * lax.rsqrt(var + 1e-5) * per_ch(p["bn_scale"]) + per_ch(p["bn_bias"])
    h = jax.nn.elu(h)
    mean = jnp.mean(h, (1, 2), keepdims=True)
    var = jnp.mean(jnp.square(h - mean), (1, 2), keepdims=True)
    s, b = (p["ln_scale"].T, p["ln_bias"].T) if ch_axis == 1 else (p["ln_scale"], p["ln_bias"])
    return (h - mean) * lax.rsqrt(var + 1e-5) * s + b

  def conv_nwc(h, p):
    return lax.conv_general_dilated(h, p["w"], (2,), ((2, 2),), dimension_numbers=("NWC", "WIO", "NWC")) + p["b"]

  def conv_ncw(h, p):
    return (lax.conv_general_dilated(h, p["w"], (2,), ((2, 2),), dimension_numbers=("NCW", "WIO", "NCW"))
            + p["b"][:, None])

  def conv_polyphase(h, p):
    n, l, c = h.shape
    w = p["w"]
    # y[i] = sum_k w[k] x[2i + k - 2] = (w0, w2, w4) * even[i-1..i+1] + (w1, w3, 0) * odd[i-1..i+1].
    kernel = jnp.concatenate([w[0::2], jnp.concatenate([w[1::2], jnp.zeros_like(w[:1])], 0)], axis=1)
    y = lax.conv_general_dilated(h.reshape(n, l // 2, 2 * c), kernel, (1,), ((1, 1),),
                                 dimension_numbers=("NWC", "WIO", "NWC"))
    return y + p["b"]

  def conv_im2col(h, p):
    n, l, c = h.shape
    xp = jnp.pad(h.reshape(n, l // 2, 2 * c), ((0, 0), (1, 1), (0, 0)))
    cols = jnp.concatenate([xp[:, :-2], xp[:, 1:-1], xp[:, 2:, :c]], axis=-1)  # x[2i-2 .. 2i+2]
    return cols @ p["w"].reshape(5 * c, -1) + p["b"]

  def stack(first_ncw: int, conv_rest=conv_nwc, conv_first=None):
    def f(ps, x):
      h = x[:, None, :] if first_ncw else x[:, :, None]
      for i, p in enumerate(ps):
        if i < first_ncw:
          h = norms(conv_ncw(h, p), p, 1)
          if i == first_ncw - 1:
            h = jnp.swapaxes(h, 1, 2)
        else:
          conv = conv_first if (i == 0 and conv_first is not None) else conv_rest
          h = norms(conv(h, p), p, 2)
      return jnp.mean(h, axis=1)
    return f

  variants = {"nwc": stack(0), "ncw": stack(6), "ncw2_nwc": stack(2), "ncw3_nwc": stack(3),
              "ncw4_nwc": stack(4), "polyphase": stack(0, conv_polyphase), "im2col1": stack(0, conv_first=conv_im2col)}
  rows, ref = [], None
  for name, f in variants.items():
    fwd = jax.jit(f)
    grad = jax.jit(jax.grad(lambda ps, x: jnp.sum(f(ps, x) * cot)))
    c0 = _cpu_s()
    y, g = jax.block_until_ready((fwd(params, x), grad(params, x)))
    compile_s = _cpu_s() - c0
    f_ms, fb_ms = [], []
    for _ in range(reps):
      c0 = _cpu_s()
      jax.block_until_ready(fwd(params, x))
      f_ms.append(1e3 * (_cpu_s() - c0))
      c0 = _cpu_s()
      jax.block_until_ready(grad(params, x))
      fb_ms.append(1e3 * (_cpu_s() - c0))
    row = {"variant": name, "fwd_ms": min(f_ms), "fwd_bwd_ms": min(fb_ms), "compile_s": compile_s}
    if ref is None:
      ref = (y, g)
    else:
      row["fwd_rel_err"] = float(jnp.max(jnp.abs(y - ref[0])) / jnp.max(jnp.abs(ref[0])))
      # Conv biases feed BatchNorm, so their gradient is exactly zero in exact arithmetic and
      # rounding noise in float32: they are left out of the comparison.
      row["grad_rel_err"] = max(float(jnp.max(jnp.abs(a[k] - b[k])) / jnp.max(jnp.abs(a[k])))
                                for a, b in zip(ref[1], g) for k in a if k != "b")
    rows.append(row)
    print(f"[tokenizer] {name}: {row}", file=sys.stderr, flush=True)
  return rows


def _fmt(v, f=".2f"):
  if v is None:
    return "-"
  return format(v, f) if isinstance(v, float) else str(v)


def main(argv=None) -> int:
  args = _parse_args(argv)
  if args._child:
    b, d = args._child.split(",")
    print("RESULT " + json.dumps(run_one(int(b), d, args)), flush=True)
    return 0

  if args.tokenizer_variants:
    rows = _tokenizer_variants(args.tokenizer_variants, args.reps)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"\nTokenizer conv blocks, {args.tokenizer_variants} patches of 640 samples, forward and forward+backward "
          f"(parameter gradients); minimum CPU ms of {args.reps}; {os.cpu_count()} CPUs; load average "
          f"{'/'.join(f'{x:.1f}' for x in load) if load else '?'}; jax {__import__('jax').__version__}\n")
    print("| variant | fwd CPU ms | fwd+bwd CPU ms | vs nwc | fwd rel. err | grad rel. err |\n"
          "|---|--:|--:|--:|--:|--:|")
    for r in rows:
      print(f"| {r['variant']} | {r['fwd_ms']:.0f} | {r['fwd_bwd_ms']:.0f} | "
            f"{rows[0]['fwd_bwd_ms'] / r['fwd_bwd_ms']:.2f}x | {r.get('fwd_rel_err', 0.0):.1e} | "
            f"{r.get('grad_rel_err', 0.0):.1e} |")
    return 0

  batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
  dtypes = [d for d in args.dtype.split(",") if d]
  for d in dtypes:
    if d not in ("float32", "bfloat16"):
      raise SystemExit(f"--dtype must be float32 or bfloat16, got {d!r}")
  if args.steps < 1:
    raise SystemExit("--steps must be >= 1")
  rows = []
  for d in dtypes:
    for b in batch_sizes:
      cmd = [sys.executable, os.path.abspath(__file__), f"--_child={b},{d}", f"--steps={args.steps}",
             f"--warmup={args.warmup}", f"--impl={args.impl}", f"--preset={args.preset}", f"--torch={args.torch}"]
      cmd += ["--channel_encoding"] * args.channel_encoding + ["--profile"] * args.profile
      if args.trace_dir:
        cmd.append(f"--trace_dir={args.trace_dir}")
      print(f"[benchmark] batch {b}, {d} ...", file=sys.stderr, flush=True)
      # PyTorch's OpenMP threads busy-wait after each of its steps (GNU OpenMP's default), which
      # steals the cores from the JAX step that follows in the alternation; passive waiting
      # makes the two share the machine fairly (--omp_wait_policy to change it).
      env = dict(os.environ, OMP_WAIT_POLICY=args.omp_wait_policy) if args.omp_wait_policy else None
      proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
      result = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
      if proc.returncode or not result:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"benchmark child for batch {b}, {d} failed (exit {proc.returncode})")
      rows.append(json.loads(result[-1][len("RESULT "):]))

  load = os.getloadavg() if hasattr(os, "getloadavg") else None
  if args.preset != "sleepfm_clinical":
    print(f"\nPRESET {args.preset!r}: a smoke run, NOT the SleepFM-Clinical size described below.")
  print(f"\nSleepFM-Clinical LOO pretraining step, 5-min windows at 128 Hz (T={WINDOW_SAMPLES}), channels "
        + ", ".join(f"{m.upper()} {c}" for m, c in CHANNELS.items())
        + f"; E=128, 6 layers, 8 heads, ff 2048, patch 640; SGD momentum 0.9; channel encoding "
        f"{'on' if args.channel_encoding else 'off'}")
  print(f"device {rows[0]['device']}; step impl: {rows[0]['impl']} ({rows[0]['model']}); {os.cpu_count()} CPUs; "
        f"load average {'/'.join(f'{x:.1f}' for x in load) if load else '?'}; jax "
        f"{__import__('jax').__version__}; {platform.node()}\n")
  print("| batch | dtype | JAX windows/s | step ms (median) | min-max ms | CPU s/step | windows/s bound (CPU s) "
        "| compile s (of which lowering) | peak MiB | PyTorch windows/s, same run | JAX / PyTorch |")
  print("|------:|-------|----------:|-----------------:|-----------:|-----------:|-----------------------:"
        "|----------:|---------:|----------------------:|---------:|")
  for r in rows:
    # Best case on an idle machine: all cores busy for the whole step.
    bound = r["batch"] * r["cpu_count"] / r["cpu_s_per_step"]
    print(f"| {r['batch']} | {r['dtype']} | {_fmt(r['windows_per_s'])} | {_fmt(r['step_ms'], '.0f')} | "
          f"{_fmt(r['step_ms_min'], '.0f')}-{_fmt(r['step_ms_max'], '.0f')} | {_fmt(r['cpu_s_per_step'])} | "
          f"{_fmt(bound)} | {_fmt(r['compile_s'], '.1f')} ({_fmt(r.get('lower_s'), '.1f')}) | "
          f"{_fmt(r['peak_mem_MiB'], '.0f')} | {_fmt(r['torch_windows_per_s'])} | "
          f"{_fmt(r['jax_vs_torch'])}{'x' if r['jax_vs_torch'] else ''} |")
  print("\n'windows/s bound (CPU s)' = batch x CPUs / CPU seconds per step: the rate if every core worked on "
        "this step alone, i.e. an upper bound for a quiet machine; wall-clock windows/s is the measurement.")
  print(f"\npeak memory: {rows[0]['peak_mem_kind']}; median of {args.steps} steps after {args.warmup} warm-up steps")
  for r in rows:
    if "profile" in r:
      print(f"\nWhere the time goes (batch {r['batch']}, {r['dtype']}; jitted forward+backward per part):")
      print("| part | fwd+bwd wall ms | fwd+bwd CPU ms | compile s |\n|------|------:|------:|------:|")
      for p in r["profile"]:
        print(f"| {p['part']} | {_fmt(p.get('fwd_bwd_ms'), '.0f')} | {_fmt(p.get('cpu_ms'), '.0f')} | "
              f"{_fmt(p.get('compile_s'), '.1f')} |")
  if args.output_json:
    with open(args.output_json, "w") as f:
      json.dump(rows, f, indent=2)
  return 0


if __name__ == "__main__":
  sys.exit(main())
