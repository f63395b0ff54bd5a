"""ISRUC-Sleep subgroup III (10 healthy subjects, one night each) as 30-s PSG epochs.

ISRUC-Sleep (Khalighi et al. 2016) is distributed per subject as a RAR archive
(`http://dataset.isruc.isr.uc.pt/ISRUC_Sleep/subgroupIII/<n>.rar`, n = 1..10) holding

  <n>/<n>.rec     the PSG: an EDF file with a ".rec" extension, 200 Hz EEG/EOG/EMG/ECG
  <n>/<n>_1.txt   scorer 1's hypnogram, one AASM code per line per 30-s epoch
  <n>/<n>_2.txt   scorer 2's hypnogram
                  (codes: 0 W, 1 N1, 2 N2, 3 N3, 5 REM; blank trailing lines are ignored)

RAR extraction needs a tool (unrar, 7z, bsdtar) that this builder does not assume: pass the
already-extracted folder(s) as manual_dir. The builder finds `<n>.rec` (or `<n>.edf`) and
`<n>_<scorer>.txt` anywhere below manual_dir.

Processing (docs/architecture.md §3, one example per scored epoch; docs/specification.md §1.4 and §4.8):
- The SleepMG channel layout: EEG C3_A2, C4_A1, F3_A2, F4_A1, O1_A2, O2_A1; EOG LOC_A2,
  ROC_A1; EMG X1 (chin); ECG X2 -- names as in ISRUC's "ExtractedChannels" files; the EDF's
  "C3-A2" / "C3-M2" spellings are accepted.
- Resampled 200 -> 100 Hz (SleepMG) by `sleepjax.data.recording.epoch_recording`, in uV.
- The last `drop_last_epochs` (default 30) hypnogram epochs are dropped: ISRUC's
  ExtractedChannels, which MSTGCN and SleepMG use, end 30 epochs before the label files, and
  the standard ISRUC-S3 preprocessing drops those 30 labels (ISRUC-S3 then has 8,589 epochs).
  Set it to 0 to keep every scored epoch.
- No wake trimming (lab PSG recorded from lights-off to lights-on).

`<n>.rec` is read as EDF by `sleepjax.data.edf.read_raw_edf` (header and size validated
first); every error names the `.rec` or `.txt` file.

Splits: SleepMG evaluates ISRUC-S3 by 5-fold subject-wise cross-validation, which the trainer
does from `subject_id`; so every subject is in the single split "train" (see README).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data import hypnogram as hypnogram_lib
from sleepjax.data import recording as recording_lib
from sleepjax.data import stages as stages_lib
from sleepjax.data.channels import ChannelSpec
from sleepjax.data.channels import Montage
from tfds_builders import _common

URL_PATTERN = "http://dataset.isruc.isr.uc.pt/ISRUC_Sleep/subgroupIII/{n}.rar"
SUBJECTS = tuple(range(1, 11))

# SleepMG's ISRUC-S3 layout (EEG 6, EOG 2, EMG 1, ECG 1). Output names follow SleepMG's layout (docs/specification.md §1.4) and
# ISRUC's ExtractedChannels; aliases cover the EDF spellings (A1/A2 or M1/M2 references).
MONTAGE = Montage([
    ChannelSpec("C3_A2", "eeg", ("C3-A2", "C3-M2")),
    ChannelSpec("C4_A1", "eeg", ("C4-A1", "C4-M1")),
    ChannelSpec("F3_A2", "eeg", ("F3-A2", "F3-M2")),
    ChannelSpec("F4_A1", "eeg", ("F4-A1", "F4-M1")),
    ChannelSpec("O1_A2", "eeg", ("O1-A2", "O1-M2")),
    ChannelSpec("O2_A1", "eeg", ("O2-A1", "O2-M1")),
    ChannelSpec("LOC_A2", "eog", ("LOC-A2", "E1-M2")),
    ChannelSpec("ROC_A1", "eog", ("ROC-A1", "E2-M1")),
    ChannelSpec("X1", "emg", ("Chin EMG", "X1-EMG")),
    ChannelSpec("X2", "ecg", ("ECG", "X2-ECG")),
])

# Scorer files (30-s epochs): AASM 0=W, 1=N1, 2=N2, 3=N3, 5=REM (4 is unused: R&K's S4 slot).
ISRUC_CODES = {
    "0": stages_lib.W, "1": stages_lib.N1, "2": stages_lib.N2, "3": stages_lib.N3,
    "5": stages_lib.REM,
}

_PSG = re.compile(r"^(\d+)\.(rec|edf)$", re.IGNORECASE)


@dataclasses.dataclass(kw_only=True)
class IsrucConfig(tfds.core.BuilderConfig):
  """Which scorer and preprocessing.

  Attributes:
    scorer: 1 or 2 (`<n>_1.txt` or `<n>_2.txt`).
    sfreq: output rate, Hz (SleepMG: 100).
    drop_last_epochs: hypnogram epochs dropped at the end of each night (standard: 30).
    max_mismatch_s: tolerated overhang of the (kept) hypnogram past the signal, seconds.
  """
  scorer: int = 1
  sfreq: float = 100.0
  drop_last_epochs: int = 30
  max_mismatch_s: float = 30.0


def find_records(manual_dir: str | os.PathLike, scorer: int) -> list[_common.RecordFiles]:
  """Finds the extracted subgroup-III nights under a folder (searched recursively).

  Args:
    manual_dir: folder holding the extracted archives (`<n>/<n>.rec`, `<n>/<n>_<scorer>.txt`).
    scorer: 1 or 2.

  Returns:
    Nights sorted by subject number; record_id == subject_id == f"S3_{n:02d}".

  Raises:
    AnnotationError: a PSG without its scorer file, naming the PSG and the expected name.
    RecordingError: only .rar archives are present (they must be extracted first).
  """
  root = pathlib.Path(manual_dir)
  psgs, texts = {}, {}
  for p in sorted(root.rglob("*")):
    if not p.is_file():
      continue
    if m := _PSG.match(p.name):
      n = int(m.group(1))
      # The original .rec wins over a converted .edf left next to it.
      if m.group(2).lower() == "rec" or n not in psgs:
        psgs[n] = p
    elif m := re.match(rf"^(\d+)_{scorer}\.txt$", p.name):
      texts[int(m.group(1))] = p
  if not psgs and any(root.rglob("*.rar")):
    raise errors.RecordingError(root, "only .rar archives found: extract them first (e.g. `unrar x 1.rar`)")
  records = []
  for n in sorted(psgs):
    if n not in texts:
      raise errors.AnnotationError(psgs[n], f"no scorer-{scorer} hypnogram {n}_{scorer}.txt found under {root}")
    rid = f"S3_{n:02d}"
    records.append(_common.RecordFiles(record_id=rid, subject_id=rid, psg_path=os.fspath(psgs[n]),
                                       hypnogram_path=os.fspath(texts[n])))
  return records


def read_isruc_hypnogram(path: str | os.PathLike, drop_last_epochs: int) -> hypnogram_lib.Hypnogram:
  """Reads an ISRUC scorer file and drops its last `drop_last_epochs` epochs.

  Args:
    path: `<n>_<scorer>.txt` (one AASM code per line, 30-s epochs, no header).
    drop_last_epochs: epochs removed at the end (ISRUC-S3 standard: 30).

  Returns:
    Hypnogram on the PSG timeline (epoch 0 starts at the PSG start), AASM stages.

  Raises:
    AnnotationError: unknown code (e.g. 4, unused in AASM scoring), empty file, or not more
      epochs than `drop_last_epochs`.
  """
  hyp = hypnogram_lib.read_text_hypnogram(path, epoch_s=30.0, mapping=ISRUC_CODES,
                                          header_lines=0)
  if drop_last_epochs < 0:
    raise ValueError(f"drop_last_epochs must be >= 0, got {drop_last_epochs}")
  if hyp.n_epochs <= drop_last_epochs:
    raise errors.AnnotationError(path, f"{hyp.n_epochs} epochs, not more than the {drop_last_epochs} dropped at the end")
  stages = hyp.stages[:hyp.n_epochs - drop_last_epochs]
  return hypnogram_lib.Hypnogram(stages=np.asarray(stages, np.int32), onset_s=hyp.onset_s, path=hyp.path)


def load_night(files: _common.RecordFiles, cfg: IsrucConfig):
  """Reads one night (PSG `.rec`/`.edf` + scorer file) into a `Recording` (see module doc).

  Raises:
    RecordingError subclasses naming the original `.rec` or `.txt` file.
  """
  hyp = read_isruc_hypnogram(files.hypnogram_path, cfg.drop_last_epochs)
  # sleepjax.data.edf.read_raw_edf validates the header and reads EDF bytes under the .rec
  # extension (MNE itself only accepts *.edf paths).
  return recording_lib.load_recording(
      files.psg_path, hyp, MONTAGE, record_id=files.record_id, subject_id=files.subject_id, sfreq=cfg.sfreq,
      trim_wake_min=None, max_mismatch_s=cfg.max_mismatch_s)


class IsrucS3(_common.ArrayRecordBuilder):
  """ISRUC-Sleep subgroup III: 10 subjects, SleepMG layout (EEG 6, EOG 2, EMG 1, ECG 1) at 100 Hz."""

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
      "1.0.0": "First release: scorer 1 / scorer 2 configs, 100 Hz, last 30 epochs dropped.",
      "1.1.0": "Each channel read at its own rate and resampled once to 100 Hz; signals stored as "
               "raw float32 bytes (docs/building.md).",
      "1.2.0": "Same examples. " + _common.SELF_DESCRIBING_NOTE,
  }
  BUILDER_CONFIGS = [
      IsrucConfig(name="scorer1", scorer=1, description="Scorer 1's hypnograms (the usual ISRUC-S3 labels)."),
      IsrucConfig(name="scorer2", scorer=2, description="Scorer 2's hypnograms."),
  ]
  DEFAULT_CONFIG_NAME = "scorer1"
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the 10 subgroup-III archives
    http://dataset.isruc.isr.uc.pt/ISRUC_Sleep/subgroupIII/1.rar ... /10.rar
  and extract each one (e.g. `for n in $(seq 1 10); do unrar x $n.rar; done`), which gives
  <n>/<n>.rec, <n>/<n>_1.txt and <n>/<n>_2.txt. Pass the folder holding them as --manual_dir.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=_common.epoch_features(MONTAGE, self.builder_config.sfreq),
        homepage="https://sleeptight.isr.uc.pt/",
        disable_shuffling=True,
        metadata=_common.dataset_metadata(MONTAGE, self.builder_config.sfreq),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    cfg = self.builder_config
    records = find_records(dl_manager.manual_dir, cfg.scorer)
    if not records:
      raise errors.RecordingError(os.fspath(dl_manager.manual_dir),
                                  "no ISRUC <n>.rec / <n>.edf files found; see MANUAL_DOWNLOAD_INSTRUCTIONS")
    return {"train": self._generate_examples("train", records)}

  def _generate_examples(self, split, records):
    cfg = self.builder_config
    return _common.generate_examples(self, split, records, lambda files: load_night(files, cfg), MONTAGE)
