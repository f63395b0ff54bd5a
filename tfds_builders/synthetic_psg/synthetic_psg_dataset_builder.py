"""The embedded default dataset: synthetic PSG nights (sleepjax.data.synthetic) as TFDS examples.

No download and no data-use agreement: `_split_generators` writes the nights with
`sleepjax.data.synthetic.write_corpus` as EDF + EDF+ hypnogram files (the Sleep-EDF layout)
into the download dir, then reads them back with EXACTLY the code path of the real Sleep-EDF
builder (`tfds_builders._common.edf_night_loader` -> `sleepjax.data.recording.load_recording`).
So every build also exercises the EDF reader, the hypnogram reader, resampling and epoching.

The signals are SYNTHETIC (a phenomenological model, see sleepjax.data.synthetic): use them to
test and demonstrate the library, not to make claims about real sleep.

Configs (SyntheticPsgConfig; generation is deterministic from `seed`):
  default       15 subjects x 1 night, 45 min of sleep + 5 min of wake on each side; 128 Hz,
                low-pass at Nyquist + per-night z-score (SleepFM-Clinical); all 5 modalities
                (EEG 6, EOG 2, EMG 1, ECG 1, RESP 3). Split 11 / 2 / 2 subjects, so that the
                main job's probe is scored on 4 held-out subjects. About a minute to build on
                2 cores (benchmarks/build_throughput.py).
  sleepmg       12 subjects x 1 night of 2 h; 100 Hz, EEG 6 / EOG 2 / EMG 1 / ECG 1 (SleepMG).
  tiny          3 subjects x 15 min of sleep; as `default` (tests, CI, notebooks; seconds).
  sleepmg_tiny  3 subjects x 15 min of sleep; as `sleepmg`.
  large         100 subjects x 1 full night (7.5 h); as `default` (for accelerators).
Splits: subject-wise, `sleepjax.data.pipeline.subject_split`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil

import tensorflow_datasets as tfds

from sleepjax.data import synthetic
from sleepjax.data.channels import ChannelSpec, Montage
from tfds_builders import _common

_DESCRIPTION = """\
Synthetic polysomnography (sleepjax.data.synthetic): whole nights with AASM hypnograms,
6 EEG (F3/F4/C3/C4/O1/O2 to the contralateral mastoid), 2 EOG, chin EMG, ECG and 3 respiration
channels, written as EDF and read back like Sleep-EDF. One example per scored 30-s epoch.
SYNTHETIC signals, not real recordings.
"""

_CHANNELS_OF = {
    "eeg": synthetic.EEG_CHANNELS, "eog": synthetic.EOG_CHANNELS, "emg": synthetic.EMG_CHANNELS,
    "ecg": synthetic.ECG_CHANNELS, "resp": synthetic.RESP_CHANNELS,
}


def montage_for(modalities: tuple[str, ...]) -> Montage:
  """The synthetic montage restricted to `modalities` (file labels as channel names)."""
  return Montage([ChannelSpec(label, m) for m in modalities for label in _CHANNELS_OF[m]])


@dataclasses.dataclass
class SyntheticPsgConfig(tfds.core.BuilderConfig):
  """A synthetic corpus and its preprocessing.

  Attributes:
    n_subjects, nights_per_subject, duration_h, seed, wake_before_min, wake_after_min:
      passed to `sleepjax.data.synthetic.SyntheticConfig` (duration_h = sleep period).
    sfreq: output rate in Hz.
    lowpass_at_nyquist: SleepFM-Clinical's Butterworth low-pass at the new Nyquist.
    zscore: per-channel z-score over the night (SleepFM-Clinical).
    modalities: which modalities the examples carry.
    trim_wake_min: wake kept around sleep, minutes (Sleep-EDF protocol); None = all.
  """
  n_subjects: int = 10
  nights_per_subject: int = 1
  duration_h: float = 1.0
  seed: int = 0
  wake_before_min: float = 5.0
  wake_after_min: float = 5.0
  sfreq: float = 128.0
  lowpass_at_nyquist: bool = True
  zscore: bool = True
  modalities: tuple[str, ...] = ("eeg", "eog", "emg", "ecg", "resp")
  trim_wake_min: float | None = 30.0

  @property
  def montage(self) -> Montage:
    return montage_for(tuple(self.modalities))

  def synthetic_config(self) -> synthetic.SyntheticConfig:
    return synthetic.SyntheticConfig(
        n_subjects=self.n_subjects, nights_per_subject=self.nights_per_subject,
        duration_h=self.duration_h, seed=self.seed, wake_before_min=self.wake_before_min,
        wake_after_min=self.wake_after_min)


_SLEEPMG = dict(sfreq=100.0, lowpass_at_nyquist=False, zscore=False,
                modalities=("eeg", "eog", "emg", "ecg"))


class Builder(_common.PsgBuilder):
  """DatasetBuilder for the synthetic PSG corpus."""

  # Bump with every change of sleepjax.data.synthetic that changes the signals: TFDS reuses a
  # prepared version silently.
  VERSION = tfds.core.Version("1.3.0")
  RELEASE_NOTES = {
      "1.0.0": "First release: default, sleepmg, tiny, sleepmg_tiny, large.",
      "1.1.0": "Generator: between-subject spread of the stage signatures (age-related slow-wave "
               "amplitude, alpha, chin-EMG tone per stage, heart-rate response), stronger "
               "within-stage fluctuation, sweat artefacts, respiratory-belt gain steps.",
      "1.2.0": "Same nights. Each channel is read at its own rate and resampled once to the "
               "output rate (the 100 Hz EEG/EOG/EMG and 25 Hz respiration were upsampled to the "
               "ECG's 200 Hz by MNE first, and then low-passed at 64 Hz); signals stored as raw "
               "float32 bytes (docs/building.md).",
      "1.3.0": "Same examples. " + _common.SELF_DESCRIBING_NOTE,
  }
  BUILDER_CONFIGS = [
      SyntheticPsgConfig(name="default", n_subjects=15, duration_h=0.75,
                         description="15 subjects x 45 min, 128 Hz, 5 modalities "
                         "(SleepFM-Clinical preprocessing)."),
      SyntheticPsgConfig(name="sleepmg", n_subjects=12, duration_h=2.0, wake_before_min=10.0,
                         wake_after_min=10.0, description="12 subjects x 2 h, 100 Hz, "
                         "EEG 6 / EOG 2 / EMG 1 / ECG 1 (SleepMG layout).", **_SLEEPMG),
      SyntheticPsgConfig(name="tiny", n_subjects=3, duration_h=0.25, wake_before_min=2.0,
                         wake_after_min=2.0, description="3 subjects x 15 min (tests, CI)."),
      SyntheticPsgConfig(name="sleepmg_tiny", n_subjects=3, duration_h=0.25, wake_before_min=2.0,
                         wake_after_min=2.0, description="3 subjects x 15 min, SleepMG layout.",
                         **_SLEEPMG),
      SyntheticPsgConfig(name="large", n_subjects=100, duration_h=7.5, wake_before_min=30.0,
                         wake_after_min=20.0, description="100 subjects x 7.5 h, 128 Hz, "
                         "5 modalities (accelerators)."),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=_common.epoch_features(cfg.montage, cfg.sfreq),
        homepage="https://github.com/sleepjax/sleepjax",
        disable_shuffling=True,
        metadata=_common.dataset_metadata(cfg.montage, cfg.sfreq, zscore=cfg.zscore),
        license="Apache-2.0 (generated data)",
    )

  def _split_records(self, dl_manager) -> dict[str, list[_common.RecordFiles]]:
    cfg = self.builder_config
    corpus_dir = (pathlib.Path(os.fspath(dl_manager.download_dir)) / "synthetic_psg"
                  / f"{cfg.name}_seed{cfg.seed}")
    # Always regenerate (deterministic): a leftover corpus of other parameters must not leak in.
    shutil.rmtree(corpus_dir, ignore_errors=True)
    infos = synthetic.write_corpus(corpus_dir, cfg.synthetic_config())
    records = [_common.RecordFiles(record_id=i.record_id, subject_id=i.subject_id,
                                   psg_path=os.fspath(i.psg_path),
                                   hypnogram_path=os.fspath(i.hypnogram_path)) for i in infos]
    return _common.split_records(records)

  def _load(self, files: _common.RecordFiles):
    cfg = self.builder_config
    return _common.edf_night_loader(
        cfg.montage, sfreq=cfg.sfreq, lowpass_at_nyquist=cfg.lowpass_at_nyquist,
        zscore=cfg.zscore, trim_wake_min=cfg.trim_wake_min)(files)
