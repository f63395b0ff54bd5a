"""Evaluators: objects with `run(model) -> metric rows`, shared by every trainer.

  LinearProbe      SleepFM's frozen-embedding logistic-regression probe of a multimodal encoder.
  Retrieval        leave-one-out cross-modal retrieval top-1 of a multimodal encoder.
  Classification   a classifier's per-class and pooled metrics on fixed examples (sleep stages or
                   downstream labels; single-label or multilabel).
  ChannelAblation  a metric against the number of channels kept (random subsets).

Each holds its data; `run` takes the model (an `nnx.Module`, e.g. from `sleepjax.models.load`) and
returns rows (dicts) that `sleepjax.evaluation.report.write_results` writes as tables. Models are
run in inference mode under jit (`inference.Apply`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

from sleepjax.data import pipeline
from sleepjax.data import stages
from sleepjax.evaluation import inference
from sleepjax.evaluation import metrics as metrics_lib
from sleepjax.evaluation import probe as probe_lib

Rows = list[dict[str, Any]]


# ----------------------------------------------------------------------------------------------
# Frozen multimodal encoders: per-epoch embeddings, the linear probe and retrieval.
# ----------------------------------------------------------------------------------------------


def encode_windows(model: nnx.Module, batch: Mapping[str, Any]):
  """A multimodal encoder's outputs in inference mode: {modality: (tokens (B, S, E), pooled (B, E))}."""
  return model(batch["signals"], batch["mask"], batch.get("positions"), train=False)


class WindowEmbedder:
  """Per-30-s-epoch embeddings of a frozen multimodal encoder over every window of a source.

  Each epoch's embedding is the mean of the encoder's output tokens that fall inside the epoch,
  per modality, and the modalities are concatenated in sorted order (SleepFM's probe input).
  The last result is cached, so a probe and a retrieval on the same source encode it once.

  Args:
    window_epochs: L, 30-s epochs per window.
    modalities: encoder modality -> dataset modalities (`pipeline.make_dataset`'s `modalities`).
    channel_caps: {modality: C_cap} or None.
    batch_size: windows per forward pass.
  """

  def __init__(self, *, window_epochs: int, modalities: Mapping[str, Sequence[str]],
               channel_caps: Mapping[str, int] | None, batch_size: int):
    self.window_epochs = int(window_epochs)
    self.modalities = {k: tuple(v) for k, v in modalities.items()}
    self.channel_caps = None if channel_caps is None else dict(channel_caps)
    self.batch_size = int(batch_size)
    self._cache: tuple[Any, Any, Any, dict] | None = None

  def __call__(self, model: nnx.Module, source: Sequence[Mapping[str, Any]], *,
               max_windows: int | None = None) -> dict[str, Any]:
    """Embeds `source` (its first `max_windows` windows, or all).

    Returns:
      {"features": (N, M*E) float32 per epoch, "stage": (N,) int32, "subject": (N,) object str,
       "pooled": {modality: (W, E) float32 window embeddings}}.
    """
    if self._cache is not None and self._cache[0] is model and self._cache[1] is source \
        and self._cache[2] == max_windows:
      return self._cache[3]
    encode = inference.Apply(encode_windows, model)
    windows = pipeline.iterate_windows(
        source, window_epochs=self.window_epochs, batch_size=self.batch_size, channel_caps=self.channel_caps,
        modalities=self.modalities, pad_final_batch=True)
    feats, stage, subjects, pooled = [], [], [], {}
    seen = 0
    l = self.window_epochs
    for batch in windows:
      valid = np.asarray(batch["valid"])
      outputs = encode({k: batch[k] for k in ("signals", "mask", "positions")})
      per_mod = []
      for m in sorted(outputs):
        tokens, window_emb = (np.asarray(x)[valid] for x in outputs[m])
        b, s, e = tokens.shape
        per_mod.append(tokens.reshape(b, l, s // l, e).mean(axis=2))  # (B, L, E)
        pooled.setdefault(m, []).append(window_emb)
      f = np.concatenate(per_mod, axis=-1)  # (B, L, M*E)
      feats.append(f.reshape(-1, f.shape[-1]))
      stage.append(np.asarray(batch["stage"])[valid].reshape(-1))
      subjects.append(np.repeat(np.asarray(batch["subject"])[valid], l))
      seen += len(f)
      if max_windows is not None and seen >= max_windows:
        break
    out = {"features": np.concatenate(feats), "stage": np.concatenate(stage), "subject": np.concatenate(subjects),
           "pooled": {m: np.concatenate(v) for m, v in pooled.items()}}
    # The model is kept referenced by the cache, so its id cannot be reused by another model.
    self._cache = (model, source, max_windows, out)
    return out


class LinearProbe:
  """SleepFM's linear probe: logistic regression on frozen per-epoch embeddings.

  Fitted on `fit_source` (e.g. the training subjects, whose labels pretraining never used) and
  scored on `test_source` (held-out subjects); unscored epochs are left out of both.

  Args:
    fit_source, test_source: random-access epoch sources.
    embedder: a `WindowEmbedder`.
    max_fit_windows: fit on the first this many windows (None: all).
    seed: the regression's random_state.
    class_names: stage names (AASM W, N1, N2, N3, REM).
  """

  def __init__(self, fit_source, test_source, embedder: WindowEmbedder, *, max_fit_windows: int | None = None,
               seed: int = 0, class_names: Sequence[str] = stages.STAGE_NAMES):
    self.fit_source, self.test_source = fit_source, test_source
    self.embedder = embedder
    self.max_fit_windows = max_fit_windows
    self.seed = int(seed)
    self.class_names = tuple(class_names)

  def run(self, model: nnx.Module) -> Rows:
    """One row: accuracy, balanced_accuracy, macro_f1, weighted_f1, kappa, f1/<stage>, n_fit_epochs, n_test_epochs."""
    fit = self.embedder(model, self.fit_source, max_windows=self.max_fit_windows)
    test = self.embedder(model, self.test_source)
    keep_fit, keep_test = fit["stage"] >= 0, test["stage"] >= 0
    result = probe_lib.linear_probe(fit["features"][keep_fit], fit["stage"][keep_fit],
                                    test["features"][keep_test], test["stage"][keep_test], seed=self.seed,
                                    num_classes=len(self.class_names), class_names=self.class_names)
    row = {k: v for k, v in result.items() if np.ndim(v) == 0 and k != "count"}
    row.update(n_fit_epochs=int(keep_fit.sum()), n_test_epochs=int(keep_test.sum()))
    return [row]


class Retrieval:
  """Cross-modal retrieval top-1 of the pooled window embeddings (the LOO loss's own targets).

  Args:
    source: random-access epoch source.
    embedder: a `WindowEmbedder` (shared with a probe on the same source: encoded once).
  """

  def __init__(self, source, embedder: WindowEmbedder):
    self.source, self.embedder = source, embedder

  def run(self, model: nnx.Module) -> Rows:
    """One row per modality: {"modality", "top1", "n_windows"} (chance is 1 / n_windows)."""
    pooled = self.embedder(model, self.source)["pooled"]
    top1 = probe_lib.retrieval_top1(pooled)
    return [{"modality": m, "top1": v, "n_windows": int(len(pooled[m]))} for m, v in top1.items()]


# ----------------------------------------------------------------------------------------------
# Classifiers.
# ----------------------------------------------------------------------------------------------


def sigmoid(logits: np.ndarray) -> np.ndarray:
  """Per-label probabilities, float64 (N, L), of (N, L) logits (`scipy.special.expit`).

  Thresholds and the test decisions both go through this one function, so a validation score
  used as a threshold compares bit-exactly with itself.
  """
  return scipy.special.expit(np.asarray(logits, np.float64))


def classification_metrics(labels: np.ndarray, logits: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
  """Single-label metrics from labels (N,) int and logits (N, K).

  Balanced accuracy is the mean per-class recall (binary tasks too); AUROC/AUPRC are one-vs-rest
  macro means (the positive-class probability for K = 2). Plus accuracy, macro/weighted F1,
  Cohen's kappa and "f1/<class>" (`metrics.summarize`).
  """
  k = logits.shape[1]
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1), np.float64)
  cm = metrics_lib.confusion_matrix(labels, probs.argmax(-1), k)
  out = metrics_lib.summarize(cm, class_names)
  scores = probs[:, 1] if k == 2 else probs
  out["auroc"] = metrics_lib.auroc(labels, scores)
  out["auprc"] = metrics_lib.auprc(labels, scores)
  return out


def multilabel_metrics(labels: np.ndarray, logits: np.ndarray, label_names: Sequence[str],
                       thresholds: np.ndarray) -> dict[str, float]:
  """Multilabel metrics (the transfer paper's ECG protocol, docs/specification.md §3).

  Args:
    labels: (N, L) {0, 1} targets.
    logits: (N, L) float logits of a sigmoid head.
    label_names: L names (CODE-15: 1dAVb, RBBB, LBBB, SB, AF, ST).
    thresholds: (L,) probability thresholds chosen on the VALIDATION split
      (`validation_thresholds`; +inf for a label without validation positives: never predicted).

  Returns:
    {"auroc", "auprc" (means over the labels whose column holds both classes), "macro_f1" (mean of
     the defined per-label F1s), "accuracy" (fraction of correct (example, label) decisions at the
     thresholds), "auroc/<name>", "auprc/<name>", "f1/<name>", "threshold/<name>"}. A label with a
    single class has NaN AUROC/AUPRC (with a warning), left out of the macro means.

  Raises:
    ValueError: shapes disagree or the labels are not 0/1.
  """
  labels = np.asarray(labels)
  if labels.ndim != 2 or labels.shape != np.shape(logits) or len(label_names) != labels.shape[1]:
    raise ValueError(f"multilabel_metrics: labels {labels.shape}, logits {np.shape(logits)} and "
                     f"{len(label_names)} names disagree")
  probs = sigmoid(logits)
  per_auroc = metrics_lib.auroc_per_class(labels, probs)
  per_auprc = metrics_lib.auprc_per_class(labels, probs)
  f1 = metrics_lib.multilabel_f1(labels, probs, thresholds)
  out = {"auroc": metrics_lib.auroc(labels, probs), "auprc": metrics_lib.auprc(labels, probs),
         "macro_f1": float(f1["macro_f1"]),
         "accuracy": float(np.mean((probs >= np.asarray(thresholds)[None]) == (labels == 1)))}
  for j, name in enumerate(label_names):
    out[f"auroc/{name}"] = float(per_auroc[j])
    out[f"auprc/{name}"] = float(per_auprc[j])
    out[f"f1/{name}"] = float(f1["f1"][j])
    out[f"threshold/{name}"] = float(thresholds[j])
  return out


def validation_thresholds(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
  """(L,) per-label probability thresholds with the best validation F1 (`metrics.best_f1_thresholds`)."""
  thresholds, _ = metrics_lib.best_f1_thresholds(labels, sigmoid(logits))
  return thresholds


def logits_metrics(labels: np.ndarray, logits: np.ndarray, class_names: Sequence[str],
                   thresholds: np.ndarray | None = None) -> dict[str, float]:
  """`classification_metrics` for (N,) labels, `multilabel_metrics` (needs thresholds) for (N, L).

  Raises:
    ValueError: multilabel labels without thresholds.
  """
  if np.ndim(labels) == 2:
    if thresholds is None:
      raise ValueError("multilabel evaluation needs per-label thresholds chosen on validation data")
    return multilabel_metrics(labels, logits, class_names, thresholds)
  return classification_metrics(labels, logits, class_names)


class Classification:
  """A classifier's per-class and pooled metrics on a fixed set of examples.

  Args:
    batches: a callable returning an iterable of batches, each with "label" ((B,) int or (B, L)
      0/1) and "valid" ((B,) bool, False on padding rows) beside the model's inputs.
    predict: (model, batch) -> {"logits": (B, K), optional "loss": (B,) per-example loss}; a
      hashable callable (a module-level function or a bound method of a frozen dataclass), run
      under jit.
    class_names: K class (or L label) names in logit order.
    inputs: the batch keys `predict` reads (others, such as labels, stay on the host).
  """

  def __init__(self, batches: Callable[[], Iterable[Mapping[str, Any]]], predict: Callable, class_names: Sequence[str],
               *, inputs: Sequence[str]):
    self.batches = batches
    self.predict_fn = predict
    self.class_names = tuple(class_names)
    self.inputs = tuple(inputs)

  def predict(self, model: nnx.Module) -> dict[str, np.ndarray]:
    """{"logits": (N, K) float32, "label": (N,) or (N, L), "loss": (N,) if predicted} over the valid rows."""
    apply = inference.Apply(self.predict_fn, model)
    logits, labels, loss = [], [], []
    for batch in self.batches():
      valid = np.asarray(batch["valid"], bool)
      out = apply({k: batch[k] for k in self.inputs})
      logits.append(np.asarray(out["logits"])[valid])
      labels.append(np.asarray(batch["label"])[valid])
      if "loss" in out:
        loss.append(np.asarray(out["loss"])[valid])
    result = {"logits": np.concatenate(logits), "label": np.concatenate(labels)}
    if loss:
      result["loss"] = np.concatenate(loss)
    return result

  def metrics(self, model: nnx.Module, thresholds: np.ndarray | None = None) -> dict[str, float]:
    """Pooled metrics as one flat dict (`logits_metrics`; "loss" is the mean predicted loss)."""
    pred = self.predict(model)
    out = logits_metrics(pred["label"], pred["logits"], self.class_names, thresholds)
    if "loss" in pred:
      out["loss"] = float(np.mean(pred["loss"]))
    return out

  def run(self, model: nnx.Module, thresholds: np.ndarray | None = None) -> Rows:
    """A pooled row ({"class": "all", ...metrics}) and one row per class ({"class", "f1", ...})."""
    flat = self.metrics(model, thresholds)
    pooled = {"class": "all", **{k: v for k, v in flat.items() if "/" not in k}}
    per_class = []
    for name in self.class_names:
      per_class.append({"class": name, **{k.split("/")[0]: v for k, v in flat.items() if k.endswith(f"/{name}")}})
    return [pooled, *per_class]


# ----------------------------------------------------------------------------------------------
# Channel ablation.
# ----------------------------------------------------------------------------------------------


def ablation_sizes(n_channels: int, sizes: Sequence[int] | None) -> list[int]:
  """Subset sizes k: the given ones (clipped to 1..C), else every k when C <= 20, else doubling up to C."""
  if sizes:
    return sorted({int(k) for k in sizes if 1 <= int(k) <= n_channels})
  if n_channels <= 20:
    return list(range(1, n_channels + 1))
  return sorted({*(2 ** i for i in range(int(math.log2(n_channels)) + 1)), n_channels})


def smallest_k_reaching(curve: Sequence[Mapping[str, float]], full_score: float, fraction: float = 0.95) -> int | None:
  """The smallest k whose mean score is >= fraction * full_score (None when none does)."""
  for row in sorted(curve, key=lambda r: r["k"]):
    if row["mean"] >= fraction * full_score:
      return int(row["k"])
  return None


class ChannelAblation:
  """A metric against the number of channels kept, over random channel subsets (transfer paper §4.4).

  Args:
    n_channels: C, channels of the full montage.
    score: (model, kept channel indices (k,) int) -> the metric on the test data with every other
      channel masked (or, for the paper's protocol, of a model re-trained on that subset).
    sizes: subset sizes k (None or empty: `ablation_sizes`' default grid).
    draws: random subsets per size below C (the paper: 5); the full montage is drawn once.
    seed: the subsets' numpy seed.
    metric: the metric's name (for the rows).

  After `run`, `draws` holds every subset with its score.
  """

  def __init__(self, n_channels: int, score: Callable[[nnx.Module, np.ndarray], float], *,
               sizes: Sequence[int] | None = None, draws: int = 5, seed: int = 0, metric: str = "score"):
    self.n_channels = int(n_channels)
    self.score = score
    self.sizes = ablation_sizes(self.n_channels, sizes)
    self.num_draws = int(draws)
    self.seed = int(seed)
    self.metric = metric
    self.draws: Rows = []

  def run(self, model: nnx.Module) -> Rows:
    """The curve: one row per k, {"k", "mean", "std" (sample std, 0 for one draw), "n"}."""
    rng = np.random.default_rng(self.seed)
    self.draws = []
    for k in self.sizes:
      for draw in range(self.num_draws if k < self.n_channels else 1):
        keep = np.sort(rng.choice(self.n_channels, size=k, replace=False))
        self.draws.append({"k": k, "draw": draw, "channels": " ".join(map(str, keep.tolist())),
                           self.metric: float(self.score(model, keep))})
    curve = []
    for k in self.sizes:
      vals = np.array([d[self.metric] for d in self.draws if d["k"] == k], np.float64)
      curve.append({"k": k, "mean": float(np.nanmean(vals)),
                    "std": float(np.nanstd(vals, ddof=1)) if len(vals) > 1 else 0.0, "n": len(vals)})
    return curve
