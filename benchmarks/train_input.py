r"""Does the input pipeline keep up with training? Steps/s with real input against in-memory batches.

  python benchmarks/train_input.py                              # configs/pretrain.py (default), 30 steps each
  python benchmarks/train_input.py --variant=tiny --steps=50
  python benchmarks/train_input.py --threads=1,4 --steps=20

Runs the pretraining trainer's own jitted step (`sleepjax.train.loop.train` with
`state.make_train_step` of `pretrain.ContrastiveTask`, batches placed with `mesh.global_batch`)
on the configured dataset (`synthetic_psg/default` for the default variant; built on first use
into $TFDS_DATA_DIR), twice with the same state after the same warm-up:

  real      the grain pipeline of the trainer (`pipeline.make_dataset`, shuffled windows, channel
            caps, grain read threads and prefetch), read while the previous step runs;
  synthetic one batch of that pipeline, held in host memory and fed again at every step.

The ratio real / synthetic is the fraction of the step rate that the input path leaves; 1.0 means
reading is hidden behind compute. On a CPU machine the pipeline's threads and the step compete for
the same cores, so a ratio below 1 there does not carry over to an accelerator, where the step
runs on the device; `benchmarks/input_pipeline.py` gives the pipeline's own rate per CPU core.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time


def _run(config, task, state, step_fn, batches, steps: int, warmup: int, mesh) -> float:
  import functools

  from sleepjax.train import loop as loop_lib
  from sleepjax.train import mesh as mesh_lib

  to_device = functools.partial(mesh_lib.global_batch, mesh=mesh)
  start = int(state["step"])
  result = loop_lib.train(state, step_fn, batches, steps=start + warmup, log_every=warmup, to_device=to_device,
                          progress=False)
  t0 = time.perf_counter()
  result = loop_lib.train(result.state, step_fn, batches, steps=start + warmup + steps, log_every=steps,
                          to_device=to_device, progress=False)
  import jax
  jax.block_until_ready(result.state["params"])
  return steps / (time.perf_counter() - t0), result.state


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--variant", default="default", help="configs/pretrain.py variant")
  p.add_argument("--steps", type=int, default=30, help="timed steps per input")
  p.add_argument("--warmup", type=int, default=3, help="untimed steps before each timing (compilation in the first)")
  p.add_argument("--threads", default="4", help="grain read threads of the real input, comma-separated")
  p.add_argument("--rounds", type=int, default=1, help="(synthetic, real...) rounds before the closing synthetic run")
  args = p.parse_args(argv)

  import grain
  import jax

  sys.path.insert(0, os.fspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")))
  import configs.pretrain as pretrain_configs  # pylint: disable=g-import-not-at-top
  from sleepjax.data import pipeline
  from sleepjax.train import inputs, pretrain, state as state_lib
  from sleepjax.train import mesh as mesh_lib

  config = pretrain_configs.get_config(args.variant)
  mesh = mesh_lib.make_data_mesh(config.get("num_devices"))
  task, state = pretrain.init_state(config, pretrain.encoder_modalities(config))
  state = mesh_lib.put(state, mesh_lib.state_sharding(state, mesh))
  step_fn = state_lib.make_train_step(task, mesh, state)
  source = inputs.open_splits(config.data, [config.data.train_split])[config.data.train_split]

  def real_batches(threads):
    return iter(pipeline.make_dataset(
        source, window_epochs=config.data.window_epochs, batch_size=config.batch_size,
        channel_caps=pretrain.channel_caps(config), modalities=pretrain.modality_groups(config),
        seed=0, shuffle=True, num_epochs=None, drop_remainder=True,
        read_options=grain.ReadOptions(num_threads=threads, prefetch_buffer_size=8)))

  first = next(real_batches(1))
  rows = []
  _, state = _run(config, task, state, step_fn, itertools.repeat(first), args.warmup, args.warmup, mesh)  # compile, warm
  # Alternating (synthetic, real, ..., synthetic) rounds, so that a change of machine load shows.
  for _ in range(args.rounds):
    rate, state = _run(config, task, state, step_fn, itertools.repeat(first), args.steps, args.warmup, mesh)
    rows.append(("synthetic (one batch in memory)", "-", rate))
    for threads in [int(t) for t in args.threads.split(",")]:
      rate, state = _run(config, task, state, step_fn, real_batches(threads), args.steps, args.warmup, mesh)
      rows.append(("real (grain pipeline)", str(threads), rate))
  rate, state = _run(config, task, state, step_fn, itertools.repeat(first), args.steps, args.warmup, mesh)
  rows.append(("synthetic (one batch in memory)", "-", rate))
  synthetic = sum(r for name, _, r in rows if name.startswith("synthetic")) / sum(
      1 for name, _, _ in rows if name.startswith("synthetic"))
  window_s = config.data.window_epochs * 30
  print(f"\nconfigs/pretrain.py:{args.variant}: batch {config.batch_size} x {window_s}-s windows, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, {args.steps} timed steps after {args.warmup}")
  print("\n| input | grain threads | steps/s | windows/s | vs mean synthetic |")
  print("|---|--:|--:|--:|--:|")
  for name, threads, rate in rows:
    print(f"| {name} | {threads} | {rate:.2f} | {rate * config.batch_size:.1f} | {rate / synthetic:.2f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
