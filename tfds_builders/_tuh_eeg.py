"""TUH EEG corpus conventions shared by the tuab and tuev builders.

- The TUH EEG 19-channel 10-20 montage and its label aliases ("EEG FP1-REF", "EEG FP1-LE").
- `partition_splits`: TUH's patient-disjoint train / eval partitions -> train / validation / test.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sleepjax.data import channels
from sleepjax.data import errors
from sleepjax.data import pipeline

# The 19 electrodes of the international 10-20 system kept by TUAB/TUEV studies, in TUH's order
# and TUH's (old 10-20) names: T3/T4/T5/T6 are T7/T8/P7/P8 in 10-10 terms (positions handle
# the aliases).
TUH_CHANNELS = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T3", "C3", "Cz", "C4", "T4",
                "T5", "P3", "Pz", "P4", "T6", "O1", "O2")

# TUH EDF label suffixes: -REF (average-reference "AR" montage, 01_tcp_ar), -LE (linked ears,
# 02_tcp_le). The A-REF variant ("03_tcp_ar_a") uses -REF as well.
_TUH_SUFFIXES = ("REF", "LE")


def tuh_montage() -> channels.Montage:
  """The TUH 19-channel 10-20 EEG montage, accepting "EEG XX-REF" and "EEG XX-LE" labels."""
  specs = []
  for name in TUH_CHANNELS:
    aliases = tuple(f"EEG {name.upper()}-{s}" for s in _TUH_SUFFIXES) + (name.upper(),)
    specs.append(channels.ChannelSpec(name, "eeg", aliases=aliases))
  return channels.Montage(specs)


def partition_splits(files: dict[str, list], subject_of: Callable[[tuple], str], manual_dir, dataset: str, *,
                     validation_fraction: float = 0.1) -> dict[str, list]:
  """TUH train/eval partitions -> train / validation / test file lists, subject-wise.

  TUH's official `eval` partition is the test split; validation subjects are drawn from `train` with
  `sleepjax.data.pipeline.subject_split`. Empty splits are left out (TFDS refuses them).

  Args:
    files: {"train": [...], "eval": [...]}, one tuple per EDF file.
    subject_of: the subject id of one tuple.
    manual_dir: the folder the files came from (for error messages).
    dataset: "TUAB" or "TUEV" (for error messages).
    validation_fraction: share of the train subjects used for validation.

  Raises:
    RecordingError: no file in either partition, or a subject in both (TUH's partitions are
      patient-disjoint; a mixed tree would leak subjects into the test set).
  """
  if not files["train"] and not files["eval"]:
    raise errors.RecordingError(os.fspath(manual_dir), f"no {dataset} .edf files found under train/ or eval/")
  overlap = {subject_of(f) for f in files["train"]} & {subject_of(f) for f in files["eval"]}
  if overlap:
    raise errors.RecordingError(os.fspath(manual_dir), f"subjects in both train and eval: {sorted(overlap)[:5]}")
  assign = pipeline.subject_split([subject_of(f) for f in files["train"]],
                                  validation_fraction=validation_fraction, test_fraction=0.0)
  by_split = {
      "train": [f for f in files["train"] if assign[subject_of(f)] == "train"],
      "validation": [f for f in files["train"] if assign[subject_of(f)] == "validation"],
      "test": files["eval"],
  }
  return {split: f for split, f in by_split.items() if f}
