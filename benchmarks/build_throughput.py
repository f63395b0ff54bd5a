r"""Build throughput of the PSG TFDS builders: hours of PSG prepared per second, wall time, peak RSS.

Builds `synthetic_psg` with a corpus of full nights (default: 8 subjects x 1 night, 7.5 h of
sleep + 30 min of wake before and 20 min after, as in Sleep-EDF recordings) through the whole
path: generate EDF files -> validate and read them (MNE) -> resample, epoch, trim -> write
array_record. Generation alone is also timed on one extra night (calling the generator
directly), so that the reader's share (read + resample + epoch + write) can be estimated.

Prints a Markdown table. Example:

  python benchmarks/build_throughput.py                      # 8 full nights, 128 Hz, 5 modalities
  python benchmarks/build_throughput.py --nights 2 --duration_h 1.0 --preset sleepmg

Numbers depend on the machine and on its load: report them with the command and the machine.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

# Run from a checkout without installing: the repository root on the path.
sys.path.insert(0, os.fspath(pathlib.Path(__file__).resolve().parents[1]))

from sleepjax.data import edf as edf_lib  # noqa: E402
from sleepjax.data import synthetic  # noqa: E402
from tfds_builders.synthetic_psg import synthetic_psg_dataset_builder as synthetic_psg  # noqa: E402

_PRESETS = {
    # SleepFM-Clinical preprocessing, all 5 modalities (the `default`/`large` configs).
    "sleepfm": dict(sfreq=128.0, lowpass_at_nyquist=True, zscore=True,
                    modalities=("eeg", "eog", "emg", "ecg", "resp")),
    # SleepMG layout (the `sleepmg` config).
    "sleepmg": dict(sfreq=100.0, lowpass_at_nyquist=False, zscore=False,
                    modalities=("eeg", "eog", "emg", "ecg")),
}


def _peak_rss_mb() -> float:
  # ru_maxrss is in KiB on Linux (bytes on macOS).
  scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / (1024 * 1024)
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _cpu_s() -> float:
  total = 0.0
  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
    r = resource.getrusage(who)
    total += r.ru_utime + r.ru_stime
  return total


def _dir_mb(path: pathlib.Path) -> float:
  return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--nights", type=int, default=8, help="subjects (1 night each)")
  parser.add_argument("--duration_h", type=float, default=7.5, help="sleep period per night, h")
  parser.add_argument("--preset", choices=sorted(_PRESETS), default="sleepfm")
  parser.add_argument("--wake_before_min", type=float, default=30.0,
                      help="recorded wake before lights-off, min (Sleep-EDF keeps ~30)")
  parser.add_argument("--wake_after_min", type=float, default=20.0,
                      help="recorded wake after the final awakening, min")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--workdir", default=None, help="default: a temporary folder, removed after")
  args = parser.parse_args(argv)

  import tensorflow_datasets as tfds

  work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="sleepjax_build_bench_"))
  config = synthetic_psg.SyntheticPsgConfig(
      name=f"bench_{args.preset}_{args.nights}x{args.duration_h:g}h", n_subjects=args.nights,
      duration_h=args.duration_h, seed=args.seed, wake_before_min=args.wake_before_min,
      wake_after_min=args.wake_after_min, **_PRESETS[args.preset])

  # 1. Generation alone, on one night (the builder regenerates it; the cost is per night).
  t0, c0 = time.perf_counter(), _cpu_s()
  synthetic.write_corpus(work / "gen_one", synthetic.SyntheticConfig(
      n_subjects=1, duration_h=args.duration_h, seed=args.seed,
      wake_before_min=args.wake_before_min, wake_after_min=args.wake_after_min))
  gen_wall, gen_cpu = time.perf_counter() - t0, _cpu_s() - c0
  shutil.rmtree(work / "gen_one")

  # 2. The whole build.
  builder = synthetic_psg.Builder(config=config, data_dir=work / "data")
  t0, c0 = time.perf_counter(), _cpu_s()
  builder.download_and_prepare(download_dir=work / "dl",
                               download_config=tfds.download.DownloadConfig())
  wall, cpu = time.perf_counter() - t0, _cpu_s() - c0

  corpus = work / "dl" / "synthetic_psg" / f"{config.name}_seed{config.seed}"
  psg_files = sorted(corpus.glob("*-PSG.edf"))
  psg_h = sum(edf_lib.validate_edf(p).duration_s for p in psg_files) / 3600.0
  report = builder.info.metadata["build_report"]
  n_kept = sum(r["n_kept"] for r in report.values())
  n_failed = sum(r["n_failed"] for r in report.values())
  data_mb = _dir_mb(pathlib.Path(builder.data_dir))
  edf_mb = sum(p.stat().st_size for p in corpus.glob("*.edf")) / 2**20

  rows = [
      ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, load avg "
                  f"{os.getloadavg()[0]:.1f} at the end"),
      ("config", f"{len(psg_files)} nights x {args.duration_h:g} h sleep (+{args.wake_before_min:g}"
                 f"/{args.wake_after_min:g} min wake), "
                 f"preset {args.preset} ({config.sfreq:g} Hz, {', '.join(config.modalities)})"),
      ("hours of PSG prepared", f"{psg_h:.2f} h"),
      ("30-s epochs written (failed nights)", f"{n_kept} ({n_failed})"),
      ("wall time, whole build", f"{wall:.1f} s"),
      ("CPU time (user+sys), whole build", f"{cpu:.1f} s"),
      ("**throughput (wall)**", f"**{psg_h / wall:.3f} h of PSG / s** "
                                 f"({psg_h * 3600 / wall:.0f}x real time)"),
      ("throughput (CPU)", f"{psg_h / cpu:.3f} h of PSG / CPU-s"),
      ("generation alone, 1 night", f"{gen_wall:.1f} s wall, {gen_cpu:.1f} s CPU"),
      ("read + epoch + write, est. per night", f"{max(wall / max(len(psg_files), 1) - gen_wall, 0):.1f} s wall"),
      ("peak RSS (process)", f"{_peak_rss_mb():.0f} MiB"),
      ("EDF corpus / prepared dataset size", f"{edf_mb:.0f} MiB / {data_mb:.0f} MiB"),
  ]
  print("\n| measure | value |\n|---|---|")
  for k, v in rows:
    print(f"| {k} | {v} |")
  if args.workdir is None:
    shutil.rmtree(work, ignore_errors=True)
  return 0 if n_failed == 0 and np.isfinite(wall) else 1


if __name__ == "__main__":
  raise SystemExit(main())
