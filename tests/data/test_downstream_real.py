"""Real-bytes tests of the four downstream TFDS builders on the real recordings ($SLEEPJAX_TEST_DATA).

Each archive is unpacked (only the members a test needs) into a session-scoped tmp dir, and a
subset is built with the real builder code: eegmmidb run R12 of S001/S005/S006 (one subject per
split) + the S001 baselines; Bonn all 500 segments; MIT-BIH records 124/232 (+ the AAMI counts
of all 48 records from their annotations); CinC 2017 the first 200 complete records of the
archive (+ label counts). Skipped with a clear reason when the shared data are absent (the
`shared_data` fixture of the root conftest.py).
"""

import csv
import pathlib
import tarfile

import numpy as np
import pytest
import scipy.signal
import tensorflow_datasets as tfds

from tfds_builders.mitdb import aami


def _extract(archive: pathlib.Path, dest: pathlib.Path, keep, n_wanted: int | None = None) -> pathlib.Path:
  """Unpacks the members `keep` accepts; stops reading the xz stream after `n_wanted` of them."""
  n = 0
  with tarfile.open(archive, "r|xz") as tar:  # Stream mode: no second pass over the archive.
    for member in tar:
      if keep(member.name):
        tar.extract(member, dest, filter="data")
        n += 1
        if n_wanted is not None and n == n_wanted:
          break
  return dest


def _prepare(builder_cls, config, manual_dir, tmp):
  builder = builder_cls(config=config, data_dir=tmp / "data")
  builder.download_and_prepare(download_dir=tmp / "dl",
                               download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder


def _split_sizes(builder):
  return {k: v.num_examples for k, v in builder.info.splits.items()}


def _relative_alpha(x: np.ndarray, sfreq: float) -> float:
  """8-13 Hz power over 1-40 Hz power of (..., T) signals (Welch), pooled."""
  f, p = scipy.signal.welch(x, fs=sfreq, nperseg=int(2 * sfreq), axis=-1)
  p = p.reshape(-1, f.size).sum(axis=0)
  return float(p[(f >= 8) & (f <= 13)].sum() / p[(f >= 1) & (f <= 40)].sum())


# ---------------------------------------------------------------------------------------------
# eegmmidb
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def eegmmidb_dir(shared_data, tmp_path_factory):
  src = shared_data / "eegmmidb"
  dest = tmp_path_factory.mktemp("eegmmidb")
  # One imagery run of a train, a validation and a test subject; R12 runs come early in the archive.
  wanted = {"S001R12.edf", "S005R12.edf", "S006R12.edf"}
  _extract(src / "eegmmidb_mi_S001-S012.tar.xz", dest, lambda n: pathlib.PurePosixPath(n).name in wanted, len(wanted))
  for name in ("S001R01.edf", "S001R02.edf"):  # Baselines live beside the archive.
    (dest / name).symlink_to(src / name)
  return dest


def test_eegmmidb_motor_imagery_real(eegmmidb_dir, tmp_path):
  import mne
  from tfds_builders.eegmmidb import eegmmidb_dataset_builder as mmi

  config = mmi.EegmmidbConfig(name="mi_s001_s005_s006", task="motor_imagery", subjects=(1, 5, 6))
  builder = _prepare(mmi.Builder, config, eegmmidb_dir, tmp_path)
  # 30 cues per run, all 4-s windows inside the 125-s runs.
  assert _split_sizes(builder) == {"train": 30, "validation": 30, "test": 30}
  train = builder.as_data_source(split="train")
  labels = np.array([ex["label"] for ex in train])
  assert {ex["record_id"] for ex in train} == {b"S001R12"}
  assert (labels == 0).sum() == 15 and np.isin(labels, [1, 2]).sum() == 15  # 15 T0, 15 T1 + T2.
  ex = train[3]
  x = ex["signals"]["eeg"]
  names = [n.decode() for n in ex["channel_names"]["eeg"]]
  assert x.shape == (64, 640) and names[0] == "FC5" and names[-1] == "Iz"
  assert np.isfinite(ex["positions"]["eeg"]).all()
  # Same samples as MNE reads them, in microvolts.
  raw = mne.io.read_raw_edf(eegmmidb_dir / "eegmmidb_mi_S001-S012" / "S001R12.edf", preload=True, verbose="error")
  start = int(round(raw.annotations.onset[ex["window_index"]] * 160))
  np.testing.assert_allclose(x, raw.get_data(units="uV")[:, start:start + 640], rtol=1e-5, atol=1e-3)
  assert 5 < np.median(x.std(axis=1)) < 300  # README: median channel SD 19-197 uV.
  assert {ex["subject_id"].decode() for ex in builder.as_data_source(split="test")} == {"S006"}


def test_eegmmidb_eyes_real_alpha(eegmmidb_dir, tmp_path):
  from tfds_builders.eegmmidb import eegmmidb_dataset_builder as mmi

  builder = _prepare(mmi.Builder, "eyes", eegmmidb_dir, tmp_path)
  assert _split_sizes(builder) == {"train": 30}  # 60-s baselines -> 15 windows each; S001 is train.
  ds = builder.as_data_source(split="train")
  names = [n.decode() for n in ds[0]["channel_names"]["eeg"]]
  occipital = [names.index(c) for c in ("O1", "Oz", "O2")]
  by_label = {0: [], 1: []}
  for ex in ds:
    by_label[int(ex["label"])].append(ex["signals"]["eeg"][occipital])
  alpha_open = _relative_alpha(np.stack(by_label[0]), 160.0)
  alpha_closed = _relative_alpha(np.stack(by_label[1]), 160.0)
  assert alpha_closed > 1.5 * alpha_open  # Berger effect: alpha rises with the eyes closed.


# ---------------------------------------------------------------------------------------------
# Bonn
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def bonn_dir(shared_data, tmp_path_factory):
  return _extract(shared_data / "bonn_eeg" / "bonn_eeg_ZONFS.tar.xz", tmp_path_factory.mktemp("bonn"), lambda n: True)


def test_bonn_five_class_real(bonn_dir, tmp_path):
  from tfds_builders.bonn_eeg import bonn_eeg_dataset_builder as bonn

  builder = _prepare(bonn.Builder, "five_class", bonn_dir, tmp_path)
  assert _split_sizes(builder) == {"train": 400, "validation": 50, "test": 50}
  examples = [ex for s in ("train", "validation", "test") for ex in builder.as_data_source(split=s)]
  assert len({ex["record_id"] for ex in examples}) == 500
  for split, n in (("validation", 10), ("test", 10)):
    sets = [ex["set"].decode() for ex in builder.as_data_source(split=split)]
    assert all(sets.count(s) == n for s in bonn.SETS)
  sd = {s: np.median([ex["signals"]["eeg"].std() for ex in examples if ex["set"].decode() == s]) for s in bonn.SETS}
  assert 30 < sd["Z"] < 60 and sd["S"] > 3 * max(sd["Z"], sd["O"], sd["N"], sd["F"])  # README: Z 42, S 276 uV.
  ex = next(ex for ex in examples if ex["record_id"] == b"N042")
  np.testing.assert_array_equal(ex["signals"]["eeg"][0], np.loadtxt(bonn_dir / "bonn_eeg" / "setC" / "N042.TXT"))
  eeg = {s: np.stack([ex["signals"]["eeg"] for ex in examples if ex["set"].decode() == s]) for s in ("Z", "O")}
  assert _relative_alpha(eeg["O"], bonn.SFREQ) > _relative_alpha(eeg["Z"], bonn.SFREQ)  # Eyes closed.


def test_bonn_seizure_real(bonn_dir, tmp_path):
  from tfds_builders.bonn_eeg import bonn_eeg_dataset_builder as bonn

  # Ten real segments per set (symlinks) keep this build small: 8 / 1 / 1 per set.
  subset = tmp_path / "manual"
  for folder in ("setA", "setB", "setC", "setD", "setE"):
    (subset / folder).mkdir(parents=True)
    for path in sorted((bonn_dir / "bonn_eeg" / folder).iterdir())[:10]:
      (subset / folder / path.name).symlink_to(path)
  builder = _prepare(bonn.Builder, "seizure", subset, tmp_path)
  assert _split_sizes(builder) == {"train": 40, "validation": 5, "test": 5}
  for split, n_seizure in (("train", 8), ("validation", 1), ("test", 1)):
    labels = [(ex["set"].decode(), ex["label"]) for ex in builder.as_data_source(split=split)]
    assert sum(l for _, l in labels) == n_seizure and all(l == (s == "S") for s, l in labels)


# ---------------------------------------------------------------------------------------------
# MIT-BIH
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mitdb_dir(shared_data, tmp_path_factory):
  # Annotations of every record (AAMI counts); signals only of the records a build reads.
  keep = lambda n: n.endswith((".atr", ".hea")) or pathlib.PurePosixPath(n).stem in ("124", "232", "102")
  return _extract(shared_data / "mitdb" / "mitdb_48records.tar.xz", tmp_path_factory.mktemp("mitdb"), keep)


def _aami_table(shared_data):
  with open(shared_data / "mitdb" / "records_aami.csv", newline="") as f:
    return {row["record"]: row for row in csv.DictReader(f)}


def test_mitdb_aami_counts_all_records(shared_data, mitdb_dir):
  import wfdb

  table = _aami_table(shared_data)
  from tfds_builders.mitdb import mitdb_dataset_builder as mitdb

  totals = {"DS1": np.zeros(5, int), "DS2": np.zeros(5, int)}
  by_split = {"train": np.zeros(5, int), "validation": np.zeros(5, int), "test": np.zeros(5, int)}
  for record, row in table.items():
    ann = wfdb.rdann(str(mitdb_dir / "mitdb" / record), "atr")
    _, labels, _ = aami.aami_beats(ann.symbol, ann.sample)
    counts = aami.aami_counts(labels)
    assert counts == {c: int(row[c]) for c in aami.AAMI_CLASSES}, record
    if row["split_deChazal"] in totals:
      totals[row["split_deChazal"]] += [counts[c] for c in aami.AAMI_CLASSES]
      by_split[mitdb.record_split(record)] += [counts[c] for c in aami.AAMI_CLASSES]
  # de Chazal et al. 2004, Table I (and the shared README).
  assert totals["DS1"].tolist() == [45866, 944, 3788, 415, 8]
  assert totals["DS2"].tolist() == [44259, 1837, 3221, 388, 7]
  # The builder's splits (tfds_builders/mitdb/README.md table).
  assert by_split["train"].tolist() == [37802, 744, 2824, 395, 4]
  assert by_split["validation"].tolist() == [8064, 200, 964, 20, 4]
  assert by_split["test"].tolist() == totals["DS2"].tolist()
  assert sorted(r for r, row in table.items() if row["split_deChazal"] == "DS1") == sorted(aami.DS1)
  assert sorted(r for r, row in table.items() if row["split_deChazal"] == "DS2") == sorted(aami.DS2)
  assert sorted(r for r, row in table.items() if row["split_deChazal"] == "excluded_paced") == sorted(
      aami.PACED_RECORDS)


def test_mitdb_build_two_records_real(shared_data, mitdb_dir, tmp_path):
  import wfdb
  from tfds_builders.mitdb import mitdb_dataset_builder as mitdb

  table = _aami_table(shared_data)
  # 124: a validation record of DS1; 232: the DS2 record richest in S beats; 102: paced, left out.
  config = mitdb.MitdbConfig(name="beat_subset", pre_s=0.25, post_s=0.45, records=("124", "232", "102"))
  builder = _prepare(mitdb.Builder, config, mitdb_dir, tmp_path)
  assert _split_sizes(builder) == {"validation": 1619, "test": 1780}
  for split, record in (("validation", "124"), ("test", "232")):
    ds = builder.as_data_source(split=split)
    counts = aami.aami_counts([ex["label"] for ex in ds])
    assert counts == {c: int(table[record][c]) for c in aami.AAMI_CLASSES}, record
  ds = builder.as_data_source(split="test")
  ex = next(ex for ex in ds if ex["label"] == 0 and ex["beat_index"] > 0)  # 232: RBBB ("R") beats.
  assert [n.decode() for n in ex["channel_names"]["ecg"]] == ["MLII", "V1"]
  rec = wfdb.rdrecord(str(mitdb_dir / "mitdb" / "232"))
  r = int(ex["r_peak"])
  np.testing.assert_allclose(ex["signals"]["ecg"], 1000 * rec.p_signal[r - 90:r + 162].T, rtol=1e-5, atol=1e-2)
  # An N-class beat's R wave on MLII: around a millivolt above the window's median, near index 90.
  mlii = ex["signals"]["ecg"][0]
  assert 300 < mlii[80:100].max() - np.median(mlii) < 3000
  assert abs(int(np.argmax(mlii[60:120])) + 60 - 90) <= 10


# ---------------------------------------------------------------------------------------------
# CinC 2017
# ---------------------------------------------------------------------------------------------


N_CINC = 200


@pytest.fixture(scope="session")
def cinc_dir(shared_data, tmp_path_factory):
  """The first N_CINC records whose .hea and .mat both appear early in the (unsorted) archive.

  Stopping there reads ~15% of the xz stream instead of all of it; the labels come from the
  REFERENCE.csv beside the archive (the same file as inside it).
  """
  dest = tmp_path_factory.mktemp("cinc")
  seen: dict[str, int] = {}
  complete = 0
  with tarfile.open(shared_data / "cinc2017" / "cinc2017_training2017.tar.xz", "r|xz") as tar:
    for member in tar:
      path = pathlib.PurePosixPath(member.name)
      if path.suffix in (".hea", ".mat"):
        tar.extract(member, dest, filter="data")
        seen[path.stem] = seen.get(path.stem, 0) + 1
        complete += seen[path.stem] == 2
        if complete == N_CINC:
          break
  (dest / "training2017" / "REFERENCE.csv").write_bytes((shared_data / "cinc2017" / "REFERENCE.csv").read_bytes())
  for stem, n in seen.items():  # Drop half-extracted records: the test knows exactly what is there.
    if n == 1:
      for suffix in (".hea", ".mat"):
        (dest / "training2017" / f"{stem}{suffix}").unlink(missing_ok=True)
  return dest


def test_cinc2017_reference_counts(shared_data):
  from tfds_builders.cinc2017 import cinc2017_dataset_builder as cinc

  v2 = cinc.read_reference(shared_data / "cinc2017" / "REFERENCE.csv")
  v1 = cinc.read_reference(shared_data / "cinc2017" / "REFERENCE-original.csv")
  counts = np.bincount(list(v2.values()), minlength=4).tolist()
  assert dict(zip(cinc.LABELS, counts)) == {"normal": 5050, "af": 738, "other": 2456, "noisy": 284}
  assert len(v1) == len(v2) == 8528 and sum(v1[r] != v2[r] for r in v2) == 294


def test_cinc2017_build_subset_real(shared_data, cinc_dir, tmp_path):
  import wfdb
  from tfds_builders.cinc2017 import cinc2017_dataset_builder as cinc

  builder = _prepare(cinc.Builder, "first_30s", cinc_dir, tmp_path)
  sizes = _split_sizes(builder)
  assert sum(sizes.values()) == N_CINC and 150 <= sizes["train"] <= 170 and 15 <= sizes["test"] <= 25
  v2 = cinc.read_reference(shared_data / "cinc2017" / "REFERENCE.csv")
  examples = {ex["record_id"].decode(): ex for s in sizes for ex in builder.as_data_source(split=s)}
  assert sorted(examples) == sorted(p.stem for p in (cinc_dir / "training2017").glob("*.hea"))
  assert all(ex["label"] == v2[r] for r, ex in examples.items())
  # Stratified: each split's class mix follows the subset's (N is the majority everywhere).
  for split in sizes:
    labels = np.bincount([ex["label"] for ex in builder.as_data_source(split=split)], minlength=4)
    assert labels.argmax() == 0
  record = sorted(examples)[0]
  rec = wfdb.rdrecord(str(cinc_dir / "training2017" / record))
  ex = examples[record]
  assert ex["duration_s"] == pytest.approx(rec.sig_len / 300) and ex["length"] == min(rec.sig_len, 9000)
  np.testing.assert_allclose(ex["signals"]["ecg"][0, :ex["length"]], 1000 * rec.p_signal[:9000, 0],
                             rtol=1e-5, atol=1e-2)
  short = [ex for ex in examples.values() if ex["length"] < 9000]
  assert short and all(np.all(ex["signals"]["ecg"][:, ex["length"]:] == 0) for ex in short)
  amplitude = np.median([np.percentile(ex["signals"]["ecg"][0, :ex["length"]], 99)
                         - np.percentile(ex["signals"]["ecg"][0, :ex["length"]], 1) for ex in examples.values()])
  assert 500 < amplitude < 2500  # README: p1-p99 amplitude median 1.1 mV.
