"""PhysioNet EEG Motor Movement/Imagery Dataset (eegmmidb 1.0.0) as a TFDS dataset.

64-channel EEG (BCI2000, 10-10 montage) at 160 Hz from 109 subjects (Schalk et al. 2004).
Two configs, one example per 4-s window:

- `motor_imagery`: runs R04, R08, R12 (imagine opening/closing the left or right fist). Each
  EDF+ annotation starts a window of `window_s` seconds at its onset: T0 -> rest, T1 -> left
  fist, T2 -> right fist. (In runs R06/R10/R14 T1/T2 mean "both fists"/"both feet"; they are
  not read.) A window that would run past the end of the recording is dropped.
- `eyes`: baseline runs R01 (eyes open) and R02 (eyes closed), cut into consecutive
  non-overlapping 4-s windows from the start; the tail shorter than a window is dropped.

Channel labels such as "Fc5." are cleaned by MNE (`mne.datasets.eegbci.standardize` -> "FC5")
and placed with `sleepjax.data.channels.electrode_position` (standard_1005, unit sphere).
Signals are float32 microvolts. Recordings at another rate (S088, S090, S092 and S100 were
recorded at 128 Hz) are resampled to 160 Hz by MNE.

Splits are by subject: subject number n goes to test when n % 6 == 0, to validation when
n % 6 == 5, to train otherwise. The rule does not depend on which subjects a user has: with the
project's S001-S012 it gives train S001-S004, S007-S010; validation S005, S011; test S006, S012.
Splits with no subject are left out (e.g. `eyes` on S001 alone has only `train`).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import edf
from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _report

SFREQ = 160.0  # Hz.
N_CHANS = 64
# The 64 channels in the files' order, as `mne.datasets.eegbci.standardize` names them.
CHANNELS = (
    "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4", "C6",
    "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6", "Fp1", "Fpz", "Fp2", "AF7", "AF3", "AFz",
    "AF4", "AF8", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8", "FT7", "FT8", "T7", "T8",
    "T9", "T10", "TP7", "TP8", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3",
    "POz", "PO4", "PO8", "O1", "Oz", "O2", "Iz")
N_SUBJECTS = 109
TASKS = {
    "motor_imagery": {"runs": (4, 8, 12), "labels": ("rest", "left_fist", "right_fist")},
    "eyes": {"runs": (1, 2), "labels": ("eyes_open", "eyes_closed")},
}
# Motor-imagery annotation -> label index (Schalk et al. 2004; PhysioNet eegmmidb page).
MI_EVENTS = {"T0": 0, "T1": 1, "T2": 2}
EYES_RUN_LABEL = {1: 0, 2: 1}

URL_TEMPLATE = "https://physionet.org/files/eegmmidb/1.0.0/S{s:03d}/S{s:03d}R{r:02d}.edf"

_RECORD_RE = re.compile(r"^s(\d{3})r(\d{2})\.edf$", re.IGNORECASE)

_DESCRIPTION = """
PhysioNet EEG Motor Movement/Imagery Dataset (Schalk et al. 2004): 64-channel EEG at 160 Hz.
Config `motor_imagery`: 4-s windows from each annotation onset of the left/right-fist imagery runs
R04/R08/R12 (T0 rest, T1 left fist, T2 right fist). Config `eyes`: 4-s windows of the eyes-open
(R01) and eyes-closed (R02) baselines. Subject-wise splits (n % 6 == 0 test, == 5 validation).
Signals in microvolts; 10-10 electrode positions on the unit sphere.
"""

_CITATION = """
@article{schalk2004bci2000,
  title={{BCI2000}: a general-purpose brain-computer interface ({BCI}) system},
  author={Schalk, Gerwin and McFarland, Dennis J and Hinterberger, Thilo and Birbaumer, Niels and Wolpaw, Jonathan R},
  journal={IEEE Transactions on Biomedical Engineering},
  volume={51},
  number={6},
  pages={1034--1043},
  year={2004}
}
"""


@dataclasses.dataclass
class EegmmidbConfig(tfds.core.BuilderConfig):
  """Config of the eegmmidb builder.

  Attributes:
    task: "motor_imagery" or "eyes".
    subjects: subject numbers to read (1..109); None = every subject found in `manual_dir`,
      or all 109 when downloading.
    window_s: window length in seconds (4 s: the shortest imagery cue lasts 4.1 s).
  """

  task: str = "motor_imagery"
  subjects: tuple[int, ...] | None = None
  window_s: float = 4.0


def subject_split(subject: int) -> str:
  """Split of a subject number (1..109): n % 6 == 0 -> test, == 5 -> validation, else train."""
  if subject % 6 == 0:
    return "test"
  if subject % 6 == 5:
    return "validation"
  return "train"


def parse_record_name(name: str) -> tuple[int, int] | None:
  """("S001R04.edf") -> (1, 4); None for any other file name."""
  m = _RECORD_RE.match(name)
  return (int(m.group(1)), int(m.group(2))) if m else None


def read_run(path: pathlib.Path) -> tuple[np.ndarray, list[tuple[float, str]], tuple[str, ...]]:
  """Reads one eegmmidb EDF+ run.

  Args:
    path: `S0NNR0M.edf`.

  Returns:
    `(eeg, events, names)`: (64, T) float32 microvolts at 160 Hz in `CHANNELS` order; the
    EDF+ annotations as (onset_s, text); and the cleaned channel names.

  Raises:
    errors.EDFHeaderError, errors.EDFTruncatedError: from `sleepjax.data.edf.read_raw_edf`.
    errors.MissingChannelError: when one of the 64 channels is absent.
  """
  import mne  # Heavy import, only when a build runs.

  header = edf.validate_edf(path)
  raw = edf.read_raw_edf(path, preload=True)
  file_labels = list(raw.ch_names)
  mne.datasets.eegbci.standardize(raw)  # "Fc5." -> "FC5", "Fpz." -> "Fpz", ...
  names = tuple(raw.ch_names)
  missing = [c for c in CHANNELS if c not in names]
  if missing:
    raise errors.MissingChannelError(path, f"channels {missing} missing; file has {file_labels}")
  by_clean = dict(zip(names, file_labels))
  # Samples calibrated from the header (sleepjax.data.edf.read_physical), in CHANNELS order.
  index = [header.signal_indices[file_labels.index(by_clean[c])] for c in CHANNELS]
  data = edf.read_physical(path, index, header=header)
  if raw.info["sfreq"] != SFREQ:
    logging.info("eegmmidb: %s recorded at %s Hz, resampling to %s Hz", path.name, raw.info["sfreq"], SFREQ)
    # What raw.resample(SFREQ) computes (MNE's FFT resampling), on the calibrated samples.
    data = mne.filter.resample(data, up=float(SFREQ), down=float(raw.info["sfreq"]), npad="auto",
                               verbose="error")
  eeg = np.stack([
      edf.channel_to_microvolts(data[k], header.physical_dims[i], path=path, channel=by_clean[c],
                                dim_bytes=header.physical_dim_bytes[i])
      for k, (i, c) in enumerate(zip(index, CHANNELS))])
  if not np.all(np.isfinite(eeg)):
    raise errors.BadSignalError(path, "non-finite samples")
  events = [(float(o), str(d)) for o, d in zip(raw.annotations.onset, raw.annotations.description)]
  return eeg, events, CHANNELS


def motor_imagery_windows(eeg: np.ndarray, events: list[tuple[float, str]], n_win: int, path=None):
  """Cuts one window per T0/T1/T2 annotation, starting at its onset.

  Args:
    eeg: (C, T) float32 microvolts at 160 Hz.
    events: (onset_s, text) annotations of the run.
    n_win: window length in samples.
    path: the file, for messages.

  Yields:
    `(window_index, onset_s, label, (C, n_win) float32)`; `window_index` is the annotation's
    rank among the T0/T1/T2 annotations of the run, so keys stay stable when a window is dropped.

  Raises:
    errors.AnnotationError: for an annotation text other than T0/T1/T2.
  """
  n_times = eeg.shape[1]
  rank = 0
  for onset_s, text in events:
    if text not in MI_EVENTS:
      raise errors.AnnotationError(path, f"unexpected annotation {text!r} at {onset_s} s; expected T0, T1 or T2")
    start = int(round(onset_s * SFREQ))
    if start + n_win <= n_times:
      yield rank, onset_s, MI_EVENTS[text], eeg[:, start:start + n_win]
    else:
      logging.info("eegmmidb: %s: window at %.2f s runs past the end (%d samples); dropped", path, onset_s, n_times)
    rank += 1


class Builder(_common.ArrayRecordBuilder):
  """eegmmidb: 4-s 64-channel EEG windows, motor imagery or eyes open/closed."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: configs motor_imagery and eyes, subject-wise splits."}
  BUILDER_CONFIGS = [
      EegmmidbConfig(name="motor_imagery", task="motor_imagery",
                     description="Runs R04/R08/R12: rest / left fist / right fist imagery, 4-s windows."),
      EegmmidbConfig(name="eyes", task="eyes",
                     description="Baselines R01 (eyes open) / R02 (eyes closed), 4-s windows."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional. Without a manual_dir the EDFs are downloaded from PhysioNet
  (https://physionet.org/files/eegmmidb/1.0.0/S0NN/S0NNR0M.edf). To build from local files put
  in manual_dir any of: the PhysioNet tree (S001/S001R04.edf, ...), loose S0NNR0M.edf files, or
  tar archives of them (e.g. eegmmidb_mi_S001-S012.tar.xz). Only the runs of the config are read.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    n_win = int(round(self.builder_config.window_s * SFREQ))
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=_downstream.features(
            {"eeg": (N_CHANS, n_win)}, label_names=TASKS[self.builder_config.task]["labels"],
            subject_doc="e.g. 'S001'.", record_doc="Run, e.g. 'S001R04'.",
            task_fields={
                "run": tfds.features.Scalar(dtype=np.int32, doc="PhysioNet run number (1..14)."),
                "window_index": tfds.features.Scalar(dtype=np.int32, doc="Window rank within the run."),
                "onset_s": tfds.features.Scalar(dtype=np.float32, doc="Window start from the run start, seconds."),
            }),
        homepage="https://physionet.org/content/eegmmidb/1.0.0/",
        citation=_CITATION,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    if config.task not in TASKS:
      raise ValueError(f"unknown eegmmidb task {config.task!r}; expected one of {sorted(TASKS)}")
    runs = TASKS[config.task]["runs"]
    wanted = set(config.subjects) if config.subjects is not None else None
    manual = _common.manual_dir_or_none(dl_manager)  # None: download from PhysioNet.
    files: dict[tuple[int, int], pathlib.Path] = {}
    if manual is not None:
      roots = [manual]
      for archive in sorted(manual.iterdir()):
        if archive.is_file() and archive.name.lower().endswith((".tar.xz", ".tar.gz", ".tar", ".zip")):
          stem = archive.name.split(".")[0]
          roots.append(_downstream.extract_archive(archive, pathlib.Path(dl_manager.download_dir) / stem))
      for root in roots:
        for name, path in _downstream.index_files(root, (".edf",)).items():
          sr = parse_record_name(name)
          if sr and sr[1] in runs and (wanted is None or sr[0] in wanted):
            files.setdefault(sr, path)
      if not files:
        raise errors.RecordingError(manual, f"no eegmmidb EDF files of runs {runs} found"
                                    + (f" for subjects {sorted(wanted)}" if wanted else ""))
    else:
      subjects = sorted(wanted) if wanted is not None else range(1, N_SUBJECTS + 1)
      urls = {(s, r): URL_TEMPLATE.format(s=s, r=r) for s in subjects for r in runs}
      paths = dl_manager.download({f"S{s:03d}R{r:02d}": u for (s, r), u in urls.items()})
      files = {(s, r): pathlib.Path(paths[f"S{s:03d}R{r:02d}"]) for (s, r) in urls}
    by_split: dict[str, dict[tuple[int, int], pathlib.Path]] = {}
    for (s, r), path in sorted(files.items()):
      by_split.setdefault(subject_split(s), {})[(s, r)] = path
    return {split: self._generate_examples(split, f) for split, f in sorted(by_split.items())}

  def _generate_examples(self, split: str, files: dict[tuple[int, int], pathlib.Path]):
    config = self.builder_config
    n_win = int(round(config.window_s * SFREQ))
    positions = _downstream.electrode_positions(CHANNELS)
    names = np.array(CHANNELS, dtype=object)
    failures, n_examples, n_past_end = [], 0, 0
    for (subject, run), path in files.items():
      record_id = f"S{subject:03d}R{run:02d}"
      try:
        eeg, events, _ = read_run(path)
        if config.task == "motor_imagery":
          # Materialised inside the try: a bad annotation must not leave a run half-written.
          windows = list(motor_imagery_windows(eeg, events, n_win, path))
          n_past_end += len(events) - len(windows)
        else:
          windows = [(i, i * config.window_s, EYES_RUN_LABEL[run], eeg[:, i * n_win:(i + 1) * n_win])
                     for i in range(eeg.shape[1] // n_win)]
      except errors.RecordingError as e:
        logging.warning("eegmmidb: skipping %s", e)
        failures.append(str(e))
        continue
      n_examples += len(windows)
      for index, onset_s, label, x in windows:
        yield f"{record_id}_{index:03d}", {
            "signals": {"eeg": np.ascontiguousarray(x, dtype=np.float32)},
            "channel_names": {"eeg": names},
            "positions": {"eeg": positions},
            "label": label,
            "subject_id": f"S{subject:03d}",
            "record_id": record_id,
            "run": np.int32(run),
            "window_index": np.int32(index),
            "onset_s": np.float32(onset_s),
        }
    _report.write(self, split, _report.example_report(len(files), failures, n_examples,
                                                      n_windows_past_end=n_past_end))
