"""Staging a new recording with a saved sleepjax stager: `sleepjax.stage(recording, model)`.

  import sleepjax
  hyp = sleepjax.stage("night.edf", "/tmp/sleepmg_tiny")   # a workdir, its model/, or a model folder
  hyp.probabilities            # (N, 5) float32, rows sum to 1: W, N1, N2, N3, REM
  hyp.sleep_statistics()       # TIB, TST, SE, WASO, SOL, ... (sleepjax.hypnogram)

What a stager needs to prepare a recording is in its saved metadata (`sleepjax.models.save`,
docs/staging.md), the "input" block: the montage (per modality, the model's channels in input
order with the file labels they accept), the sampling rate, the epoch length, the units and the
preprocessing flags of `sleepjax.data.recording.epoch_recording` (low-pass at Nyquist, per-night
z-score). `stage` applies exactly that pipeline, through the same functions the dataset builders
use (EDF validation, the alias table `sleepjax.data.channels.channel_modality`, unit conversion,
resampling with scipy's resample_poly, z-score):

1. Channels: each model channel is looked up by its name and aliases; a model channel still
   unfilled takes an unused file channel of the same modality (typed by the alias table): the
   nearest by active-electrode position when both are electrodes or derivations, else in file order.
   `montage=` overrides the assignment.
2. Channels and modalities the recording lacks are masked (a SleepMG model has no mask input: its
   missing channels are zero signals), with one warning naming them. When nothing usable is left
   a `RecordingError` names the file, what the model needs and the channels found.
3. Every complete 30-s epoch from the recording's start is staged; an epoch with non-finite
   samples gets UNSCORED and NaN probabilities.

Which saved models are stagers: `STAGERS` maps a saved model's `metadata["task"]` to the class
that applies it: the SleepMG trainer's models ("sleepmg": per-epoch FeatureNets, `SleepMGStager`)
and the staging trainer's ("staging": `SequenceStager` over windows of epochs,
`SequenceStagerRunner`). Both have `from_saved` and `predict_proba` over a whole night's epochs,
and the same "input" block.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sleepjax.data import stages as stages_lib
from sleepjax.data.errors import EDFHeaderError
from sleepjax.data.errors import MissingChannelError
from sleepjax.data.errors import RecordingError
from sleepjax.hypnogram import EPOCH_S
from sleepjax.hypnogram import Hypnogram


class StagingWarning(UserWarning):
  """A recording lacks channels or modalities of the model (they are masked)."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """How a stager's input is prepared (the "input" block of its saved metadata).

  Attributes:
    montage: {modality: ((channel name, (file label aliases...)), ...)}, in the model's input order.
    sfreq: Hz of the model's input.
    epoch_s: seconds per epoch (30).
    units: "uV" (microvolts before any z-score).
    lowpass_at_nyquist: 4th-order zero-phase Butterworth at sfreq / 2 before downsampling.
    zscore: per-night z-score of each channel.
  """
  montage: dict[str, tuple[tuple[str, tuple[str, ...]], ...]]
  sfreq: float = 100.0
  epoch_s: float = EPOCH_S
  units: str = "uV"
  lowpass_at_nyquist: bool = False
  zscore: bool = False

  @classmethod
  def from_metadata(cls, block: Mapping[str, Any], where: str) -> "InputSpec":
    """Parses an "input" block (`sleepjax.train.sleepmg.preprocessing_metadata`).

    Raises:
      ValueError: no montage, or an epoch length other than 30 s (naming `where`).
    """
    montage = block.get("montage")
    if not montage:
      raise ValueError(f"{where}: the saved model's input block has no montage")
    spec = {m: tuple((c["name"], tuple(c.get("aliases", ()))) for c in chans) for m, chans in montage.items()}
    epoch_s = float(block.get("epoch_s", EPOCH_S))
    if epoch_s != EPOCH_S:
      raise ValueError(f"{where}: epochs of {epoch_s} s; sleepjax.stage scores 30-s epochs")
    if block.get("units", "uV") != "uV":
      raise ValueError(f"{where}: input units {block.get('units')!r}; expected 'uV'")
    return cls(spec, sfreq=float(block.get("sfreq", 100.0)), epoch_s=epoch_s, units="uV",
               lowpass_at_nyquist=bool(block.get("lowpass_at_nyquist", False)), zscore=bool(block.get("zscore", False)))

  def channel_names(self) -> dict[str, list[str]]:
    """{modality: [model channel names]}."""
    return {m: [n for n, _ in chans] for m, chans in self.montage.items()}


# ----------------------------------------------------------------------------------------------
# Stagers.
# ----------------------------------------------------------------------------------------------


def _sleepmg_proba(model, batch):
  import jax  # pylint: disable=g-import-not-at-top
  return jax.nn.softmax(model(batch["signals"])["logits_y"].astype("float32"), axis=-1)


class SleepMGStager:
  """A SleepMG-trainer model (`sleepjax.train.sleepmg`) as a stager: one 30-s epoch at a time.

  Input: {modality: (N, C_m, 3000) float32 uV at 100 Hz}; per modality FeatureNets (or one
  group of all channels for the FeatureNet baseline), G_y -> 5 logits, softmax.
  """

  task = "sleepmg"

  def __init__(self, model, input_spec: InputSpec, *, grouping: str, name: str, batch_size: int = 256):
    self.model = model
    self.input = input_spec
    self.grouping = grouping
    self.name = name
    self.batch_size = int(batch_size)
    self._apply = None

  @classmethod
  def from_saved(cls, model, info: Mapping[str, Any]) -> "SleepMGStager":
    """From `sleepjax.models.load` and `load_info` of a model the SleepMG trainer saved.

    Models saved before the trainer recorded its "input" block are staged with the dataset facts
    the SleepMG trainer always had (100 Hz, microvolts, no z-score, no extra low-pass, channels
    of `metadata["data"]["channels"]` filled by type), with a warning.
    """
    meta = info.get("metadata") or {}
    where = info.get("path", "model")
    if meta.get("input"):
      spec = InputSpec.from_metadata(meta["input"], where)
    else:
      data = meta.get("data") or {}
      channels = data.get("channels")
      if not channels:
        raise ValueError(f"{where}: a SleepMG model without its input channels in metadata; retrain it with "
                         "this version of sleepjax")
      warnings.warn(f"{where}: saved without its preprocessing; assuming {data.get('sfreq', 100.0)} Hz "
                    "microvolts, no z-score, channels filled by type", StagingWarning, stacklevel=3)
      spec = InputSpec({m: tuple((f"{m}{i}", ()) for i in range(int(c))) for m, c in channels.items()},
                       sfreq=float(data.get("sfreq", 100.0)))
    return cls(model, spec, grouping=meta.get("grouping", "per_modality"), name=str(where))

  @classmethod
  def from_module(cls, model, *, name: str = "SleepMGModel") -> "SleepMGStager":
    """From an in-memory `SleepMGModel` whose groups are modalities (100 Hz uV, channels by type).

    Raises:
      ValueError: the model groups all channels in one group (use the saved model, whose
        metadata says which modalities make the group).
    """
    channels = model.get_config()["channels"]
    unknown = [g for g in channels if g not in ("eeg", "eog", "emg", "ecg", "resp")]
    if unknown:
      raise ValueError(f"{name}: groups {unknown} are not modalities; stage the saved model (a path) instead")
    spec = InputSpec({m: tuple((f"{m}{i}", ()) for i in range(int(c))) for m, c in channels.items()})
    return cls(model, spec, grouping="per_modality", name=name)

  def predict_proba(self, signals: Mapping[str, np.ndarray], mask: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, 5) float32 stage probabilities of N epochs.

    Args:
      signals: {modality: (N, C_m, T) float32}, every modality of `self.input.montage`; masked
        channels are zeros.
      mask: {modality: (C_m,) bool} True = real channel (a SleepMG model reads zeros instead).
    """
    del mask  # FeatureNet has no mask input; masked channels are already zeros.
    from sleepjax.evaluation import inference  # pylint: disable=g-import-not-at-top  # Lazy: JAX.
    if self._apply is None:
      self._apply = inference.Apply(_sleepmg_proba, self.model)
    modalities = list(self.input.montage)
    n = next(iter(signals.values())).shape[0]
    if self.grouping == "per_modality":
      grouped = {m: signals[m] for m in modalities}
    else:
      grouped = {"all": np.concatenate([signals[m] for m in modalities], axis=1)}
    out = np.zeros((n, stages_lib.NUM_STAGES), np.float32)
    b = min(self.batch_size, max(n, 1))
    for i in range(0, n, b):
      chunk = {g: x[i:i + b] for g, x in grouped.items()}
      k = next(iter(chunk.values())).shape[0]
      if k < b:  # Pad the last batch: one compiled shape per night.
        chunk = {g: np.concatenate([x, np.zeros((b - k,) + x.shape[1:], x.dtype)]) for g, x in chunk.items()}
      out[i:i + k] = np.asarray(self._apply({"signals": chunk}))[:k]
    return out


def _sequence_proba(model, batch):
  import jax  # pylint: disable=g-import-not-at-top
  out = model(batch["signals"], batch["mask"], batch["epoch_mask"], train=False)["logits"]
  return jax.nn.softmax(out.astype("float32"), axis=-1)


class SequenceStagerRunner:
  """A staging-trainer model (`sleepjax.train.staging`, a `SequenceStager`) applied to a whole night.

  The night's epochs are cut into consecutive windows of the model's `window_epochs` (its training
  length), the last one padded and masked; each epoch is staged once, in its window.
  Input: {modality: (N, C_m, T) float32} and {modality: (C_m,) bool} channel masks.
  """

  task = "staging"

  def __init__(self, model, input_spec: InputSpec, *, window_epochs: int, name: str, batch_size: int = 256):
    self.model = model
    self.input = input_spec
    self.window_epochs = int(window_epochs)
    self.name = name
    self.batch_size = int(batch_size)
    self._apply = None

  @classmethod
  def from_saved(cls, model, info: Mapping[str, Any]) -> "SequenceStagerRunner":
    """From `sleepjax.models.load` and `load_info` of a model the staging trainer saved.

    Raises:
      ValueError: the metadata has no "input" block.
    """
    meta = info.get("metadata") or {}
    where = info.get("path", "model")
    if not meta.get("input"):
      raise ValueError(f"{where}: a staging model without its input block in metadata")
    return cls(model, InputSpec.from_metadata(meta["input"], where), window_epochs=int(meta.get("window_epochs", 20)),
               name=str(where))

  def _batches(self, signals, mask):
    """Yields (first epoch, epochs, batch) of windows, `batch_size` epochs' worth at a time."""
    modalities = list(self.input.montage)
    n = next(iter(signals.values())).shape[0]
    w = self.window_epochs
    starts = list(range(0, n, w))
    per_batch = max(1, self.batch_size // w)
    per_batch = min(per_batch, len(starts))
    for a in range(0, len(starts), per_batch):
      chunk = starts[a:a + per_batch]
      sig = {m: np.zeros((per_batch, w) + signals[m].shape[1:], np.float32) for m in modalities}
      epoch_mask = np.zeros((per_batch, w), bool)
      for i, s in enumerate(chunk):
        k = min(w, n - s)
        for m in modalities:
          sig[m][i, :k] = signals[m][s:s + k]
        epoch_mask[i, :k] = True
      masks = {m: np.broadcast_to(np.asarray(mask[m], bool), (per_batch, len(mask[m]))).copy() for m in modalities}
      yield chunk, {"signals": sig, "mask": masks, "epoch_mask": epoch_mask}

  def predict_proba(self, signals: Mapping[str, np.ndarray], mask: Mapping[str, np.ndarray]) -> np.ndarray:
    """(N, 5) float32 stage probabilities of a night's N consecutive epochs.

    Args:
      signals: {modality: (N, C_m, T) float32}, every modality of `self.input.montage`.
      mask: {modality: (C_m,) bool} True = real channel.
    """
    from sleepjax.evaluation import inference  # pylint: disable=g-import-not-at-top
    if self._apply is None:
      self._apply = inference.Apply(_sequence_proba, self.model)
    n = next(iter(signals.values())).shape[0]
    out = np.zeros((n, stages_lib.NUM_STAGES), np.float32)
    for chunk, batch in self._batches(signals, mask):
      proba = np.asarray(self._apply(batch))
      for i, s in enumerate(chunk):
        k = min(self.window_epochs, n - s)
        out[s:s + k] = proba[i, :k]
    return out

  def embed(self, signals: Mapping[str, np.ndarray], mask: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-epoch embeddings of the sequence model (the head's input): {"epoch_embedding": (N, D')}."""
    from sleepjax.evaluation import inference  # pylint: disable=g-import-not-at-top
    apply = inference.Apply(_sequence_embedding, self.model)
    n = next(iter(signals.values())).shape[0]
    out = None
    for chunk, batch in self._batches(signals, mask):
      e = np.asarray(apply(batch))
      if out is None:
        out = np.zeros((n, e.shape[-1]), np.float32)
      for i, s in enumerate(chunk):
        k = min(self.window_epochs, n - s)
        out[s:s + k] = e[i, :k]
    return {"epoch_embedding": out}


def _sequence_embedding(model, batch):
  return model(batch["signals"], batch["mask"], batch["epoch_mask"], train=False)["epoch_embedding"]


STAGERS = {"sleepmg": SleepMGStager, "staging": SequenceStagerRunner}


def load_stager(path: str | os.PathLike, name: str | None = None, *, batch_size: int = 256):
  """Loads a saved stager (a workdir, its `model/`, or a model folder; `sleepjax.models.load`).

  Args:
    path: see `sleepjax.models.saving.resolve`.
    name: a model of the workdir's index (default: the index's default model).
    batch_size: epochs per forward pass.

  Returns:
    A stager (`SleepMGStager`, `SequenceStagerRunner`: the `STAGERS` class of the model's task).

  Raises:
    FileNotFoundError: nothing saved at `path`.
    ValueError: the saved model is not a stager (its task is not in `STAGERS`), or its labels
      are not the 5 AASM stages.
  """
  from sleepjax import models as models_lib  # pylint: disable=g-import-not-at-top  # Lazy: JAX, orbax.
  info = models_lib.load_info(path, name)
  task = (info.get("metadata") or {}).get("task")
  if task not in STAGERS:
    raise ValueError(f"{info['path']}: a {info['architecture']} saved by task {task!r} is not a stager; "
                     f"stagers are the models of tasks {sorted(STAGERS)}")
  labels = info.get("label_names")
  if labels is not None and tuple(labels) != stages_lib.STAGE_NAMES:
    raise ValueError(f"{info['path']}: labels {labels}; sleepjax.stage needs {list(stages_lib.STAGE_NAMES)}")
  stager = STAGERS[task].from_saved(models_lib.load(info["path"]), info)
  stager.batch_size = int(batch_size)
  return stager


def _as_stager(model, name, batch_size):
  if isinstance(model, (str, os.PathLike)):
    return load_stager(model, name, batch_size=batch_size)
  if hasattr(model, "predict_proba") and hasattr(model, "input"):
    return model
  if type(model).__name__ == "SleepMGModel":
    stager = SleepMGStager.from_module(model)
    stager.batch_size = int(batch_size)
    return stager
  raise TypeError(f"model must be a path, a stager (load_stager) or a SleepMGModel, got {type(model).__name__}")


# ----------------------------------------------------------------------------------------------
# Recordings.
# ----------------------------------------------------------------------------------------------


def _open(recording):
  """(raw or None, header or None, path or None, labels) of an EDF path or an mne.io.BaseRaw."""
  from sleepjax.data import edf as edf_lib  # pylint: disable=g-import-not-at-top
  if isinstance(recording, (str, os.PathLike)):
    path = os.fspath(recording)
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path}: no such file")
    header = edf_lib.validate_edf(path)
    if header.is_discontinuous:
      raise EDFHeaderError(path, "discontinuous EDF+D or BDF+D recording: 30-s epochs cannot be placed on its timeline")
    return None, header, path, [header.labels[i] for i in header.signal_indices]
  import mne  # pylint: disable=g-import-not-at-top
  if isinstance(recording, mne.io.BaseRaw):
    files = [os.fspath(f) for f in (getattr(recording, "filenames", None) or ()) if f]
    return recording, None, (files[0] if files else None), list(recording.ch_names)
  raise TypeError(f"recording must be an EDF path or an mne.io.Raw, got {type(recording).__name__}")


def assign_channels(spec: InputSpec, labels: Sequence[str], montage=None, path=None) -> dict[str, str]:
  """{model channel name: file label} for the model channels the recording has.

  Args:
    spec: the stager's input.
    labels: the recording's channel labels (EDF annotation signals excluded).
    montage: None (automatic: name and aliases first, then the unused file channels of the same
      modality by `sleepjax.data.channels.channel_modality`, electrodes to the nearest model
      electrode by active-electrode position, the others in file order), a mapping {model channel name:
      file label}, or a `sleepjax.data.Montage` whose channel names are model channel names and
      whose aliases are file labels. With a montage only its channels are used.
    path: the recording, named in errors.

  Raises:
    ValueError: a montage names a channel the model does not have.
    MissingChannelError: a montage names a file label the recording does not have.
  """
  from sleepjax.data.channels import ChannelSpec  # pylint: disable=g-import-not-at-top
  from sleepjax.data.channels import Montage  # pylint: disable=g-import-not-at-top
  from sleepjax.data.channels import channel_modality  # pylint: disable=g-import-not-at-top
  from sleepjax.data.channels import electrode_position  # pylint: disable=g-import-not-at-top
  modality_of = {n: m for m, chans in spec.montage.items() for n, _ in chans}
  if montage is not None:
    if isinstance(montage, Montage):
      specs = list(montage)
    else:
      specs = [ChannelSpec(n, modality_of.get(n, "eeg"), (lab,)) for n, lab in dict(montage).items()]
    unknown = [s.name for s in specs if s.name not in modality_of]
    if unknown:
      raise ValueError(f"montage names channels {unknown} the model does not have; its channels: "
                       f"{spec.channel_names()}")
    # Every channel named by the user is required: a mistyped label is an error, not a fallback.
    return Montage([ChannelSpec(s.name, modality_of[s.name], s.aliases, required=True) for s in specs]).resolve(
        labels, path)
  auto = Montage([ChannelSpec(n, m, a, required=False) for m, chans in spec.montage.items() for n, a in chans])
  out = auto.resolve(labels, path)
  used = set(out.values())
  for m, chans in spec.montage.items():
    free = [lab for lab in labels if lab not in used and channel_modality(lab) == m]
    open_slots = [n for n, _ in chans if n not in out]
    # Electrode channels go to the model channel nearest by ACTIVE electrode first (positions on
    # the unit sphere, docs/specification.md §2.3.1; "C3-A1" counts as C3: references differ
    # between labs), greedily by distance.
    pos = {x: electrode_position(re.split(r"[-_]", x.strip())[0]) for x in open_slots + free}
    pairs = sorted((float(np.linalg.norm(pos[n] - pos[lab])), i, j, n, lab)
                   for i, n in enumerate(open_slots) for j, lab in enumerate(free)
                   if np.isfinite(pos[n]).all() and np.isfinite(pos[lab]).all())
    for _, _, _, n, lab in pairs:
      if n not in out and lab not in used:
        out[n] = lab
        used.add(lab)
    free = [lab for lab in free if lab not in used]
    for n in open_slots:  # The rest in file order.
      if n not in out and free:
        out[n] = free.pop(0)
        used.add(out[n])
  order = [n for chans in spec.montage.values() for n, _ in chans]
  return {n: out[n] for n in order if n in out}


@dataclasses.dataclass
class PreparedRecording:
  """A recording prepared for a model's input (`prepare`).

  Attributes:
    signals: {modality: (n, C_m, T) float32} of the n epochs with finite samples, every modality
      of the spec (zeros where masked).
    mask: {modality: (C_m,) bool} True = a real channel.
    epoch_index: (n,) int32 positions of those epochs among the `n_epochs` of the recording.
    n_epochs: floor(duration / 30 s).
    channels: {model channel: file label} of the channels used.
    labels: the recording's channel labels.
    start: the recording's start datetime (or None).
    record_id: the file's stem ("recording" for an unnamed raw).
    path: the file (or None).
  """
  signals: dict[str, np.ndarray]
  mask: dict[str, np.ndarray]
  epoch_index: np.ndarray
  n_epochs: int
  channels: dict[str, str]
  labels: list[str]
  start: Any
  record_id: str
  path: str | None


def prepare(recording, spec: InputSpec, *, montage=None, stacklevel: int = 2) -> PreparedRecording:
  """Reads a recording into a model's input (`stage` and `sleepjax.embedding.embed` share it).

  Args:
    recording: an EDF/EDF+ path or an `mne.io.Raw`.
    spec: the model's input.
    montage: see `assign_channels`.
    stacklevel: of the warning.

  Warns:
    StagingWarning: model channels or modalities the recording lacks (masked).

  Raises:
    RecordingError (and subclasses): unreadable, shorter than one epoch, or no usable channel.
  """
  raw, header, path, labels = _open(recording)
  where = path or "recording"
  chosen = assign_channels(spec, labels, montage, path)
  if not chosen:
    raise RecordingError(where, f"no channel this model can use: it needs {spec.channel_names()}; "
                         f"the recording has {labels}")
  from sleepjax.data import edf as edf_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.data import hypnogram as data_hypnogram  # pylint: disable=g-import-not-at-top
  from sleepjax.data import recording as recording_lib  # pylint: disable=g-import-not-at-top
  from sleepjax.data.channels import ChannelSpec  # pylint: disable=g-import-not-at-top
  from sleepjax.data.channels import Montage  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if raw is None:
    raw = edf_lib.read_raw_edf(path, preload=True, include=sorted(set(chosen.values())))
    kwargs["physical_dims"] = dict(zip(header.labels, header.physical_dims))
  fs = float(raw.info["sfreq"])
  n_epochs = int(np.floor(raw.n_times / fs / EPOCH_S + 1e-9))
  if n_epochs < 1:
    raise RecordingError(where, f"{raw.n_times / fs:.1f} s of signal: shorter than one 30-s epoch")
  modality_of = {n: m for m, chans in spec.montage.items() for n, _ in chans}
  specs = Montage([ChannelSpec(n, modality_of[n], (lab,), required=False) for n, lab in chosen.items()])
  grid = data_hypnogram.Hypnogram(np.full((n_epochs,), stages_lib.UNSCORED, np.int32), onset_s=0.0)
  record_id = pathlib.Path(path).stem if path else "recording"
  rec = recording_lib.epoch_recording(
      raw, grid, specs, record_id=record_id, subject_id=record_id, source_path=path, sfreq=spec.sfreq,
      lowpass_at_nyquist=spec.lowpass_at_nyquist, zscore=spec.zscore, trim_wake_min=None, keep_unscored=True,
      max_mismatch_s=None, flat_check_modalities=(), **kwargs)
  present = {n for names in rec.channel_names.values() for n in names}
  if not present:
    raise RecordingError(where, f"no usable channel: {sorted(chosen.values())} are entirely NaN or flat; "
                         f"the model needs {spec.channel_names()}")
  n_t = round(EPOCH_S * spec.sfreq)
  signals, mask, missing = {}, {}, []
  for m, chans in spec.montage.items():
    x = np.zeros((rec.n_epochs, len(chans), n_t), np.float32)
    mk = np.zeros((len(chans),), bool)
    got = list(rec.channel_names.get(m, ()))
    for c, (n, _) in enumerate(chans):
      if n in got:
        x[:, c] = rec.signals[m][:, got.index(n)]
        mk[c] = True
      else:
        missing.append(f"{m} {n!r}")
    signals[m], mask[m] = x, mk
  if missing:
    absent_modalities = [m for m in spec.montage if not mask[m].any()]
    text = f"modalities {absent_modalities} absent; " if absent_modalities else ""
    warnings.warn(f"{where}: {text}model channels {', '.join(missing)} not in the recording (found {labels}); "
                  "masked", StagingWarning, stacklevel=stacklevel + 1)
  start = header.start if header is not None else _meas_date(raw)
  return PreparedRecording(signals, mask, np.asarray(rec.epoch_index, np.int32), n_epochs,
                           {n: chosen[n] for n in chosen if n in present}, labels, start, record_id, path)


def stage(recording, model, *, montage=None, name: str | None = None, batch_size: int = 256) -> Hypnogram:
  """Stages every 30-s epoch of a recording with a saved sleepjax stager.

  Args:
    recording: an EDF/EDF+ path, or an `mne.io.Raw` (an EDF raw's units come from its file's
      header; other raws follow MNE's convention, volts).
    model: a trainer's workdir, its `model/` folder, a model folder (`sleepjax.models.save`), a
      stager from `load_stager`, or an in-memory `SleepMGModel` (100 Hz, channels by type).
    montage: None (channels by name, aliases, then type), {model channel name: file label}, or a
      `sleepjax.data.Montage` (see `assign_channels`).
    name: which model of a workdir (default: its index's default).
    batch_size: epochs per forward pass.

  Returns:
    A `sleepjax.hypnogram.Hypnogram` of the floor(duration / 30 s) epochs from the recording's
    start: stages (N,) int32 (argmax; UNSCORED where an epoch has non-finite samples),
    probabilities (N, 5) float32 rows summing to 1 (NaN rows where unscored), confidence, onsets
    (N,) seconds, start (the recording's start datetime), record_id (the file's stem), scorer
    (the model's path), channels ({model channel: file label}).

  Warns:
    StagingWarning: channels or modalities of the model absent from the recording (masked).

  Raises:
    FileNotFoundError: `recording` or `model` does not exist.
    RecordingError (and subclasses, e.g. EDFHeaderError, MissingChannelError, UnitError): the
      recording is unreadable, shorter than one epoch, or has no channel the model can use; the
      message names the file.
    ValueError: `model` is not a stager.
  """
  stager = _as_stager(model, name, batch_size)
  prep = prepare(recording, stager.input, montage=montage, stacklevel=2)
  proba = np.full((prep.n_epochs, stages_lib.NUM_STAGES), np.nan, np.float32)
  if prep.epoch_index.size:
    proba[prep.epoch_index] = stager.predict_proba(prep.signals, prep.mask)
  ok = np.isfinite(proba).all(axis=1)
  stages = np.full((prep.n_epochs,), stages_lib.UNSCORED, np.int32)
  stages[ok] = proba[ok].argmax(axis=1)
  return Hypnogram(stages=stages, onset_s=0.0, probabilities=proba, start=prep.start, record_id=prep.record_id,
                   scorer=getattr(stager, "name", None), channels=prep.channels)


def _meas_date(raw):
  date = raw.info.get("meas_date")
  return None if date is None else date.replace(tzinfo=None)


__all__ = ["InputSpec", "MissingChannelError", "PreparedRecording", "SequenceStagerRunner", "SleepMGStager", "STAGERS", "StagingWarning", "assign_channels",
           "load_stager", "prepare", "stage"]
