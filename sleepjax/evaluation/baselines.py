"""Classic feature baselines of the transfer tasks, scored like the networks (docs/transfer.md "Baselines").

Each baseline maps the unscaled windows of a split (microvolts at the dataset's own rate) to
hand-made features and a scikit-learn classifier:
  band_power  EEG: Welch log band power per channel (MNE) + standardised logistic regression.
  csp_lda     motor imagery: 8-30 Hz band-pass (MNE) + `mne.decoding.CSP` log-variance + LDA
              (Ramoser et al. 2000; Blankertz et al. 2008).
  ecg_beat    beat classes (MIT-BIH): RR intervals of the centre beat and its morphology (de Chazal
              et al. 2004) + histogram gradient boosting.
  ecg_rhythm  rhythm classes (CinC 2017) and multilabel ECG: RR statistics, a median-beat template
              per lead and spectral power + gradient boosting (single-label) or one logistic
              regression per label (multilabel).
The classifier's log-probabilities are returned as logits, so that `evaluators.logits_metrics`
gives the same metrics as for the networks (and, multilabel, thresholds chosen on validation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.signal

# Band edges in Hz: delta, theta, alpha/mu, beta, low gamma (the motor-imagery bands 8-13 and 13-30 Hz among them).
EEG_BANDS = ((1.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))
# Probability floor of a class the classifier never saw (log 1e-6 as its logit).
_EPS = 1e-6

BASELINES = ("band_power", "csp_lda", "ecg_beat", "ecg_rhythm")
DESCRIPTIONS = {
    "band_power": "Welch log band power per channel (1-4-8-13-30-45 Hz) + standardised logistic regression",
    "csp_lda": "8-30 Hz band-pass + mne.decoding.CSP (6 log-variance components) + LDA",
    "ecg_beat": "centre-beat RR intervals + beat morphology (2 leads) + HistGradientBoosting",
    "ecg_rhythm": "RR statistics + median-beat template per lead + spectral power + HistGradientBoosting "
                  "(multilabel: logistic regression per label)",
}


# ----------------------------------------------------------------------------------------------
# Features.
# ----------------------------------------------------------------------------------------------


def band_power_features(x: np.ndarray, sfreq: float, bands: Sequence[tuple[float, float]] = EEG_BANDS) -> np.ndarray:
  """Log10 band power per channel and band (Welch, `mne.time_frequency.psd_array_welch`).

  Args:
    x: (N, C, T) float signals in uV at `sfreq` Hz.
    sfreq: Hz.
    bands: (low, high) Hz edges; bands above Nyquist are clipped to it.

  Returns:
    (N, C * len(bands)) float64, log10 uV^2 (channel-major).

  Raises:
    ValueError: x is not 3-D.
  """
  import mne  # pylint: disable=g-import-not-at-top  # Lazy: seconds to import.
  x = np.asarray(x, np.float64)
  if x.ndim != 3:
    raise ValueError(f"band_power_features: signals must be (N, C, T), got shape {x.shape}")
  n_fft = int(min(x.shape[-1], round(2 * sfreq)))  # 2-s segments: 0.5-Hz bins.
  psd, freqs = mne.time_frequency.psd_array_welch(x, sfreq, fmin=0.0, fmax=sfreq / 2, n_fft=n_fft, verbose="error")
  df = freqs[1] - freqs[0] if len(freqs) > 1 else 1.0
  out = []
  for lo, hi in bands:
    sel = (freqs >= lo) & (freqs < min(hi, sfreq / 2))
    power = psd[..., sel].sum(-1) * df if np.any(sel) else np.zeros(psd.shape[:-1])
    out.append(np.log10(power + 1e-12))
  return np.stack(out, axis=-1).reshape(len(x), -1)


def _bandpass(x: np.ndarray, sfreq: float, lo: float, hi: float) -> np.ndarray:
  """Zero-phase Butterworth band-pass (order 3) along the last axis; `hi` clipped below Nyquist."""
  hi = min(hi, 0.45 * sfreq)
  sos = scipy.signal.butter(3, (lo, hi), btype="bandpass", fs=sfreq, output="sos")
  return scipy.signal.sosfiltfilt(sos, x, axis=-1)


def r_peaks(ecg: np.ndarray, sfreq: float) -> np.ndarray:
  """R-peak sample indices of one lead (5-20 Hz band-pass, `scipy.signal.find_peaks`, 0.25-s refractory).

  Args:
    ecg: (T,) float, any unit, at `sfreq` Hz.

  Returns:
    (n,) int sorted sample indices (possibly empty).
  """
  ecg = np.asarray(ecg, np.float64)
  if ecg.size < int(sfreq) or not np.any(ecg):
    return np.zeros(0, int)
  y = _bandpass(ecg, sfreq, 5.0, 20.0)
  # Polarity: the sign of the largest deflection (inverted leads, V1).
  if np.abs(y.min()) > 1.5 * np.abs(y.max()):
    y = -y
  height = 0.35 * np.percentile(y, 99.5)
  peaks, _ = scipy.signal.find_peaks(y, height=height, distance=max(1, int(0.25 * sfreq)))
  return peaks


def _segments(lead: np.ndarray, peaks: np.ndarray, sfreq: float, pre_s: float = 0.25, post_s: float = 0.45,
              n_points: int = 16) -> np.ndarray:
  """(n_peaks_inside, n_points) beats around each peak, resampled to `n_points` samples."""
  pre, post = int(pre_s * sfreq), int(post_s * sfreq)
  segs = [lead[p - pre:p + post] for p in peaks if p - pre >= 0 and p + post <= len(lead)]
  if not segs:
    return np.zeros((0, n_points))
  return scipy.signal.resample(np.stack(segs), n_points, axis=-1)


def ecg_beat_features(x: np.ndarray, sfreq: float) -> np.ndarray:
  """Features of the beat at the centre of each window (MIT-BIH `context`: the annotated R peak).

  RR intervals to the neighbouring detected beats, their ratio, the mean RR of the window and the
  centre beat's ratio to it (de Chazal et al. 2004: pre-RR, post-RR, local average RR), and per
  lead the beat from 0.25 s before to 0.45 s after the centre resampled to 16 points, its
  peak-to-peak amplitude and QRS energy (band-passed 5-20 Hz).

  Args:
    x: (N, C, T) float ECG in uV at `sfreq` Hz, the annotated beat at T // 2.

  Returns:
    (N, 5 + C * 19) float64 (NaN where an interval is undefined; gradient boosting handles NaN).
  """
  x = np.asarray(x, np.float64)
  n, n_ch, t = x.shape
  centre = t // 2
  pre, post = int(0.25 * sfreq), int(0.45 * sfreq)
  lo, hi = max(0, centre - pre), min(t, centre + post)
  base = _bandpass(x, sfreq, 0.5, 40.0)
  qrs = _bandpass(x, sfreq, 5.0, 20.0)
  feats = np.full((n, 5 + n_ch * 19), np.nan)
  for i in range(n):
    peaks = r_peaks(x[i, 0], sfreq)
    if len(peaks):
      # The detected peak nearest the centre stands for the annotated one.
      j = int(np.argmin(np.abs(peaks - centre)))
      rr = np.diff(peaks) / sfreq
      rr_prev = rr[j - 1] if j >= 1 else np.nan
      rr_next = rr[j] if j < len(rr) else np.nan
      mean_rr = float(np.mean(rr)) if len(rr) else np.nan
      feats[i, :5] = (rr_prev, rr_next, rr_prev / rr_next if rr_next else np.nan, mean_rr,
                      rr_prev / mean_rr if mean_rr else np.nan)
    for c in range(n_ch):
      beat = base[i, c, lo:hi]
      k = 5 + c * 19
      feats[i, k:k + 16] = scipy.signal.resample(beat - np.median(beat), 16)
      feats[i, k + 16] = np.ptp(beat)
      feats[i, k + 17] = np.log(np.sum(qrs[i, c, lo:hi] ** 2) + 1e-6)
      feats[i, k + 18] = (np.argmax(np.abs(qrs[i, c, lo:hi])) - (centre - lo)) / sfreq
  return feats


def ecg_rhythm_features(x: np.ndarray, sfreq: float) -> np.ndarray:
  """Rhythm and morphology features of whole ECG windows (CinC 2017, PTB-XL).

  On the first lead: beat count, mean / std / min / max / coefficient of variation of the RR
  intervals, RMSSD, pNN50, the median absolute successive difference relative to the mean RR (AF
  irregularity). Per lead: the median beat template (0.25 s before to 0.45 s after each R peak)
  resampled to 16 points and its amplitude, and the log fraction of power in 0.5-5, 5-15, 15-40
  and 40+ Hz (noise). Zero-padded tails (short CinC records) are cut before analysis.

  Args:
    x: (N, C, T) float ECG in uV at `sfreq` Hz.

  Returns:
    (N, 9 + C * 21) float64 (NaN where undefined).
  """
  x = np.asarray(x, np.float64)
  n, n_ch, _ = x.shape
  feats = np.full((n, 9 + n_ch * 21), np.nan)
  for i in range(n):
    nonzero = np.flatnonzero(np.any(x[i] != 0, axis=0))
    rec = x[i, :, :nonzero[-1] + 1] if len(nonzero) else x[i]
    if rec.shape[-1] < 2 * sfreq:
      continue
    base = _bandpass(rec, sfreq, 0.5, 40.0)
    peaks = r_peaks(rec[0], sfreq)
    rr = np.diff(peaks) / sfreq
    if len(rr) >= 2:
      d = np.diff(rr)
      feats[i, :9] = (len(peaks) / (rec.shape[-1] / sfreq), rr.mean(), rr.std(), rr.min(), rr.max(),
                      rr.std() / rr.mean(), np.sqrt(np.mean(d ** 2)), np.mean(np.abs(d) > 0.05),
                      np.median(np.abs(d)) / rr.mean())
    freqs, psd = scipy.signal.welch(rec, sfreq, nperseg=min(rec.shape[-1], int(2 * sfreq)), axis=-1)
    total = psd.sum(-1) + 1e-12
    for c in range(n_ch):
      k = 9 + c * 21
      segs = _segments(base[c], peaks, sfreq)
      if len(segs):
        template = np.median(segs, axis=0)
        feats[i, k:k + 16] = template - np.median(template)
        feats[i, k + 16] = np.ptp(template)
      for b, (lo, hi) in enumerate(((0.5, 5.0), (5.0, 15.0), (15.0, 40.0), (40.0, np.inf))):
        sel = (freqs >= lo) & (freqs < hi)
        feats[i, k + 17 + b] = np.log(psd[c, sel].sum() / total[c] + 1e-9)
  return feats


def csp_filter(x: np.ndarray, sfreq: float) -> np.ndarray:
  """8-30 Hz (mu and beta) FIR band-pass of motor-imagery windows (`mne.filter.filter_data`)."""
  import mne  # pylint: disable=g-import-not-at-top
  return mne.filter.filter_data(np.asarray(x, np.float64), sfreq, 8.0, 30.0, verbose="error")


# ----------------------------------------------------------------------------------------------
# Classifiers.
# ----------------------------------------------------------------------------------------------


def _make_classifier(name: str, seed: int, n_channels: int = 64, n_classes: int = 2):
  from sklearn import discriminant_analysis, ensemble, linear_model, pipeline, preprocessing  # pylint: disable=g-import-not-at-top
  if name == "band_power":
    return pipeline.make_pipeline(preprocessing.StandardScaler(),
                                  linear_model.LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
  if name == "csp_lda":
    import mne.decoding  # pylint: disable=g-import-not-at-top
    return pipeline.make_pipeline(mne.decoding.CSP(n_components=min(6, n_channels), reg="ledoit_wolf", log=True),
                                  # Equal priors: frequency priors make a weak LDA predict the majority
                                  # class (rest is half of EEGMMIDB's windows) and balanced accuracy is the metric.
                                  discriminant_analysis.LinearDiscriminantAnalysis(
                                      priors=np.full(n_classes, 1.0 / n_classes)))
  if name in ("ecg_beat", "ecg_rhythm"):
    return ensemble.HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, class_weight="balanced",
                                                   early_stopping=False, random_state=seed)
  raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")


def features(name: str, x: np.ndarray, sfreq: float) -> np.ndarray:
  """The input of baseline `name`'s classifier: features (N, F), or band-passed (N, C, T) for csp_lda.

  Raises:
    ValueError: unknown baseline.
  """
  if name == "band_power":
    return band_power_features(x, sfreq)
  if name == "csp_lda":
    return csp_filter(x, sfreq)
  if name == "ecg_beat":
    return ecg_beat_features(x, sfreq)
  if name == "ecg_rhythm":
    return ecg_rhythm_features(x, sfreq)
  raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")


def _log_proba(clf, z: np.ndarray, num_classes: int) -> np.ndarray:
  """(N, K) log-probabilities over all K classes (classes unseen in training get log 1e-6)."""
  out = np.full((len(z), num_classes), np.log(_EPS))
  out[:, np.asarray(clf.classes_, int)] = np.log(np.clip(clf.predict_proba(z), _EPS, 1.0))
  return out


def _fill_nan(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """NaN -> the training column median (0 where a column is all NaN), for the linear classifiers."""
  med = np.nanmedian(np.where(np.isfinite(train), train, np.nan), axis=0) if train.ndim == 2 else None
  med = np.where(np.isfinite(med), med, 0.0)
  return [np.where(np.isfinite(a), a, med) for a in (train, *others)]


def fit_predict(name: str, train: Mapping[str, np.ndarray], evaluate: Mapping[str, Mapping[str, np.ndarray]],
                sfreq: float, num_classes: int, *, seed: int = 0) -> dict[str, np.ndarray]:
  """Fits baseline `name` on `train` and returns logits for each split of `evaluate`.

  Args:
    name: one of `BASELINES`.
    train: {"signals": (N, C, T) float uV at `sfreq` Hz (unscaled), "mask": (N, C) bool,
      "label": (N,) int class indices, or (N, L) 0/1 (multilabel)}.
    evaluate: {split: arrays like `train`}.
    sfreq: Hz of the signals.
    num_classes: K classes (or L labels).
    seed: the gradient-boosting seed.

  Returns:
    {split: (N_split, K) float64 logits}: log-probabilities (single-label; classes the training set
    lacks get log 1e-6; with one training class, or no more examples than classes, the training
    class frequencies), or log-odds per label (multilabel; a label with one training class gets
    its training frequency, clipped to [1e-6, 1 - 1e-6]).

  Raises:
    ValueError: unknown baseline, or csp_lda on a multilabel task.
  """
  y = np.asarray(train["label"])
  z_train = features(name, _masked(train), sfreq)
  z_eval = {s: features(name, _masked(a), sfreq) for s, a in evaluate.items()}
  if name != "csp_lda":
    filled = _fill_nan(z_train, *z_eval.values())
    z_train, z_eval = filled[0], dict(zip(z_eval, filled[1:]))
  if y.ndim == 2:
    if name == "csp_lda":
      raise ValueError("baseline csp_lda needs single-label classes, the task is multilabel")
    return _fit_multilabel(z_train, y, z_eval, seed)
  classes, counts = np.unique(y, return_counts=True)
  if len(classes) < 2 or len(y) <= len(classes):
    # Nothing to fit (one training class, or LDA's n > K unmet: the builders' dummy data): the
    # training class frequencies as a constant prediction.
    logits = np.full(num_classes, np.log(_EPS))
    logits[classes] = np.log(counts / counts.sum())
    return {s: np.tile(logits, (len(z), 1)) for s, z in z_eval.items()}
  import mne  # pylint: disable=g-import-not-at-top
  with mne.utils.use_log_level("error"):  # CSP logs every covariance estimate.
    clf = _make_classifier(name, seed, np.shape(train["signals"])[1], len(classes)).fit(z_train, y)
  return {s: _log_proba(clf, z, num_classes) for s, z in z_eval.items()}


def _masked(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
  """Signals with masked channels zeroed (a baseline sees what the network sees)."""
  return np.asarray(arrays["signals"]) * np.asarray(arrays["mask"])[..., None]


def _fit_multilabel(z_train, y, z_eval, seed) -> dict[str, np.ndarray]:
  from sklearn import linear_model, pipeline, preprocessing  # pylint: disable=g-import-not-at-top
  del seed
  out = {s: np.zeros((len(z), y.shape[1])) for s, z in z_eval.items()}
  for j in range(y.shape[1]):
    if len(np.unique(y[:, j])) < 2:
      p = np.clip(y[:, j].mean(), _EPS, 1 - _EPS)
      for s in out:
        out[s][:, j] = np.log(p / (1 - p))
      continue
    clf = pipeline.make_pipeline(preprocessing.StandardScaler(),
                                 linear_model.LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    clf.fit(z_train, y[:, j])
    for s, z in z_eval.items():
      out[s][:, j] = clf.decision_function(z)
  return out


def run(names: Sequence[str], data: Mapping[str, Mapping[str, np.ndarray]], sfreq: float, class_names: Sequence[str],
        metrics_fn: Callable[..., dict[str, float]], thresholds_fn: Callable | None = None, *,
        seed: int = 0) -> dict[str, dict[str, float]]:
  """Fits every baseline on data["train"] and scores data["test"] with `metrics_fn`.

  Args:
    names: baselines to run (`BASELINES`).
    data: {"train", "validation", "test": arrays} (unscaled uV at `sfreq` Hz).
    sfreq: Hz.
    class_names: K names (L multilabel).
    metrics_fn: (labels, logits, class_names, thresholds) -> metrics (`evaluators.logits_metrics`).
    thresholds_fn: (labels, logits) -> (L,) thresholds chosen on validation (multilabel only).
    seed: classifier seed.

  Returns:
    {name: test metrics}.
  """
  out = {}
  for name in names:
    logits = fit_predict(name, data["train"], {"validation": data["validation"], "test": data["test"]}, sfreq,
                         len(class_names), seed=seed)
    thresholds = None
    if np.ndim(data["train"]["label"]) == 2:
      thresholds = thresholds_fn(data["validation"]["label"], logits["validation"])
    out[name] = metrics_fn(data["test"]["label"], logits["test"], class_names, thresholds)
  return out
