"""Sleep-EDF Expanded (PhysioNet sleep-edfx 1.0.0) as one TFDS example per scored 30-s epoch.

Kemp et al. 2000 (IEEE TBME 47(9)); Goldberger et al. 2000 (PhysioNet). Licence: ODC-By 1.0.

Reads the original bytes: `SC4ssNE0-PSG.edf` + `SC4ssN?-Hypnogram.edf` (sleep-cassette) and
`ST7ssNJ0-PSG.edf` + `ST7ssN?-Hypnogram.edf` (sleep-telemetry), EDF+ annotations in R&K
("Sleep stage W/1/2/3/4/R/?", "Movement time") mapped to AASM (3 and 4 -> N3; movement and "?"
dropped). A PSG is paired with the hypnogram whose name has the same first 7 characters (the
8th, the scorer's letter, varies).

Sources: `manual_dir` when the user gives a non-empty one (files named as on PhysioNet, any folder
depth; no night of the config's study there is an error, not a silent download), else the PhysioNet
download (all 197 nights, ~8 GB; every file's SHA-256 is checked
against PhysioNet's SHA256SUMS, kept in checksums.tsv).

Preprocessing (sleepjax.data.recording, the same for every dataset): channels of the config's
montage, resampled to the config's rate (the SC 1-Hz EMG envelope and respiration are
upsampled), wake trimmed to `trim_wake_min` before the first / after the last sleep epoch
(Sleep-EDF protocol: 30 min; see the README for a recording with no sleep inside its signal).

Splits: subject-wise with `sleepjax.data.pipeline.subject_split` (subject SC4ss / ST7ss, both
nights of a subject in the same split).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re

import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data.channels import ChannelSpec, Montage
from tfds_builders import _common

_DESCRIPTION = """\
Sleep-EDF Expanded (PhysioNet sleep-edfx 1.0.0): 153 sleep-cassette nights (SC, 78 healthy
subjects aged 25-101, ambulatory) and 44 sleep-telemetry nights (ST, 22 subjects, temazepam
study). One example per scored 30-s epoch, AASM labels (R&K S3+S4 -> N3), signals in uV.
"""

_URL_ROOT = "https://physionet.org/files/sleep-edfx/1.0.0/"
_NAME = re.compile(r"^(S[CT][47]\d{3})([A-Z0-9])([A-Z0-9])-(PSG|Hypnogram)\.edf$")

# Sleep-EDF SC: EEG/EOG at 100 Hz; "EMG submental" is a 1-Hz rectified envelope and
# "Resp oro-nasal" a 1-Hz thermistor signal (arbitrary units). ST has no respiration channel and
# its EMG is a raw 100-Hz signal.
SC_MONTAGE = Montage([
    ChannelSpec("EEG Fpz-Cz", "eeg"),
    ChannelSpec("EEG Pz-Oz", "eeg"),
    ChannelSpec("EOG horizontal", "eog"),
    ChannelSpec("EMG submental", "emg"),
    ChannelSpec("Resp oro-nasal", "resp"),
])
ST_MONTAGE = Montage([
    ChannelSpec("EEG Fpz-Cz", "eeg"),
    ChannelSpec("EEG Pz-Oz", "eeg"),
    ChannelSpec("EOG horizontal", "eog"),
    ChannelSpec("EMG submental", "emg"),
])


@dataclasses.dataclass
class SleepEdfConfig(tfds.core.BuilderConfig):
  """A Sleep-EDF variant.

  Attributes:
    study: "SC" (sleep-cassette) or "ST" (sleep-telemetry).
    sfreq: output rate in Hz.
    lowpass_at_nyquist: SleepFM-Clinical's 4th-order zero-phase Butterworth at the new Nyquist.
    zscore: per-channel z-score over the night (SleepFM-Clinical).
    trim_wake_min: wake kept before the first / after the last sleep epoch; None = all.
    max_mismatch_s: tolerated overhang of scored hypnogram epochs past the PSG. None (default):
      Sleep-EDF hypnograms may run past the end of the PSG (the last annotation overruns; the
      300-s test excerpt is scored for 22 h), so such epochs are only counted as
      "beyond_signal" in the build report instead of losing the night.
    assume_offset_s: opt-in: seconds from the PSG start to the hypnogram start, used only for a
      night whose PSG or hypnogram start date/time does not parse (the report states it). None
      (default): such a night fails with AlignmentError, never a silent offset of 0.
  """
  study: str = "SC"
  sfreq: float = 100.0
  lowpass_at_nyquist: bool = False
  zscore: bool = False
  trim_wake_min: float | None = 30.0
  max_mismatch_s: float | None = None
  assume_offset_s: float | None = None

  @property
  def montage(self) -> Montage:
    return SC_MONTAGE if self.study == "SC" else ST_MONTAGE


def _records_from_names(names_to_paths: dict[str, str], study: str,
                        where: str) -> list[_common.RecordFiles]:
  """Pairs PSG and hypnogram files by their first 7 characters.

  Raises:
    AnnotationError: a PSG without a hypnogram.
    DuplicateFileError: two hypnograms for one PSG (e.g. SC4001EC and SC4001EH: two scorers);
      no rule picks one, so the user keeps the one they mean.
  """
  psgs, hyps = {}, {}
  for name, path in sorted(names_to_paths.items()):
    m = _NAME.match(name)
    if not m or not m.group(1).startswith(study):
      continue
    stem = m.group(1) + m.group(2)  # e.g. SC4001E: subject SC400, night 1, E.
    if m.group(4) == "PSG":
      psgs[stem] = (path, m.group(1) + m.group(2) + m.group(3))
    else:
      hyps.setdefault(stem, []).append(path)
  records = []
  for stem, (psg_path, record_id) in sorted(psgs.items()):
    if stem not in hyps:
      raise errors.AnnotationError(
          psg_path, f"no hypnogram {stem}?-Hypnogram.edf next to it in {where}")
    if len(hyps[stem]) > 1:
      raise errors.DuplicateFileError(
          psg_path, f"{len(hyps[stem])} hypnograms for {record_id}: {hyps[stem]} (another scorer's "
          f"labels would be taken silently); keep the one you mean in {where}")
    records.append(_common.RecordFiles(record_id=record_id, subject_id=record_id[:5],
                                       psg_path=psg_path, hypnogram_path=hyps[stem][0]))
  return records


def manual_records(manual_dir: str | os.PathLike, study: str) -> list[_common.RecordFiles]:
  """Finds a study's nights in a folder (searched recursively), named as on PhysioNet.

  Args:
    manual_dir: the folder.
    study: "SC" or "ST".

  Returns:
    Nights sorted by record id (possibly empty).

  Raises:
    AnnotationError: a PSG without its hypnogram.
    DuplicateFileError: one file name in two subfolders (two copies of a night: which one is
      intact cannot be told from the name), or two hypnograms for one PSG; the message names both.
  """
  found: dict[str, list[str]] = {}
  for p in sorted(pathlib.Path(manual_dir).rglob("*.edf")):
    if _NAME.match(p.name):
      found.setdefault(p.name, []).append(os.fspath(p))
  for name, paths in found.items():
    if len(paths) > 1:
      raise errors.DuplicateFileError(
          manual_dir, f"{len(paths)} copies of {name}: {paths}; keep one (a truncated or older "
          "copy would otherwise be taken silently)")
  names = {name: paths[0] for name, paths in found.items()}
  return _records_from_names(names, study, os.fspath(manual_dir))


class Builder(_common.PsgBuilder):
  """DatasetBuilder for Sleep-EDF Expanded."""

  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {
      "1.0.0": "First release: SC and ST at 100 Hz, SC at 128 Hz SleepFM-style.",
      "1.1.0": "Each channel read at its own rate and resampled once to the output rate (SC's "
               "1 Hz EMG envelope by polyphase filtering instead of MNE's FFT upsampling to "
               "100 Hz); signals stored as raw float32 bytes (docs/building.md).",
      "1.2.0": "Same examples. " + _common.SELF_DESCRIBING_NOTE,
  }
  BUILDER_CONFIGS = [
      SleepEdfConfig(name="sleep_cassette", study="SC",
                     description="SC nights, 100 Hz (SleepMG rate), 30 min of wake kept."),
      SleepEdfConfig(name="telemetry", study="ST",
                     description="ST nights (no respiration channel), 100 Hz."),
      SleepEdfConfig(name="sleep_cassette_128hz", study="SC", sfreq=128.0,
                     lowpass_at_nyquist=True, zscore=True,
                     description="SC nights as SleepFM-Clinical: low-pass at Nyquist, 128 Hz, "
                                 "per-night z-score."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Optional. Put Sleep-EDF files named as on PhysioNet (e.g. SC4001E0-PSG.edf and
SC4001EC-Hypnogram.edf) anywhere under manual_dir (`--manual_dir DIR`); otherwise they are
downloaded from https://physionet.org/files/sleep-edfx/1.0.0/ .
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=_common.epoch_features(self.builder_config.montage, self.builder_config.sfreq),
        homepage="https://physionet.org/content/sleep-edfx/1.0.0/",
        disable_shuffling=True,
        metadata=_common.dataset_metadata(
            self.builder_config.montage, self.builder_config.sfreq, zscore=self.builder_config.zscore,
            units={"resp": "thermistor, arbitrary units (the file's)"}),
        license="ODC-By 1.0 (Open Data Commons Attribution License v1.0)",
    )

  def _download_records(self, dl_manager) -> list[_common.RecordFiles]:
    sums = _common.read_commented_sha256(pathlib.Path(__file__).parent / "checksums.tsv")
    folder = "sleep-cassette/" if self.builder_config.study == "SC" else "sleep-telemetry/"
    wanted = {name: url for name, (url, _) in sums.items()
              if url.startswith(_URL_ROOT + folder)}
    paths = dl_manager.download(wanted)
    for name, path in paths.items():
      got = _common.sha256_of(path)
      if got != sums[name][1]:
        raise errors.EDFTruncatedError(
            path, f"{name}: SHA-256 {got} differs from PhysioNet's {sums[name][1]} "
                  f"(corrupted download)")
    return _records_from_names({n: os.fspath(p) for n, p in paths.items()},
                               self.builder_config.study, _URL_ROOT + folder)

  def _split_records(self, dl_manager) -> dict[str, list[_common.RecordFiles]]:
    cfg = self.builder_config
    manual = _common.manual_dir_or_none(dl_manager)
    if manual is not None:
      records = manual_records(manual, cfg.study)
      if not records:
        # Given files but none of this study: downloading 8 GB instead would surprise.
        raise errors.RecordingError(
            manual, f"manual_dir has no {cfg.study} nights named as on PhysioNet "
                    f"({cfg.study}*-PSG.edf + its *-Hypnogram.edf); give a folder with them, or "
                    f"no manual_dir to download from {_URL_ROOT}")
    else:
      records = self._download_records(dl_manager)
    return _common.split_records(records)

  def _load(self, files: _common.RecordFiles):
    cfg = self.builder_config
    return _common.edf_night_loader(
        cfg.montage, sfreq=cfg.sfreq, lowpass_at_nyquist=cfg.lowpass_at_nyquist,
        zscore=cfg.zscore, trim_wake_min=cfg.trim_wake_min,
        max_mismatch_s=cfg.max_mismatch_s, assume_offset_s=cfg.assume_offset_s)(files)
