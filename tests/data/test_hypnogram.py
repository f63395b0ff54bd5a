"""Hypnogram readers and the 30-s majority vote (sleepjax.data.hypnogram)."""

import datetime

import edfio
import numpy as np
import pytest

from sleepjax.data import errors
from sleepjax.data import hypnogram
from sleepjax.data import stages
from tfds_builders.dreams import dreams_dataset_builder as dreams
from tfds_builders.isruc_s3 import isruc_s3_dataset_builder as isruc

W, N1, N2, N3, REM, U, M = 0, 1, 2, 3, 4, -1, -2


def _write_hypnogram(path, annotations, start=datetime.time(22, 0, 0)):
  edfio.Edf([], annotations=[edfio.EdfAnnotation(o, d, t) for o, d, t in annotations],
            starttime=start).write(path)
  return path


def test_map_stage_text_rk_to_aasm():
  assert [stages.map_stage_text(f"Sleep stage {c}") for c in "W1234R?"] == [
      W, N1, N2, N3, N3, REM, U]
  assert stages.map_stage_text("Movement time") == M
  with pytest.raises(errors.AnnotationError, match=r"h\.edf.*'Lights off'"):
    stages.map_stage_text("Lights off", "h.edf")


def test_edf_hypnogram_durations_gaps_and_onset(tmp_path):
  path = _write_hypnogram(tmp_path / "h.edf", [
      (60, 90, "Sleep stage W"), (150, 30, "Sleep stage 1"), (180, 60, "Sleep stage 4"),
      # Gap 240..300 -> two unscored epochs.
      (300, 30, "Sleep stage R"), (330, 30, "Movement time"), (360, 30, "Sleep stage ?")])
  h = hypnogram.read_edf_hypnogram(path)
  np.testing.assert_array_equal(h.stages, [W, W, W, N1, N3, N3, U, U, REM, M, U])
  assert h.stages.dtype == np.int32
  assert h.onset_s == 60.0 and h.path == str(path)
  assert h.end_s == 60.0 + 30 * 11


def test_edf_hypnogram_psg_start_offset(tmp_path):
  path = _write_hypnogram(tmp_path / "h.edf", [(0, 60, "Sleep stage W")],
                          start=datetime.time(22, 0, 30))
  psg_start = datetime.datetime(1985, 1, 1, 22, 0, 0)  # edfio writes 01.01.85 by default
  assert hypnogram.read_edf_hypnogram(path, psg_start=psg_start).onset_s == 30.0


def test_edf_hypnogram_unknown_text(tmp_path):
  path = _write_hypnogram(tmp_path / "bad.edf", [(0, 30, "Sleep stage W"),
                                                 (30, 30, "Sleep stage 5")])
  with pytest.raises(errors.AnnotationError, match=r"bad\.edf.*'Sleep stage 5'"):
    hypnogram.read_edf_hypnogram(path)
  # A known non-stage text can be skipped on purpose.
  path = _write_hypnogram(tmp_path / "lights.edf", [(0, 30, "Sleep stage W"),
                                                    (0, 0, "Lights off")])
  h = hypnogram.read_edf_hypnogram(path, ignore_texts=("Lights off",))
  np.testing.assert_array_equal(h.stages, [W])


def test_edf_hypnogram_off_grid_and_overlap(tmp_path):
  path = _write_hypnogram(tmp_path / "grid.edf", [(0, 45, "Sleep stage W")])
  with pytest.raises(errors.AnnotationError, match="30-s epoch grid"):
    hypnogram.read_edf_hypnogram(path)
  path = _write_hypnogram(tmp_path / "overlap.edf", [(0, 60, "Sleep stage W"),
                                                     (30, 30, "Sleep stage 2")])
  with pytest.raises(errors.AnnotationError, match="overlaps"):
    hypnogram.read_edf_hypnogram(path)


def test_edf_hypnogram_without_annotations(tmp_path):
  path = tmp_path / "psg.edf"
  edfio.Edf([edfio.EdfSignal(np.zeros(100), 10, label="EEG Cz")]).write(path)
  with pytest.raises(errors.AnnotationError, match="no 'EDF Annotations'"):
    hypnogram.read_edf_hypnogram(path)


@pytest.mark.parametrize("sub, expected", [
    ([W] * 6, W),
    ([N2, N2, N2, N2, N1, N1], N2),
    ([N1, N1, N1, N2, N2, N2], N1),     # tie: first in time wins
    ([N2, N2, N2, N1, N1, N1], N2),
    ([U, U, U, U, N2, N2], U),          # unscored is its own class
    ([N3, N3, M, M, M, REM], M),
    ([N1, N2, N3, REM, W, N2], N2),
])
def test_to_30s_majority(sub, expected):
  np.testing.assert_array_equal(hypnogram.to_30s(np.array(sub), 5.0), [expected])


def test_to_30s_drops_incomplete_tail_and_checks_the_epoch():
  out = hypnogram.to_30s(np.array([W] * 6 + [N2] * 6 + [N3] * 4), 5.0)
  np.testing.assert_array_equal(out, [W, N2])
  np.testing.assert_array_equal(hypnogram.to_30s(np.array([W, N1]), 30.0), [W, N1])
  with pytest.raises(ValueError, match="positive"):
    hypnogram.to_30s(np.array([W, W, W]), 0.0)


def test_to_30s_majority_over_time_for_20s_epochs():
  # 20-s epochs (MASS) on a 10-s grid: W W N1 | N1 N2 N2 | N3 N3 REM | REM U U.
  out = hypnogram.to_30s(np.array([W, N1, N2, N3, REM, U]), 20.0)
  np.testing.assert_array_equal(out, [W, N2, N3, U])


def test_text_hypnogram_dreams_codes(tmp_path):
  path = tmp_path / "Hypnogram_excerptX.txt"
  # 5-s R&K codes: 5=W, 4=REM, 3=S1, 2=S2, 1=S3, 0=S4.
  codes = [5] * 6 + [2, 2, 2, 2, 3, 3] + [0, 0, 1, 1, 1, 2] + [4] * 6 + [5, 5]
  path.write_text("[Hypnogram]\n" + "\n".join(map(str, codes)) + "\n\n")
  h = hypnogram.read_text_hypnogram(path, epoch_s=5, mapping=dreams.DREAMS_RK_CODES)
  np.testing.assert_array_equal(h.stages, [W, N2, N3, REM])


def test_text_hypnogram_isruc_codes_and_errors(tmp_path):
  path = tmp_path / "1_1.txt"
  path.write_text("0\n1\n2\n3\n5\n")
  h = hypnogram.read_text_hypnogram(path, epoch_s=30, mapping=isruc.ISRUC_CODES,
                                    header_lines=0)
  np.testing.assert_array_equal(h.stages, [W, N1, N2, N3, REM])
  path.write_text("0\n4\n")
  with pytest.raises(errors.AnnotationError, match=r"1_1\.txt: line 2: unknown stage label '4'"):
    hypnogram.read_text_hypnogram(path, epoch_s=30, mapping=isruc.ISRUC_CODES,
                                  header_lines=0)
  with pytest.raises(errors.AnnotationError, match="does not exist"):
    hypnogram.read_text_hypnogram(tmp_path / "nope.txt", epoch_s=30, mapping={})


def test_read_hypnogram_dispatch(tmp_path):
  path = tmp_path / "h.txt"
  path.write_text("0\n")
  with pytest.raises(errors.RecordingError, match="epoch_s"):
    hypnogram.read_hypnogram(path)
  h = hypnogram.read_hypnogram(path, epoch_s=30, mapping=isruc.ISRUC_CODES,
                               header_lines=0)
  assert h.n_epochs == 1


def test_hypnogram_rejects_bad_values():
  with pytest.raises(errors.AnnotationError, match="outside"):
    hypnogram.Hypnogram(np.array([0, 7]))
  h = hypnogram.Hypnogram(np.array([U, U, N2, W, U]))
  assert h.scored_span() == (2, 3)
  assert hypnogram.Hypnogram(np.array([U])).scored_span() is None
