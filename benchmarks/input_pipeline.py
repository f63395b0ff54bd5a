r"""Input-pipeline throughput: TFDS array_record -> padded, masked 5-min window batches on the device.

  python benchmarks/input_pipeline.py                       # synthetic_psg/default, batch 16, SleepFM-Clinical caps
  python benchmarks/input_pipeline.py --batches=50 --threads=1,2,4 --device_put
  python benchmarks/input_pipeline.py --threads=1 --workers=2,4         # + grain worker processes

Reads `synthetic_psg/<config>` (built on first use into $TFDS_DATA_DIR) through
`sleepjax.data.pipeline.make_dataset`: 10-epoch (5-min) windows, channel caps BAS 10 / ECG 2 /
EMG 4 / RESP 7, shuffled, batched, and (with --device_put) placed on the first JAX device as the
trainer does. Reported per grain thread count: windows/s (wall), windows per CPU-second of the
process (all threads; the per-core rate, and the better guide on a shared machine), and MB/s of
the batch's float32 signals per CPU-second (padded, as fed to the step) and of the real channels.
With --workers=N (N > 0) the batches are produced by N grain worker processes
(`IterDataset.mp_prefetch`), each with --threads read threads, and the CPU time includes the
workers' (psutil).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

CAPS = {"bas": 10, "ecg": 2, "emg": 4, "resp": 7}
GROUPS = {"bas": ("eeg", "eog"), "ecg": ("ecg",), "emg": ("emg",), "resp": ("resp",)}


def _cpu() -> float:
  """CPU seconds of this process and of its live child processes (grain workers)."""
  r = resource.getrusage(resource.RUSAGE_SELF)
  total = r.ru_utime + r.ru_stime
  try:
    import psutil  # pylint: disable=g-import-not-at-top
  except ImportError:
    return total
  for child in psutil.Process().children(recursive=True):
    try:
      t = child.cpu_times()
      total += t.user + t.system
    except psutil.Error:
      pass
  return total


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="default", help="synthetic_psg builder config")
  p.add_argument("--batch_size", type=int, default=16)
  p.add_argument("--window_epochs", type=int, default=10)
  p.add_argument("--batches", type=int, default=30, help="timed batches per thread count")
  p.add_argument("--threads", default="4", help="grain read threads, comma-separated")
  p.add_argument("--workers", default="0", help="grain worker processes, comma-separated (0: threads only)")
  p.add_argument("--device_put", action="store_true", help="also place every batch on the JAX device")
  args = p.parse_args(argv)
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()  # grain's worker processes read absl flags

  import grain  # pylint: disable=g-import-not-at-top

  import tfds_builders.synthetic_psg  # pylint: disable=g-import-not-at-top,unused-import
  from sleepjax.data import pipeline  # pylint: disable=g-import-not-at-top
  source = pipeline.data_source("synthetic_psg", "train", config=args.config)
  print(f"synthetic_psg/{args.config} train: {len(source)} epochs; batch {args.batch_size} x "
        f"{args.window_epochs}-epoch windows; caps {CAPS}; load average {os.getloadavg()[0]:.1f}", flush=True)
  put = None
  if args.device_put:
    import jax  # pylint: disable=g-import-not-at-top
    device = jax.devices()[0]
    put = lambda b: jax.block_until_ready(jax.device_put({k: b[k] for k in ("signals", "mask", "positions")}, device))
  rows = []
  configs = [(int(w), int(t)) for w in args.workers.split(",") for t in args.threads.split(",")]
  for workers, threads in configs:
    ds = pipeline.make_dataset(source, batch_size=args.batch_size, window_epochs=args.window_epochs,
                               channel_caps=CAPS, modalities=GROUPS, seed=0,
                               read_options=grain.ReadOptions(num_threads=threads, prefetch_buffer_size=8))
    if workers:
      ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=2))
    it = iter(ds)
    first = next(it)  # Start-up and the index are not timed.
    padded = sum(x.nbytes for x in first["signals"].values()) / args.batch_size
    real = sum(float(m.sum()) for m in first["mask"].values()) * next(iter(first["signals"].values())).shape[-1] * 4 \
        / args.batch_size
    t0, c0 = time.perf_counter(), _cpu()
    n = 0
    for _ in range(args.batches):
      batch = next(it)
      if put is not None:
        put(batch)
      n += len(batch["record_id"])
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    del it, ds
    rows.append({"workers": workers, "threads": threads, "windows_per_s": n / wall, "windows_per_cpu_s": n / cpu,
                 "padded_MB_per_cpu_s": n * padded / cpu / 1e6, "real_MB_per_cpu_s": n * real / cpu / 1e6})
  print("\n| grain workers | threads | windows/s (wall) | windows / CPU s | padded MB / CPU s | real-channel MB / CPU s |")
  print("|--:|--:|--:|--:|--:|--:|")
  for r in rows:
    print(f"| {r['workers']} | {r['threads']} | {r['windows_per_s']:.1f} | {r['windows_per_cpu_s']:.1f} | "
          f"{r['padded_MB_per_cpu_s']:.0f} | {r['real_MB_per_cpu_s']:.0f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
