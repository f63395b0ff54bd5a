r"""Wall time of `sleepjax.stage` on one whole night, after compilation, beside YASA's SleepStaging.

  python benchmarks/stage_wall_time.py --model /tmp/sleepmg_tiny [/tmp/staging ...] [--night NIGHT.edf] [--repeats 3]

Without --night, one synthetic night of 7.5 h of sleep + 15 min of wake on each side (8 h, 960
epochs; `sleepjax.data.synthetic`, SYNTHETIC signals) is written to a temporary folder. Timed, on
the same EDF file, for each `--model` (any stager of `sleepjax.staging.STAGERS`: a SleepMG model,
or the staging task's sequence stager): loading the stager; the first `stage` call (reading, preprocessing, jit
compilation, forward pass); then `--repeats` further calls (median: the cost per night once
compiled); and YASA's out-of-the-box `yasa.SleepStaging(raw, eeg_name, eog_name, emg_name).predict()`
including its MNE read, when yasa is installed (one EEG, one EOG, one EMG: `--yasa-eeg/eog/emg`).
A model trained on synthetic data is a smoke test: only the times mean something here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--model", required=True, nargs="+", help="stagers: workdirs, model/ or model folders")
  p.add_argument("--night", default=None, help="an EDF night (default: a synthetic 8-h night)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--yasa-eeg", default="EEG C4-M1")
  p.add_argument("--yasa-eog", default="EOG E1-M2")
  p.add_argument("--yasa-emg", default="EMG Chin")
  args = p.parse_args(argv)
  night = args.night
  if night is None:
    from sleepjax.data import synthetic  # pylint: disable=g-import-not-at-top
    tmp = tempfile.mkdtemp(prefix="sleepjax_night_")
    cfg = synthetic.SyntheticConfig(n_subjects=1, duration_h=7.5, seed=7, wake_before_min=15.0, wake_after_min=15.0)
    night = str(synthetic.write_corpus(tmp, cfg)[0].psg_path)
  import sleepjax  # pylint: disable=g-import-not-at-top
  for model in args.model:
    t0 = time.perf_counter()
    stager = sleepjax.load_stager(model)
    t_load = time.perf_counter() - t0
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      t0 = time.perf_counter()
      hyp = sleepjax.stage(night, stager)
      t_first = time.perf_counter() - t0
      times = []
      for _ in range(args.repeats):
        t0 = time.perf_counter()
        sleepjax.stage(night, stager)
        times.append(time.perf_counter() - t0)
    print(f"night: {night} ({hyp.n_epochs} epochs = {hyp.n_epochs / 120:.2f} h)")
    print(f"model: {stager.name} ({type(stager).__name__})")
    print(f"sleepjax load_stager: {t_load:.2f} s")
    print(f"sleepjax stage, first call (read + preprocess + compile + forward): {t_first:.2f} s")
    print(f"sleepjax stage, after compilation: median {statistics.median(times):.2f} s over {len(times)} "
          f"(min {min(times):.2f}, max {max(times):.2f})")
  try:
    import mne  # pylint: disable=g-import-not-at-top
    import yasa  # pylint: disable=g-import-not-at-top
  except ImportError:
    print("yasa: not installed, skipped")
    return 0
  times = []
  for _ in range(max(1, args.repeats)):
    t0 = time.perf_counter()
    raw = mne.io.read_raw_edf(night, preload=True, verbose="error",
                              include=[args.yasa_eeg, args.yasa_eog, args.yasa_emg])
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      yasa.SleepStaging(raw, eeg_name=args.yasa_eeg, eog_name=args.yasa_eog, emg_name=args.yasa_emg).predict()
    times.append(time.perf_counter() - t0)
  print(f"yasa {yasa.__version__} SleepStaging read + predict: median {statistics.median(times):.2f} s over "
        f"{len(times)} (min {min(times):.2f}, max {max(times):.2f})")
  print(f"CPU cores visible: {os.cpu_count()}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
