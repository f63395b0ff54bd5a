"""The dataset spec of the psg_folder builder: a JSON file that says how a folder of PSGs is read.

Keys (tfds_builders/psg_folder/README.md has a worked example):

  name             the dataset's config name ([a-z0-9_]+), e.g. "my_clinic".
  recordings       glob of PSG files relative to manual_dir, e.g. "**/*.edf" (EDF, EDF+, BDF).
  hypnogram        template of each PSG's hypnogram path, relative to the PSG's folder, with
                   {stem} (the PSG file name without extension), {name} (with it) and {subject}
                   (the subject id), e.g. "{stem}.csv", "{stem}-nsrr.xml", "../scoring/{stem}.txt";
                   or a list of templates, the first existing file wins.
  hypnogram_format "edf+", "csv", "nsrr_xml" or "text" (sleepjax.data.hypnogram.read_hypnogram),
                   or "auto": from the hypnogram's extension (.edf, .csv, .xml, .txt).
  subject          regex searched in the PSG stem; its first group is the subject id.
  montage          {modality: [channel, ...]}; a channel is a label ("C4-M1"), a list of
                   alternative labels (["C4-M1", "EEG C4-A1"]: the first is the output name) or
                   {"name": ..., "aliases": [...]}. A recording may lack some of them (padded and
                   masked), not all.
Optional:
  stage_mapping    {label in the file: AASM stage name or code}, e.g. {"0": "W", "5": "REM"}.
  epoch_s          scoring epoch of csv/text hypnograms (default 30; finer ones by majority).
  sfreq            output rate in Hz (default 100).
  trim_wake_min    wake kept around sleep, minutes (default null: everything scored is kept).
  max_mismatch_s   how far scored epochs may overhang the signal (default 30 s; null: any).
  zscore           per-channel z-score over the night (default false).
  description      free text shown in the dataset info.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from sleepjax.data import errors
from sleepjax.data import stages
from sleepjax.data.channels import ChannelSpec, Montage

FORMATS = ("edf+", "csv", "nsrr_xml", "text")
BY_EXTENSION = {".edf": "edf+", ".bdf": "edf+", ".csv": "csv", ".xml": "nsrr_xml", ".txt": "text"}
REQUIRED = ("name", "recordings", "hypnogram", "hypnogram_format", "subject", "montage")
OPTIONAL = {"stage_mapping": None, "epoch_s": 30.0, "sfreq": 100.0, "trim_wake_min": None,
            "max_mismatch_s": 30.0, "zscore": False, "description": ""}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def canonical_json(spec: Mapping[str, Any]) -> str:
  """The spec as sorted, compact JSON (what its SHA-256 is taken of)."""
  return json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256(spec: Mapping[str, Any]) -> str:
  """Hex SHA-256 of `canonical_json(spec)` (independent of key order and whitespace)."""
  return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


def validate(spec: Any, path: str | os.PathLike | None = None) -> dict[str, Any]:
  """Checks a spec and fills its defaults.

  Args:
    spec: the parsed JSON.
    path: the spec file, named in the error.

  Returns:
    The spec with every key of REQUIRED and OPTIONAL (a new dict).

  Raises:
    RecordingError: one line naming the spec file and the bad or missing key.
  """
  def bad(problem):
    return errors.RecordingError(path, f"dataset spec: {problem}")

  if not isinstance(spec, Mapping):
    raise bad(f"must be a JSON object, got {type(spec).__name__}")
  missing = [k for k in REQUIRED if k not in spec]
  if missing:
    raise bad(f"missing key(s) {missing}; required: {list(REQUIRED)}")
  unknown = sorted(set(spec) - set(REQUIRED) - set(OPTIONAL))
  if unknown:
    raise bad(f"unknown key(s) {unknown}; known: {list(REQUIRED) + list(OPTIONAL)}")
  out = {**OPTIONAL, **spec}
  if not isinstance(out["name"], str) or not _NAME.match(out["name"]):
    raise bad(f"name {out['name']!r} must match [a-z][a-z0-9_]* (it is a TFDS config name)")
  if out["hypnogram_format"] not in FORMATS + ("auto",):
    raise bad(f"hypnogram_format {out['hypnogram_format']!r} not in {list(FORMATS) + ['auto']}")
  try:
    rx = re.compile(out["subject"])
  except (re.error, TypeError) as e:
    raise bad(f"subject regex {out['subject']!r} does not compile: {e}") from None
  if rx.groups < 1:
    raise bad(f"subject regex {out['subject']!r} needs a group (the subject id)")
  if not isinstance(out["recordings"], str) or not out["recordings"]:
    raise bad("recordings must be a non-empty glob string")
  for template in templates(out):
    if not isinstance(template, str) or not template:
      raise bad(f"hypnogram must be a non-empty string or list of strings, got {template!r}")
    try:
      template.format(stem="x", name="x.edf", subject="x")
    except (KeyError, IndexError, ValueError) as e:
      raise bad(f"hypnogram template {template!r}: unknown field {e} (use {{stem}}, "
                "{name}, {subject})") from None
  try:
    montage(out)
  except (ValueError, TypeError) as e:
    raise bad(f"montage: {e}") from None
  sfreq = out["sfreq"]
  if not isinstance(sfreq, (int, float)) or sfreq <= 0 or abs(30 * sfreq - round(30 * sfreq)) > 1e-6:
    raise bad(f"sfreq {sfreq!r} must be positive with a whole number of samples per 30 s")
  if out["stage_mapping"] is not None and not isinstance(out["stage_mapping"], Mapping):
    raise bad("stage_mapping must be an object {label: stage}")
  try:  # the readers' own check of names and codes (sleepjax.data.stages), once for the whole spec
    stages.compile_mapping(out["stage_mapping"])
  except errors.AnnotationError as e:
    raise bad(e.problem) from None
  return out


def templates(spec: Mapping[str, Any]) -> list[str]:
  """The spec's hypnogram templates, as a list."""
  h = spec["hypnogram"]
  return list(h) if isinstance(h, list) else [h]


def hypnogram_format(spec: Mapping[str, Any], hypnogram_path: str | os.PathLike) -> str:
  """The format of one hypnogram: the spec's, or by extension for "auto".

  Raises:
    RecordingError: "auto" and an extension not in BY_EXTENSION.
  """
  fmt = spec["hypnogram_format"]
  if fmt != "auto":
    return fmt
  ext = os.path.splitext(os.fspath(hypnogram_path))[1].lower()
  if ext not in BY_EXTENSION:
    raise errors.AnnotationError(hypnogram_path, f"hypnogram_format 'auto': unknown extension "
                                 f"{ext!r} (known: {sorted(BY_EXTENSION)})")
  return BY_EXTENSION[ext]


def montage(spec: Mapping[str, Any]) -> Montage:
  """The spec's montage, every channel optional (a recording may lack some).

  Raises:
    ValueError / TypeError: a malformed entry or an unknown modality.
  """
  if not isinstance(spec["montage"], Mapping) or not spec["montage"]:
    raise ValueError("must be a non-empty object {modality: [channel, ...]}")
  specs = []
  for modality, entries in spec["montage"].items():
    if isinstance(entries, str) or not isinstance(entries, list) or not entries:
      raise ValueError(f"{modality!r}: give a non-empty list of channels")
    for e in entries:
      if isinstance(e, str):
        name, aliases = e, ()
      elif isinstance(e, list) and e and all(isinstance(x, str) for x in e):
        name, aliases = e[0], tuple(e[1:])
      elif isinstance(e, Mapping) and isinstance(e.get("name"), str):
        name, aliases = e["name"], tuple(e.get("aliases", ()))
      else:
        raise ValueError(f"{modality!r}: channel {e!r} is not a label, a list of labels or "
                         "{\"name\", \"aliases\"}")
      specs.append(ChannelSpec(name, modality, aliases, required=False))
  return Montage(specs)


def load(path: str | os.PathLike) -> dict[str, Any]:
  """Reads and validates a spec file.

  Raises:
    RecordingError: the file is missing, not JSON, or not a valid spec (one line).
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      raw = json.load(f)
  except FileNotFoundError:
    raise errors.RecordingError(path, "dataset spec file does not exist") from None
  except (OSError, ValueError) as e:
    raise errors.RecordingError(path, f"dataset spec is not valid JSON: {e}") from None
  return validate(raw, path)
