"""NSRR cohorts (SHHS visits 1 and 2, MESA, MrOS visit 1, CFS visit 5) as psg_folder specs.

Each config is a dataset spec (tfds_builders/psg_folder) fixed for a cohort's release layout on
the National Sleep Research Resource (Zhang et al. 2018, JAMIA 25(10)): EDFs under
`polysomnography/edfs/`, expert scoring as NSRR XML under `polysomnography/annotations-events-nsrr/`
(`ScoredEvent` elements of EventType "Stages|Stages"), the cohort's channel labels, subject id
from the file name. NSRR data need a data-use agreement: no download, `--manual_dir` is the
cohort folder you downloaded (README.md).

Channels absent from a night (labels changed across SHHS sites and visits) are zero and masked,
as in every psg_folder dataset. Output: 100 Hz (SleepMG's rate), 30 min of wake kept around sleep.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from tfds_builders.psg_folder import psg_folder_dataset_builder as psg_folder

_COMMON = {"hypnogram_format": "nsrr_xml", "sfreq": 100.0, "trim_wake_min": 30.0}

# Channel labels as in the NSRR EDFs (the cohorts' data dictionaries). First label = output name.
# SHHS visits 1 and 2 share one montage and layout; only the visit in the paths differs.
_SHHS_MONTAGE = {
    "eeg": [["C4-A1", "EEG"], ["C3-A2", "EEG(sec)", "EEG2", "EEG 2", "EEG sec"]],
    "eog": [["EOG(L)", "EOGL"], ["EOG(R)", "EOGR"]],
    "emg": [["EMG"]],
    "ecg": [["ECG"]],
    "resp": [["THOR RES", "THOR"], ["ABDO RES", "ABDO"], ["AIRFLOW"]],
}


def _shhs(visit: str, description: str) -> dict:
  return {"recordings": f"**/edfs/{visit}/{visit}-*.edf",
          "hypnogram": f"../../annotations-events-nsrr/{visit}/{{stem}}-nsrr.xml",
          "subject": r"shhs[12]-(\d+)", "montage": _SHHS_MONTAGE, "description": description}


SPECS = {
    "shhs1": _shhs("shhs1", "Sleep Heart Health Study, visit 1 (1995-98; 5,804 nights)."),
    "shhs2": _shhs("shhs2", "Sleep Heart Health Study, visit 2 (2001-03; 2,651 nights)."),
    "mesa": {
        "recordings": "**/edfs/mesa-sleep-*.edf",
        "hypnogram": "../annotations-events-nsrr/{stem}-nsrr.xml",
        "subject": r"mesa-sleep-(\d+)",
        "montage": {
            "eeg": [["Fz-Cz", "EEG1"], ["Cz-Oz", "EEG2"], ["C4-M1", "EEG3"]],
            "eog": [["E1", "EOG-L"], ["E2", "EOG-R"]],
            "emg": [["Chin", "EMG"]],
            "ecg": [["ECG", "EKG"]],
            "resp": [["Thor"], ["Abdo"], ["Flow"]],
        },
        "description": "Multi-Ethnic Study of Atherosclerosis sleep exam (2010-12; 2,056 nights).",
    },
    "mros": {
        "recordings": "**/edfs/visit1/mros-visit1-*.edf",
        "hypnogram": "../../annotations-events-nsrr/visit1/{stem}-nsrr.xml",
        "subject": r"mros-visit\d-([a-z]{2}\d{4})",
        "montage": {
            # Recorded referentially (C3, C4, A1, A2 against the amplifier's reference): the
            # spec takes C3 and C4 as stored; re-referencing to A2/A1 is not done here.
            "eeg": [["C3"], ["C4"]],
            "eog": [["LOC"], ["ROC"]],
            "emg": [["L Chin", "LChin"], ["R Chin", "RChin"]],
            "ecg": [["ECG L", "ECGL"], ["ECG R", "ECGR"]],
            "resp": [["Thoracic"], ["Abdominal"], ["Airflow"]],
        },
        "description": "Osteoporotic Fractures in Men Study, sleep visit 1 (2003-05; 2,907 nights).",
    },
    "cfs": {
        "recordings": "**/edfs/cfs-visit5-*.edf",
        "hypnogram": "../annotations-events-nsrr/{stem}-nsrr.xml",
        "subject": r"cfs-visit\d-(\d+)",
        "montage": {
            "eeg": [["C3"], ["C4"]],
            "eog": [["LOC"], ["ROC"]],
            "emg": [["EMG1"], ["EMG2"]],
            "ecg": [["ECG1"], ["ECG2"]],
            "resp": [["THOR EFFORT"], ["ABDO EFFORT"], ["NASAL PRES"]],
        },
        "description": "Cleveland Family Study, visit 5 (2001-06; 730 nights).",
    },
}

HOMEPAGE = {"shhs1": "https://sleepdata.org/datasets/shhs", "shhs2": "https://sleepdata.org/datasets/shhs",
            "mesa": "https://sleepdata.org/datasets/mesa", "mros": "https://sleepdata.org/datasets/mros",
            "cfs": "https://sleepdata.org/datasets/cfs"}


def _config(name: str) -> psg_folder.PsgFolderConfig:
  return psg_folder.config_from_spec({"name": name, **_COMMON, **SPECS[name]})


class Builder(psg_folder.Builder):
  """DatasetBuilder for the NSRR cohorts (named configs of the psg_folder builder)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: shhs1, shhs2, mesa, mros, cfs (NSRR XML scoring, "
                            "100 Hz, masked montages)."}
  BUILDER_CONFIGS = [_config(name) for name in SPECS]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
NSRR data need an approved data-use agreement (https://sleepdata.org/data/requests); they cannot
be downloaded by this builder. Download the cohort's EDFs and NSRR XML annotations with the
nsrr gem (e.g. `nsrr download shhs/polysomnography/edfs/shhs1` and
`nsrr download shhs/polysomnography/annotations-events-nsrr/shhs1`) and pass the cohort folder
(the one holding polysomnography/) as --manual_dir. Layouts: tfds_builders/nsrr/README.md.
"""

  def __init__(self, *, config=None, **kwargs):
    # Named configs (strings) as any TFDS builder, not a spec.
    super(psg_folder.Builder, self).__init__(config=config, **kwargs)

  def _info_kwargs(self) -> dict:
    return {"homepage": HOMEPAGE[self.builder_config.name],
            "license": "NSRR data-use agreement (https://sleepdata.org/data/requests); no "
                       "redistribution"}
