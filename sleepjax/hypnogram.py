"""A scored night: per-epoch stages, optionally a stager's probabilities, and their exports.

`Hypnogram` extends the hypnogram that sleepjax reads from files (`sleepjax.data.hypnogram.
Hypnogram`: 30-s AASM stages on the PSG timeline), so that anything accepting one accepts the
other, and adds what a stager's output has and a user needs (docs/staging.md):

  hyp = sleepjax.stage("night.edf", "/tmp/sleepmg_tiny")      # -> Hypnogram
  hyp.stages, hyp.probabilities, hyp.confidence, hyp.onsets   # (N,), (N, 5), (N,), (N,) seconds
  hyp.sleep_statistics()                                      # AASM / YASA definitions, minutes
  hyp.to_csv(path); hyp.to_edf_annotations(path); hyp.plot(path); hyp.to_yasa()

Stages are AASM integers (sleepjax.data.stages: W=0, N1=1, N2=2, N3=3, REM=4, UNSCORED=-1,
MOVEMENT=-2). Only NumPy is imported here; pandas, matplotlib, edfio and yasa when a method
needs them.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib

import numpy as np

from sleepjax.data import hypnogram as data_hypnogram
from sleepjax.data import stages as stages_lib

EPOCH_S = data_hypnogram.EPOCH_S
# EDF+ annotation texts (AASM Manual v2.6 stage names W, N1, N2, N3, R). "Sleep stage ?" is
# Sleep-EDF's unscored epoch; `sleepjax.data.stages.map_stage_text` reads all of them back.
EDF_TEXTS = {stages_lib.W: "Sleep stage W", stages_lib.N1: "Sleep stage N1",
             stages_lib.N2: "Sleep stage N2", stages_lib.N3: "Sleep stage N3",
             stages_lib.REM: "Sleep stage R", stages_lib.UNSCORED: "Sleep stage ?",
             stages_lib.MOVEMENT: "Movement time"}
# YASA's stage strings (yasa.Hypnogram, 5 stages): artefact / unscored epochs are ART / UNS.
YASA_LABELS = {stages_lib.W: "WAKE", stages_lib.N1: "N1", stages_lib.N2: "N2", stages_lib.N3: "N3",
               stages_lib.REM: "REM", stages_lib.UNSCORED: "UNS", stages_lib.MOVEMENT: "ART"}
# Names in CSV files and tables: sleepjax.data.stages.STAGE_NAMES plus the two non-stages.
STAGE_LABELS = {**dict(enumerate(stages_lib.STAGE_NAMES)), stages_lib.UNSCORED: "?",
                stages_lib.MOVEMENT: "MT"}
SLEEP = (stages_lib.N1, stages_lib.N2, stages_lib.N3, stages_lib.REM)


@dataclasses.dataclass(frozen=True)
class Hypnogram(data_hypnogram.Hypnogram):
  """Stages of consecutive 30-s epochs, with a stager's probabilities when it made them.

  Attributes (beyond `sleepjax.data.hypnogram.Hypnogram`'s stages, onset_s, path):
    probabilities: (N, 5) float32 softmax of the stager, columns W, N1, N2, N3, REM, rows summing
      to 1; NaN rows for epochs the stager could not score (their stage is UNSCORED); None for
      an expert hypnogram.
    start: the PSG's start (EDF header), or None; used for absolute times in exports.
    record_id: the night's id (e.g. the EDF file's stem), or None.
    scorer: who scored it (e.g. the model's path, or "expert"), or None.
    channels: {model channel name: file label} a stager read, or None.

  Raises:
    AnnotationError: stages not 1-D or outside the AASM codes (the base class).
    ValueError: probabilities not of shape (N, 5).
  """

  probabilities: np.ndarray | None = None
  start: datetime.datetime | None = None
  record_id: str | None = None
  scorer: str | None = None
  channels: dict[str, str] | None = None

  def __post_init__(self):
    super().__post_init__()
    if self.probabilities is not None:
      p = np.asarray(self.probabilities, np.float32)
      if p.shape != (self.n_epochs, stages_lib.NUM_STAGES):
        raise ValueError(f"probabilities must be ({self.n_epochs}, {stages_lib.NUM_STAGES}), got {p.shape}")
      object.__setattr__(self, "probabilities", p)

  @classmethod
  def from_hypnogram(cls, hyp: data_hypnogram.Hypnogram, **kwargs) -> "Hypnogram":
    """This type from a hypnogram read by `sleepjax.data.hypnogram.read_hypnogram`."""
    return cls(stages=hyp.stages, onset_s=hyp.onset_s, path=hyp.path, **kwargs)

  @property
  def onsets(self) -> np.ndarray:
    """(N,) float64 seconds from the PSG start to the start of each epoch."""
    return self.onset_s + EPOCH_S * np.arange(self.n_epochs, dtype=np.float64)

  @property
  def confidence(self) -> np.ndarray | None:
    """(N,) float32 probability of the predicted stage (max over the 5 columns), NaN where unscored."""
    if self.probabilities is None:
      return None
    p = self.probabilities
    out = np.full((self.n_epochs,), np.nan, np.float32)
    ok = np.isfinite(p).all(axis=1)
    out[ok] = p[ok].max(axis=1)
    return out

  @property
  def labels(self) -> list[str]:
    """(N,) stage names: W, N1, N2, N3, REM, "?" (unscored), "MT" (movement)."""
    return [STAGE_LABELS[int(s)] for s in self.stages]

  # ------------------------------------------------------------------------------------------
  # Statistics.
  # ------------------------------------------------------------------------------------------

  def sleep_statistics(self) -> dict[str, float]:
    """Sleep statistics with YASA's keys and definitions (AASM terminology), from the stages.

    Durations are minutes, SE / SME / %stage percent, SFI transitions per hour. As
    `yasa.Hypnogram.sleep_statistics` (YASA 0.8; Vallat & Walker 2021) following the AASM manual
    (Iber 2007; Silber et al. 2007), with N epochs of 30 s:

      TIB       N / 2: the whole hypnogram.
      SPT       first to last sleep epoch (N1, N2, N3, REM) inclusive; 0 without sleep.
      WASO      wake epochs within SPT (NaN without sleep).
      TST       sleep epochs within SPT (unscored and movement epochs excluded).
      SE        100 TST / TIB.          SME: 100 TST / SPT (NaN when SPT = 0).
      SFI       sleep -> wake transitions per hour of TST (NaN when SPT = 0).
      SOL       start to the first sleep epoch (NaN without sleep).
      SOL_5min  start to the first run of >= 5 min (10 epochs) of uninterrupted sleep, or NaN.
      Lat_REM   start to the first REM epoch (YASA's; the AASM's REM latency is Lat_REM - SOL).
      Lat_N1, Lat_N2, Lat_N3  the same for N1, N2, N3 (not in YASA 0.8; YASA <= 0.6 had them).
      WAKE, N1, N2, N3, REM   minutes in each stage over the whole hypnogram; ART (movement)
                              and UNS (unscored) only when present.
      %N1, %N2, %N3, %REM     100 stage minutes / TST (NaN when TST = 0).

    Every value is rounded to 4 decimals, as YASA does.

    Returns:
      {key: float}, in the order above.

    Raises:
      ValueError: the hypnogram is empty.
    """
    s = self.stages
    n = s.size
    if n == 0:
      raise ValueError(f"{self.path or self.record_id or 'hypnogram'}: no epochs")
    per_min = 60.0 / EPOCH_S
    is_sleep = np.isin(s, SLEEP)
    idx = np.flatnonzero(is_sleep)
    has = idx.size > 0
    first, last = (int(idx[0]), int(idx[-1])) if has else (0, n)
    spt = slice(first, last + 1)
    st: dict[str, float] = {}
    st["TIB"] = n / per_min
    st["SPT"] = (last + 1 - first) / per_min if has else 0.0
    st["WASO"] = np.sum(s[spt] == stages_lib.W) / per_min if has else np.nan
    st["TST"] = np.sum(is_sleep[spt]) / per_min
    st["SE"] = 100.0 * st["TST"] / st["TIB"]
    if st["SPT"] == 0:
      st["SME"], st["SFI"] = np.nan, np.nan
    else:
      st["SME"] = 100.0 * st["TST"] / st["SPT"]
      st["SFI"] = np.count_nonzero(is_sleep[:-1] & (s[1:] == stages_lib.W)) / (st["TST"] / 60.0)
    st["SOL"] = first / per_min if st["TST"] > 0 else np.nan
    run_start = _first_run(is_sleep, int(np.ceil(5 * per_min - 1e-9)))
    st["SOL_5min"] = run_start / per_min if run_start is not None else np.nan
    for stage, key in ((stages_lib.REM, "Lat_REM"), (stages_lib.N1, "Lat_N1"), (stages_lib.N2, "Lat_N2"),
                       (stages_lib.N3, "Lat_N3")):
      hit = np.flatnonzero(s == stage)
      st[key] = hit[0] / per_min if hit.size else np.nan
    for stage, key in ((stages_lib.W, "WAKE"), (stages_lib.N1, "N1"), (stages_lib.N2, "N2"),
                       (stages_lib.N3, "N3"), (stages_lib.REM, "REM"), (stages_lib.MOVEMENT, "ART"),
                       (stages_lib.UNSCORED, "UNS")):
      count = int(np.sum(s == stage))
      if key in ("ART", "UNS") and count == 0:
        continue
      st[key] = count / per_min
    for key in ("N1", "N2", "N3", "REM"):
      st[f"%{key}"] = 100.0 * st[key] / st["TST"] if st["TST"] > 0 else np.nan
    return {k: float(np.round(v, 4)) for k, v in st.items()}

  # ------------------------------------------------------------------------------------------
  # Exports.
  # ------------------------------------------------------------------------------------------

  def to_yasa(self):
    """A `yasa.Hypnogram` (5 stages, 30 s, YASA's labels; `proba` when probabilities exist).

    Raises:
      ImportError: yasa is not installed (`pip install sleepjax[benchmarks]` or `pip install yasa`).
    """
    try:
      import yasa  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("Hypnogram.to_yasa needs yasa: pip install yasa") from e
    import pandas as pd  # pylint: disable=g-import-not-at-top
    values = [YASA_LABELS[int(x)] for x in self.stages]
    proba = None
    if self.probabilities is not None and np.isfinite(self.probabilities).all():
      proba = pd.DataFrame(self.probabilities.astype(np.float64), columns=["WAKE", "N1", "N2", "N3", "REM"])
    start = None
    if self.start is not None:
      start = pd.Timestamp(self.start) + pd.Timedelta(seconds=self.onset_s)
    return yasa.Hypnogram(values, n_stages=5, freq="30s", start=start, scorer=self.scorer, proba=proba)

  @classmethod
  def from_yasa(cls, hyp, *, start: datetime.datetime | None = None, **kwargs) -> "Hypnogram":
    """This type from a `yasa.Hypnogram`, or from YASA's integer codes (docs/hypnograms.md).

    YASA's strings (WAKE, N1, N2, N3, REM, UNS, ART, and the 2- and 4-stage sets' SLEEP / LIGHT /
    DEEP are refused) or integers (W=0..REM=4, ART=-1, UNS=-2: -1 and -2 are swapped relative to
    sleepjax's UNSCORED=-1, MOVEMENT=-2). Epochs other than 30 s (a yasa.Hypnogram's `freq`) are
    converted by majority; YASA's `proba` (30 s only) becomes `probabilities`.

    Args:
      hyp: a yasa.Hypnogram, or a (N,) array of YASA's integer codes at 30 s.
      start: the PSG start, when hyp carries none.
      **kwargs: other fields (record_id=, scorer=, ...).

    Returns:
      A Hypnogram (onset_s 0: YASA hypnograms start with the recording).

    Raises:
      ValueError: a yasa.Hypnogram with other than 5 stages, or an unknown label.
    """
    if not hasattr(hyp, "hypno"):  # YASA's integer codes
      return cls(stages=stages_lib.from_yasa_codes(hyp), start=start, **kwargs)
    import pandas as pd  # pylint: disable=g-import-not-at-top
    if getattr(hyp, "n_stages", 5) != 5:
      raise ValueError(f"a {hyp.n_stages}-stage yasa.Hypnogram has no AASM stages; use n_stages=5")
    inverse = {v: k for k, v in YASA_LABELS.items()}
    values = [str(v).upper() for v in hyp.hypno.tolist()]
    unknown = sorted(set(values) - set(inverse))
    if unknown:
      raise ValueError(f"yasa.Hypnogram labels {unknown} are not among {sorted(inverse)}")
    stages = np.array([inverse[v] for v in values], np.int32)
    epoch_s = pd.Timedelta(hyp.freq).total_seconds()
    proba = None
    if epoch_s != EPOCH_S:
      stages = data_hypnogram.to_30s(stages, epoch_s)
    elif getattr(hyp, "proba", None) is not None:
      proba = hyp.proba[["WAKE", "N1", "N2", "N3", "REM"]].to_numpy(np.float32)
    if start is None and getattr(hyp, "start", None) is not None:
      start = pd.Timestamp(hyp.start).to_pydatetime()
    kwargs.setdefault("scorer", getattr(hyp, "scorer", None))
    return cls(stages=stages, probabilities=proba, start=start, **kwargs)

  def to_csv(self, path: str | os.PathLike) -> pathlib.Path:
    """Writes one row per 30-s epoch: onset (s), duration (s), stage, confidence, P(W)..P(REM).

    Columns: `onset_s,duration_s,stage,confidence,p_W,p_N1,p_N2,p_N3,p_REM` (probability columns
    only with probabilities; empty cells where an epoch was not scored). Stage names are W, N1,
    N2, N3, REM, "?" (unscored), "MT" (movement).

    Returns:
      The path written.
    """
    path = pathlib.Path(path)
    cols = ["onset_s", "duration_s", "stage"]
    if self.probabilities is not None:
      cols += ["confidence"] + [f"p_{n}" for n in stages_lib.STAGE_NAMES]
    conf = self.confidence
    lines = [",".join(cols)]
    for i, (onset, label) in enumerate(zip(self.onsets, self.labels)):
      row = [f"{onset:.3f}", f"{EPOCH_S:g}", label]
      if self.probabilities is not None:
        p = self.probabilities[i]
        row += ["" if not np.isfinite(conf[i]) else f"{conf[i]:.6f}"]
        row += ["" if not np.isfinite(x) else f"{x:.6f}" for x in p]
      lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path

  def to_edf_annotations(self, path: str | os.PathLike) -> pathlib.Path:
    """Writes an EDF+ file holding only annotations: one per run of equal stages (edfio).

    Texts are "Sleep stage W/N1/N2/N3/R" (AASM names), "Sleep stage ?" (unscored) and
    "Movement time"; onsets are seconds from the PSG start (the file's start time is the PSG's
    when known). `mne.read_annotations(path)` and `sleepjax.data.read_hypnogram(path)` read it
    back.

    Returns:
      The path written.
    """
    import edfio  # pylint: disable=g-import-not-at-top
    path = pathlib.Path(path)
    s = self.stages
    anns = []
    if s.size:
      change = np.flatnonzero(np.diff(s)) + 1
      starts = np.concatenate([[0], change])
      ends = np.concatenate([change, [s.size]])
      for a, b in zip(starts, ends):
        anns.append(edfio.EdfAnnotation(float(self.onset_s + EPOCH_S * a), float(EPOCH_S * (b - a)),
                                        EDF_TEXTS[int(s[a])]))
    start = self.start
    kwargs = {}
    if start is not None:
      kwargs["recording"] = edfio.Recording(startdate=start.date())
      kwargs["starttime"] = start.time().replace(microsecond=0)
    # An annotation-only EDF+ (one data record of duration 0, EDF+ spec section 2.2.4; edfio).
    edf = edfio.Edf([], annotations=anns, **kwargs)
    edf.write(path)
    return path

  def plot(self, path: str | os.PathLike | None = None, *, title: str | None = None):
    """Hypnogram (top) and the stacked stage probabilities (bottom), against hours from the start.

    Args:
      path: where to save the figure (PNG, PDF... from the extension); None: only return it.
      title: the figure title (default: record_id).

    Returns:
      The matplotlib Figure (closed after saving when `path` is given).
    """
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    colors = ["#e6a040", "#9ecae1", "#4292c6", "#08306b", "#d6604d"]
    # Hypnogram row order, top to bottom: W, REM, N1, N2, N3 (the usual clinical display).
    order = [stages_lib.W, stages_lib.REM, stages_lib.N1, stages_lib.N2, stages_lib.N3]
    level = {st: -i for i, st in enumerate(order)}
    hours = np.concatenate([self.onsets, [self.end_s]]) / 3600.0
    rows = 2 if self.probabilities is not None else 1
    fig, axes = plt.subplots(rows, 1, figsize=(10, 2.2 * rows + 0.6), sharex=True, squeeze=False)
    ax = axes[0, 0]
    y = np.array([level.get(int(x), np.nan) for x in self.stages], np.float64)
    ax.step(hours, np.concatenate([y, y[-1:]]) if y.size else y, where="post", color="k", lw=1)
    rem = np.where(self.stages == stages_lib.REM, y, np.nan)
    ax.step(hours, np.concatenate([rem, rem[-1:]]) if rem.size else rem, where="post", color=colors[4], lw=3)
    ax.set_yticks([level[o] for o in order], [stages_lib.STAGE_NAMES[o] for o in order])
    ax.set_ylim(-4.5, 0.5)
    ax.set_ylabel("stage")
    ax.set_title(title if title is not None else (self.record_id or ""))
    if self.probabilities is not None:
      axp = axes[1, 0]
      p = np.nan_to_num(self.probabilities, nan=0.0)
      top = np.cumsum(p, axis=1)
      top = np.concatenate([top, top[-1:]])  # Step plots over epoch edges: repeat the last epoch.
      bottom = np.concatenate([np.zeros((top.shape[0], 1)), top[:, :-1]], axis=1)
      for k, label in enumerate(stages_lib.STAGE_NAMES):
        axp.fill_between(hours, bottom[:, k], top[:, k], step="post", color=colors[k], label=label, lw=0)
      axp.set_ylim(0, 1)
      axp.set_ylabel("probability")
      axp.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("hours from the recording start")
    fig.tight_layout()
    if path is not None:
      fig.savefig(path, dpi=100)
      plt.close(fig)
    return fig


def _first_run(mask: np.ndarray, length: int) -> int | None:
  """Start of the first run of at least `length` consecutive True values, or None."""
  count = 0
  for i, v in enumerate(mask):
    count = count + 1 if v else 0
    if count >= length:
      return i - length + 1
  return None
