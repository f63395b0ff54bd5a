r"""Build throughput of the PSG TFDS builders: hours of PSG prepared per second, wall, CPU, peak RSS.

Builds `synthetic_psg` from a corpus of full nights (default: 8 subjects x 1 night, 7.5 h of
sleep + 30 min of wake before and 20 min after, as in Sleep-EDF recordings) through the whole
reading path: validate and read the EDF files -> resample, epoch, trim, z-score -> write
array_record. The nights are generated ONCE into --nights_dir (or a temporary folder), timed
apart and excluded from the rates; every build then reads the same files, so builds of two code
versions or modes compare on identical input.

Each build runs in a fresh subprocess (so that peak RSS is the build's own): `plain` is the
single-process build, `beamN` the Apache Beam build on the DirectRunner with N worker
processes (`direct_num_workers=N,direct_running_mode=multi_processing`). CPU time and peak RSS
include the Beam worker processes: the process tree is sampled every 0.2 s with psutil (peak RSS
= the largest sum of RSS over the tree; a worker's CPU time is its last sample, so up to 0.2 s
of a worker's CPU can be missed).

Prints a Markdown table (and --json). Examples:

  python benchmarks/build_throughput.py --nights_dir /tmp/nights8 --modes plain,beam2
  python benchmarks/build_throughput.py --nights 2 --duration_h 1.0 --preset sleepmg
  python benchmarks/build_throughput.py --nights_dir /tmp/nights2 --nights 2 --modes plain \
      --profile /tmp/build.prof            # cProfile of the plain build (pstats file)

Numbers depend on the machine and on its load: report them with the command and `uptime`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

_BENCH_DIR = pathlib.Path(__file__).resolve().parent
_REPO = _BENCH_DIR.parent
# Run from a checkout without installing: the repository root on the path (also for Beam's
# worker processes, which import this module by name to unpickle the builder).
for _p in (os.fspath(_BENCH_DIR), os.fspath(_REPO)):
  if _p not in sys.path:
    sys.path.insert(0, _p)

from sleepjax.data import edf as edf_lib  # noqa: E402
from sleepjax.data import synthetic  # noqa: E402
from tfds_builders import _common  # noqa: E402
from tfds_builders.synthetic_psg import synthetic_psg_dataset_builder as synthetic_psg  # noqa: E402

_PRESETS = {
    # SleepFM-Clinical preprocessing, all 5 modalities (the `default`/`large` configs).
    "sleepfm": dict(sfreq=128.0, lowpass_at_nyquist=True, zscore=True,
                    modalities=("eeg", "eog", "emg", "ecg", "resp")),
    # SleepMG layout (the `sleepmg` config).
    "sleepmg": dict(sfreq=100.0, lowpass_at_nyquist=False, zscore=False,
                    modalities=("eeg", "eog", "emg", "ecg")),
}


@dataclasses.dataclass
class PregeneratedConfig(synthetic_psg.SyntheticPsgConfig):
  """A synthetic_psg config whose nights are already written in `nights_dir`."""
  nights_dir: str = ""


class PregeneratedNights(synthetic_psg.Builder, skip_registration=True):
  """synthetic_psg reading the nights of `config.nights_dir` instead of generating them."""

  # TFDS looks for the builder's metadata files in its package: synthetic_psg's.
  pkg_dir_path = pathlib.Path(synthetic_psg.__file__).resolve().parent

  def _split_records(self, dl_manager):
    cfg = self.builder_config
    records = []
    for s in range(cfg.n_subjects):
      for n in range(1, cfg.nights_per_subject + 1):
        record_id, subject_id = synthetic.record_ids(s, n)
        stem = os.path.join(cfg.nights_dir, record_id[:-2])
        records.append(_common.RecordFiles(record_id=record_id, subject_id=subject_id,
                                           psg_path=f"{stem}E0-PSG.edf",
                                           hypnogram_path=f"{stem}EH-Hypnogram.edf"))
    return _common.split_records(records)


def _config(args) -> PregeneratedConfig:
  return PregeneratedConfig(
      name=f"bench_{args.preset}_{args.nights}x{args.duration_h:g}h", n_subjects=args.nights,
      duration_h=args.duration_h, seed=args.seed, wake_before_min=args.wake_before_min,
      wake_after_min=args.wake_after_min, nights_dir=os.fspath(args.nights_dir),
      **_PRESETS[args.preset])


def _psg_files(cfg: PregeneratedConfig) -> list[pathlib.Path]:
  return [pathlib.Path(r.psg_path) for recs in PregeneratedNights._split_records(
      type("B", (), {"builder_config": cfg})(), None).values() for r in recs]


class _TreeSampler:
  """Peak RSS of this process and its descendants, and the descendants' CPU time (psutil)."""

  def __init__(self, period_s: float = 0.2):
    import psutil
    self._psutil, self._me, self._period = psutil, psutil.Process(), period_s
    self.peak_rss = 0
    self._child_cpu: dict[int, float] = {}
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _sample(self):
    rss = self._me.memory_info().rss
    for c in self._me.children(recursive=True):
      try:
        rss += c.memory_info().rss
        t = c.cpu_times()
        self._child_cpu[c.pid] = t.user + t.system
      except self._psutil.Error:  # exited between listing and sampling
        pass
    self.peak_rss = max(self.peak_rss, rss)

  def _run(self):
    while not self._stop.is_set():
      self._sample()
      self._stop.wait(self._period)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self._sample()

  @property
  def children_cpu_s(self) -> float:
    return sum(self._child_cpu.values())


def _child(args) -> int:
  """One build in this (fresh) process; prints one JSON line."""
  import tensorflow_datasets as tfds

  cfg = _config(args)
  download_config = tfds.download.DownloadConfig()
  if args.mode != "plain":
    import apache_beam as beam
    workers = int(args.mode[len("beam"):])
    # Beam's worker processes inherit the path that finds this module and the checkout.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [os.fspath(_BENCH_DIR), os.fspath(_REPO)]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    download_config = tfds.download.DownloadConfig(
        beam_runner=beam.runners.DirectRunner(),
        beam_options=beam.options.pipeline_options.PipelineOptions(flags=[
            f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]))
  import build_throughput as importable  # this file by module name, for Beam's pickling
  builder = importable.PregeneratedNights(config=importable.PregeneratedConfig(
      **dataclasses.asdict(cfg)), data_dir=args.data_dir)
  profiler = None
  if args.profile:
    import cProfile
    profiler = cProfile.Profile()
  with _TreeSampler() as sampler:
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    if profiler:
      profiler.enable()
    builder.download_and_prepare(download_dir=os.path.join(args.data_dir, "dl"),
                                 download_config=download_config)
    if profiler:
      profiler.disable()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
  if profiler:
    profiler.dump_stats(args.profile)
  own_cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
  report = builder.info.metadata["build_report"]
  print(json.dumps({
      "mode": args.mode, "wall_s": wall, "cpu_s": own_cpu + sampler.children_cpu_s,
      "peak_rss_mib": max(sampler.peak_rss, r1.ru_maxrss * 1024) / 2**20,
      "n_kept": sum(r["n_kept"] for r in report.values()),
      "n_failed": sum(r["n_failed"] for r in report.values()),
      "data_mib": sum(p.stat().st_size for p in pathlib.Path(builder.data_dir).rglob("*")
                      if p.is_file()) / 2**20,
  }))
  return 0


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
  parser.add_argument("--nights_dir", default=None,
                      help="folder of the generated nights: reused when it holds them all, "
                           "generated into otherwise (default: a temporary folder)")
  parser.add_argument("--modes", default="plain,beam2",
                      help="comma-separated builds: plain, beamN (N DirectRunner worker processes)")
  parser.add_argument("--repeat", type=int, default=1, help="builds per mode (alternating)")
  parser.add_argument("--profile", default=None,
                      help="write a cProfile pstats file of the first plain build here")
  parser.add_argument("--json", default=None, help="also write the results as JSON here")
  parser.add_argument("--mode", default=None, help=argparse.SUPPRESS)      # child process
  parser.add_argument("--data_dir", default=None, help=argparse.SUPPRESS)  # child process
  args = parser.parse_args(argv)
  if args.mode is not None:
    return _child(args)

  modes = [m.strip() for m in args.modes.split(",") if m.strip()]
  for m in modes:
    if m != "plain" and not (m.startswith("beam") and m[4:].isdigit() and int(m[4:]) > 0):
      parser.error(f"unknown mode {m!r}: plain or beamN")
  tmp = pathlib.Path(tempfile.mkdtemp(prefix="sleepjax_build_bench_"))
  args.nights_dir = pathlib.Path(args.nights_dir) if args.nights_dir else tmp / "nights"
  cfg = _config(args)
  psg_files = _psg_files(cfg)

  # 1. The nights, generated once (excluded from every rate).
  gen = None
  if not all(p.is_file() for p in psg_files):
    t0 = time.perf_counter()
    synthetic.write_corpus(args.nights_dir, cfg.synthetic_config())
    gen = time.perf_counter() - t0
  psg_h = sum(edf_lib.validate_edf(p).duration_s for p in psg_files) / 3600.0
  edf_mb = sum(p.stat().st_size for p in pathlib.Path(args.nights_dir).glob("*.edf")) / 2**20

  # 2. The builds, each in a fresh process, modes alternating.
  results = []
  for rep in range(args.repeat):
    for m in modes:
      data_dir = tmp / f"data_{m}_{rep}"
      cmd = [sys.executable, os.fspath(pathlib.Path(__file__).resolve()), "--mode", m,
             "--data_dir", os.fspath(data_dir), "--nights_dir", os.fspath(args.nights_dir),
             "--nights", str(args.nights), "--duration_h", repr(args.duration_h),
             "--preset", args.preset, "--wake_before_min", repr(args.wake_before_min),
             "--wake_after_min", repr(args.wake_after_min), "--seed", str(args.seed)]
      if args.profile and m == "plain" and rep == 0:
        cmd += ["--profile", args.profile]
      load0 = os.getloadavg()[0]
      out = subprocess.run(cmd, check=True, capture_output=True, text=True)
      res = json.loads(out.stdout.strip().splitlines()[-1])
      res.update(load_before=load0, load_after=os.getloadavg()[0], repeat=rep)
      results.append(res)
      shutil.rmtree(data_dir, ignore_errors=True)
      print(f"  {m} #{rep}: {res['wall_s']:.1f} s wall, {res['cpu_s']:.1f} s CPU", file=sys.stderr)

  print(f"\n{platform.machine()}, {os.cpu_count()} CPUs; {len(psg_files)} nights x "
        f"{args.duration_h:g} h sleep (+{args.wake_before_min:g}/{args.wake_after_min:g} min "
        f"wake) = {psg_h:.2f} h of PSG, {edf_mb:.0f} MiB of EDF; preset {args.preset} "
        f"({cfg.sfreq:g} Hz, {', '.join(cfg.modalities)}); generation "
        + (f"{gen:.1f} s (excluded)" if gen is not None else f"reused from {args.nights_dir}"))
  print("\n| build | wall s | CPU s | PSG h / s (wall) | PSG h / CPU-s | peak RSS MiB | epochs "
        "| on disk MiB | load avg before/after |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|")
  for r in results:
    print(f"| {r['mode']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {psg_h / r['wall_s']:.2f} | "
          f"{psg_h / r['cpu_s']:.2f} | {r['peak_rss_mib']:.0f} | {r['n_kept']} | "
          f"{r['data_mib']:.0f} | {r['load_before']:.1f}/{r['load_after']:.1f} |")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(
        {"psg_h": psg_h, "nights": len(psg_files), "generation_s": gen, "results": results},
        indent=1))
  shutil.rmtree(tmp, ignore_errors=True)
  return 0 if all(r["n_failed"] == 0 for r in results) else 1


if __name__ == "__main__":
  raise SystemExit(main())
