"""The channel alias table (sleepjax/data/channel_aliases.json) and user alias files."""

import json

import pytest

from sleepjax.data import channels

# Every spelling named in issue 10, by source, with the modality it must get.
_EEG, _EOG, _EMG, _ECG, _RESP = "eeg", "eog", "emg", "ecg", "resp"
CLINICAL_LABELS = {
    "Sleep-EDF": {"EEG Fpz-Cz": _EEG, "EEG Pz-Oz": _EEG, "EOG horizontal": _EOG,
                  "EMG submental": _EMG, "Resp oro-nasal": _RESP, "Temp rectal": None,
                  "Event marker": None, "Marker": None},
    "SHHS": {"EEG": _EEG, "EEG(sec)": _EEG, "EEG 2": _EEG, "EOG(L)": _EOG, "EOG(R)": _EOG,
             "EMG": _EMG, "ECG": _ECG, "THOR RES": _RESP, "ABDO RES": _RESP, "AIRFLOW": _RESP,
             "NEW AIR": _RESP, "SaO2": None, "H.R.": None, "POSITION": None, "LIGHT": None,
             "OX stat": None},
    "MESA": {"EEG1": _EEG, "EEG2": _EEG, "EEG3": _EEG, "EOG-L": _EOG, "EOG-R": _EOG,
             "EMG": _EMG, "EKG": _ECG, "Thor": _RESP, "Abdo": _RESP, "Flow": _RESP,
             "Pres": _RESP, "Therm": _RESP, "Leg": _EMG, "SpO2": None, "Pleth": None,
             "HR": None, "Snore": None, "Pos": None},
    "MrOS": {"C3": _EEG, "C4": _EEG, "A1": _EEG, "A2": _EEG, "LOC": _EOG, "ROC": _EOG,
             "L Chin": _EMG, "R Chin": _EMG, "ECG L": _ECG, "ECG R": _ECG,
             "Thoracic": _RESP, "Abdominal": _RESP, "Airflow": _RESP, "Cannula Flow": _RESP,
             "L Leg": _EMG, "R Leg": _EMG, "SaO2": None},
    "CFS": {"C3": _EEG, "C4": _EEG, "M1": _EEG, "M2": _EEG, "LOC": _EOG, "ROC": _EOG,
            "EMG1": _EMG, "EMG2": _EMG, "EMG3": _EMG, "ECG1": _ECG, "ECG2": _ECG,
            "THOR EFFORT": _RESP, "ABDO EFFORT": _RESP, "NASAL PRES": _RESP,
            "AIRFLOW": _RESP, "SpO2": None},
    "MASS": {"EEG C3-CLE": _EEG, "EEG C4-LER": _EEG, "EOG Left Horiz": _EOG,
             "EOG Right Horiz": _EOG, "EMG Chin1": _EMG, "EMG Chin2": _EMG,
             "ECG ECGI": _ECG, "Resp Belt Thor": _RESP},
    "ISRUC": {"F3_A2": _EEG, "C3_A2": _EEG, "O1_A2": _EEG, "F4_A1": _EEG, "C4_A1": _EEG,
              "O2_A1": _EEG, "LOC_A2": _EOG, "ROC_A1": _EOG, "X1": _EMG, "X2": _ECG,
              "X3": _EMG, "SaO2": None},
    "clinic": {"C4:M1": _EEG, "C3:M2": _EEG, "E1-M2": _EOG, "E2:M1": _EOG,
               "Chin1-Chin2": _EMG, "ECG II": _ECG, "Thorax": _RESP, "Flow Patient": _RESP,
               "Leg/L": _EMG, "Leg/R": _EMG, "Abdomen": _RESP},
}
_CASES = [(src, lab, mod) for src, table in CLINICAL_LABELS.items() for lab, mod in table.items()]


@pytest.fixture(autouse=True)
def _no_env_file(monkeypatch):
  monkeypatch.delenv(channels.ALIASES_ENV, raising=False)


@pytest.mark.parametrize("source, label, modality", _CASES)
def test_clinical_label_typed(source, label, modality):
  del source
  assert channels.channel_modality(label) == modality
  # Known labels, typed or known non-PSG channels, are never reported as untyped.
  assert channels.untyped_labels([label]) == []


@pytest.mark.parametrize("label, normalised", [
    ("C4:M1", "c4-m1"), (" c4 - m1 ", "c4-m1"), ("C4_M1", "c4-m1"), ("Leg/L", "leg-l"),
    ("Flow  Patient", "flow-patient"), ("EEG(sec)", "eeg(sec)"), ("H.R.", "h.r."),
    ("__X1__", "x1")])
def test_normalize_label(label, normalised):
  assert channels.normalize_label(label) == normalised


def test_shipped_table_has_every_label_and_valid_values():
  table = channels.load_alias_table()
  assert len(table) > 150
  assert set(table.values()) <= set(channels.MODALITIES) | {None}
  for source in ("SHHS", "MESA", "MrOS", "CFS", "clinic"):
    for label in CLINICAL_LABELS[source]:
      if channels.normalize_label(label) not in {"c3", "c4", "a1", "a2", "m1", "m2"}:
        assert channels.normalize_label(label) in table, (source, label)


def test_untyped_labels_lists_unknown_only_once():
  labels = ["C4:M1", "Foo bar", "SaO2", "DC9 box", "Foo bar", "EDF Annotations"]
  assert channels.untyped_labels(labels) == ["Foo bar", "DC9 box"]
  assert channels.channel_modality("Foo bar") is None


def test_user_file_extends_and_overrides(tmp_path, monkeypatch):
  user = tmp_path / "lab.json"
  user.write_text(json.dumps({
      "_comment": "our clinic", "Foo bar": "eeg",
      "night 2014": {"EKG links": "ecg", "Thorax": "emg", "DC9 box": None}}))
  table = channels.load_alias_table(user)
  assert table["foo-bar"] == "eeg" and table["thorax"] == "emg"
  assert table["dc9-box"] is None and table["c4-m1"] == "eeg"
  assert channels.channel_modality("foo_bar", aliases=user) == "eeg"
  assert channels.channel_modality("Thorax", aliases=str(user)) == "emg"
  assert channels.channel_modality("Thorax") == "resp"
  assert channels.untyped_labels(["Foo bar", "DC9 box", "Bar"], aliases=user) == ["Bar"]
  # A mapping extends the table the same way.
  assert channels.channel_modality("Foo bar", aliases={"FOO:BAR": "emg"}) == "emg"
  assert channels.channel_modality("C4:M1", aliases={"FOO:BAR": "emg"}) == "eeg"
  # The environment variable names a file that sits between the shipped table and user_file.
  env_file = tmp_path / "env.json"
  env_file.write_text(json.dumps({"Foo bar": "resp", "Bar": "eog"}))
  monkeypatch.setenv(channels.ALIASES_ENV, str(env_file))
  assert channels.channel_modality("Bar") == "eog"
  assert channels.channel_modality("Foo bar") == "resp"
  assert channels.channel_modality("Foo bar", aliases=user) == "eeg"
  # An edited file is read again.
  env_file.write_text(json.dumps({"Bar": "emg"}))
  import os  # pylint: disable=import-outside-toplevel
  os.utime(env_file, ns=(1, 10**18))
  assert channels.channel_modality("Bar") == "emg"


@pytest.mark.parametrize("content, problem", [
    (None, "does not exist"), ("{not json", "not valid JSON"), ('["C3"]', "JSON object"),
    ('{"C3": "brain"}', "'brain'"), ('{"g": {"X9": 3}}', "X9"),
    ('{"Foo": "eeg", "g": {"FOO": "eog"}}', "maps to"), ('{"": "eeg"}', "empty")])
def test_bad_user_file_names_it(tmp_path, monkeypatch, content, problem):
  path = tmp_path / "bad_aliases.json"
  if content is not None:
    path.write_text(content)
  with pytest.raises(channels.AliasTableError, match=problem) as info:
    channels.load_alias_table(path)
  assert str(path) in str(info.value) and "\n" not in str(info.value)
  monkeypatch.setenv(channels.ALIASES_ENV, str(path))
  with pytest.raises(channels.AliasTableError, match="bad_aliases.json"):
    channels.channel_modality("C3")


def test_colon_derivation_position_is_midpoint():
  import numpy as np  # pylint: disable=import-outside-toplevel
  np.testing.assert_array_equal(channels.electrode_position("C4:M1"),
                                channels.electrode_position("C4-M1"))
  assert not np.isnan(channels.electrode_position("C4:M1")).any()
