"""Hypnogram formats and label sets (docs/hypnograms.md): CSV, NSRR XML, text, EDF+, YASA codes."""

import numpy as np
import pytest

from sleepjax.data import errors
from sleepjax.data import hypnogram
from sleepjax.data import stages

W, N1, N2, N3, REM, U, M = 0, 1, 2, 3, 4, -1, -2


def _write(path, text):
  path.write_text(text)
  return path


def test_stage_labels_rk_aasm_nsrr_yasa():
  f = stages.stage_from_label
  assert [f(x) for x in ("W", "1", "2", "3", "4", "R", "M", "?")] == [W, N1, N2, N3, N3, REM, M, U]
  assert [f(x) for x in ("Sleep stage 4", "Stage 3", "sleep_stage_r", "Movement time")] == [N3, N3, REM, M]
  assert [f(x) for x in ("Wake", "N1", "n2", "Sleep stage N2", "Stage N3", "REM")] == [W, N1, N2, N2, N3, REM]
  assert [f(x) for x in ("Wake|0", "Stage 1 sleep|1", "Stage 4 sleep|4", "REM sleep|5", "Unscored|9",
                         "Movement|6")] == [W, N1, N3, REM, U, M]
  assert [f(x) for x in ("WAKE", "UNS", "ART")] == [W, U, M]
  codes = stages.compile_mapping({"0": "W", "5": "REM", 9: -1, "2": 2})
  assert [f(x, mapping=codes) for x in ("0", 5, "9", 2.0, "3")] == [W, REM, U, N2, N3]
  with pytest.raises(errors.AnnotationError, match=r"h\.txt: line 7: unknown sleep stage label '5'.*stage_mapping"):
    f("5", path="h.txt", where="line 7")
  with pytest.raises(errors.AnnotationError, match="not one of"):
    stages.compile_mapping({"0": "deep"})


def test_yasa_codes_round_trip():
  ours = np.array([W, N1, N2, N3, REM, U, M])
  theirs = stages.to_yasa_codes(ours)
  np.testing.assert_array_equal(theirs, [0, 1, 2, 3, 4, -2, -1])
  np.testing.assert_array_equal(stages.from_yasa_codes(theirs), ours)


def test_csv_events_layout_with_gap_and_aasm_labels(tmp_path):
  p = _write(tmp_path / "n1.csv", "Onset,Duration,Stage\n30,60,Wake\n90,30,N1\n150,90,N2\n240,30,REM\n")
  h = hypnogram.read_hypnogram(p, "csv")
  assert h.onset_s == 30.0
  np.testing.assert_array_equal(h.stages, [W, W, N1, U, N2, N2, N2, REM])


def test_csv_epochs_layouts(tmp_path):
  # epoch + stage columns, semicolon-delimited, R&K labels.
  p = _write(tmp_path / "a.csv", "epoch;stage\n1;W\n2;1\n3;2\n4;4\n5;R\n")
  np.testing.assert_array_equal(hypnogram.read_hypnogram(p, "csv").stages, [W, N1, N2, N3, REM])
  # one header-less column of numeric codes with a user mapping.
  q = _write(tmp_path / "b.csv", "0\n0\n2\n3\n5\n")
  h = hypnogram.read_hypnogram(q, "csv", stage_mapping={"0": "W", "2": "N2", "3": "N3", "5": "REM"},
                               onset_s=60.0)
  np.testing.assert_array_equal(h.stages, [W, W, N2, N3, REM])
  assert h.onset_s == 60.0
  # 20-s epochs converted by majority over time.
  r = _write(tmp_path / "c.csv", "stage\nW\nN1\nN2\nN3\nREM\nREM\n")
  np.testing.assert_array_equal(hypnogram.read_hypnogram(r, "csv", epoch_s=20).stages, [W, N2, N3, REM])


def test_csv_errors_name_file_and_row(tmp_path):
  bad = _write(tmp_path / "bad.csv", "onset,duration,stage\n0,30,W\n30,30,S5\n")
  with pytest.raises(errors.AnnotationError, match=r"bad\.csv: row 3: unknown sleep stage label 'S5'"):
    hypnogram.read_hypnogram(bad, "csv")
  grid = _write(tmp_path / "grid.csv", "onset,duration,stage\n0,30,W\n45,30,N2\n")
  with pytest.raises(errors.AnnotationError, match=r"grid\.csv: row 3: .*30-s epoch grid"):
    hypnogram.read_hypnogram(grid, "csv")
  skip = _write(tmp_path / "skip.csv", "epoch,stage\n1,W\n2,W\n4,N2\n")
  with pytest.raises(errors.AnnotationError, match=r"skip\.csv: row 4: epoch 4 follows epoch 2"):
    hypnogram.read_hypnogram(skip, "csv")
  nostage = _write(tmp_path / "x.csv", "onset,duration\n0,30\n")
  with pytest.raises(errors.AnnotationError, match="no stage column"):
    hypnogram.read_hypnogram(nostage, "csv")


_XML = """<?xml version="1.0" encoding="UTF-8"?>
<PSGAnnotation><SoftwareVersion>Compumedics</SoftwareVersion><EpochLength>30</EpochLength>
<ScoredEvents>
<ScoredEvent><EventType/><EventConcept>Recording Start Time</EventConcept><Start>0</Start>
<Duration>300.0</Duration><ClockTime>00.00.00 22.00.00</ClockTime></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Wake|0</EventConcept><Start>0</Start><Duration>60.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Stage 1 sleep|1</EventConcept><Start>60.0</Start><Duration>30.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Stage 2 sleep|2</EventConcept><Start>90.0</Start><Duration>60.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Respiratory|Respiratory</EventType><EventConcept>Hypopnea|Hypopnea</EventConcept><Start>100.0</Start><Duration>12.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Stage 4 sleep|4</EventConcept><Start>150.0</Start><Duration>30.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>REM sleep|5</EventConcept><Start>180.0</Start><Duration>30.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Unscored|9</EventConcept><Start>210.0</Start><Duration>30.0</Duration></ScoredEvent>
</ScoredEvents></PSGAnnotation>
"""


def test_nsrr_xml(tmp_path):
  p = _write(tmp_path / "shhs1-200001-nsrr.xml", _XML)
  h = hypnogram.read_hypnogram(p)  # by extension
  np.testing.assert_array_equal(h.stages, [W, W, N1, N2, N2, N3, REM, U])
  assert h.onset_s == 0.0
  bad = _write(tmp_path / "b.xml", _XML.replace("REM sleep|5", "Stage 5 sleep|5"))
  with pytest.raises(errors.AnnotationError, match=r"b\.xml: ScoredEvent 7 \('Stage 5 sleep\|5'\): unknown"):
    hypnogram.read_hypnogram(bad, "nsrr_xml")
  none = _write(tmp_path / "n.xml", "<PSGAnnotation><ScoredEvents/></PSGAnnotation>")
  with pytest.raises(errors.AnnotationError, match="no ScoredEvent"):
    hypnogram.read_hypnogram(none, "nsrr_xml")


def test_text_with_known_labels_and_unknown_format(tmp_path):
  p = _write(tmp_path / "h.txt", "Sleep stage W\nSleep stage 2\n\nSleep stage N3\nREM\n")
  np.testing.assert_array_equal(hypnogram.read_hypnogram(p, "text").stages, [W, N2, N3, REM])
  with pytest.raises(ValueError, match="not one of"):
    hypnogram.read_hypnogram(p, "json")


def test_hypnogram_from_yasa_round_trip():
  yasa = pytest.importorskip("yasa", reason="yasa is an optional dependency (test extra)")
  from sleepjax.hypnogram import Hypnogram
  ours = Hypnogram(stages=np.array([W, W, N1, N2, N3, REM, U, M, N2]))
  back = Hypnogram.from_yasa(ours.to_yasa())
  np.testing.assert_array_equal(back.stages, ours.stages)
  np.testing.assert_array_equal(Hypnogram.from_yasa(np.array([0, 2, -2, -1])).stages, [W, N2, U, M])
  # 20-s YASA epochs are converted by majority over time.
  h20 = yasa.Hypnogram(["WAKE", "N1", "N2", "N3", "REM", "REM"], n_stages=5, freq="20s")
  np.testing.assert_array_equal(Hypnogram.from_yasa(h20).stages, [W, N2, N3, REM])


def test_load_recording_with_csv_and_xml_hypnograms_of_the_real_excerpt(tmp_path):
  from sleepjax.data import channels
  from sleepjax.data import recording
  from sleepjax.data.sample_data import sc4001_excerpt
  psg, _ = sc4001_excerpt()  # real Sleep-EDF bytes: 300 s, 3 channels at 100 Hz
  montage = channels.Montage([channels.ChannelSpec("EEG Fpz-Cz", "eeg"), channels.ChannelSpec("EOG horizontal", "eog")])
  csv_path = _write(tmp_path / "night.csv", "onset,duration,stage\n0,120,Wake\n120,90,N1\n210,90,N2\n")
  xml_path = _write(tmp_path / "night.xml", _XML.replace("</ScoredEvents>", "").replace(
      "</PSGAnnotation>", "<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Wake|0"
      "</EventConcept><Start>240</Start><Duration>60</Duration></ScoredEvent></ScoredEvents></PSGAnnotation>"))
  for hyp, fmt, expected in ((csv_path, "csv", [W] * 4 + [N1] * 3 + [N2] * 3),
                             (xml_path, None, [W, W, N1, N2, N2, N3, REM, W, W])):
    rec = recording.load_recording(psg, hyp, montage, subject_id="S1", trim_wake_min=None, sfreq=100.0,
                                   hypnogram_kwargs={"format": fmt})
    np.testing.assert_array_equal(rec.stages, [s for s in expected if s >= 0])
