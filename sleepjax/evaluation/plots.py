"""Every plot sleepjax draws (matplotlib, through an explicit Agg canvas).

An explicit canvas instead of pyplot: no global backend switch, works headless, and leaves a
notebook's inline backend alone. Each function writes an image (format from the suffix) and
returns its path.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np


def _figure(figsize):
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=figsize)
  FigureCanvasAgg(fig)
  return fig


def _save(fig, path: str | os.PathLike, dpi: int = 120) -> pathlib.Path:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=dpi)
  return path


def confusion_matrix(cm, class_names: Sequence[str], path: str | os.PathLike, *, normalize: bool = True,
                   title: str | None = None) -> pathlib.Path:
  """Saves a confusion-matrix heat map (rows = truth, columns = prediction) as an image.

  Args:
    cm: (K, K) counts (e.g. `metrics.confusion_matrix` or a probe's "confusion_matrix").
    class_names: K names, e.g. `sleepjax.data.stages.STAGE_NAMES`.
    path: output file; the format follows the suffix (".png", ".pdf", ".svg").
    normalize: divide each row by its count so the diagonal is per-class recall (rows without
      examples stay 0); cells are annotated with the fraction and the raw count.
    title: optional figure title.

  Returns:
    The written path.

  Raises:
    ValueError: the matrix is not (K, K) counts or the names do not match K.
  """
  cm = np.asarray(cm)
  if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or np.any(cm < 0):
    raise ValueError(f"confusion_matrix needs a (K, K) matrix of non-negative counts, got shape {cm.shape}")
  k = cm.shape[0]
  if len(class_names) != k:
    raise ValueError(f"{len(class_names)} class names for a {k}-class confusion matrix")
  rows = cm.sum(axis=1, keepdims=True)
  shown = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0) if normalize else cm.astype(float)
  fig = _figure((1.1 * k + 2, 1.0 * k + 1.5))
  ax = fig.add_subplot()
  im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
  fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
  ax.set_xticks(range(k), labels=list(class_names))
  ax.set_yticks(range(k), labels=list(class_names))
  ax.set_xlabel("predicted")
  ax.set_ylabel("true")
  if title:
    ax.set_title(title)
  threshold = 0.5 * (1 if normalize else max(shown.max(), 1))
  for i in range(k):
    for j in range(k):
      text = f"{shown[i, j]:.2f}\n({cm[i, j]:g})" if normalize else f"{cm[i, j]:g}"
      ax.text(j, i, text, ha="center", va="center", fontsize=8,
              color="white" if shown[i, j] > threshold else "black")
  return _save(fig, path)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
  if width <= 1 or x.size < width:
    return x
  return np.convolve(x, np.ones(width) / width, mode="valid")


def imbalance(curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], path: str | os.PathLike, *,
              smooth: int = 1) -> pathlib.Path:
  """SleepMG Fig. 4: the modal imbalance degree per training step, one line per method.

  Args:
    curves: {method label: {"imbalance_y" / "imbalance_d": (steps (N,), degree (N,))}}; a panel
      skips a method whose degree is all NaN (no such head).
    path: output image.
    smooth: moving-average width in steps.

  Returns:
    The written path.
  """
  fig = _figure((10, 3.5))
  axes = fig.subplots(1, 2)
  for index, (label, by_key) in enumerate(curves.items()):
    for ax, key in zip(axes, ("imbalance_y", "imbalance_d")):
      if key not in by_key:
        continue
      steps, y = (np.asarray(v, np.float64) for v in by_key[key])
      if np.all(np.isnan(y)):
        continue
      ys = _moving_average(y, smooth)
      # One colour per method in both panels.
      ax.plot(steps[len(steps) - ys.size:], ys, color=f"C{index % 10}", label=label)
  for ax, title in zip(axes, ("(a) Classification", "(b) Domain discrimination")):
    ax.set_title(title)
    ax.set_xlabel("training step")
    ax.set_ylabel("modal imbalance degree")
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=8)
  return _save(fig, path)


def channel_ablation(curve: Sequence[Mapping[str, float]], full: float, fraction: float, metric: str,
                     n_channels: int, k_reaching: int | None, path: str | os.PathLike, *, title: str) -> pathlib.Path:
  """Metric against channels kept (mean +- std over random subsets), with the fraction-of-full line.

  Args:
    curve: rows {"k", "mean", "std"} (`evaluators.ChannelAblation.run`).
    full: the full montage's score.
    fraction: e.g. 0.95 (drawn as fraction * full).
    metric: the metric's name (y label).
    n_channels: C of the full montage (x label).
    k_reaching: the smallest k reaching the line, or None.
    path: output image.
    title: figure title.
  """
  ks = [c["k"] for c in curve]
  fig = _figure((5, 3.5))
  ax = fig.add_subplot()
  ax.errorbar(ks, [c["mean"] for c in curve], yerr=[c["std"] for c in curve], marker="o", capsize=3,
              label="random subsets (mean +- std)")
  ax.axhline(fraction * full, color="gray", linestyle="--", label=f"{fraction:.0%} of full montage")
  if k_reaching is not None:
    ax.axvline(k_reaching, color="C1", linestyle=":", label=f"k = {k_reaching}")
  ax.set_xlabel(f"channels kept (of {n_channels})")
  ax.set_ylabel(metric.replace("_", " "))
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7)
  return _save(fig, path, dpi=100)
