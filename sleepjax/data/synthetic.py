"""Synthetic polysomnography: whole nights written as real EDF files (Sleep-EDF layout).

This is the library's embedded default dataset: it needs no download and no data-use
agreement, and it exercises exactly the code path of real recordings, because the
nights are written as EDF (signals) + EDF+ annotations-only (hypnogram) files that the
ordinary reader (`sleepjax.data.edf`, `sleepjax.data.hypnogram`) reads back.

The model is phenomenological, written from the AASM scoring manual's stage
definitions (Berry et al., AASM Manual for the Scoring of Sleep, v2.x) and the
classical descriptions of sleep architecture (Carskadon & Dement, "Normal human sleep:
an overview", Principles and Practice of Sleep Medicine):

* Hypnogram: sleep-onset latency, 4-6 NREM/REM cycles of ~90 min, N3 concentrated in
  the first third of the night, REM episodes lengthening across the night, brief
  awakenings, adult stage proportions.
* EEG (6 mastoid-referenced derivations): 1/f background, posterior alpha in relaxed
  wake (eyes closed), theta and vertex waves in N1, spindles and K-complexes in N2,
  high-amplitude frontal delta in N3, low-voltage mixed frequency with sawtooth waves
  in REM; sources mixed with a covariance that falls with electrode distance.
* EOG: blinks and saccades in wake, slow rolling eye movements in N1, rapid eye
  movements in REM, frontal EEG leakage.
* Chin EMG: broadband tone wake > N1 > N2 > N3 > REM (atonia) with phasic twitches.
* ECG: PQRST beats as sums of Gaussians (McSharry et al. 2003, IEEE TBME 50:289, the
  "ECGSYN" morphology), stage-dependent heart rate, respiratory sinus arrhythmia.
* Respiration (thorax, abdomen belts; airflow): stage-dependent rate and regularity.
* Subject-level variability (the "domains" of SleepMG), movement artefacts and
  electrode pops.

Everything is deterministic from `(seed, subject, night)`: subject k's nights are
identical whatever `n_subjects` is, and the same seed writes byte-identical files.

Example:
  >>> from sleepjax.data import synthetic
  >>> records = synthetic.write_corpus("/tmp/sn", synthetic.SyntheticConfig(n_subjects=2))
  >>> records[0].psg_path.name
  'SN0001E0-PSG.edf'
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
from typing import Mapping, Sequence

import edfio
import numpy as np
import scipy.fft
import scipy.signal

from sleepjax.data import errors
from sleepjax.data.stages import N1, N2, N3, REM, W

EPOCH_S = 30.0

EEG_CHANNELS = ("EEG F3-M2", "EEG F4-M1", "EEG C3-M2", "EEG C4-M1", "EEG O1-M2", "EEG O2-M1")
EOG_CHANNELS = ("EOG E1-M2", "EOG E2-M1")
EMG_CHANNELS = ("EMG Chin",)
ECG_CHANNELS = ("ECG",)
RESP_CHANNELS = ("Resp Thorax", "Resp Abdomen", "Resp Airflow")
ALL_CHANNELS = EEG_CHANNELS + EOG_CHANNELS + EMG_CHANNELS + ECG_CHANNELS + RESP_CHANNELS
MODALITY_OF_CHANNEL = {
    **{c: "eeg" for c in EEG_CHANNELS},
    **{c: "eog" for c in EOG_CHANNELS},
    **{c: "emg" for c in EMG_CHANNELS},
    **{c: "ecg" for c in ECG_CHANNELS},
    **{c: "resp" for c in RESP_CHANNELS},
}

# Physical range written to the EDF header per modality (uV). 16-bit digitisation over
# +-500 uV gives a 0.015 uV step, well below the amplifier noise floor; larger values
# saturate, as they do on a real amplifier.
PHYSICAL_RANGE_UV = {"eeg": 500.0, "eog": 1000.0, "emg": 500.0, "ecg": 5000.0, "resp": 2000.0}
PHYSICAL_DIMENSION = {"eeg": "uV", "eog": "uV", "emg": "uV", "ecg": "uV", "resp": "uV"}
TRANSDUCER = {
    "eeg": "AgAgCl cup electrode", "eog": "AgAgCl cup electrode", "emg": "AgAgCl cup electrode",
    "ecg": "AgAgCl disposable electrode", "resp": "RIP belt / thermistor (synthetic)",
}

# Sleep-EDF hypnogram vocabulary (R&K). Stage 4 is the deepest part of some N3 runs.
RK_LABEL = {W: "Sleep stage W", N1: "Sleep stage 1", N2: "Sleep stage 2", N3: "Sleep stage 3",
            REM: "Sleep stage R"}
RK_STAGE4 = "Sleep stage 4"
RK_MOVEMENT = "Movement time"
RK_UNSCORED = "Sleep stage ?"

# Approximate positions of the active electrodes on the unit sphere (x right, y anterior,
# z superior), from MNE's standard_1005 template normalised to unit length. Fixed here
# so that generation does not depend on the montage files of a given MNE release.
_EEG_XYZ = np.array([
    [-0.595, 0.629, 0.500],  # F3
    [0.607, 0.636, 0.478],   # F4
    [-0.707, -0.126, 0.696],  # C3
    [0.721, -0.117, 0.683],  # C4
    [-0.252, -0.965, 0.076],  # O1
    [0.256, -0.964, 0.076],  # O2
])
_F, _C, _O = slice(0, 2), slice(2, 4), slice(4, 6)


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """What to generate.

  Attributes:
    n_subjects: number of subjects (SleepMG "domains").
    nights_per_subject: nights per subject (Sleep-EDF SC has 2).
    duration_h: sleep period in hours, lights-off to final awakening (adults ~7.5 h).
      Short values (e.g. 1.0) compress the cycle structure so that every stage still occurs.
    seed: root seed; subject k's nights depend only on (seed, k, night).
    eeg_sfreq, eog_sfreq, emg_sfreq, ecg_sfreq, resp_sfreq: sampling rates in Hz. They
      differ on purpose so that readers exercise their resampling path; each times 30 s
      must be an integer.
    wake_before_min: recorded wake before lights-off, minutes (Sleep-EDF keeps ~30 min).
    wake_after_min: recorded wake after the final awakening, minutes.
    unscored_tail_min: minutes at the end of the recording scored "Sleep stage ?".
    movement_artefacts_per_h: rate of broadband movement bursts (mostly at wake and
      stage transitions).
    movement_time_per_h: rate of whole epochs scored "Movement time" (R&K).
    electrode_pops_per_h: rate of electrode pops (step + exponential decay, one channel).
    mains_hz: mains frequency; added to channels whose Nyquist frequency exceeds it
      (at 100 Hz the recorder's anti-alias filter has removed 50 Hz already).
    sweat_artefacts_per_h: mean rate of sweat artefacts (minutes-long 0.05-0.5 Hz swings
      of up to ~100 uV on a few EEG/EOG channels); each subject's rate is drawn around it.
    subject_variability: scale of the between-subject spread of the stage signatures
      (slow-wave amplitude falling with age, alpha reactivity, chin-EMG tone per stage,
      heart-rate response per stage, respiratory-belt gain steps at position changes);
      0 gives every subject the population-mean signatures.
    stage_fluctuation_sd: log-sd of the slow (minutes) within-stage fluctuation of the
      EEG rhythms and chin-EMG tone: a stage is a range of states, not one.
  """
  n_subjects: int = 10
  nights_per_subject: int = 1
  duration_h: float = 7.5
  seed: int = 0
  eeg_sfreq: float = 100.0
  eog_sfreq: float = 100.0
  emg_sfreq: float = 100.0
  ecg_sfreq: float = 200.0
  resp_sfreq: float = 25.0
  wake_before_min: float = 30.0
  wake_after_min: float = 20.0
  unscored_tail_min: float = 2.0
  movement_artefacts_per_h: float = 3.0
  movement_time_per_h: float = 0.5
  electrode_pops_per_h: float = 0.5
  mains_hz: float = 50.0
  sweat_artefacts_per_h: float = 1.0
  subject_variability: float = 1.0
  stage_fluctuation_sd: float = 0.35

  def sfreq(self, modality: str) -> float:
    """Sampling rate in Hz of a modality ("eeg", "eog", "emg", "ecg", "resp")."""
    return float(getattr(self, f"{modality}_sfreq"))

  def validate(self) -> None:
    """Raises ValueError when a field is out of range."""
    if self.n_subjects < 1 or self.n_subjects > 999:
      raise ValueError(f"n_subjects must be in 1..999, got {self.n_subjects}")
    if self.nights_per_subject < 1 or self.nights_per_subject > 9:
      raise ValueError(f"nights_per_subject must be in 1..9, got {self.nights_per_subject}")
    if not 0.25 <= self.duration_h <= 14:
      raise ValueError(f"duration_h must be in [0.25, 14] hours, got {self.duration_h}")
    for m in ("eeg", "eog", "emg", "ecg", "resp"):
      fs = self.sfreq(m)
      if fs <= 0 or abs(fs * EPOCH_S - round(fs * EPOCH_S)) > 1e-9:
        raise ValueError(f"{m}_sfreq={fs} Hz: must be positive with an integer number of samples per 30 s")
    for name in ("wake_before_min", "wake_after_min", "unscored_tail_min", "movement_artefacts_per_h",
                 "movement_time_per_h", "electrode_pops_per_h", "sweat_artefacts_per_h",
                 "subject_variability", "stage_fluctuation_sd"):
      if getattr(self, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class SubjectParams:
  """Per-subject physiology: the between-subject ("domain") variability.

  Attributes:
    sex: "F" or "M" (header only).
    age_years: age (header only; adult range).
    sleep_onset_min: sleep-onset latency in minutes for a full-length night.
    cycle_min: mean NREM/REM cycle length in minutes.
    n3_scale, rem_scale: multipliers of the N3 and REM share of each cycle.
    awakenings_per_h: rate of brief awakenings during sleep.
    alpha_hz: posterior alpha peak frequency (Hz).
    spindle_hz: spindle frequency (Hz).
    spindle_density_per_min: spindles per minute of N2.
    kcomplex_per_min: K-complexes per minute of N2.
    gains: amplitude gain per modality (electrode impedance, amplifier calibration).
    noise_floor_uv: white amplifier noise, uV rms.
    mains_uv: mains interference amplitude, uV.
    heart_rate_bpm: heart rate in N2 (beats per minute).
    rsa_bpm: respiratory sinus arrhythmia amplitude in N2 (beats per minute).
    breathing_per_min: breathing rate in N2 (breaths per minute).
    swa_scale: slow-wave (delta) amplitude factor; falls with age (Carrier et al. 2001,
      Psychophysiology 38:232: slow-wave amplitude declines through adulthood).
    alpha_scale: alpha amplitude factor (weak alpha producers exist; Niedermeyer's EEG).
    emg_stage_scale: (5,) chin-EMG tone factor per stage W..REM (electrode placement and
      individual tone).
    hr_stage_scale: factor of the heart-rate changes between stages.
    sweat_per_h: rate of sweat artefacts.
  """
  sex: str
  age_years: int
  sleep_onset_min: float
  cycle_min: float
  n3_scale: float
  rem_scale: float
  awakenings_per_h: float
  alpha_hz: float
  spindle_hz: float
  spindle_density_per_min: float
  kcomplex_per_min: float
  gains: Mapping[str, float]
  noise_floor_uv: float
  mains_uv: float
  heart_rate_bpm: float
  rsa_bpm: float
  breathing_per_min: float
  swa_scale: float = 1.0
  alpha_scale: float = 1.0
  emg_stage_scale: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
  hr_stage_scale: float = 1.0
  sweat_per_h: float = 0.0


@dataclasses.dataclass(frozen=True)
class RecordInfo:
  """One written night. Ids follow Sleep-EDF ("SN0001E0"), never local paths."""
  record_id: str
  subject_id: str
  night: int
  psg_path: pathlib.Path
  hypnogram_path: pathlib.Path


@dataclasses.dataclass(frozen=True)
class SyntheticNight:
  """A generated night before writing.

  Attributes:
    record_id, subject_id, night: identifiers.
    params: the subject's `SubjectParams`.
    hypnogram: (N,) int32 generating AASM stages per 30-s epoch (W=0..REM=4).
    scoring: (N,) tuple of Sleep-EDF annotation texts (R&K with stage 4, movement
      time and the unscored tail), what the hypnogram file contains.
    signals: channel label -> ((T_c,) float64 uV, sfreq Hz).
    start: recording start (date and time of the first sample).
  """
  record_id: str
  subject_id: str
  night: int
  params: SubjectParams
  hypnogram: np.ndarray
  scoring: tuple[str, ...]
  signals: dict[str, tuple[np.ndarray, float]]
  start: datetime.datetime


def record_ids(subject: int, night: int) -> tuple[str, str]:
  """Returns (record_id, subject_id) for a 0-based subject and 1-based night."""
  return f"SN{subject:03d}{night}E0", f"SN{subject:03d}"


def _rng(seed: int, *keys: int) -> np.random.Generator:
  # Independent streams keyed by (seed, subject, night, purpose): adding subjects or
  # changing one stream leaves every other stream's draws unchanged.
  return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


def sample_subject_params(rng: np.random.Generator, *, variability: float = 1.0,
                          sweat_per_h: float = 0.0) -> SubjectParams:
  """Draws one adult subject's physiology.

  Args:
    rng: the subject's generator.
    variability: scale of the between-subject spread of the stage signatures
      (`SyntheticConfig.subject_variability`; 0: population means).
    sweat_per_h: population-mean rate of sweat artefacts per hour.

  Returns:
    A `SubjectParams` with values in adult ranges (alpha 8.5-12 Hz, spindles 11.5-15 Hz
    at 3-8 per minute of N2, heart rate ~50-75 bpm, breathing ~12-17 per minute).
  """
  def clipped_normal(mean, sd, lo, hi):
    return float(np.clip(rng.normal(mean, sd), lo, hi))
  v = float(variability)
  age = int(rng.integers(22, 66))
  return SubjectParams(
      sex=str(rng.choice(["F", "M"])),
      age_years=age,
      sleep_onset_min=float(np.clip(rng.lognormal(np.log(14.0), 0.4), 4.0, 40.0)),
      cycle_min=clipped_normal(92.0, 8.0, 75.0, 110.0),
      n3_scale=clipped_normal(1.0, 0.15, 0.65, 1.35),
      rem_scale=clipped_normal(1.0, 0.12, 0.7, 1.3),
      awakenings_per_h=clipped_normal(1.6, 0.5, 0.5, 3.0),
      alpha_hz=clipped_normal(10.0, 0.7, 8.5, 12.0),
      spindle_hz=clipped_normal(13.0, 0.7, 11.5, 15.0),
      spindle_density_per_min=float(rng.uniform(3.0, 8.0)),
      kcomplex_per_min=float(rng.uniform(0.8, 2.0)),
      gains={m: float(rng.lognormal(0.0, 0.15)) for m in ("eeg", "eog", "emg", "ecg", "resp")},
      noise_floor_uv=float(rng.uniform(0.3, 1.5)),
      mains_uv=float(rng.lognormal(np.log(4.0), 0.6)),
      heart_rate_bpm=clipped_normal(60.0, 6.0, 48.0, 75.0),
      rsa_bpm=float(rng.uniform(2.0, 6.0)),
      breathing_per_min=clipped_normal(14.0, 1.2, 11.0, 17.0),
      swa_scale=float((1.0 - v * 0.009 * (age - 40)) * rng.lognormal(0.0, 0.25 * v)),
      alpha_scale=float(rng.lognormal(0.0, 0.45 * v)),
      emg_stage_scale=tuple(float(x) for x in rng.lognormal(0.0, 0.3 * v, 5)),
      hr_stage_scale=float(np.clip(rng.normal(1.0, 0.4 * v), 0.3, 1.8)),
      sweat_per_h=float(sweat_per_h * rng.uniform(0.0, 2.0)),
  )


# ----------------------------------------------------------------------------- hypnogram


def _counts_from_fractions(fractions: np.ndarray, total: int) -> np.ndarray:
  """Integer counts summing to `total`, by cumulative rounding of the fractions."""
  edges = np.round(np.concatenate([[0.0], np.cumsum(fractions)]) / np.sum(fractions) * total)
  return np.diff(edges).astype(int)


def generate_hypnogram(rng: np.random.Generator, duration_h: float, subject_params: SubjectParams, *,
                       wake_before_min: float = 0.0, wake_after_min: float = 0.0) -> np.ndarray:
  """Generates an adult night's hypnogram at 30-s resolution.

  The sleep period (lights-off to final awakening) starts with the sleep-onset latency
  in W, then K NREM/REM cycles (K ~ sleep time / 90 min, 4-6 for a full night; short
  nights get 1-2 compressed cycles). Cycle k at relative position p = (k + 0.5) / K is
  N1 -> N2 -> N3 -> N2 -> REM, with an N3 share 0.65 (1 - p)^2.5 (N3 in the first third)
  and a REM share 0.07 + 0.32 p (REM episodes lengthen); brief awakenings (mostly at
  cycle ends) are followed by N1, and a few epochs flip to a neighbouring stage as in
  scored hypnograms. Proportions of the sleep period come out near adult norms
  (Carskadon & Dement): W 5-10%, N1 ~5%, N2 ~50%, N3 ~15-20%, REM ~20-25%.

  Args:
    rng: random generator (consumed).
    duration_h: sleep period in hours (lights-off to final awakening).
    subject_params: the subject's `SubjectParams`.
    wake_before_min: wake minutes prepended (recorded before lights-off).
    wake_after_min: wake minutes appended (after the final awakening).

  Returns:
    (N,) int32 AASM stages (W=0, N1=1, N2=2, N3=3, REM=4), N = round(total minutes * 2).

  Raises:
    ValueError: if duration_h is not positive.
  """
  if duration_h <= 0:
    raise ValueError(f"duration_h must be positive, got {duration_h}")
  p = subject_params
  n_period = int(round(duration_h * 120))
  scale = min(1.0, duration_h / 7.5)  # Compresses latencies and cycles in short nights.
  n_sol = max(1, int(round(p.sleep_onset_min * scale * 2 * rng.uniform(0.8, 1.25))))
  n_sol = min(n_sol, max(1, n_period // 5))
  n_sleep = n_period - n_sol
  sleep_min = n_sleep / 2
  k_min = 2 if sleep_min >= 40 else 1
  n_cycles = int(np.clip(round(sleep_min / p.cycle_min), k_min, 6))
  cycle_len = _counts_from_fractions(1.0 + 0.12 * rng.standard_normal(n_cycles).clip(-2, 2), n_sleep)

  parts = [np.full(n_sol, W)]
  for k, length in enumerate(cycle_len):
    pos = (k + 0.5) / n_cycles
    f_n1 = 0.05 if k == 0 else 0.012
    f_n3 = p.n3_scale * 0.65 * (1.0 - pos) ** 2.5 * rng.uniform(0.8, 1.2)
    f_rem = p.rem_scale * (0.07 + 0.32 * pos) * rng.uniform(0.85, 1.15)
    f_n2 = max(0.1, 1.0 - f_n1 - f_n3 - f_rem)
    split = rng.uniform(0.35, 0.55)
    fractions = np.array([f_n1, split * f_n2, f_n3, (1 - split) * f_n2, f_rem])
    counts = _counts_from_fractions(fractions, int(length))
    parts.append(np.repeat(np.array([N1, N2, N3, N2, REM]), counts))
  hyp = np.concatenate(parts).astype(np.int32)

  # Scored hypnograms are not blocky: a few epochs flip to a neighbouring stage.
  u = rng.random(hyp.size)
  interior = np.zeros(hyp.size, bool)
  interior[1:-1] = (hyp[:-2] == hyp[1:-1]) & (hyp[2:] == hyp[1:-1])
  flip_n3 = interior & (hyp == N3) & (u < 0.08)
  flip_n2 = interior & (hyp == N2) & (u < 0.02)
  flip_rem = interior & (hyp == REM) & (u < 0.015)
  hyp[flip_n3] = N2
  hyp[flip_n2] = N1
  hyp[flip_rem] = N1

  # Brief awakenings, weighted towards the end of REM episodes (cycle ends).
  sleep_idx = np.arange(n_sol, hyp.size)
  weight = np.where(hyp[sleep_idx] == N3, 0.1, 1.0)
  rem_end = (hyp[sleep_idx] == REM) & (np.append(hyp[sleep_idx][1:], W) != REM)
  weight = weight + 40.0 * rem_end
  n_wake = rng.poisson(p.awakenings_per_h * n_sleep / 120)
  if n_wake and sleep_idx.size > 4:
    starts = rng.choice(sleep_idx, size=min(n_wake, sleep_idx.size // 4), replace=False, p=weight / weight.sum())
    for s in np.sort(starts):
      length = int(rng.geometric(0.55)) if rng.random() > 0.15 else int(rng.integers(3, 11))
      end = min(s + length, hyp.size)
      hyp[s:end] = W
      n1_len = int(rng.integers(1, 3))
      n1_end = min(end + n1_len, hyp.size)
      hyp[end:n1_end] = np.where(hyp[end:n1_end] == W, W, N1)
  hyp[-1] = REM if hyp[-1] == W else hyp[-1]  # The period ends in sleep; final awakening follows.

  before = np.full(int(round(wake_before_min * 2)), W, np.int32)
  after = np.full(int(round(wake_after_min * 2)), W, np.int32)
  return np.concatenate([before, hyp, after]).astype(np.int32)


def n3_depth(hypnogram: np.ndarray) -> np.ndarray:
  """Depth of slow-wave sleep per epoch, 0 outside N3, rising to 1 mid-run.

  Within a run of N3 (short N2 interruptions of <= 2 epochs bridged), depth follows
  0.45 + 0.55 sin(pi x) over the run (x in [0, 1]), scaled down for runs shorter than
  10 min: slow waves build up and fade, which is what separates R&K stage 3 (20-50%
  delta) from stage 4 (> 50%).

  Args:
    hypnogram: (N,) int AASM stages.

  Returns:
    (N,) float64 in [0, 1].
  """
  hyp = np.asarray(hypnogram)
  is_n3 = hyp == N3
  bridged = is_n3.copy()
  for gap in (1, 2):
    for i in range(1, hyp.size - gap):
      if is_n3[i - 1] and is_n3[min(i + gap, hyp.size - 1)] and not bridged[i]:
        bridged[i:i + gap] = True
  depth = np.zeros(hyp.size)
  edges = np.flatnonzero(np.diff(np.concatenate([[0], bridged.astype(int), [0]])))
  for start, stop in zip(edges[::2], edges[1::2]):
    n = stop - start
    x = (np.arange(n) + 0.5) / n
    depth[start:stop] = (0.45 + 0.55 * np.sin(np.pi * x)) * min(1.0, 0.4 + n / 33)
  return np.where(is_n3, depth, 0.0)


def score_night(hypnogram: np.ndarray, rng: np.random.Generator, config: SyntheticConfig) -> tuple[np.ndarray, tuple[str, ...]]:
  """Turns a generating hypnogram into what a Sleep-EDF scorer writes (R&K texts).

  N3 epochs with `n3_depth` > 0.75 are scored "Sleep stage 4"; a few epochs at stage
  transitions inside the sleep period become "Movement time" (their signals carry a
  large movement artefact); the last `unscored_tail_min` are "Sleep stage ?".

  Args:
    hypnogram: (N,) int32 AASM stages.
    rng: random generator (consumed).
    config: the corpus configuration.

  Returns:
    movement: (N,) bool, epochs scored "Movement time".
    scoring: N annotation texts, one per epoch.
  """
  hyp = np.asarray(hypnogram)
  n = hyp.size
  texts = np.array([RK_LABEL[int(s)] for s in hyp], dtype=object)
  texts[n3_depth(hyp) > 0.75] = RK_STAGE4
  asleep = np.flatnonzero(hyp != W)
  movement = np.zeros(n, bool)
  if asleep.size:
    first, last = asleep[0], asleep[-1]
    transitions = np.flatnonzero(np.diff(hyp) != 0) + 1
    transitions = transitions[(transitions > first) & (transitions < last)]
    n_mt = min(rng.poisson(config.movement_time_per_h * (last - first) / 120), transitions.size)
    if n_mt:
      movement[rng.choice(transitions, size=n_mt, replace=False)] = True
  texts[movement] = RK_MOVEMENT
  n_tail = min(int(round(config.unscored_tail_min * 2)), n)
  if n_tail:
    texts[n - n_tail:] = RK_UNSCORED
  return movement, tuple(texts.tolist())


# -------------------------------------------------------------------------- signal tools


def _epoch_curve(values: np.ndarray, n_times: int, sfreq: float) -> np.ndarray:
  """Per-epoch values -> per-sample curve, linear between epoch centres (no steps)."""
  centres = (np.arange(values.size) + 0.5) * EPOCH_S
  return np.interp(np.arange(n_times) / sfreq, centres, values)


def _band_noise(rng: np.random.Generator, n_chans: int, n_times: int, sfreq: float, gain_fn,
                mixing: np.ndarray | None = None) -> np.ndarray:
  """Gaussian noise with spectrum |gain_fn(f)|^2, unit rms, spatially mixed.

  Synthesised in the frequency domain (one inverse FFT per channel) so that a whole
  night costs O(T log T) whatever the spectral shape; random coefficients are drawn
  only where the gain exceeds 1e-3 of its maximum.

  Args:
    rng: random generator (consumed).
    n_chans: number of channels C.
    n_times: number of samples T.
    sfreq: Hz.
    gain_fn: magnitude response, maps (F,) frequencies in Hz to (F,) gains.
    mixing: optional (C, C) matrix applied to the independent sources.

  Returns:
    (C, T) float32, rms 1 over all channels.
  """
  n_fft = scipy.fft.next_fast_len(n_times, real=True)
  freqs = np.fft.rfftfreq(n_fft, 1.0 / sfreq)
  gain = gain_fn(freqs)
  support = np.flatnonzero(gain > 1e-3 * gain.max())
  lo, hi = support[0], support[-1] + 1
  g = gain[lo:hi].astype(np.float32)
  re = rng.standard_normal((n_chans, hi - lo), np.float32)
  im = rng.standard_normal((n_chans, hi - lo), np.float32)
  if mixing is not None:
    m = mixing.astype(np.float32)
    re, im = m @ re, m @ im
  spec = np.zeros((n_chans, freqs.size), np.complex64)
  spec.real[:, lo:hi] = re * g
  spec.imag[:, lo:hi] = im * g
  # Unit rms from the spectrum (Parseval), cheaper than a pass over the signal.
  weight = np.full(freqs.size, 2.0)
  weight[0] = 1.0
  if n_fft % 2 == 0:
    weight[-1] = 1.0
  power = float(np.sum(weight[lo:hi] * (np.sum(re.astype(np.float64) ** 2 + im.astype(np.float64) ** 2, axis=0)
                                         * g.astype(np.float64) ** 2)))
  spec *= np.float32(n_fft / np.sqrt(power / n_chans))
  return scipy.fft.irfft(spec, n_fft, axis=-1, overwrite_x=True)[:, :n_times]


def _bandpass_gain(lo: float, hi: float, order: int = 4):
  """Butterworth-like band-pass magnitude |H(f)| for `_band_noise` (broad skirts)."""
  def gain(f):
    f = np.maximum(f, 1e-3)
    return 1.0 / np.sqrt((1 + (lo / f) ** (2 * order)) * (1 + (f / hi) ** (2 * order)))
  return gain


def _band_gain(lo: float, hi: float, edge_hz: float):
  """Flat band [lo, hi] Hz with Gaussian shoulders of sd `edge_hz` (compact support)."""
  def gain(f):
    below = np.exp(-0.5 * ((lo - f) / edge_hz) ** 2)
    above = np.exp(-0.5 * ((f - hi) / edge_hz) ** 2)
    return np.where(f < lo, below, np.where(f > hi, above, 1.0))
  return gain


def _event_times(rng: np.random.Generator, rate_per_min: np.ndarray) -> np.ndarray:
  """Poisson event onsets (s), given a per-epoch rate in events per minute."""
  counts = rng.poisson(np.asarray(rate_per_min) * EPOCH_S / 60.0)
  epochs = np.repeat(np.arange(counts.size), counts)
  return np.sort((epochs + rng.random(epochs.size)) * EPOCH_S)


def _add_events(out: np.ndarray, sfreq: float, onsets_s: np.ndarray, waves: np.ndarray,
                topography: np.ndarray) -> None:
  """Adds event waveforms to `out` in place.

  Args:
    out: (C, T) signals.
    sfreq: Hz.
    onsets_s: (E,) event onsets in seconds.
    waves: (E, L) waveforms, uV.
    topography: (C,) or (E, C) per-channel weights.
  """
  if onsets_s.size == 0:
    return
  n_chans, n_times = out.shape
  idx = np.round(onsets_s * sfreq).astype(np.int64)[:, None] + np.arange(waves.shape[1])
  valid = idx < n_times
  topo = np.broadcast_to(np.asarray(topography, np.float64), (onsets_s.size, n_chans))
  for c in range(n_chans):
    if np.any(topo[:, c] != 0):
      w = (waves * topo[:, c:c + 1])[valid]
      out[c] += np.bincount(idx[valid], weights=w, minlength=n_times)[:n_times].astype(out.dtype)


def _spatial_mixing(length_scale: float) -> np.ndarray:
  """Cholesky factor of exp(-distance / length_scale) over the 6 EEG electrodes."""
  d = np.linalg.norm(_EEG_XYZ[:, None] - _EEG_XYZ[None], axis=-1)
  return np.linalg.cholesky(np.exp(-d / length_scale) + 1e-9 * np.eye(6))


def _topo(frontal: float, central: float, occipital: float) -> np.ndarray:
  return np.array([frontal, frontal, central, central, occipital, occipital])


def _per_stage(hyp: np.ndarray, table: Mapping[int, float]) -> np.ndarray:
  return np.array([table[int(s)] for s in range(5)])[hyp]


def _slow_fluctuation(rng: np.random.Generator, n_epochs: int, sd: float) -> np.ndarray:
  """Per-epoch log-normal amplitude fluctuation correlated over a few minutes."""
  z = scipy.signal.lfilter([0.3], [1, -0.7], rng.standard_normal(n_epochs)) / 0.42
  return np.exp(sd * z)


# ------------------------------------------------------------------------------ modalities


def _synth_eeg(hyp, depth, eyes_closed, p: SubjectParams, rng, n_times, sfreq, fluctuation_sd=0.2):
  """(6, T) EEG in uV (mastoid-referenced derivations F3, F4, C3, C4, O1, O2)."""
  n_ep = hyp.size
  nyq = sfreq / 2
  eeg = np.zeros((6, n_times), np.float32)
  wake_open = (hyp == W) & ~eyes_closed
  wake_closed = (hyp == W) & eyes_closed

  def add_background(amp_epoch, gain_fn, topography, length_scale):
    env = _epoch_curve(amp_epoch * _slow_fluctuation(rng, n_ep, fluctuation_sd), n_times, sfreq).astype(np.float32)
    noise = _band_noise(rng, 6, n_times, sfreq, gain_fn, _spatial_mixing(length_scale))
    eeg[:] += noise * env * topography[:, None].astype(np.float32)

  # 1/f background (the aperiodic component), flattening above 1 Hz less steeply in wake.
  pink = lambda f: _bandpass_gain(0.3, min(40.0, 0.9 * nyq), 2)(f) / np.sqrt(np.maximum(f, 0.5))
  add_background(_per_stage(hyp, {W: 7.0, N1: 7.0, N2: 9.0, N3: 10.0, REM: 6.0}), pink, _topo(1, 1, 1), 1.0)
  # Delta / slow oscillation: widely correlated; N3 depth sets it (> 75 uV p-p frontally).
  delta_amp = p.swa_scale * (_per_stage(hyp, {W: 2.5, N1: 5.0, N2: 13.0, N3: 0.0, REM: 4.0})
                             + (hyp == N3) * (24.0 + 22.0 * depth))
  # Slow-wave activity spans 0.5-4 Hz with most power below 2 Hz (hence the 1/f weighting)
  # and is frontal-predominant (Massimini et al. 2004, J Neurosci 24:6862).
  delta_gain = lambda f: _band_gain(0.5, 3.5, 0.1)(f) / np.maximum(f, 0.5)
  add_background(delta_amp, delta_gain, _topo(1.0, 0.8, 0.55), 2.0)
  # Theta: N1 and REM, central maximum.
  add_background(_per_stage(hyp, {W: 2.5, N1: 8.0, N2: 5.0, N3: 4.0, REM: 7.0}), _band_gain(4.0, 7.5, 0.7),
                 _topo(0.9, 1.0, 0.7), 1.0)
  # Alpha: relaxed wake with eyes closed, occipital > central > frontal; a little in REM.
  alpha_amp = p.alpha_scale * (15.0 * wake_closed + 3.0 * wake_open
                               + _per_stage(hyp, {W: 0.0, N1: 3.0, N2: 1.2, N3: 0.5, REM: 2.5}))
  add_background(alpha_amp, _band_gain(p.alpha_hz - 0.5, p.alpha_hz + 0.5, 0.5), _topo(0.3, 0.5, 1.0), 1.0)
  # Beta and scalp-muscle activity: higher in wake with eyes open.
  beta_amp = 3.5 * wake_open + 2.5 * wake_closed + _per_stage(hyp, {W: 0.0, N1: 2.0, N2: 1.3, N3: 1.0, REM: 2.0})
  add_background(beta_amp, _band_gain(15.0, min(30.0, 0.6 * nyq), 2.0), _topo(1.0, 0.8, 0.6), 0.8)

  # Sleep spindles: waxing-waning 11-16 Hz bursts of 0.5-2 s, central maximum (AASM N2).
  rate = _per_stage(hyp, {W: 0.0, N1: 0.3, N2: p.spindle_density_per_min, N3: p.spindle_density_per_min / 3,
                          REM: 0.05})
  onsets = _event_times(rng, rate)
  if onsets.size:
    dur = rng.uniform(0.5, 2.0, onsets.size)
    freq = np.clip(p.spindle_hz + 0.4 * rng.standard_normal(onsets.size), 11.0, 16.0)
    amp = rng.uniform(12.0, 35.0, onsets.size)
    t = np.arange(int(2.0 * sfreq)) / sfreq
    inside = t[None] < dur[:, None]
    env = np.where(inside, np.sin(np.pi * t[None] / dur[:, None]) ** 2, 0.0)
    waves = amp[:, None] * env * np.sin(2 * np.pi * freq[:, None] * t[None] + rng.uniform(0, 2 * np.pi, (onsets.size, 1)))
    topo = _topo(0.65, 1.0, 0.45) * rng.uniform(0.85, 1.15, (onsets.size, 6))
    _add_events(eeg, sfreq, onsets, waves, topo)
  # K-complexes: sharp negative then slower positive wave, >= 0.5 s, frontal maximum.
  rate = _per_stage(hyp, {W: 0.0, N1: 0.1, N2: p.kcomplex_per_min, N3: p.kcomplex_per_min / 2, REM: 0.0})
  onsets = _event_times(rng, rate)
  if onsets.size:
    t = np.arange(int(1.6 * sfreq)) / sfreq
    amp = rng.uniform(60.0, 150.0, onsets.size)[:, None]
    waves = amp * (-np.exp(-0.5 * ((t - 0.35) / 0.09) ** 2) + 0.55 * np.exp(-0.5 * ((t - 0.85) / 0.2) ** 2))
    _add_events(eeg, sfreq, onsets, waves, _topo(1.0, 0.8, 0.35))
  # Vertex sharp waves: N1, central maximum.
  rate = _per_stage(hyp, {W: 0.1, N1: 3.0, N2: 0.4, N3: 0.0, REM: 0.0})
  onsets = _event_times(rng, rate)
  if onsets.size:
    t = np.arange(int(0.5 * sfreq)) / sfreq
    amp = rng.uniform(40.0, 90.0, onsets.size)[:, None]
    waves = amp * (-np.exp(-0.5 * ((t - 0.15) / 0.04) ** 2) + 0.3 * np.exp(-0.5 * ((t - 0.3) / 0.06) ** 2))
    _add_events(eeg, sfreq, onsets, waves, _topo(0.7, 1.0, 0.3))
  # Sawtooth waves: 2-6 Hz serrated bursts in REM, fronto-central.
  onsets = _event_times(rng, 1.5 * (hyp == REM))
  if onsets.size:
    t = np.arange(int(3.0 * sfreq)) / sfreq
    freq = rng.uniform(2.0, 6.0, onsets.size)[:, None]
    n_cycles = rng.integers(3, 8, onsets.size)[:, None]
    dur = n_cycles / freq
    env = np.where(t[None] < dur, np.sqrt(np.clip(np.sin(np.pi * t[None] / dur), 0, None)), 0.0)
    amp = rng.uniform(20.0, 45.0, onsets.size)[:, None]
    waves = amp * env * scipy.signal.sawtooth(2 * np.pi * freq * t[None], width=0.25)
    _add_events(eeg, sfreq, onsets, waves, _topo(0.9, 1.0, 0.4))
  return eeg


def _eye_position(rng, onsets_s, amp_uv, rise_s, n_times, sfreq):
  """Eye position from saccades: smooth steps (velocity = Gaussian pulse of area amp)."""
  vel = np.zeros((1, n_times), np.float64)
  if onsets_s.size:
    width = int(np.ceil(6 * rise_s.max() * sfreq)) + 1
    t = np.arange(width) / sfreq
    centre = 3 * rise_s[:, None]
    pulse = np.exp(-0.5 * ((t[None] - centre) / rise_s[:, None]) ** 2)
    pulse /= pulse.sum(axis=1, keepdims=True)
    _add_events(vel, sfreq, onsets_s, amp_uv[:, None] * pulse, np.ones(1))
  return np.cumsum(vel[0])


def _synth_eog(hyp, eyes_closed, eeg_at_eog_rate, p, rng, n_times, sfreq):
  """(2, T) EOG in uV: E1-M2 and E2-M1 (opposite polarity for eye movements)."""
  wake_open = (hyp == W) & ~eyes_closed
  wake_closed = (hyp == W) & eyes_closed
  # Saccades in wake (eyes open) and rapid eye movements in REM: steps in eye position,
  # clustered in phasic REM epochs.
  phasic = (hyp == REM) & (rng.random(hyp.size) < 0.55)
  rate = 20.0 * wake_open + 2.0 * wake_closed + 25.0 * phasic + 2.0 * ((hyp == REM) & ~phasic) + 0.3 * (hyp == N1)
  onsets = _event_times(rng, rate)
  amp = rng.uniform(40.0, 180.0, onsets.size) * rng.choice([-1.0, 1.0], onsets.size)
  amp *= np.where(hyp[(onsets // EPOCH_S).astype(int)] == REM, 1.0, 0.6)
  rise = rng.uniform(0.02, 0.05, onsets.size)
  horizontal = _eye_position(rng, onsets, amp, rise, n_times, sfreq)
  # Slow rolling eye movements: 0.1-0.6 Hz excursions at sleep onset (N1, drowsy wake).
  sem_amp = 60.0 * (hyp == N1) + 15.0 * wake_closed + 8.0 * (hyp == N2)
  sem = _band_noise(rng, 1, n_times, sfreq, _bandpass_gain(0.1, 0.6, 2))[0]
  horizontal = horizontal + sem * _epoch_curve(sem_amp, n_times, sfreq)
  # AC coupling (first-order 0.3 Hz high-pass, as EOG amplifiers): steps become sharp deflections.
  b, a = scipy.signal.butter(1, 0.3, "highpass", fs=sfreq)
  horizontal = scipy.signal.lfilter(b, a, horizontal)
  # Blinks (vertical, ~0.3 s) in wake with eyes open.
  vertical = np.zeros((1, n_times))
  onsets = _event_times(rng, 15.0 * wake_open + 0.5 * wake_closed)
  if onsets.size:
    t = np.arange(int(0.6 * sfreq)) / sfreq
    amp = rng.uniform(80.0, 200.0, onsets.size)[:, None]
    _add_events(vertical, sfreq, onsets, amp * np.exp(-0.5 * ((t - 0.2) / 0.06) ** 2), np.ones(1))
  eye = horizontal + 0.6 * vertical[0]
  # E1 (below left canthus) and E2 (above right canthus) see eye movements in opposite
  # polarity and frontal EEG (F3/F4) in phase: N3 delta is visible in both.
  eog = np.stack([-eye + 0.7 * eeg_at_eog_rate[0], eye + 0.7 * eeg_at_eog_rate[1]])
  eog += 3.0 * _band_noise(rng, 2, n_times, sfreq, _bandpass_gain(0.3, 0.4 * sfreq, 2))
  return eog, vertical[0]


def _synth_emg(hyp, p, rng, n_times, sfreq, fluctuation_sd=0.25):
  """(1, T) chin EMG in uV: 10-45 Hz noise, tonic level by stage, phasic REM twitches."""
  tone = (_per_stage(hyp, {W: 18.0, N1: 9.0, N2: 6.0, N3: 4.5, REM: 1.5}) * np.asarray(p.emg_stage_scale)[hyp]
          * _slow_fluctuation(rng, hyp.size, max(0.25, fluctuation_sd)))
  env = _epoch_curve(tone, n_times, sfreq)
  twitch = np.zeros((1, n_times))
  onsets = _event_times(rng, 8.0 * (hyp == REM) + 0.3 * (hyp == N2) + 0.5 * (hyp == N1))
  if onsets.size:
    t = np.arange(int(0.3 * sfreq)) / sfreq
    dur = rng.uniform(0.08, 0.25, onsets.size)[:, None]
    amp = rng.uniform(8.0, 25.0, onsets.size)[:, None]
    _add_events(twitch, sfreq, onsets, amp * np.where(t[None] < dur, np.sin(np.pi * t[None] / dur), 0.0), np.ones(1))
  noise = _band_noise(rng, 1, n_times, sfreq, _bandpass_gain(10.0, min(45.0, 0.45 * sfreq), 4))[0]
  return (noise * (env + twitch[0]))[None]


def _breathing(hyp, p, rng, n_ctrl, ctrl_sfreq):
  """Breathing phase (cycles) and tidal amplitude on the control grid."""
  rate = _per_stage(hyp, {W: 1.12, N1: 1.05, N2: 1.0, N3: 0.96, REM: 1.1}) * p.breathing_per_min / 60.0
  irregular = _per_stage(hyp, {W: 0.15, N1: 0.10, N2: 0.05, N3: 0.025, REM: 0.18})
  jitter = _band_noise(rng, 1, n_ctrl, ctrl_sfreq, _bandpass_gain(0.01, 0.2, 1))[0]
  freq = _epoch_curve(rate, n_ctrl, ctrl_sfreq) * (1.0 + _epoch_curve(irregular, n_ctrl, ctrl_sfreq) * jitter)
  phase = np.cumsum(np.maximum(freq, 0.05)) / ctrl_sfreq
  amp_var = _band_noise(rng, 1, n_ctrl, ctrl_sfreq, _bandpass_gain(0.01, 0.15, 1))[0]
  level = _per_stage(hyp, {W: 1.15, N1: 1.0, N2: 1.0, N3: 1.05, REM: 0.85})
  amp = _epoch_curve(level, n_ctrl, ctrl_sfreq) * np.exp(2 * _epoch_curve(irregular, n_ctrl, ctrl_sfreq) * amp_var)
  return phase, amp


def _lung_volume(phase):
  """Normalised volume in [0, 1]: inspiration 40% of the cycle, smooth at both ends."""
  u = np.mod(phase, 1.0)
  return np.where(u < 0.4, 0.5 * (1 - np.cos(np.pi * u / 0.4)), 0.5 * (1 + np.cos(np.pi * (u - 0.4) / 0.6)))


def _synth_resp(phase_c, amp_c, ctrl_sfreq, p, rng, n_times, sfreq):
  """(3, T) thorax, abdomen (roughly in phase) and airflow, uV."""
  t_ctrl = np.arange(phase_c.size) / ctrl_sfreq
  t = np.arange(n_times) / sfreq
  phase = np.interp(t, t_ctrl, phase_c)
  amp = np.interp(t, t_ctrl, amp_c)
  thorax = 300.0 * amp * (_lung_volume(phase) - 0.5)
  abdomen = 260.0 * amp * (_lung_volume(phase - 0.04) - 0.5)
  flow = np.gradient(_lung_volume(phase), t) / np.maximum(np.gradient(phase, t), 1e-3)  # d volume / d phase
  airflow = 60.0 * amp * flow
  drift = _band_noise(rng, 3, n_times, sfreq, _bandpass_gain(0.005, 0.05, 1)) * np.array([[20.0], [20.0], [5.0]])
  noise = _band_noise(rng, 3, n_times, sfreq, _bandpass_gain(0.5, 0.4 * sfreq, 2)) * 3.0
  return np.stack([thorax, abdomen, airflow]) + drift + noise


def _synth_ecg(hyp, phase_c, ctrl_sfreq, p, rng, n_times, sfreq):
  """(1, T) ECG in uV: Gaussian PQRST beats, stage-dependent rate with RSA."""
  t_ctrl = np.arange(phase_c.size) / ctrl_sfreq
  offset = p.hr_stage_scale * _per_stage(hyp, {W: 8.0, N1: 3.0, N2: 0.0, N3: -4.0, REM: 3.0})
  lf_sd = _per_stage(hyp, {W: 2.5, N1: 1.5, N2: 1.0, N3: 0.6, REM: 3.0})
  rsa_scale = _per_stage(hyp, {W: 0.6, N1: 0.8, N2: 1.0, N3: 1.2, REM: 0.7})
  lf = _band_noise(rng, 1, t_ctrl.size, ctrl_sfreq, _bandpass_gain(0.04, 0.15, 2))[0]
  hr = (p.heart_rate_bpm + _epoch_curve(offset, t_ctrl.size, ctrl_sfreq)
        + _epoch_curve(lf_sd, t_ctrl.size, ctrl_sfreq) * lf
        + p.rsa_bpm * _epoch_curve(rsa_scale, t_ctrl.size, ctrl_sfreq) * np.sin(2 * np.pi * phase_c))  # RSA
  beats_c = np.cumsum(hr / 60.0) / ctrl_sfreq
  # R-peak times: where the cumulative beat count crosses an integer.
  r_times = np.interp(np.arange(1, int(beats_c[-1])), beats_c, t_ctrl) + rng.uniform(0, 0.5)
  r_times = r_times[r_times < n_times / sfreq - 1.0]
  rr = np.diff(r_times, prepend=r_times[0] - 60.0 / p.heart_rate_bpm)
  # (amplitude uV, centre s from R, width s) of P, Q, R, S, T; the T wave follows the
  # RR interval (QT ~ sqrt(RR), Bazett).
  amps = np.array([120.0, -110.0, 1100.0, -260.0, 300.0])
  centres = np.array([-0.19, -0.035, 0.0, 0.035, 0.0])
  widths = np.array([0.025, 0.010, 0.011, 0.012, 0.05])
  pre = 0.35
  t = np.arange(int(1.0 * sfreq)) / sfreq - pre
  pqrs = np.sum(amps[:4, None] * np.exp(-0.5 * ((t[None] - centres[:4, None]) / widths[:4, None]) ** 2), axis=0)
  t_centre = 0.26 * np.sqrt(rr)[:, None]
  t_wave = amps[4] * np.exp(-0.5 * ((t[None] - t_centre) / widths[4]) ** 2)
  waves = rng.normal(1.0, 0.03, (r_times.size, 1)) * (pqrs[None] + t_wave)
  ecg = np.zeros((1, n_times))
  _add_events(ecg, sfreq, r_times - pre, waves, np.ones(1))
  tt = np.arange(n_times) / sfreq
  resp = np.interp(tt, t_ctrl, np.sin(2 * np.pi * phase_c))
  ecg[0] *= 1.0 + 0.05 * resp  # Electrical axis moves with breathing.
  ecg[0] += 40.0 * resp + 5.0 * _band_noise(rng, 1, n_times, sfreq, _bandpass_gain(5.0, 0.45 * sfreq, 2))[0]
  return ecg


def _add_movement_artefacts(signals, hyp, movement, config, rng, n_times_of, sfreq_of):
  """Broadband bursts on every channel (mostly in wake and at stage transitions)."""
  n_ep = hyp.size
  transition = np.concatenate([[False], np.diff(hyp) != 0])
  weight = np.where(hyp == W, 4.0, 0.3) + 6.0 * transition
  n_art = rng.poisson(config.movement_artefacts_per_h * n_ep / 120)
  ep = rng.choice(n_ep, size=n_art, p=weight / weight.sum()) if n_art else np.zeros(0, int)
  onsets = (ep + rng.random(ep.size)) * EPOCH_S
  durations = rng.uniform(2.0, 10.0, ep.size)
  # "Movement time" epochs: the subject moves through most of the epoch.
  mt = np.flatnonzero(movement)
  onsets = np.concatenate([onsets, mt * EPOCH_S + rng.uniform(0, 5, mt.size)])
  durations = np.concatenate([durations, rng.uniform(18.0, 25.0, mt.size)])
  scale = {"eeg": 120.0, "eog": 200.0, "emg": 60.0, "ecg": 300.0, "resp": 400.0}
  for label, x in signals.items():
    mod = MODALITY_OF_CHANNEL[label]
    fs = sfreq_of[mod]
    amp = scale[mod] * rng.lognormal(0.0, 0.4, onsets.size)
    for onset, dur, a in zip(onsets, durations, amp):
      i0 = int(onset * fs)
      i1 = min(int((onset + dur) * fs), n_times_of[mod])
      if i1 - i0 < 4:
        continue
      n = i1 - i0
      slow = np.cumsum(rng.standard_normal(n)) / np.sqrt(fs)
      slow -= np.linspace(slow[0], slow[-1], n)
      fast = rng.standard_normal(n) * (0.3 if mod in ("eeg", "eog") else 1.0)
      x[i0:i1] += a * np.hanning(n) * (slow / max(np.std(slow), 1e-6) * (mod != "emg") + fast)
  return np.sort(onsets)


def _add_position_changes(signals, onsets_s, variability, rng, n_times_of, sfreq_of):
  """Respiratory-belt gain steps at movements (the sleeper turns; belts tighten or slip)."""
  if variability <= 0 or onsets_s.size == 0:
    return
  fs = sfreq_of["resp"]
  n = n_times_of["resp"]
  edges = np.concatenate([[0], np.clip((onsets_s * fs).astype(np.int64), 0, n), [n]])
  for label in RESP_CHANNELS[:2]:
    gain = np.repeat(rng.lognormal(0.0, 0.35 * variability, edges.size - 1), np.diff(edges))
    signals[label] = signals[label] * gain


def _add_sweat_artefacts(signals, rate_per_h, n_epochs, rng, n_times_of, sfreq_of):
  """Sweat artefacts: minutes-long, very slow (0.05-0.5 Hz) swings on a few EEG/EOG channels.

  Sweat changes the electrode-skin potential; the swings reach ~100 uV and do not depend
  on the sleep stage (a classic PSG artefact; AASM manual, technical specifications).
  """
  labels = EEG_CHANNELS + EOG_CHANNELS
  n_sweat = rng.poisson(rate_per_h * n_epochs / 120)
  for _ in range(n_sweat):
    chans = rng.choice(len(labels), size=int(rng.integers(1, 4)), replace=False)
    duration = rng.uniform(120.0, 900.0)
    onset = rng.uniform(0, max(n_epochs * EPOCH_S - duration, 1.0))
    amp = rng.uniform(30.0, 100.0)
    for c in chans:
      label = labels[int(c)]
      fs = sfreq_of[MODALITY_OF_CHANNEL[label]]
      i0 = int(onset * fs)
      n = min(int(duration * fs), n_times_of[MODALITY_OF_CHANNEL[label]] - i0)
      if n < 16:
        continue
      swing = _band_noise(rng, 1, n, fs, _bandpass_gain(0.05, 0.5, 2))[0]
      signals[label][i0:i0 + n] += amp * np.hanning(n) * swing


def _add_electrode_pops(signals, n_epochs, config, rng, n_times_of, sfreq_of):
  """Step + exponential decay on one EEG/EOG channel at a time."""
  labels = EEG_CHANNELS + EOG_CHANNELS
  n_pops = rng.poisson(config.electrode_pops_per_h * n_epochs / 120)
  for _ in range(n_pops):
    label = labels[int(rng.integers(len(labels)))]
    fs = sfreq_of[MODALITY_OF_CHANNEL[label]]
    n_total = n_times_of[MODALITY_OF_CHANNEL[label]]
    tau = rng.uniform(0.2, 1.5)
    i0 = int(rng.integers(0, n_total))
    n = min(int(6 * tau * fs), n_total - i0)
    signals[label][i0:i0 + n] += rng.choice([-1, 1]) * rng.uniform(100, 350) * np.exp(-np.arange(n) / (tau * fs))


def synthesize_night(hypnogram: np.ndarray, subject_params: SubjectParams, rng: np.random.Generator,
                     config: SyntheticConfig, *, movement: np.ndarray | None = None
                     ) -> dict[str, tuple[np.ndarray, float]]:
  """Synthesises every channel of a night from its hypnogram.

  See the module docstring for the physiology modelled. Channels share the same
  physiological drivers (N3 depth, breathing phase, eye state), so cross-modal
  structure (RSA, EOG showing frontal delta) is consistent.

  Args:
    hypnogram: (N,) int AASM stages per 30-s epoch (W=0, N1=1, N2=2, N3=3, REM=4).
    subject_params: the subject's `SubjectParams`.
    rng: random generator (consumed).
    config: rates per modality, artefact rates, mains frequency.
    movement: optional (N,) bool, epochs scored "Movement time" (get a long
      movement artefact).

  Returns:
    Channel label (see `ALL_CHANNELS`) -> (signal (N * 30 * sfreq,) float64 in uV, sfreq Hz).
    Values are clipped to `PHYSICAL_RANGE_UV`, as an amplifier saturates.

  Raises:
    ValueError: on an empty hypnogram or a stage outside 0..4.
  """
  hyp = np.asarray(hypnogram, np.int64)
  if hyp.ndim != 1 or hyp.size == 0:
    raise ValueError(f"hypnogram must be a non-empty 1-D array, got shape {hyp.shape}")
  if hyp.min() < W or hyp.max() > REM:
    raise ValueError(f"hypnogram stages must be AASM 0..4, got values {sorted(set(hyp.tolist()) - set(range(5)))}")
  config.validate()
  p = subject_params
  n_ep = hyp.size
  movement = np.zeros(n_ep, bool) if movement is None else np.asarray(movement, bool)
  sfreq_of = {m: config.sfreq(m) for m in ("eeg", "eog", "emg", "ecg", "resp")}
  n_times_of = {m: int(round(n_ep * EPOCH_S * fs)) for m, fs in sfreq_of.items()}
  depth = n3_depth(hyp)
  # Relaxed wake with eyes closed (alpha, no blinks) vs eyes open: pre-sleep wake in bed
  # is mostly eyes closed, wake after sleep onset half and half.
  first_sleep = int(np.argmax(hyp != W)) if np.any(hyp != W) else n_ep
  p_closed = np.where(np.arange(n_ep) < first_sleep, 0.6, 0.45)
  # Eye state persists over a few epochs: smooth the draws before thresholding.
  closed_score = scipy.signal.lfilter([0.5], [1, -0.5], rng.random(n_ep))
  eyes_closed = (hyp == W) & (closed_score < p_closed)

  eeg = _synth_eeg(hyp, depth, eyes_closed, p, rng, n_times_of["eeg"], sfreq_of["eeg"], config.stage_fluctuation_sd)
  frontal = eeg[_F].astype(np.float64)
  if sfreq_of["eog"] != sfreq_of["eeg"]:
    frontal = scipy.signal.resample_poly(frontal, int(sfreq_of["eog"]), int(sfreq_of["eeg"]), axis=-1)[:, :n_times_of["eog"]]
  eog, blinks = _synth_eog(hyp, eyes_closed, frontal, p, rng, n_times_of["eog"], sfreq_of["eog"])
  if sfreq_of["eog"] == sfreq_of["eeg"]:
    eeg[_F] += 0.12 * blinks.astype(np.float32)  # Frontal EEG picks up blinks.
  emg = _synth_emg(hyp, p, rng, n_times_of["emg"], sfreq_of["emg"], config.stage_fluctuation_sd)
  ctrl_sfreq = 5.0
  phase_c, amp_c = _breathing(hyp, p, rng, int(n_ep * EPOCH_S * ctrl_sfreq), ctrl_sfreq)
  resp = _synth_resp(phase_c, amp_c, ctrl_sfreq, p, rng, n_times_of["resp"], sfreq_of["resp"])
  ecg = _synth_ecg(hyp, phase_c, ctrl_sfreq, p, rng, n_times_of["ecg"], sfreq_of["ecg"])

  signals = {}
  for labels, block, mod in ((EEG_CHANNELS, eeg, "eeg"), (EOG_CHANNELS, eog, "eog"), (EMG_CHANNELS, emg, "emg"),
                             (ECG_CHANNELS, ecg, "ecg"), (RESP_CHANNELS, resp, "resp")):
    channel_gain = p.gains[mod] * rng.lognormal(0.0, 0.05, len(labels))
    for label, x, g in zip(labels, block, channel_gain):
      signals[label] = np.asarray(x, np.float64) * g
  moves = _add_movement_artefacts(signals, hyp, movement, config, rng, n_times_of, sfreq_of)
  _add_electrode_pops(signals, n_ep, config, rng, n_times_of, sfreq_of)
  # Own streams (spawning leaves `rng`'s draws unchanged): turning these on or off changes
  # nothing else in the night.
  position_rng, sweat_rng = rng.spawn(2)
  _add_position_changes(signals, moves, config.subject_variability, position_rng, n_times_of, sfreq_of)
  _add_sweat_artefacts(signals, p.sweat_per_h, n_ep, sweat_rng, n_times_of, sfreq_of)
  out = {}
  for label in ALL_CHANNELS:
    mod = MODALITY_OF_CHANNEL[label]
    fs, n = sfreq_of[mod], n_times_of[mod]
    x = signals[label]
    if mod in ("eeg", "eog", "emg"):
      x = x + p.noise_floor_uv * rng.standard_normal(n)
    if fs / 2 > config.mains_hz * 1.05:  # Below Nyquist only: anti-alias filters remove it otherwise.
      x = x + p.mains_uv * np.sin(2 * np.pi * config.mains_hz * np.arange(n) / fs + rng.uniform(0, 2 * np.pi))
    lim = PHYSICAL_RANGE_UV[mod]
    out[label] = (np.clip(x, -lim, lim), fs)
  return out


# ------------------------------------------------------------------------------- writing


def _start_datetime(seed: int, subject: int, night: int) -> datetime.datetime:
  rng = _rng(seed, subject, night, 3)
  day = datetime.date(1990, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 3650)))
  minutes = 21 * 60 + int(rng.integers(0, 150))  # Recording starts 21:00-23:30.
  return datetime.datetime.combine(day, datetime.time(minutes // 60, minutes % 60))


def generate_night(config: SyntheticConfig, subject: int, night: int = 1) -> SyntheticNight:
  """Generates one night of one subject (deterministic from (config.seed, subject, night)).

  Args:
    config: corpus configuration.
    subject: 0-based subject index.
    night: 1-based night index.

  Returns:
    A `SyntheticNight`.

  Raises:
    ValueError: on a bad configuration or index.
  """
  config.validate()
  if subject < 0 or night < 1:
    raise ValueError(f"subject must be >= 0 and night >= 1, got subject={subject}, night={night}")
  record_id, subject_id = record_ids(subject, night)
  params = sample_subject_params(_rng(config.seed, subject, 0, 0), variability=config.subject_variability,
                                 sweat_per_h=config.sweat_artefacts_per_h)
  hyp_rng = _rng(config.seed, subject, night, 1)
  hyp = generate_hypnogram(hyp_rng, config.duration_h, params, wake_before_min=config.wake_before_min,
                           wake_after_min=config.wake_after_min)
  movement, scoring = score_night(hyp, hyp_rng, config)
  signals = synthesize_night(hyp, params, _rng(config.seed, subject, night, 2), config, movement=movement)
  return SyntheticNight(record_id=record_id, subject_id=subject_id, night=night, params=params, hypnogram=hyp,
                        scoring=scoring, signals=signals, start=_start_datetime(config.seed, subject, night))


def merge_scoring(scoring: Sequence[str]) -> list[tuple[float, float, str]]:
  """Merges consecutive identical epoch labels into (onset_s, duration_s, text) annotations."""
  out = []
  for i, text in enumerate(scoring):
    if out and out[-1][2] == text:
      out[-1] = (out[-1][0], out[-1][1] + EPOCH_S, text)
    else:
      out.append((i * EPOCH_S, EPOCH_S, text))
  return out


def write_night(out_dir: str | os.PathLike, record_id: str, night: SyntheticNight) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes a night as Sleep-EDF-style files.

  `{record_id[:-2]}E0-PSG.edf`: plain EDF, 30-s data records, one signal per channel at
  its own rate, physical dimension uV, physical range per `PHYSICAL_RANGE_UV`, 16-bit.
  `{record_id[:-2]}EH-Hypnogram.edf`: EDF+C annotations only; consecutive identical
  epochs merged, onset 0 at the PSG start, ends at the PSG end.

  Args:
    out_dir: directory (created if needed).
    record_id: e.g. "SN0001E0" (must end in "E0", Sleep-EDF convention).
    night: the `SyntheticNight` to write.

  Returns:
    (psg_path, hypnogram_path).

  Raises:
    ValueError: if record_id does not end in "E0".
    errors.RecordingError: if a file cannot be written.
  """
  if not record_id.endswith("E0") or len(record_id) < 3:
    raise ValueError(f"record_id must look like 'SN0001E0', got {record_id!r}")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  stem = record_id[:-2]
  psg_path = out_dir / f"{stem}E0-PSG.edf"
  hyp_path = out_dir / f"{stem}EH-Hypnogram.edf"
  p = night.params
  sex_word = "Female" if p.sex == "F" else "Male"
  patient = edfio.Patient(code=night.subject_id, sex=p.sex, name="X", additional=[f"{sex_word}_{p.age_years}yr"])
  recording = edfio.Recording(startdate=night.start.date(), hospital_administration_code="X",
                              investigator_technician_code="sleepjax", equipment_code="sleepjax.synthetic",
                              additional=[record_id])
  edf_signals = []
  for label in ALL_CHANNELS:
    x, fs = night.signals[label]
    mod = MODALITY_OF_CHANNEL[label]
    lim = PHYSICAL_RANGE_UV[mod]
    prefilter = "HP:0.1Hz LP:{:g}Hz".format(0.45 * fs)
    edf_signals.append(edfio.EdfSignal(np.clip(x, -lim, lim), fs, label=label, transducer_type=TRANSDUCER[mod],
                                       physical_dimension=PHYSICAL_DIMENSION[mod], physical_range=(-lim, lim),
                                       prefiltering=prefilter))
  try:
    psg = edfio.Edf(edf_signals, patient=patient, recording=recording, starttime=night.start.time(),
                    data_record_duration=EPOCH_S)
    psg.write(psg_path)
    annotations = [edfio.EdfAnnotation(onset, duration, text) for onset, duration, text in merge_scoring(night.scoring)]
    hyp_edf = edfio.Edf([], patient=patient, recording=recording, starttime=night.start.time(), annotations=annotations)
    hyp_edf.write(hyp_path)
  except (OSError, ValueError) as e:
    raise errors.RecordingError(psg_path, f"cannot write synthetic night: {e}") from e
  return psg_path, hyp_path


def write_corpus(out_dir: str | os.PathLike, config: SyntheticConfig = SyntheticConfig()) -> list[RecordInfo]:
  """Generates and writes every night of a synthetic corpus.

  Args:
    out_dir: directory for the EDF files (created if needed).
    config: what to generate.

  Returns:
    One `RecordInfo` per night, ordered by subject then night.

  Raises:
    ValueError: on a bad configuration.
  """
  config.validate()
  infos = []
  for subject in range(config.n_subjects):
    for night_index in range(1, config.nights_per_subject + 1):
      night = generate_night(config, subject, night_index)
      psg_path, hyp_path = write_night(out_dir, night.record_id, night)
      infos.append(RecordInfo(record_id=night.record_id, subject_id=night.subject_id, night=night_index,
                              psg_path=psg_path, hypnogram_path=hyp_path))
  return infos
