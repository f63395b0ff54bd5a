"""Channel typing, electrode aliases and positions, and montages (which file channel is which).

Electrode positions follow docs/specification.md §2.3.1 (the transfer paper's channel positional encoding):
x left(-)/right(+), y posterior(-)/anterior(+), z inferior(-)/superior(+), on the unit sphere,
taken from MNE's 10-05 template ("standard_1005"; MNE 1.13 renamed it "colin27_1005", same
coordinates). The template's origin is not the head's centre (it is an MRI frame), so we fit a
sphere to all 343 template positions by linear least squares, subtract its centre and
normalise every position to unit length: Cz then has z ~ 0.998, Fpz y ~ 1.0, T7 x ~ -1.0.

A bipolar derivation "A-B" (or "A_B") gets the midpoint of A and B, NOT renormalised to the
sphere (docs/specification.md §2.3.1: the midpoint, not projected back to the sphere): its norm is < 1 and shrinks with the distance
between A and B, which keeps that distance visible to the encoder.
"""

from __future__ import annotations

import dataclasses
import functools
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

# Whole labels (casefolded, spaces/underscores normalised to "-") -> modality. None means
# "known, but not one of the five modalities" (temperature, markers, SaO2, position, ...).
_LABEL_MODALITY = {
    # ISRUC-Sleep: X1 is the chin EMG, X2 the ECG (ISRUC documentation); X3 leg EMG.
    "x1": "emg", "x2": "ecg", "x3": "emg",
    "loc-a2": "eog", "roc-a1": "eog", "loc": "eog", "roc": "eog",
    "e1": "eog", "e2": "eog", "e1-m2": "eog", "e2-m1": "eog", "e2-m2": "eog", "e1-m1": "eog",
    "heog": "eog", "veog": "eog",
    "chin": "emg", "chin1-chin2": "emg", "chin-emg": "emg", "submental": "emg",
    "emg1": "emg", "emg2": "emg", "emg3": "emg", "lleg": "emg", "rleg": "emg",
    "ecg": "ecg", "ekg": "ecg", "ecg1": "ecg", "ecg2": "ecg", "ecg-ii": "ecg", "ekg1": "ecg",
    "thor": "resp", "abdo": "resp", "abdomen": "resp", "thorax": "resp", "airflow": "resp",
    "flow": "resp", "nasal-pressure": "resp", "pflow": "resp", "thermistor": "resp",
    # DREAMS excerpt3 (Devuyst et al.): NAF1 nasal airflow, VTH/VAB thoracic/abdominal bands.
    "naf1": "resp", "naf": "resp", "vth": "resp", "vab": "resp",
    # SHHS / MESA (NSRR) spellings.
    "thor-res": "resp", "abdo-res": "resp", "new-air": "resp", "pres": "resp",
    "therm": "resp", "leg": "emg", "h.r.": None, "hr": None, "ox-stat": None,
    "pleth": None,
    "eog1-a1": "eog", "eog2-a1": "eog",
    # Known non-modalities (returned as None on purpose).
    "sao2": None, "spo2": None, "pr": None, "pulse": None, "pos": None, "position": None,
    "phono": None, "snore": None, "light": None, "hypnogram": None, "hypnogram-aut": None,
    "event-pneumo": None, "event-pneumo-aut": None, "event-neuro": None,
    "event-marker": None, "marker": None, "temp-rectal": None, "temp": None,
    "edf-annotations": None,
}

_EEG_TOKEN = re.compile(r"^[a-z]+[0-9z]+[h]?$")


def _norm_label(label: str) -> str:
  return re.sub(r"[\s_]+", "-", label.strip().casefold())


def channel_modality(label: str) -> str | None:
  """Types a channel from its file label: "eeg", "eog", "emg", "ecg", "resp" or None.

  Rules, in order: an explicit prefix ("EEG ", "EOG ", "EMG ", "ECG "/"EKG ", "Resp ");
  the alias table (ISRUC X1=chin EMG, X2=ECG, LOC/ROC and E1/E2 = EOG, DREAMS NAF1/VTH/VAB
  = resp, Thor/Abdo/Airflow = resp, SaO2/markers/temperature = None); a label containing
  "eog", "emg", "ecg"/"ekg", "resp" or "eeg" (SHHS "EEG(sec)", MESA "EEG1"); finally a 10-05 electrode or a bipolar derivation of
  two electrodes (e.g. "Fpz-Cz", "C3_A2", "FP1-A1") = EEG. Anything else is None.

  Args:
    label: the channel label as written in the file (case-insensitive).

  Returns:
    The modality string, or None when the channel is not one of the five modalities or is
    unknown.
  """
  norm = _norm_label(label)
  for prefix, modality in _PREFIXES:
    if norm.startswith(prefix + "-"):
      return modality
  if norm in _LABEL_MODALITY:
    return _LABEL_MODALITY[norm]
  for token, modality in (("eog", "eog"), ("emg", "emg"), ("ecg", "ecg"), ("ekg", "ecg"),
                          ("resp", "resp"), ("eeg", "eeg")):
    if token in norm:
      return modality
  parts = _split_derivation(label)
  if parts and all(_lookup_electrode(p) is not None for p in parts):
    return "eeg"
  return None


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
  """"EEG Fpz-Cz" -> ["Fpz", "Cz"]; "C3_A2" -> ["C3", "A2"]; "T3-REF" -> ["T3"]."""
  s = label.strip()
  s = re.sub(r"^eeg\s+", "", s, flags=re.IGNORECASE)
  s = re.sub(r"-(ref|le|ar|avg|cle|ler)$", "", s, flags=re.IGNORECASE)
  parts = [p for p in re.split(r"[-_]", s) if p]
  return parts if 1 <= len(parts) <= 2 else []


def electrode_position(label: str) -> np.ndarray:
  """(x, y, z) of an electrode or bipolar derivation on the unit sphere (docs/specification.md §2.3.1).

  Args:
    label: an electrode ("C3", "T3", "EEG Cz-REF") or a bipolar derivation "A-B"/"A_B"
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
    stripping), then case-insensitively with spaces/underscores treated as "-".
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
