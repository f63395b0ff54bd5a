"""Any folder of PSG recordings as a sleepjax dataset, driven by a JSON dataset spec.

  python -m sleepjax.data.build tfds_builders/psg_folder --spec SPEC.json --manual_dir DIR

The spec (tfds_builders/psg_folder/spec.py lists its keys) names the PSG files (a glob), each
one's hypnogram (a path template and a format: EDF+, CSV, NSRR XML or text), the subject id (a
regex on the file stem) and the montage. Recordings may carry different subsets of the montage:
every example holds all montage channels, absent ones zero and False in `channel_mask`; the
build report counts the missing channels per recording and lists the file labels that neither
the montage nor the alias table types. A recording that fails validation is reported and
skipped with its reason. Splits are subject-wise (`sleepjax.data.pipeline.subject_split`).
The spec and its SHA-256 are stored in `info.metadata` with the sampling rate, the units, the
montage and the stage codes (README.md: reading the dataset without sleepjax).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import re
from typing import Any

import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders.psg_folder import spec as spec_lib

_DESCRIPTION = """\
A folder of polysomnography recordings (EDF/EDF+/BDF) with expert hypnograms, read with a
dataset spec (stored in this dataset's metadata). One example per scored 30-s epoch, AASM
stages, signals in uV; channels absent from a recording are zero and masked (channel_mask).
"""


@dataclasses.dataclass
class PsgFolderConfig(tfds.core.BuilderConfig):
  """A dataset spec as a builder config.

  Attributes:
    spec: the validated spec (`spec.validate`): JSON-able dict.
    spec_sha256: `spec.sha256(spec)`, stored in the metadata and keyed into the build.
  """
  spec: dict = dataclasses.field(default_factory=dict)
  spec_sha256: str = ""

  @property
  def montage(self):
    return spec_lib.montage(self.spec)


def config_from_spec(spec: dict | str | os.PathLike) -> PsgFolderConfig:
  """A PsgFolderConfig from a spec dict or a spec file.

  Raises:
    RecordingError: an invalid spec (one line naming the file and the key).
  """
  full = spec_lib.validate(spec) if isinstance(spec, dict) else spec_lib.load(spec)
  return PsgFolderConfig(name=full["name"], spec=full, spec_sha256=spec_lib.sha256(full),
                         description=full["description"] or f"psg_folder dataset {full['name']}")


def find_records(manual_dir: str | os.PathLike, spec: dict) -> list[_common.RecordFiles]:
  """The recordings a spec selects in manual_dir, each with its hypnogram path.

  A matched file that is another recording's hypnogram (an EDF+ hypnogram beside its PSG) is
  not a recording. A hypnogram that does not exist is left for the build to report (that
  recording is skipped), not raised here.

  Args:
    manual_dir: the folder.
    spec: a validated spec.

  Returns:
    Recordings sorted by record id (the PSG stem).

  Raises:
    RecordingError: manual_dir is not a folder, or holds no file matching the glob (the message
      names the folder and the expected names); a stem without a subject id.
    DuplicateFileError: two PSGs with one stem (record ids must be unique).
  """
  root = pathlib.Path(manual_dir)
  if not root.is_dir():
    raise errors.RecordingError(root, f"manual_dir does not exist or is not a folder (expected "
                                f"PSG files {spec['recordings']!r} in it)")
  matched = sorted(pathlib.Path(p) for p in glob.glob(os.fspath(root / spec["recordings"]),
                                                       recursive=True) if os.path.isfile(p))
  rx = re.compile(spec["subject"])
  candidates = []
  for p in matched:
    stem = p.stem
    m = rx.search(stem)
    subject = m.group(1) if m is not None and m.group(1) else None
    hyps = [os.path.normpath(p.parent / t.format(stem=stem, name=p.name, subject=subject or ""))
            for t in spec_lib.templates(spec)]
    candidates.append((p, stem, subject, hyps))
  hyp_paths = {h for *_, hyps in candidates for h in hyps}
  records, seen = [], {}
  for p, stem, subject, hyps in candidates:
    # The first existing hypnogram, else the first template's (reported missing at build time).
    hyp = next((h for h in hyps if os.path.isfile(h)), hyps[0])
    if os.path.normpath(p) in hyp_paths:
      continue  # e.g. SC4001EC-Hypnogram.edf matched by "*.edf"
    if subject is None:
      raise errors.RecordingError(p, f"file stem {stem!r} has no subject id by the spec's "
                                  f"subject regex {spec['subject']!r}")
    if stem in seen:
      raise errors.DuplicateFileError(p, f"two recordings with the id {stem!r}: {seen[stem]} and "
                                      f"{p}; record ids (file stems) must be unique")
    seen[stem] = p
    records.append(_common.RecordFiles(record_id=stem, subject_id=subject, psg_path=os.fspath(p),
                                       hypnogram_path=hyp))
  if not records:
    raise errors.RecordingError(root, f"no PSG file matching {spec['recordings']!r} in manual_dir "
                                f"(with hypnograms {spec['hypnogram']!r}); nothing to build")
  return sorted(records, key=lambda r: r.record_id)


def read_spec_hypnogram(files: _common.RecordFiles, header, spec: dict):
  """The recording's hypnogram on its PSG's timeline, read as the spec says.

  Raises:
    AnnotationError: the hypnogram file does not exist; the readers' errors.
  """
  from sleepjax.data import hypnogram as hypnogram_lib
  from sleepjax.data import recording as recording_lib

  path = files.hypnogram_path
  if not os.path.isfile(path):
    raise errors.AnnotationError(path, f"hypnogram of {files.psg_path} does not exist (spec "
                                 f"template {spec['hypnogram']!r})")
  fmt = spec_lib.hypnogram_format(spec, path)
  mapping = spec["stage_mapping"]  # names or codes, checked by spec_lib.validate
  if fmt == "edf+":
    # Placed by the two files' start date/times (AlignmentError when one does not parse).
    return recording_lib.read_aligned_hypnogram(header, path, stage_mapping=mapping)
  kwargs = {"stage_mapping": mapping, "psg_start": header.start}
  if fmt in ("csv", "text"):
    kwargs["epoch_s"] = float(spec["epoch_s"])
  return hypnogram_lib.read_hypnogram(path, format=fmt, **kwargs)


def untyped_labels(labels, montage) -> list[str]:
  """File labels neither in the montage (resolved) nor typed by the channel alias table."""
  from sleepjax.data import channels as channels_lib

  rest = channels_lib.untyped_labels(labels)  # not typed, and not a known non-PSG channel
  used = set(montage.resolve(labels).values())
  return sorted({lab for lab in rest if lab not in used and lab.strip()})


def load_night(files: _common.RecordFiles, spec: dict):
  """Reads one recording of a spec: validated, epoched, with missing/untyped channels noted.

  Returns:
    A `sleepjax.data.recording.Recording`; its report carries `missing_channels` (montage
    channels absent or dropped) and `untyped_labels` (tfds_builders/_report.py).

  Raises:
    RecordingError subclasses (the build reports and skips the recording).
  """
  from sleepjax.data import edf as edf_lib
  from sleepjax.data import recording as recording_lib

  montage = spec_lib.montage(spec)
  header = edf_lib.validate_edf(files.psg_path)
  labels = [header.labels[i] for i in header.signal_indices]
  if not montage.resolve(labels, files.psg_path):
    raise errors.MissingChannelError(
        files.psg_path, f"none of the spec's channels {[s.name for s in montage]} is in the file "
        f"(labels: {labels})")
  hyp = read_spec_hypnogram(files, header, spec)
  rec = recording_lib.load_recording(
      files.psg_path, hyp, montage, record_id=files.record_id, subject_id=files.subject_id,
      sfreq=float(spec["sfreq"]), zscore=bool(spec["zscore"]),
      trim_wake_min=spec["trim_wake_min"], max_mismatch_s=spec["max_mismatch_s"])
  present = {n for names in rec.channel_names.values() for n in names}
  rec.report.missing_channels = [s.name for s in montage if s.name not in present]
  rec.report.untyped_labels = untyped_labels(labels, montage)
  return rec


class Builder(_common.PsgBuilder):
  """DatasetBuilder of a folder of PSG recordings described by a dataset spec."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release: spec-driven, masked montage subsets, ClassLabel "
                            "stages, self-describing metadata."}
  BUILDER_CONFIGS: list[PsgFolderConfig] = []  # A config comes from a spec (config_from_spec).
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put your recordings in a folder and describe it with a dataset spec (tfds_builders/psg_folder/
README.md); build with
  python -m sleepjax.data.build tfds_builders/psg_folder --spec SPEC.json --manual_dir DIR
"""

  def __init__(self, *, config=None, **kwargs):
    if not isinstance(config, PsgFolderConfig):
      raise errors.RecordingError(None, "the psg_folder builder needs a dataset spec: "
                                  "Builder(config=config_from_spec('SPEC.json')), or "
                                  "`python -m sleepjax.data.build tfds_builders/psg_folder --spec "
                                  "SPEC.json --manual_dir DIR`")
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    cfg = self.builder_config
    montage = cfg.montage
    return self.dataset_info_from_configs(
        description=_DESCRIPTION + (f"\n{cfg.spec['description']}\n" if cfg.spec["description"] else ""),
        features=_common.epoch_features(montage, cfg.spec["sfreq"]),
        disable_shuffling=True,
        metadata=_common.dataset_metadata(montage, cfg.spec["sfreq"], zscore=cfg.spec["zscore"],
                                          units={"resp": "uV, or the file's unit if not a voltage"},
                                          spec=cfg.spec, spec_sha256=cfg.spec_sha256),
        **self._info_kwargs(),
    )

  def _info_kwargs(self) -> dict:
    """More DatasetInfo arguments (homepage, license) of a subclass with named configs."""
    return {}

  def _split_records(self, dl_manager) -> dict[str, list[_common.RecordFiles]]:
    manual = getattr(self, "_manual_given", None)
    if manual is None:
      raise errors.RecordingError(None, f"{self.name} needs --manual_dir, the folder of the "
                                  f"recordings ({self.builder_config.spec['recordings']!r}): "
                                  + " ".join(self.MANUAL_DOWNLOAD_INSTRUCTIONS.split()))
    return _common.split_records(find_records(manual, self.builder_config.spec))

  def _load(self, files: _common.RecordFiles):
    return load_night(files, self.builder_config.spec)


def builder(spec: dict | str | os.PathLike, data_dir: str | os.PathLike | None = None) -> Builder:
  """The Builder of a spec (dict or file) in a data_dir."""
  return Builder(config=config_from_spec(spec),
                 data_dir=None if data_dir is None else os.fspath(data_dir))


def spec_of(info) -> dict[str, Any]:
  """The spec a built dataset was made from (its metadata)."""
  return dict(info.metadata["spec"])


__all__ = ["Builder", "PsgFolderConfig", "builder", "config_from_spec", "find_records",
           "load_night", "spec_of"]
