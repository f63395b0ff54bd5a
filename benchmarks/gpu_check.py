r"""The prepared accelerator check: the SleepFM-Clinical LOO step on one GPU (<= 8 minutes, compile included).

  python benchmarks/gpu_check.py --output=gpu_check.json            # on the accelerator
  python benchmarks/gpu_check.py --smoke                             # seconds on a CPU (the suite runs this)

Per (dtype, batch size), each in a fresh subprocess (clean peak memory, honest compile time):
  * the trainer's own jitted LOO step (`sleepjax.train.contrastive.ContrastiveTask` through
    `sleepjax.train.state.train_step`, state donated) at the SleepFM-Clinical size: 5-min windows at
    128 Hz, BAS 10 / RESP 7 / ECG 2 / EMG 4 channels, E=128, 6 layers, 8 heads, ff 2048;
  * compile time, windows/s (median step), peak device memory;
  * FLOPs per step, analytic (`step_flops`, documented in benchmarks/README.md) and XLA's own cost
    analysis, and the MFU: analytic FLOPs / step time / the chip's peak for that dtype;
  * the PyTorch baseline (`benchmarks/torch_baseline.py`, the same architecture from torch's
    standard layers) at the same sizes on the same GPU, float32 or bf16 autocast, when torch imports.
Then the input pipeline's windows/s on this machine's CPU cores, when TFDS and grain import (they
may come as wheels; the step part needs only jax, flax, optax and numpy).

Output: one table on stdout and one JSON file (`--output`). A `--budget_s` guard stops adding
configurations before the time runs out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

CHANNELS = {"bas": 10, "resp": 7, "ecg": 2, "emg": 4}  # SleepFM-Clinical caps (docs/specification.md §2.1.5).
# Dense peak TFLOP/s by device kind and dtype; float32 matmuls run as TF32 on these chips (JAX's
# default precision on GPU), so the float32 MFU is against the TF32 peak.
PEAKS = {"H200": {"bfloat16": 989.0, "float32": 494.0}, "H100": {"bfloat16": 989.0, "float32": 494.0},
         "A100": {"bfloat16": 312.0, "float32": 156.0}}


def _args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--smoke", action="store_true", help="tiny sizes on any device, seconds (CI)")
  p.add_argument("--batch_sizes", default=None, help="default 32,128,512 (smoke: 2)")
  p.add_argument("--dtypes", default="float32,bfloat16")
  p.add_argument("--steps", type=int, default=None, help="timed steps per config (default 10, smoke 2)")
  p.add_argument("--budget_s", type=float, default=450.0, help="stop starting new configs after this many seconds")
  p.add_argument("--output", default=None, help="write the rows as JSON here")
  p.add_argument("--no_torch", action="store_true")
  p.add_argument("--no_pipeline", action="store_true")
  p.add_argument("--_child", default=None, help=argparse.SUPPRESS)  # "jax|torch,batch,dtype"
  return p.parse_args(argv)


def _sizes(smoke: bool) -> dict:
  if smoke:
    return {"patch_size": 32, "embed_dim": 32, "num_layers": 1, "num_heads": 2, "pooling_heads": 2, "ff_dim": 64,
            "dropout": 0.1, "tokenizer_widths": (4, 8, 8, 8, 8, 8), "window": 128, "channels": {"bas": 3, "ecg": 1}}
  return {"patch_size": 640, "embed_dim": 128, "num_layers": 6, "num_heads": 8, "pooling_heads": 8, "ff_dim": 2048,
          "dropout": 0.3, "tokenizer_widths": (4, 8, 16, 32, 64, 128), "window": 300 * 128, "channels": CHANNELS}


def step_flops(sizes: dict, batch: int) -> float:
  """Analytic FLOPs of one training step (forward + backward = 3 x forward; multiply-add = 2 FLOPs).

  Counted: the tokenizer's convolutions and projection per patch, every transformer layer's
  projections, attention scores and weighted sums and feed-forward per token (channel pooling
  per time step and modality, the temporal layers and temporal pooling per modality). Not
  counted (small): normalisations, activations, the loss and the optimizer update.
  """
  p, e, ff = sizes["patch_size"], sizes["embed_dim"], sizes["ff_dim"]
  s = sizes["window"] // p
  widths = (1,) + tuple(sizes["tokenizer_widths"])
  length, per_patch = p, 0.0
  for c_in, c_out in zip(widths[:-1], widths[1:]):
    length = (length - 1) // 2 + 1
    per_patch += 2 * 5 * c_in * c_out * length
  per_patch += 2 * widths[-1] * e

  def layer(tokens: int, set_size: int) -> float:  # FLOPs of one layer over `tokens` tokens in sets of `set_size`
    return tokens * (2 * 4 * e * e + 2 * 2 * e * ff) + tokens * 2 * 2 * set_size * e

  fwd = 0.0
  for c in sizes["channels"].values():
    fwd += batch * c * s * per_patch
    if c > 1:
      fwd += layer(batch * s * c, c)
    fwd += sizes["num_layers"] * layer(batch * s, s) + layer(batch * s, s)
  return 3.0 * fwd


def _peak_mem_mib(jax) -> tuple[float, str]:
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2 ** 20, "device peak_bytes_in_use"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def _batch(sizes, batch, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  return ({m: rng.standard_normal((batch, c, sizes["window"]), dtype=np.float32) for m, c in sizes["channels"].items()},
          {m: np.ones((batch, c), bool) for m, c in sizes["channels"].items()})


def run_jax(sizes, batch: int, dtype_name: str, steps: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from sleepjax import optim  # pylint: disable=g-import-not-at-top
  from sleepjax.models import encoder as encoder_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.models import multimodal  # pylint: disable=g-import-not-at-top
  from sleepjax.train import contrastive  # pylint: disable=g-import-not-at-top
  from sleepjax.train import state as state_lib  # pylint: disable=g-import-not-at-top

  fields = {k: v for k, v in sizes.items() if k not in ("window", "channels")}
  cfg = encoder_lib.EncoderConfig(**fields, sfreq=128.0, window_s=sizes["window"] / 128.0,
                                  dtype=None if dtype_name == "float32" else jnp.bfloat16)
  model = multimodal.MultiModalEncoder(tuple(sizes["channels"]), cfg,
                                       rngs=nnx.Rngs(params=0, dropout=state_lib.dropout_key(1)))
  opt = optim.OptimizerConfig(name="sgd", learning_rate=1e-3, momentum=0.9)
  graphdef, state = state_lib.init_state(model, opt, state_lib.dropout_key(2))
  task = contrastive.ContrastiveTask(graphdef, opt, "loo")
  signals, mask = _batch(sizes, batch)
  data = jax.device_put({"signals": signals, "mask": mask})
  step = jax.jit(lambda st, b: state_lib.train_step(task, st, b, {}), donate_argnums=(0,))
  t0 = time.perf_counter()
  compiled = step.lower(state, data).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float((cost or {}).get("flops", float("nan")))
  for _ in range(2):
    state, metrics = compiled(state, data)
  jax.block_until_ready(state)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready(metrics["loss"])
    times.append(time.perf_counter() - t0)
  med = statistics.median(times)
  peak, kind = _peak_mem_mib(jax)
  device = jax.devices()[0]
  flops = step_flops(sizes, batch)
  chip = next((k for k in PEAKS if k in device.device_kind), None)
  peak_tflops = PEAKS[chip][dtype_name] if chip else None
  return {"impl": "jax", "batch": batch, "dtype": dtype_name, "compile_s": compile_s, "step_ms": 1e3 * med,
          "windows_per_s": batch / med, "peak_mem_MiB": peak, "peak_mem_kind": kind,
          "flops_per_step": flops, "xla_flops_per_step": xla_flops,
          "tflops_per_s": flops / med / 1e12, "mfu": flops / med / (peak_tflops * 1e12) if peak_tflops else None,
          "peak_tflops": peak_tflops, "loss": float(metrics["loss"]),
          "device": f"{device.platform}:{device.device_kind}", "jax": jax.__version__}


def run_torch(sizes, batch: int, dtype_name: str, steps: int) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import torch_baseline  # pylint: disable=g-import-not-at-top
  device = "cuda" if torch.cuda.is_available() else "cpu"
  torch.manual_seed(0)
  model = torch_baseline.LOOModel(patch_size=sizes["patch_size"], embed_dim=sizes["embed_dim"],
                                  num_layers=sizes["num_layers"], num_heads=sizes["num_heads"],
                                  pooling_heads=sizes["pooling_heads"], ff_dim=sizes["ff_dim"],
                                  dropout=sizes["dropout"], widths=sizes["tokenizer_widths"]).to(device)
  step = torch_baseline.make_step(model, autocast_dtype=torch.bfloat16 if dtype_name == "bfloat16" else None)
  signals = torch_baseline.to_torch(_batch(sizes, batch)[0], device)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
  for _ in range(2):
    step(signals)
  sync()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    loss = step(signals)
    sync()
    times.append(time.perf_counter() - t0)
  med = statistics.median(times)
  peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device == "cuda" else None
  return {"impl": "torch", "batch": batch, "dtype": dtype_name, "step_ms": 1e3 * med, "windows_per_s": batch / med,
          "peak_mem_MiB": peak, "loss": float(loss), "params": torch_baseline.parameter_count(model),
          "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__}


def run_pipeline(smoke: bool) -> dict:
  """Input-pipeline windows/s (5-min windows, SleepFM-Clinical caps) on this machine's CPU cores."""
  try:
    import grain  # pylint: disable=g-import-not-at-top,unused-import
    import tensorflow_datasets  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    return {"skipped": f"input pipeline not timed: {e.name} is not installed here"}
  import tempfile  # pylint: disable=g-import-not-at-top
  import tfds_builders.synthetic_psg  # pylint: disable=g-import-not-at-top,unused-import
  from sleepjax.data import pipeline  # pylint: disable=g-import-not-at-top
  data_dir = os.environ.get("TFDS_DATA_DIR") or tempfile.mkdtemp()
  source = pipeline.data_source("synthetic_psg", "train", data_dir=data_dir, config="tiny")
  window_epochs = 2 if smoke else 10
  caps = None if smoke else {"bas": 10, "ecg": 2, "emg": 4, "resp": 7}
  groups = {"bas": ("eeg", "eog"), "ecg": ("ecg",), "emg": ("emg",), "resp": ("resp",)}
  ds = pipeline.make_dataset(source, batch_size=2 if smoke else 16, window_epochs=window_epochs, channel_caps=caps,
                             modalities=groups, seed=0)
  it = iter(ds)
  next(it)
  n, t0 = 0, time.perf_counter()
  for _ in range(3 if smoke else 30):
    n += len(next(it)["record_id"])
  return {"windows_per_s": n / (time.perf_counter() - t0), "cpu_count": os.cpu_count()}


def _child(args) -> int:
  impl, b, d = args._child.split(",")
  sizes = _sizes(args.smoke)
  steps = args.steps or (2 if args.smoke else 10)
  row = (run_jax if impl == "jax" else run_torch)(sizes, int(b), d, steps)
  print("RESULT " + json.dumps(row), flush=True)
  return 0


def _fmt(v, f=".1f"):
  return "-" if v is None else format(v, f)


def main(argv=None) -> int:
  args = _args(argv)
  if args._child:
    return _child(args)
  start = time.perf_counter()
  batches = [int(b) for b in (args.batch_sizes or ("2" if args.smoke else "32,128,512")).split(",")]
  dtypes = [d for d in args.dtypes.split(",") if d]
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    have_torch = not args.no_torch
  except ImportError:
    have_torch = False
  rows, skipped = [], []
  for d in dtypes:
    for b in batches:
      for impl in ("jax", "torch") if have_torch else ("jax",):
        if time.perf_counter() - start > args.budget_s:
          skipped.append(f"{impl} batch {b} {d}: time budget spent")
          continue
        cmd = [sys.executable, os.path.abspath(__file__), f"--_child={impl},{b},{d}"]
        cmd += ["--smoke"] * args.smoke + ([f"--steps={args.steps}"] if args.steps else [])
        proc = subprocess.run(cmd, capture_output=True, text=True)
        result = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not result:
          message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
          skipped.append(f"{impl} batch {b} {d}: failed ({message[:200]})")
          continue
        rows.append(json.loads(result[-1][len("RESULT "):]))
  pipeline_row = {"skipped": "--no_pipeline"} if args.no_pipeline else run_pipeline(args.smoke)
  if not have_torch:
    skipped.append("PyTorch baseline: torch is not installed" if not args.no_torch else "PyTorch baseline: --no_torch")
  jax_rows = [r for r in rows if r["impl"] == "jax"]
  device = jax_rows[0]["device"] if jax_rows else "?"
  print(f"\nSleepFM-Clinical LOO step{' (SMOKE sizes, not the real model)' if args.smoke else ''} on {device}; "
        f"{platform.node()}; {os.cpu_count()} CPUs\n")
  print("| dtype | batch | compile s | JAX windows/s | PyTorch windows/s | JAX / PyTorch | peak MiB (JAX) | "
        "TFLOP/s (analytic) | MFU | XLA / analytic FLOPs |")
  print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
  for r in jax_rows:
    t = next((x for x in rows if x["impl"] == "torch" and x["batch"] == r["batch"] and x["dtype"] == r["dtype"]), None)
    ratio = r["windows_per_s"] / t["windows_per_s"] if t else None
    print(f"| {r['dtype']} | {r['batch']} | {_fmt(r['compile_s'])} | {_fmt(r['windows_per_s'])} | "
          f"{_fmt(t['windows_per_s'] if t else None)} | {_fmt(ratio, '.2f')} | {_fmt(r['peak_mem_MiB'], '.0f')} | "
          f"{_fmt(r['tflops_per_s'], '.2f')} | {_fmt(r['mfu'], '.3f')} | "
          f"{_fmt(r['xla_flops_per_step'] / r['flops_per_step'], '.2f')} |")
  if "windows_per_s" in pipeline_row:
    print(f"\nInput pipeline: {pipeline_row['windows_per_s']:.1f} windows/s on {pipeline_row['cpu_count']} CPU cores")
  else:
    print(f"\n{pipeline_row['skipped']}")
  for s in skipped:
    print(f"skipped: {s}")
  print(f"\ntotal wall time {time.perf_counter() - start:.0f} s")
  if args.output:
    with open(args.output, "w", encoding="utf-8") as f:
      json.dump({"rows": rows, "pipeline": pipeline_row, "skipped": skipped, "smoke": args.smoke}, f, indent=2)
  return 0 if jax_rows else 1


if __name__ == "__main__":
  sys.exit(main())
