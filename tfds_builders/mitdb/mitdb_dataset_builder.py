"""MIT-BIH Arrhythmia Database (PhysioNet mitdb 1.0.0) as a TFDS dataset of AAMI beat classes.

48 half-hour two-lead ambulatory ECG records at 360 Hz (Moody & Mark 2001). One example per
annotated beat, labelled with its AAMI class (ANSI/AAMI EC57): N, S, V, F, Q
(`tfds_builders.mitdb.aami.MITBIH_TO_AAMI`); non-beat annotations are skipped.

Inter-patient protocol (de Chazal et al. 2004): the paced records 102, 104, 107 and 217 are
excluded; test = DS2 (22 records), train + validation = DS1 (22 records), with validation =
DS1 records 124, 203, 220 and 223 (chosen so that train keeps most S, V and F beats: validation
holds N 8064, S 200, V 964, F 20, Q 4). Records 201 (DS1) and 202 (DS2) are the same person,
as in every use of this protocol; both carry subject_id "201".

Window (configs): `beat` = 0.25 s before to 0.45 s after the R peak (252 samples, the
morphology window of the inter-patient literature); `context` = 2 s either side (1440 samples),
which contains the neighbouring beats (the RR rhythm that separates S from N) and gives a
patch-based encoder more than one 1-s token after resampling. Beats closer to a record's end
than the window are zero-padded (`n_valid` counts the real samples), so every annotated beat is
kept and the per-class counts equal the published ones: DS1 N 45866, S 944, V 3788, F 415, Q 8;
DS2 N 44259, S 1837, V 3221, F 388, Q 7.

Both leads are kept, MLII first (record 114 stores V5 first; it is reordered). Signals are
float32 microvolts (the headers say mV). The previous and next RR intervals of each beat are
stored too (de Chazal's rhythm features).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import shutil

import numpy as np
import tensorflow_datasets as tfds

from sleepjax.data import errors
from tfds_builders import _common
from tfds_builders import _downstream
from tfds_builders import _report
from tfds_builders.mitdb import aami

SFREQ = 360.0  # Hz.
N_LEADS = 2
VALIDATION_RECORDS = ("124", "203", "220", "223")
RECORDS = tuple(sorted(aami.DS1 + aami.DS2 + aami.PACED_RECORDS))
URL_TEMPLATE = "https://physionet.org/files/mitdb/1.0.0/{record}.{ext}"
EXTENSIONS = ("hea", "dat", "atr")

_DESCRIPTION = """
MIT-BIH Arrhythmia Database: one example per annotated beat of the 44 non-paced records, two leads
(MLII first) in microvolts at 360 Hz, labelled with the AAMI EC57 class N/S/V/F/Q. Inter-patient
split of de Chazal et al. (2004): train/validation from DS1 (validation = records 124, 203, 220,
223), test = DS2.
"""

_CITATION = """
@article{moody2001impact,
  title={The impact of the {MIT-BIH} Arrhythmia Database},
  author={Moody, George B and Mark, Roger G},
  journal={IEEE Engineering in Medicine and Biology Magazine},
  volume={20},
  number={3},
  pages={45--50},
  year={2001}
}
@article{dechazal2004automatic,
  title={Automatic classification of heartbeats using {ECG} morphology and heartbeat interval features},
  author={de Chazal, Philip and O'Dwyer, Maria and Reilly, Richard B},
  journal={IEEE Transactions on Biomedical Engineering},
  volume={51},
  number={7},
  pages={1196--1206},
  year={2004}
}
@article{goldberger2000physiobank,
  title={{PhysioBank}, {PhysioToolkit}, and {PhysioNet}: components of a new research resource for complex physiologic signals},
  author={Goldberger, Ary L and Amaral, Luis AN and Glass, Leon and Hausdorff, Jeffrey M and Ivanov, Plamen Ch and Mark, Roger G and Mietus, Joseph E and Moody, George B and Peng, Chung-Kang and Stanley, H Eugene},
  journal={Circulation},
  volume={101},
  number={23},
  pages={e215--e220},
  year={2000}
}
"""


@dataclasses.dataclass
class MitdbConfig(tfds.core.BuilderConfig):
  """Config of the mitdb builder.

  Attributes:
    pre_s: window start before the R peak, seconds.
    post_s: window end after the R peak, seconds.
    records: record names to read (e.g. ("100", "101")); None = all 44 non-paced records.
  """

  pre_s: float = 0.25
  post_s: float = 0.45
  records: tuple[str, ...] | None = None

  @property
  def pre(self) -> int:
    return int(round(self.pre_s * SFREQ))

  @property
  def post(self) -> int:
    return int(round(self.post_s * SFREQ))


def record_split(record: str) -> str | None:
  """Split of a record under the inter-patient protocol; None for paced/unknown records."""
  if record in aami.DS2:
    return "test"
  if record in VALIDATION_RECORDS:
    return "validation"
  if record in aami.DS1:
    return "train"
  return None


def subject_of(record: str) -> str:
  """Subject id: the record name, except 202, which is the same person as 201."""
  return "201" if record == "202" else record


def read_record(base: pathlib.Path) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, list[str]]:
  """Reads one MIT-BIH record and its reference beat annotations.

  Args:
    base: the record path without extension (`.../100`); `.hea`, `.dat` and `.atr` beside it.

  Returns:
    `(ecg, leads, ann_samples, ann_symbols)`: (2, T) float32 microvolts at 360 Hz with MLII
    first when present; the lead names in that order; (A,) int annotation positions and their
    symbols (all annotations, beats or not).

  Raises:
    errors.RecordingError: wfdb cannot read the record or its annotations.
    errors.SamplingRateError: the record is not at 360 Hz.
    errors.UnitError: a lead's unit is not a voltage.
    errors.BadSignalError: non-finite samples.
  """
  import wfdb  # Heavy import, only when a build runs.

  hea = base.with_suffix(".hea")
  try:
    record = wfdb.rdrecord(str(base))
    ann = wfdb.rdann(str(base), "atr")
  except Exception as e:  # wfdb raises ValueError, OSError, struct errors alike.
    raise errors.RecordingError(hea, f"wfdb could not read the record or its .atr: {type(e).__name__}: {e}") from e
  if record.fs != SFREQ:
    raise errors.SamplingRateError(hea, f"sampling rate {record.fs} Hz, expected {SFREQ} Hz")
  if record.n_sig != N_LEADS:
    raise errors.MissingChannelError(hea, f"{record.n_sig} signals {record.sig_name}, expected {N_LEADS} leads")
  order = sorted(range(N_LEADS), key=lambda i: record.sig_name[i] != "MLII")  # MLII first, stable.
  ecg = np.stack([
      record.p_signal[:, i] * _downstream.wfdb_unit_to_microvolts(record.units[i], hea, record.sig_name[i])
      for i in order]).astype(np.float32)
  if not np.all(np.isfinite(ecg)):
    raise errors.BadSignalError(hea, f"{int((~np.isfinite(ecg)).sum())} non-finite samples")
  return ecg, tuple(record.sig_name[i] for i in order), np.asarray(ann.sample), list(ann.symbol)


def find_records(root: pathlib.Path) -> dict[str, pathlib.Path]:
  """Maps record name -> path without extension, for records with .hea, .dat and .atr under `root`."""
  index = _downstream.index_files(root, tuple(f".{e}" for e in EXTENSIONS))
  found = {}
  for record in RECORDS:
    paths = [index.get(f"{record}.{e}") for e in EXTENSIONS]
    if all(paths) and len({p.parent for p in paths}) == 1:
      found[record] = paths[0].with_suffix("")
  return found


class Builder(_common.ArrayRecordBuilder):
  """MIT-BIH Arrhythmia: one example per beat, AAMI classes, inter-patient DS1/DS2 splits."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: beat and context windows, AAMI EC57 classes, DS1/DS2."}
  BUILDER_CONFIGS = [
      MitdbConfig(name="beat", pre_s=0.25, post_s=0.45,
                  description="0.25 s before to 0.45 s after each R peak (252 samples)."),
      MitdbConfig(name="context", pre_s=2.0, post_s=2.0,
                  description="2 s either side of each R peak (1440 samples), neighbouring beats included."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Optional. Without a manual_dir the records are downloaded from PhysioNet
  (https://physionet.org/files/mitdb/1.0.0/NNN.{hea,dat,atr}). To build from local files put in
  manual_dir the PhysioNet files (any sub-folder) or a tar archive of them (e.g. mitdb_48records.tar.xz).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    n_win = self.builder_config.pre + self.builder_config.post
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=_downstream.features(
            {"ecg": (N_LEADS, n_win)}, label_names=aami.AAMI_CLASSES,
            subject_doc="Record name; 202 -> '201' (same person).", record_doc="Record name, e.g. '100'.",
            task_fields={
                "symbol": tfds.features.Text(doc="MIT-BIH beat annotation symbol, e.g. 'N', 'A', 'V'."),
                "beat_index": tfds.features.Scalar(dtype=np.int32, doc="Rank of the beat within the record."),
                "r_peak": tfds.features.Scalar(dtype=np.int32, doc="Annotated R-peak sample in the record (360 Hz)."),
                "rr_prev_s": tfds.features.Scalar(dtype=np.float32, doc="RR interval to the previous beat, s (NaN first)."),
                "rr_next_s": tfds.features.Scalar(dtype=np.float32, doc="RR interval to the next beat, s (NaN last)."),
                "n_valid": tfds.features.Scalar(dtype=np.int32, doc="Samples of the window inside the record."),
            }),
        homepage="https://physionet.org/content/mitdb/1.0.0/",
        citation=_CITATION,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    config = self.builder_config
    wanted = [r for r in (config.records or RECORDS) if record_split(r) is not None]
    unknown = set(config.records or ()) - set(RECORDS)
    if unknown:
      raise ValueError(f"unknown MIT-BIH records {sorted(unknown)}")
    manual = _common.manual_dir_or_none(dl_manager)  # None: download from PhysioNet.
    if manual is not None:
      found = find_records(manual)
      for archive in sorted(manual.iterdir()):
        if archive.is_file() and archive.name.lower().endswith((".tar.xz", ".tar.gz", ".tar", ".zip")):
          stem = archive.name.split(".")[0]
          extracted = _downstream.extract_archive(archive, pathlib.Path(dl_manager.download_dir) / stem)
          found = {**find_records(extracted), **found}
    else:
      urls = {f"{r}.{e}": URL_TEMPLATE.format(record=r, ext=e) for r in wanted for e in EXTENSIONS}
      paths = dl_manager.download(urls)
      # wfdb needs the PhysioNet file names side by side (the .hea names its .dat).
      folder = pathlib.Path(dl_manager.download_dir) / "mitdb_records"
      folder.mkdir(parents=True, exist_ok=True)
      for name, path in paths.items():
        if not (folder / name).exists():
          shutil.copyfile(os.fspath(path), folder / name)
      found = find_records(folder)
    missing = [r for r in wanted if r not in found]
    if missing:
      logging.warning("mitdb: records %s not found; they are left out", missing)
    if len(missing) == len(wanted):
      raise errors.RecordingError(manual, "no MIT-BIH record (NNN.hea + NNN.dat + NNN.atr) found")
    by_split: dict[str, dict[str, pathlib.Path]] = {}
    for r in wanted:
      if r in found:
        by_split.setdefault(record_split(r), {})[r] = found[r]
    return {split: self._generate_examples(split, records) for split, records in sorted(by_split.items())}

  def _generate_examples(self, split: str, records: dict[str, pathlib.Path]):
    config = self.builder_config
    failures, n_examples, n_padded = [], 0, 0
    for record, base in records.items():
      try:
        ecg, leads, ann_samples, ann_symbols = read_record(base)
      except errors.RecordingError as e:
        logging.warning("mitdb: skipping %s", e)
        failures.append(str(e))
        continue
      samples, labels, symbols = aami.aami_beats(ann_symbols, ann_samples)
      windows, n_valid = aami.beat_windows(ecg, samples, config.pre, config.post)
      n_examples += len(samples)
      n_padded += int((n_valid < config.pre + config.post).sum())
      rr_prev, rr_next = aami.rr_intervals_s(samples, SFREQ)
      names = np.array(leads, dtype=object)
      positions = _downstream.unknown_positions(N_LEADS)
      for k in range(len(samples)):
        yield f"{record}_{k:05d}", {
            "signals": {"ecg": windows[k]},
            "channel_names": {"ecg": names},
            "positions": {"ecg": positions},
            "label": int(labels[k]),
            "symbol": str(symbols[k]),
            "subject_id": subject_of(record),
            "record_id": record,
            "beat_index": np.int32(k),
            "r_peak": np.int32(samples[k]),
            "rr_prev_s": rr_prev[k],
            "rr_next_s": rr_next[k],
            "n_valid": n_valid[k],
        }
    _report.write(self, split, _report.example_report(len(records), failures, n_examples,
                                                      n_zero_padded_beats=n_padded))
