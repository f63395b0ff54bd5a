"""Channel typing, electrode aliases and positions, and montages (which file channel is which).

Channel typing (`channel_modality`) reads the alias table shipped as channel_aliases.json,
which a user file extends (`load_alias_table`); docs/channels.md describes the rules.

Electrode positions follow docs/specification.md §2.3.1 (the transfer paper's channel positional encoding):
x left(-)/right(+), y posterior(-)/anterior(+), z inferior(-)/superior(+), on the unit sphere,
taken from MNE's 10-05 template ("standard_1005"; MNE 1.13 renamed it "colin27_1005", same
coordinates). The template's origin is not the head's centre (it is an MRI frame), so we fit a
sphere to all 343 template positions by linear least squares, subtract its centre and
normalise every position to unit length: Cz then has z ~ 0.998, Fpz y ~ 1.0, T7 x ~ -1.0.

A bipolar derivation "A-B" (or "A_B", "A:B") gets the midpoint of A and B, NOT renormalised to the
sphere (docs/specification.md §2.3.1: the midpoint, not projected back to the sphere): its norm is < 1 and shrinks with the distance
between A and B, which keeps that distance visible to the encoder.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from sleepjax.data.errors import MissingChannelError

MODALITIES = ("eeg", "eog", "emg", "ecg", "resp")

# Old 10-20 names -> 10-10 names (Nomenclature of the American Clinical Neurophysiology
# Society, 2006). A1/A2 -> M1/M2: the AASM manual renamed the ear/mastoid references M1/M2
# and sleep montages "C3-A2" use the mastoid; the position is MNE's mastoid M1/M2.
_ELECTRODE_ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8", "A1": "M1", "A2": "M2"}

# Prefixes that state the modality (Sleep-EDF "EEG Fpz-Cz", EDF+ convention "EEG C3-M2").
_PREFIXES = (("eeg", "eeg"), ("eog", "eog"), ("emg", "emg"), ("ecg", "ecg"), ("ekg", "ecg"),
             ("resp", "resp"))

# The alias table (label -> modality, or None for a known non-PSG channel) ships as JSON next
# to this module; docs/channels.md describes its format and how a user file extends it.
_ALIAS_FILE = "channel_aliases.json"
ALIASES_ENV = "SLEEPJAX_CHANNEL_ALIASES"

_TOKENS = (("eog", "eog"), ("emg", "emg"), ("ecg", "ecg"), ("ekg", "ecg"), ("resp", "resp"),
           ("eeg", "eeg"))

_SEPARATORS = re.compile(r"[\s_:/\-]+")


class AliasTableError(ValueError):
  """A channel alias file is missing, is not JSON, or maps a label to an unknown modality.

  Not a `RecordingError`: a bad alias file stops a build, it is not one bad recording.
  """

  def __init__(self, path, problem: str):
    self.path = None if path is None else os.fspath(path)
    self.problem = problem
    super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


def normalize_label(label: str) -> str:
  """The form in which channel labels are compared: "C4:M1", "c4 - m1", "C4_M1" -> "c4-m1".

  Casefolds, and replaces every run of separators (whitespace, "_", ":", "/", "-") by one "-",
  dropping them at both ends. Other characters are kept ("EEG(sec)" -> "eeg(sec)", "H.R." ->
  "h.r."). Used for the alias table and for montage resolution (`Montage.resolve`).

  Args:
    label: a channel label as written in a file or an alias file.

  Returns:
    The normalised label (str).
  """
  return _SEPARATORS.sub("-", label.strip().casefold()).strip("-")


# Kept for callers inside the package (sleepjax.data.recording).
_norm_label = normalize_label


def _check_modality(value, path, label):
  if value is not None and value not in MODALITIES:
    raise AliasTableError(path, f"label {label!r} maps to {value!r}; expected one of "
                          f"{list(MODALITIES)} or null")


def _flatten(obj, path) -> dict[str, str | None]:
  """{normalised label: modality} from a parsed alias file (flat, or one level of groups)."""
  if not isinstance(obj, dict):
    raise AliasTableError(path, f"expected a JSON object of label -> modality, got "
                          f"{type(obj).__name__}")
  out, origin = {}, {}

  def add(label, value, group):
    if not isinstance(label, str) or not normalize_label(label):
      raise AliasTableError(path, f"empty or non-string label {label!r}")
    _check_modality(value, path, label)
    key = normalize_label(label)
    if key in out and out[key] != value:
      raise AliasTableError(path, f"label {label!r} ({group}) maps to {value!r} but "
                            f"{origin[key]!r} maps it to {out[key]!r}")
    out[key], origin[key] = value, label

  for key, value in obj.items():
    if isinstance(key, str) and key.startswith("_"):
      continue  # A comment.
    if isinstance(value, dict):
      for label, modality in value.items():
        if not (isinstance(label, str) and label.startswith("_")):
          add(label, modality, f"group {key!r}")
    else:
      add(key, value, "top level")
  return out


@functools.lru_cache(maxsize=32)
def _read_alias_file(path: str, mtime_ns: int) -> dict[str, str | None]:
  del mtime_ns  # Only part of the cache key: an edited file is read again.
  try:
    with open(path, encoding="utf-8") as f:
      obj = json.load(f)
  except json.JSONDecodeError as e:
    raise AliasTableError(path, f"not valid JSON: {e}") from None
  except (OSError, UnicodeDecodeError) as e:
    raise AliasTableError(path, f"cannot read the alias file: {e}") from None
  return _flatten(obj, path)


def _alias_file(path) -> dict[str, str | None]:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise AliasTableError(path, "channel alias file does not exist")
  return _read_alias_file(os.path.abspath(path), os.stat(path).st_mtime_ns)


def shipped_alias_path() -> str:
  """Path of the alias table shipped with sleepjax (sleepjax/data/channel_aliases.json)."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), _ALIAS_FILE)


def load_alias_table(user_file: str | os.PathLike | None = None) -> dict[str, str | None]:
  """The channel alias table: the shipped one, extended and overridden by user files.

  Layers, later ones winning for a label: the table shipped with the package
  (`shipped_alias_path()`), the JSON file named by the environment variable
  `SLEEPJAX_CHANNEL_ALIASES` (when set and not empty), then `user_file`. A file is a JSON
  object mapping a label to "eeg", "eog", "emg", "ecg", "resp", or null (a known channel that
  is none of them: SaO2, position, light, markers); a value may instead be an object of such
  pairs (a group, e.g. one cohort's labels); keys starting with "_" are comments.
  docs/channels.md has an example.

  Args:
    user_file: optional path of a user alias file.

  Returns:
    A new dict {normalised label (see `normalize_label`): modality or None}.

  Raises:
    AliasTableError: a named file does not exist, is not valid JSON, or maps a label to
      something else than a modality or null (or one label to two modalities); the message
      names the file.
  """
  table = dict(_alias_file(shipped_alias_path()))
  env = os.environ.get(ALIASES_ENV, "").strip()
  if env:
    table.update(_alias_file(env))
  if user_file is not None:
    table.update(_alias_file(user_file))
  return table


def _as_table(aliases) -> dict[str, str | None]:
  if aliases is None:
    return load_alias_table()
  if isinstance(aliases, (str, os.PathLike)):
    return load_alias_table(aliases)
  table = load_alias_table()
  for label, value in aliases.items():
    _check_modality(value, None, label)
    table[normalize_label(label)] = value
  return table


def _classify(label: str, table: Mapping[str, str | None]) -> tuple[str | None, bool]:
  """(modality, known): known is False when no rule matched (an untyped label)."""
  norm = normalize_label(label)
  if norm in table:
    return table[norm], True
  for prefix, modality in _PREFIXES:
    if norm.startswith(prefix + "-"):
      return modality, True
  for token, modality in _TOKENS:
    if token in norm:
      return modality, True
  parts = _split_derivation(label)
  if parts and all(_lookup_electrode(p) is not None for p in parts):
    return "eeg", True
  return None, False


def channel_modality(label: str, aliases=None) -> str | None:
  """Types a channel from its file label: "eeg", "eog", "emg", "ecg", "resp" or None.

  Rules, in order (docs/channels.md): the alias table (`load_alias_table`: the shipped
  clinical spellings of Sleep-EDF, ISRUC, DREAMS, SHHS, MESA, MrOS, CFS, MASS and clinic
  exports, plus user files), compared after `normalize_label`; an explicit prefix ("EEG ",
  "EOG ", "EMG ", "ECG "/"EKG ", "Resp "); a label containing "eog", "emg", "ecg"/"ekg",
  "resp" or "eeg" (e.g. "EEG(sec)", "EOG-L"); finally a 10-05 electrode or a bipolar
  derivation of two electrodes ("Fpz-Cz", "C3_A2", "FP1-A1") is EEG. Anything else is None.

  Args:
    label: the channel label as written in the file (case and separators do not matter).
    aliases: None for `load_alias_table()`; a path of a user alias file (extends the
      table); or a mapping label -> modality or None that extends and overrides the table.

  Returns:
    The modality string, or None when the channel is not one of the five modalities (a
    table entry of null) or is unknown (see `untyped_labels` to tell the two apart).

  Raises:
    AliasTableError: a bad alias file or mapping value.
  """
  return _classify(label, _as_table(aliases))[0]


def untyped_labels(labels: Iterable[str], aliases=None) -> list[str]:
  """The labels that no rule types and that are not known non-PSG channels, for build reports.

  Args:
    labels: a file's channel labels.
    aliases: as in `channel_modality`.

  Returns:
    Those labels, in input order, each once (e.g. ["Foo bar"]; not "SaO2", which the table
    knows as a non-PSG channel, nor "C4:M1", which it types as EEG).

  Raises:
    AliasTableError: a bad alias file or mapping value.
  """
  table = _as_table(aliases)
  out = []
  for label in labels:
    if label not in out and not _classify(label, table)[1]:
      out.append(label)
  return out


@functools.lru_cache(maxsize=1)
def _template_positions() -> dict[str, np.ndarray]:
  """Unit-sphere positions of the 10-05 template, keyed by MNE's electrode names."""
  import mne  # Heavy; only needed here.

  with warnings.catch_warnings():
    # MNE 1.13 deprecates "standard_1005" in favour of the identical "colin27_1005".
    warnings.simplefilter("ignore", FutureWarning)
    try:
      montage = mne.channels.make_standard_montage("colin27_1005")
    except ValueError:
      montage = mne.channels.make_standard_montage("standard_1005")
  ch_pos = montage.get_positions()["ch_pos"]
  names = list(ch_pos)
  xyz = np.array([ch_pos[n] for n in names], np.float64)  # (343, 3), metres
  # Least-squares sphere: |p|^2 = 2 p.c + (r^2 - |c|^2), linear in (c, r^2 - |c|^2).
  design = np.concatenate([2 * xyz, np.ones((len(xyz), 1))], axis=1)
  sol, *_ = np.linalg.lstsq(design, (xyz**2).sum(1), rcond=None)
  centred = xyz - sol[:3]
  unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
  return {n: unit[i].astype(np.float32) for i, n in enumerate(names)}


@functools.lru_cache(maxsize=1)
def _casefold_index() -> dict[str, str]:
  return {n.casefold(): n for n in _template_positions()}


def canonical_electrode(name: str) -> str:
  """Normalises one electrode name to MNE's 10-05 spelling.

  Strips whitespace, an "EEG " prefix and reference suffixes ("-REF", "-LE", "-AR", "-AVG",
  MASS's "-CLE"/"-LER" linked ears), is case-insensitive,
  and maps old 10-20 names T3=T7, T4=T8, T5=P7, T6=P8 and A1/A2=M1/M2 (docs/specification.md §2.3.1).

  Args:
    name: one electrode (not a derivation), e.g. "EEG T3-REF" or "fp1".

  Returns:
    The canonical name (e.g. "T7", "Fp1"); when the electrode is not in the template the
    cleaned name is returned unchanged in case (callers check with `electrode_position`).
  """
  n = name.strip()
  n = re.sub(r"^eeg\s+", "", n, flags=re.IGNORECASE)
  n = re.sub(r"-(ref|le|ar|avg|cle|ler)$", "", n, flags=re.IGNORECASE).strip()
  up = n.upper()
  if up in _ELECTRODE_ALIASES:
    n = _ELECTRODE_ALIASES[up]
  return _casefold_index().get(n.casefold(), n)


def _lookup_electrode(name: str) -> np.ndarray | None:
  canon = canonical_electrode(name)
  return _template_positions().get(canon)


def _split_derivation(label: str) -> list[str]:
  """"EEG Fpz-Cz" -> ["Fpz", "Cz"]; "C3_A2", "C3:A2" -> ["C3", "A2"]; "T3-REF" -> ["T3"]."""
  s = label.strip()
  s = re.sub(r"^eeg\s+", "", s, flags=re.IGNORECASE)
  s = re.sub(r"-(ref|le|ar|avg|cle|ler)$", "", s, flags=re.IGNORECASE)
  parts = [p for p in re.split(r"[-_:]", s) if p]
  return parts if 1 <= len(parts) <= 2 else []


def electrode_position(label: str) -> np.ndarray:
  """(x, y, z) of an electrode or bipolar derivation on the unit sphere (docs/specification.md §2.3.1).

  Args:
    label: an electrode ("C3", "T3", "EEG Cz-REF") or a bipolar derivation "A-B"/"A_B"/"A:B"
      ("EEG Fpz-Cz", "C3_A2").

  Returns:
    (3,) float32: the electrode's unit vector, the midpoint of A and B for a derivation
    (not renormalised), or all-NaN when any part is not a 10-05 electrode (ECG, EMG, resp,
    "EOG horizontal", LOC/ROC: unknown positions).
  """
  parts = _split_derivation(label)
  positions = [_lookup_electrode(p) for p in parts]
  if not positions or any(p is None for p in positions):
    return np.full((3,), np.nan, np.float32)
  return np.mean(positions, axis=0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class ChannelSpec:
  """One output channel of a montage.

  Attributes:
    name: the output channel name (kept in examples), e.g. "Fpz-Cz".
    modality: "eeg", "eog", "emg", "ecg" or "resp".
    aliases: labels that may stand for this channel in files, e.g. ("EEG Fpz-Cz",).
    required: when True a recording without it raises MissingChannelError; when False the
      channel is simply absent from that recording (the modality's channel list shrinks).
  """

  name: str
  modality: str
  aliases: tuple[str, ...] = ()
  required: bool = True

  def __post_init__(self):
    if self.modality not in MODALITIES:
      raise ValueError(f"ChannelSpec {self.name!r}: modality {self.modality!r} not in "
                       f"{MODALITIES}")
    object.__setattr__(self, "aliases", tuple(self.aliases))

  @property
  def candidates(self) -> tuple[str, ...]:
    """The name, then the aliases: the labels tried in order when resolving."""
    return (self.name,) + self.aliases


class Montage(tuple):
  """An ordered tuple of `ChannelSpec`: which file channels a dataset uses, per modality.

  Output order within a modality is the order of the specs. Create with
  `Montage([ChannelSpec(...), ...])` or `Montage.from_dict({"eeg": ["Fpz-Cz"], ...})`.
  """

  def __new__(cls, specs: Iterable[ChannelSpec] = ()):
    specs = tuple(specs)
    for s in specs:
      if not isinstance(s, ChannelSpec):
        raise TypeError(f"Montage entries must be ChannelSpec, got {type(s).__name__}")
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
      raise ValueError(f"Montage has duplicate channel names: {dup}")
    return super().__new__(cls, specs)

  @classmethod
  def from_dict(cls, channels: Mapping[str, Sequence[ChannelSpec | str]]) -> "Montage":
    """Builds a montage from {modality: [spec or name, ...]} (names become required specs)."""
    specs = []
    for modality, entries in channels.items():
      for e in entries:
        specs.append(e if isinstance(e, ChannelSpec) else ChannelSpec(e, modality))
    return cls(specs)

  @property
  def modalities(self) -> tuple[str, ...]:
    """Modalities in first-appearance order, each once."""
    return tuple(dict.fromkeys(s.modality for s in self))

  def by_modality(self) -> dict[str, tuple[ChannelSpec, ...]]:
    """{modality: specs in montage order}, modalities ordered as `modalities`."""
    return {m: tuple(s for s in self if s.modality == m) for m in self.modalities}

  def resolve(self, labels: Sequence[str], path: str | os.PathLike | None = None
              ) -> dict[str, str]:
    """Maps each spec to the file label that carries it.

    Matching per spec, first hit wins: its name then aliases compared exactly (after
    stripping), then after `normalize_label` (case, spaces, "_", ":", "/" and "-" folded).
    Absent optional channels are left out of the result (documented in ChannelSpec).

    Args:
      labels: the file's channel labels (e.g. `raw.ch_names`).
      path: the recording, named in the error.

    Returns:
      {spec.name: file label} for every spec found, in montage order.

    Raises:
      MissingChannelError: a required channel matches no label (message names the file, the
        channel and its aliases, and lists the available labels).
    """
    labels = list(labels)
    stripped = {lab.strip(): lab for lab in labels}
    normed = {}
    for lab in labels:
      normed.setdefault(_norm_label(lab), lab)
    out, used = {}, set()
    for spec in self:
      hit = None
      for cand in spec.candidates:
        lab = stripped.get(cand.strip())
        if lab is not None and lab not in used:
          hit = lab
          break
      if hit is None:
        for cand in spec.candidates:
          lab = normed.get(_norm_label(cand))
          if lab is not None and lab not in used:
            hit = lab
            break
      if hit is None:
        if spec.required:
          raise MissingChannelError(
              path, f"required {spec.modality} channel {spec.name!r} (aliases "
              f"{list(spec.aliases)}) not found; available labels: {labels}")
        continue
      used.add(hit)
      out[spec.name] = hit
    return out
