"""Tests of sleepjax.data.pipeline on a fake in-memory source (and one tiny real build)."""

import numpy as np
import pytest

from sleepjax.data import pipeline

T = 30  # samples per epoch in the fake source (1 Hz), enough to check concatenation.


def _fake_source(n_records=4, n_epochs=12, gap_at=None):
  """Epochs of several recordings; signal value encodes (record, epoch, channel)."""
  rows = []
  for r in range(n_records):
    for e in range(n_epochs):
      if gap_at is not None and r == 0 and e == gap_at:
        continue
      eeg = np.stack([np.full((T,), 1000 * r + 10 * e + c, np.float32) for c in range(2)])
      eeg[1, 0] = np.nan if (r, e) == (1, 3) else eeg[1, 0]
      rows.append({
          "signals": {"eeg": eeg, "ecg": np.full((1, T), -1.0, np.float32)},
          "channel_names": {"eeg": np.array([b"C3-M2", b"C4-M1"], object),
                            "ecg": np.array([b"ECG"], object)},
          "positions": {"eeg": np.array([[-.5, 0, .8], [.5, 0, .8]], np.float32),
                        "ecg": np.full((1, 3), np.nan, np.float32)},
          "stage": np.int32(e % 5),
          "subject_id": f"S{r // 2}".encode(),
          "record_id": f"R{r}".encode(),
          "epoch_index": np.int32(e),
      })
  return rows


def test_subject_split_small_and_disjoint():
  assert pipeline.subject_split(["a"]) == {"a": "train"}
  two = pipeline.subject_split(["a", "b", "a"])
  assert sorted(two.values()) == ["test", "train"]
  three = pipeline.subject_split(["x", "y", "z"])
  assert sorted(three.values()) == ["test", "train", "validation"]
  subjects = [f"SC4{i:02d}" for i in range(40)]
  split = pipeline.subject_split(subjects)
  counts = {s: list(split.values()).count(s) for s in pipeline.SPLITS}
  assert counts == {"train": 32, "validation": 4, "test": 4}
  # Order of the input does not matter.
  assert pipeline.subject_split(subjects[::-1]) == split
  with pytest.raises(ValueError):
    pipeline.subject_split(subjects, validation_fraction=0.6, test_fraction=0.5)


def test_window_index_never_crosses_recordings_or_gaps():
  src = _fake_source(n_records=3, n_epochs=7, gap_at=3)
  idx = pipeline.WindowIndex.from_source(src, window_epochs=3)
  # R0 has runs 0-2 and 4-6 (gap at 3): 2 windows; R1, R2: 7 epochs -> 2 windows each.
  assert len(idx) == 6
  for w in range(len(idx)):
    rows = idx.rows[w]
    recs = {src[r]["record_id"] for r in rows}
    eps = [int(src[r]["epoch_index"]) for r in rows]
    assert len(recs) == 1
    assert np.all(np.diff(eps) == 1)
  strided = pipeline.WindowIndex.from_source(src, window_epochs=3, stride_epochs=1)
  assert len(strided) == 2 + 5 + 5


def test_window_index_sorts_shuffled_rows():
  src = _fake_source(n_records=2, n_epochs=4)
  perm = np.random.default_rng(0).permutation(len(src))
  shuffled = [src[i] for i in perm]
  idx = pipeline.WindowIndex.from_source(shuffled, window_epochs=4)
  assert len(idx) == 2
  for w in range(2):
    assert [int(shuffled[r]["epoch_index"]) for r in idx.rows[w]] == [0, 1, 2, 3]


def test_batch_shapes_masks_and_padding():
  src = _fake_source()
  ds = pipeline.make_dataset(src, batch_size=3, window_epochs=2,
                             channel_caps={"eeg": 4, "ecg": 2, "emg": 3},
                             modalities=["eeg", "ecg", "emg"], seed=0, num_epochs=1)
  batch = next(iter(ds))
  assert batch["signals"]["eeg"].shape == (3, 4, 2 * T)
  assert batch["signals"]["eeg"].dtype == np.float32
  assert batch["mask"]["eeg"].tolist() == [[True, True, False, False]] * 3
  assert batch["mask"]["emg"].sum() == 0 and batch["signals"]["emg"].shape == (3, 3, 2 * T)
  assert np.all(batch["signals"]["eeg"][:, 2:] == 0)
  assert batch["positions"]["eeg"].shape == (3, 4, 3)
  # ECG is a real channel without an electrode position: NaN -> 0, position_mask False.
  assert batch["mask"]["ecg"][:, 0].all()
  assert not batch["position_mask"]["ecg"].any()
  assert np.all(batch["positions"]["ecg"] == 0)
  assert batch["position_mask"]["eeg"].tolist() == [[True, True, False, False]] * 3
  assert batch["stage"].shape == (3, 2) and batch["stage"].dtype == np.int32
  assert batch["epoch_index"].shape == (3, 2)
  assert batch["record_id"].dtype == object and isinstance(batch["record_id"][0], str)
  assert batch["subject"].dtype == np.int32
  # Signal values: epoch e of record r, channel c has value 1000 r + 10 e + c; the window's
  # second epoch follows the first along time.
  for b in range(3):
    r = int(batch["record_id"][b][1:])
    e0, e1 = batch["epoch_index"][b]
    assert e1 == e0 + 1
    x = batch["signals"]["eeg"][b, 0]
    np.testing.assert_array_equal(x[:T], 1000 * r + 10 * e0)
    np.testing.assert_array_equal(x[T:], 1000 * r + 10 * e1)
    assert batch["subject"][b] == r // 2
  # Default caps = the dataset's channel counts.
  plain = next(iter(pipeline.make_dataset(src, batch_size=2, num_epochs=1)))
  assert plain["signals"]["eeg"].shape == (2, 2, T) and plain["mask"]["eeg"].all()


def test_modality_groups_and_cap_errors():
  src = _fake_source()
  ds = pipeline.make_dataset(src, batch_size=2, modalities={"bas": ("eeg", "ecg")},
                             channel_caps={"bas": 5}, num_epochs=1)
  b = next(iter(ds))
  assert b["mask"]["bas"].tolist() == [[True, True, True, False, False]] * 2
  with pytest.raises(ValueError, match="cap"):
    pipeline.make_dataset(src, batch_size=2, channel_caps={"eeg": 1}, num_epochs=1)


def test_nan_signal_replaced_by_zero():
  src = _fake_source()
  batches = list(pipeline.iterate_windows(src, batch_size=100))
  b = batches[0]
  assert np.isfinite(b["signals"]["eeg"]).all()
  i = [k for k in range(len(b["record_id"]))
       if b["record_id"][k] == "R1" and b["epoch_index"][k, 0] == 3][0]
  assert b["signals"]["eeg"][i, 1, 0] == 0.0


def _all_windows(ds):
  return [(r, int(e[0])) for b in ds for r, e in zip(b["record_id"], b["epoch_index"])]


def test_determinism_by_seed_and_epoch_reshuffle():
  src = _fake_source()
  a = _all_windows(pipeline.make_dataset(src, batch_size=4, seed=1, num_epochs=2))
  b = _all_windows(pipeline.make_dataset(src, batch_size=4, seed=1, num_epochs=2))
  c = _all_windows(pipeline.make_dataset(src, batch_size=4, seed=2, num_epochs=2))
  assert a == b
  assert a != c
  n = len(src)
  assert len(a) == 2 * n
  assert sorted(a[:n]) == sorted(a[n:])  # each pass sees every window once
  assert a[:n] != a[n:]  # in a different order


def test_sharding_is_disjoint_and_covers():
  src = _fake_source(n_records=3, n_epochs=11)  # 33 windows -> 3 shards of 11
  shards = [set(_all_windows(pipeline.make_dataset(src, batch_size=1, num_epochs=1, seed=0,
                                                   shard_index=i, shard_count=3)))
            for i in range(3)]
  assert all(len(s) == 11 for s in shards)
  assert not (shards[0] & shards[1]) and not (shards[1] & shards[2]) and not (shards[0] & shards[2])
  assert len(set().union(*shards)) == 33
  evals = [_all_windows(pipeline.iterate_windows(src, batch_size=4, shard_index=i, shard_count=2))
           for i in range(2)]
  assert len(evals[0]) + len(evals[1]) == 33
  assert not set(evals[0]) & set(evals[1])
  with pytest.raises(ValueError):
    pipeline.make_dataset(src, batch_size=1, shard_index=3, shard_count=3)


def test_iterator_state_resume():
  src = _fake_source()
  ds = pipeline.make_dataset(src, batch_size=3, seed=7, num_epochs=None)
  it = iter(ds)
  reference = [next(it) for _ in range(8)]
  it2 = iter(ds)
  for _ in range(5):
    next(it2)
  state = it2.get_state()
  it3 = iter(pipeline.make_dataset(src, batch_size=3, seed=7, num_epochs=None))
  it3.set_state(state)
  for k in range(5, 8):
    got = next(it3)
    assert list(got["record_id"]) == list(reference[k]["record_id"])
    np.testing.assert_array_equal(got["signals"]["eeg"], reference[k]["signals"]["eeg"])


def test_iterate_windows_order_and_padding():
  src = _fake_source(n_records=2, n_epochs=5)
  batches = list(pipeline.iterate_windows(src, batch_size=4))
  assert [len(b["record_id"]) for b in batches] == [4, 4, 2]
  flat = _all_windows(batches)
  assert flat == [(f"R{r}", e) for r in range(2) for e in range(5)]
  padded = list(pipeline.iterate_windows(src, batch_size=4, pad_final_batch=True))
  assert padded[-1]["signals"]["eeg"].shape[0] == 4
  assert padded[-1]["valid"].tolist() == [True, True, False, False]


def test_drop_remainder():
  src = _fake_source(n_records=1, n_epochs=10)
  kept = list(pipeline.make_dataset(src, batch_size=4, num_epochs=1, drop_remainder=True))
  assert [len(b["record_id"]) for b in kept] == [4, 4]
  full = list(pipeline.make_dataset(src, batch_size=4, num_epochs=1, drop_remainder=False))
  assert [len(b["record_id"]) for b in full] == [4, 4, 2]


def test_prepare_and_data_source_on_a_tiny_real_build(tmp_path):
  """prepare/data_source build a registered dataset by name; the pipeline reads it."""
  import pathlib

  import tfds_builders.sleep_edf  # noqa: F401  (registers sleep_edf; sleepjax never does)

  dummy = pathlib.Path(tfds_builders.sleep_edf.__file__).parent / "dummy_data"
  builder = pipeline.prepare("sleep_edf", str(tmp_path), config="telemetry",
                             manual_dir=str(dummy))
  assert builder.info.splits["train"].num_examples == 14
  src = pipeline.data_source("sleep_edf/telemetry", "train", data_dir=str(tmp_path))
  assert len(src) == 14
  batches = list(pipeline.iterate_windows(src, batch_size=4, window_epochs=5))
  # Kept epochs 0-9 and 11-14 (10 is "Movement time"): runs of 10 and 4 -> 2 windows of 5.
  assert [b["epoch_index"].tolist() for b in batches] == [[list(range(0, 5)), list(range(5, 10))]]
  assert batches[0]["signals"]["eeg"].shape == (2, 2, 15000)
  assert batches[0]["subject"].tolist() == [0, 0]
  # The builder's stored row index gives the same windows as decoding every example.
  assert pipeline._index_from_metadata(src) is not None
  fast = pipeline.WindowIndex.from_source(src, window_epochs=3, stride_epochs=2)
  slow = pipeline.WindowIndex.from_source(src, window_epochs=3, stride_epochs=2,
                                          use_metadata=False)
  np.testing.assert_array_equal(fast.rows, slow.rows)
  assert fast.record_ids.tolist() == slow.record_ids.tolist()
  assert fast.subject_ids.tolist() == slow.subject_ids.tolist()
  sliced = builder.as_data_source(split="train[:5]")
  assert pipeline._index_from_metadata(sliced) is None  # falls back to the scan
  assert len(pipeline.WindowIndex.from_source(sliced, window_epochs=5)) == 1
  with pytest.raises(ValueError, match="not registered"):
    pipeline.prepare("no_such_psg_dataset", str(tmp_path))
  # The pipeline's own decoding of the stored records gives what TFDS's decoding gives, field by
  # field, and the same batches as the generic path (a plain list of TFDS-decoded examples).
  for source in (src, sliced):
    decoder = pipeline._EpochDecoder.for_source(source)
    assert decoder is not None
    for i in range(len(source)):
      want, got = source[i], decoder(i)
      for group in ("signals", "positions"):
        assert set(got[group]) == set(want[group])
        for m in want[group]:
          assert got[group][m].dtype == want[group][m].dtype
          np.testing.assert_array_equal(got[group][m], want[group][m])
      for key in ("stage", "epoch_index", "subject_id", "record_id"):
        assert got[key] == want[key] and type(got[key]) is type(want[key]), key
  assert pipeline._EpochDecoder.for_source([src[0]]) is None
  generic = list(pipeline.iterate_windows([src[i] for i in range(len(src))], batch_size=4, window_epochs=5))
  assert len(generic) == len(batches)
  for a, b in zip(batches, generic):
    for key in ("signals", "mask", "positions", "position_mask"):
      for m in a[key]:
        np.testing.assert_array_equal(a[key][m], b[key][m])
    for key in ("stage", "subject", "record_id", "epoch_index"):
      np.testing.assert_array_equal(a[key], b[key])


class _Recording(list):
  def __init__(self, examples):
    super().__init__(examples)
    self.read = set()

  def __getitem__(self, i):
    self.read.add(int(i))
    return super().__getitem__(i)


def test_shards_read_only_their_slice_of_each_global_batch():
  # Two processes with batch 3 each see exactly the global batches of one process with batch 6,
  # and each reads nothing but its own rows of them (no prefetch here, so reads are exact).
  import grain  # pylint: disable=g-import-not-at-top
  from tests.train.conftest import fake_source  # pylint: disable=g-import-not-at-top
  examples = fake_source(n_subjects=3, epochs_per_record=8)
  no_prefetch = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
  single = pipeline.make_dataset(examples, batch_size=6, window_epochs=2, seed=3, read_options=no_prefetch)
  whole = [next(it) for it in [iter(single)] for _ in range(3)]
  row_of = {(ex["record_id"], int(ex["epoch_index"])): i for i, ex in enumerate(examples)}
  for shard in (0, 1):
    source = _Recording(examples)
    it = iter(pipeline.make_dataset(source, batch_size=3, window_epochs=2, seed=3, shard_index=shard,
                                    shard_count=2, read_options=no_prefetch))
    source.read.clear()  # The pipeline read row 0 for the shapes.
    mine = set()
    for b in range(3):
      part = next(it)
      ref = {k: v[3 * shard:3 * (shard + 1)] for k, v in whole[b].items() if k in ("stage", "epoch_index", "record_id")}
      np.testing.assert_array_equal(part["stage"], ref["stage"])
      np.testing.assert_array_equal(part["epoch_index"], ref["epoch_index"])
      assert list(part["record_id"]) == list(ref["record_id"])
      mine |= {row_of[(r, int(e))] for r, eps in zip(ref["record_id"], ref["epoch_index"]) for e in eps}
    assert source.read == mine
  with pytest.raises(ValueError, match="drop_remainder"):
    pipeline.make_dataset(examples, batch_size=3, window_epochs=2, shard_index=0, shard_count=2, drop_remainder=False)
