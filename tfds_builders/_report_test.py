"""Tests of the one build-report writer (tfds_builders/_report.py)."""

import json
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sleepjax.data import errors
from sleepjax.data import report as report_lib
from tfds_builders import _report


def _builder():
  return types.SimpleNamespace(info=types.SimpleNamespace(metadata=tfds.core.MetadataDict()))


def test_example_report_is_plain_json():
  rep = _report.example_report(np.int64(5), [errors.RecordingError("a.edf", "truncated")], 12,
                               n_events_skipped=np.int32(3))
  assert rep == {"n_recordings": 5, "n_failed": 1, "failures": ["a.edf: truncated"], "n_examples": 12,
                 "n_events_skipped": 3}
  assert type(rep["n_recordings"]) is int and type(rep["n_events_skipped"]) is int
  json.dumps(rep)  # metadata.json must accept it


def test_write_stores_per_split_and_replaces():
  b = _builder()
  _report.write(b, "train", _report.example_report(2, [], 7))
  _report.write(b, "test", _report.example_report(1, ["x"], 0))
  _report.write(b, "train", _report.example_report(3, [], 9))
  assert sorted(b.info.metadata["build_report"]) == ["test", "train"]
  assert b.info.metadata["build_report"]["train"]["n_examples"] == 9
  assert b.info.metadata["build_report"]["test"]["failures"] == ["x"]


@pytest.mark.parametrize("report,match", [
    ({"n_recordings": 1, "failures": []}, r"lacks \['n_failed'\]"),
    ({"n_recordings": 1, "n_failed": 2, "failures": ["x"]}, "n_failed=2 but 1 failure"),
])
def test_write_refuses_reports_the_readers_cannot_use(report, match):
  with pytest.raises(ValueError, match=match):
    _report.write(_builder(), "train", report)


def test_psg_report_schema_and_index():
  reports = [report_lib.EpochReport("SC4001E0", n_epochs_total=10, n_kept=7,
                                    dropped={"unscored": 2, "movement": 1}, warnings=["w"]),
             report_lib.EpochReport("SC4002E0", n_epochs_total=4, n_kept=4)]
  failure = errors.MissingChannelError("SC4011E0-PSG.edf", "no EEG Pz-Oz")
  index = {"record_id": ["SC4001E0", "SC4002E0"], "subject_id": ["SC400", "SC400"],
           "epoch_index": [[0, 1, 2, 3, 4, 5, 9], [0, 1, 2, 3]], "ignored": [1]}
  rep = _report.psg_report(reports, [failure], ["SC4011E0"], index)
  # The keys `python -m sleepjax.data.build` prints and pipeline.WindowIndex reads.
  assert (rep["n_recordings"], rep["n_failed"], rep["n_epochs_total"], rep["n_kept"]) == (2, 1, 14, 11)
  assert rep["dropped"]["unscored"] == 2 and rep["dropped"]["movement"] == 1
  assert rep["failures"] == ["SC4011E0-PSG.edf: no EEG Pz-Oz"] and rep["failed_records"] == ["SC4011E0"]
  assert rep["recordings"]["SC4001E0"] == {"n_kept": 7, "n_epochs_total": 10, "warnings": ["w"],
                                           "dropped": reports[0].dropped}
  assert rep["index"] == {k: index[k] for k in ("record_id", "subject_id", "epoch_index")}
  b = _builder()
  _report.write(b, "validation", rep)
  assert json.loads(json.dumps(b.info.metadata["build_report"]["validation"])) == rep
