"""DREAMS Spindles database (Devuyst et al., Univ. Mons / TCTS) as one example per 30-s epoch.

Licence: the DREAMS databases licence (non-commercial use only, no derivatives, attribution):
the data are never redistributed by this project; users fetch them and pass `manual_dir`.

Reads the original files of the `dreams_spindles/` folder:
  excerptN.txt            one header line ("[C3-A1]" or "[CZ-A1]") then one value per line, uV,
                          at fs = [100, 200, 50, 200, 200, 200, 200, 200] Hz for N = 1..8;
  Hypnogram_excerptN.txt  one header line then one R&K code per 5 s (5=W, 4=REM, 3=S1, 2=S2,
                          1=S3, 0=S4; -1..-3 unscored), turned into 30-s AASM epochs by majority
                          (sleepjax.data.hypnogram.to_30s);
  excerpt3.edf            the full 20-channel PSG of excerpt 3 (50 Hz).

`manual_dir` may be the extracted folder (or any folder above it), a folder holding the
`.tar.xz` archive, or the archive file itself; an archive is extracted under the download dir.

Configs: `spindles_eeg` (the 8 single-channel excerpts, 100 Hz) and `excerpt3_psg` (excerpt3.edf
as a multimodal PSG at 100 Hz: EEG FP1/C3/O1-A1, EOG1/2-A1, EMG1, ECG, resp NAF1/VTH/VAB). The
excerpts are 30-min pieces of nights: no wake trimming. Every excerpt is a different subject;
splits are subject-wise (sleepjax.data.pipeline.subject_split).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import tarfile

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data import stages as stages_lib
from sleepjax.data.channels import ChannelSpec, Montage
from tfds_builders import _common

_DESCRIPTION = """\
DREAMS Spindles: eight 30-min excerpts of whole-night PSGs (8 subjects), one EEG derivation
(C3-A1 or CZ-A1) each, scored in 5-s R&K epochs, mapped to 30-s AASM epochs by majority vote.
"""

# Sampling rates of excerpt1..8.txt (database README).
EXCERPT_SFREQ = (100.0, 200.0, 50.0, 200.0, 200.0, 200.0, 200.0, 200.0)
DREAMS_EPOCH_S = 5.0
# Hypnogram_excerptN.txt (5-s epochs): R&K codes 5=W, 4=REM, 3=S1, 2=S2, 1=S3, 0=S4, to AASM
# (S3 and S4 merge into N3). Only these codes occur in the 8 spindle-database hypnograms; any
# other code is an AnnotationError rather than a guess.
DREAMS_RK_CODES = {
    "5": stages_lib.W, "4": stages_lib.REM, "3": stages_lib.N1, "2": stages_lib.N2,
    "1": stages_lib.N3, "0": stages_lib.N3,
}

SPINDLES_MONTAGE = Montage([ChannelSpec("EEG", "eeg", aliases=("C3-A1", "CZ-A1"))])
EXCERPT3_MONTAGE = Montage([
    ChannelSpec("FP1-A1", "eeg"),
    ChannelSpec("C3-A1", "eeg"),
    ChannelSpec("O1-A1", "eeg"),
    ChannelSpec("EOG1-A1", "eog"),
    ChannelSpec("EOG2-A1", "eog"),
    ChannelSpec("EMG1", "emg"),
    ChannelSpec("ECG", "ecg"),
    ChannelSpec("NAF1", "resp"),  # nasal airflow
    ChannelSpec("VTH", "resp"),   # thoracic effort
    ChannelSpec("VAB", "resp"),   # abdominal effort
])


def read_text_excerpt(path: str | os.PathLike, sfreq: float):
  """Reads a DREAMS excerptN.txt into an MNE Raw with one EEG channel.

  Args:
    path: the text file: "[LABEL]" then one value per line, uV.
    sfreq: its sampling rate in Hz (EXCERPT_SFREQ; the file does not say).

  Returns:
    mne.io.RawArray with the header's label as channel name, data in volts (MNE's unit).

  Raises:
    RecordingError: missing file, no "[LABEL]" header, non-numeric or non-finite values, or
      fewer than 30 s of samples.
  """
  import mne

  path = os.fspath(path)
  if not os.path.isfile(path):
    raise errors.RecordingError(path, "DREAMS excerpt file does not exist")
  with open(path, encoding="latin-1") as f:
    header = f.readline().strip()
    m = re.fullmatch(r"\[(.+)\]", header)
    if not m:
      raise errors.RecordingError(path, f"first line {header!r} is not a '[LABEL]' header")
    try:
      values = np.loadtxt(f, dtype=np.float64, ndmin=1)
    except ValueError as e:
      raise errors.RecordingError(path, f"non-numeric sample value ({e})") from None
  if values.ndim != 1:
    raise errors.RecordingError(path, f"expected one value per line, got shape {values.shape}")
  if not np.all(np.isfinite(values)):
    raise errors.RecordingError(path, "signal has NaN/inf values")
  if values.size < 30 * sfreq:
    raise errors.RecordingError(path, f"only {values.size} samples: less than one 30-s epoch "
                                f"at {sfreq} Hz")
  info = mne.create_info([m.group(1)], sfreq, ch_types="eeg")
  return mne.io.RawArray(values[None, :] * 1e-6, info, verbose="error")


@dataclasses.dataclass
class DreamsConfig(tfds.core.BuilderConfig):
  """A DREAMS variant.

  Attributes:
    kind: "spindles_eeg" (text excerpts) or "excerpt3_psg" (excerpt3.edf).
    sfreq: output rate in Hz.
  """
  kind: str = "spindles_eeg"
  sfreq: float = 100.0

  @property
  def montage(self) -> Montage:
    return SPINDLES_MONTAGE if self.kind == "spindles_eeg" else EXCERPT3_MONTAGE


def _extract(archive: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
  dest.mkdir(parents=True, exist_ok=True)
  try:
    with tarfile.open(archive, "r:*") as tar:
      tar.extractall(dest, filter="data")  # "data" refuses absolute paths and links out.
  except (tarfile.TarError, OSError, EOFError) as e:
    raise errors.RecordingError(archive, f"cannot extract the DREAMS archive ({e})") from None
  return dest


def find_dreams_folder(manual: pathlib.Path, extract_dir: pathlib.Path) -> pathlib.Path:
  """The folder holding Hypnogram_excerpt*.txt, extracting an archive when needed.

  Args:
    manual: manual_dir: the folder, a folder above it, a folder with the .tar.xz, or the
      archive file.
    extract_dir: where an archive is extracted.

  Raises:
    RecordingError: nothing usable found.
  """
  if manual.is_file():
    return find_dreams_folder(_extract(manual, extract_dir), extract_dir)
  hyps = sorted(manual.rglob("Hypnogram_excerpt*.txt"))
  if hyps:
    return hyps[0].parent
  archives = sorted(manual.rglob("*.tar.xz")) + sorted(manual.rglob("*.tar.gz"))
  if archives:
    return find_dreams_folder(_extract(archives[0], extract_dir), extract_dir)
  raise errors.RecordingError(manual, "no DREAMS files (Hypnogram_excerptN.txt) nor a "
                              ".tar.xz archive in manual_dir")


class Builder(_common.PsgBuilder):
  """DatasetBuilder for the DREAMS Spindles excerpts."""

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
      "1.0.0": "First release: spindles_eeg and excerpt3_psg at 100 Hz.",
      "1.1.0": "excerpt3_psg: each channel read at its own rate and resampled once; signals "
               "stored as raw float32 bytes (docs/building.md).",
      "1.2.0": "Same examples. " + _common.SELF_DESCRIBING_NOTE,
  }
  BUILDER_CONFIGS = [
      DreamsConfig(name="spindles_eeg", kind="spindles_eeg",
                   description="8 single-channel EEG excerpts (C3-A1 or CZ-A1), 100 Hz."),
      DreamsConfig(name="excerpt3_psg", kind="excerpt3_psg",
                   description="excerpt3.edf as a multimodal PSG, 100 Hz."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download the DREAMS Spindles database (https://zenodo.org/record/2650142, licence:
non-commercial, no derivatives) and pass the extracted `dreams_spindles/` folder, or the
.tar.xz archive of it, as --manual_dir.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=_common.epoch_features(self.builder_config.montage, self.builder_config.sfreq),
        homepage="https://zenodo.org/record/2650142",
        disable_shuffling=True,
        metadata=_common.dataset_metadata(self.builder_config.montage, self.builder_config.sfreq,
                                          units={"resp": "uV as recorded (the file's 'UV')"}),
        license="DREAMS databases licence: non-commercial use, no derivatives, attribution",
    )

  def _split_records(self, dl_manager) -> dict[str, list[_common.RecordFiles]]:
    raw_manual = getattr(dl_manager, "_manual_dir", None)
    if raw_manual is None or not pathlib.Path(os.fspath(raw_manual)).exists():
      raise errors.RecordingError(raw_manual, "DREAMS needs --manual_dir: "
                                  + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    folder = find_dreams_folder(pathlib.Path(os.fspath(raw_manual)),
                                pathlib.Path(os.fspath(dl_manager.download_dir))
                                / "dreams_extracted")
    records = []
    for hyp in sorted(folder.glob("Hypnogram_excerpt*.txt")):
      n = int(re.search(r"(\d+)", hyp.stem).group(1))
      psg = folder / (f"excerpt{n}.txt" if self.builder_config.kind == "spindles_eeg"
                      else f"excerpt{n}.edf")
      if self.builder_config.kind == "excerpt3_psg" and n != 3:
        continue
      records.append(_common.RecordFiles(record_id=f"excerpt{n}", subject_id=f"dreams_s{n}",
                                         psg_path=os.fspath(psg), hypnogram_path=os.fspath(hyp)))
    if not records:
      raise errors.RecordingError(folder, f"no excerpt for config {self.builder_config.name}")
    return _common.split_records(records)

  def _load(self, files: _common.RecordFiles):
    from sleepjax.data import hypnogram as hypnogram_lib
    from sleepjax.data import recording as recording_lib
    from sleepjax.data.channels import electrode_position

    cfg = self.builder_config
    hyp = hypnogram_lib.read_text_hypnogram(
        files.hypnogram_path, epoch_s=DREAMS_EPOCH_S, mapping=DREAMS_RK_CODES,
        header_lines=1)
    common = dict(record_id=files.record_id, subject_id=files.subject_id, sfreq=cfg.sfreq,
                  trim_wake_min=None)
    if cfg.kind == "excerpt3_psg":
      return recording_lib.load_recording(files.psg_path, hyp, cfg.montage, **common)
    n = int(files.record_id[len("excerpt"):])
    raw = read_text_excerpt(files.psg_path, EXCERPT_SFREQ[n - 1])
    rec = recording_lib.epoch_recording(raw, hyp, cfg.montage, source_path=files.psg_path,
                                        **common)
    # The montage's single spec stands for C3-A1 or CZ-A1: keep the excerpt's real derivation
    # name and its electrode position (midpoint of the two electrodes).
    label = raw.ch_names[0]
    return dataclasses.replace(
        rec, channel_names={"eeg": (label,)},
        positions={"eeg": electrode_position(label).reshape(1, 3).astype(np.float32)})
