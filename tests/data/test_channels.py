"""Channel typing, electrode aliases/positions and montage resolution (sleepjax.data.channels)."""

import numpy as np
import pytest

from sleepjax.data import channels
from sleepjax.data import errors
from tfds_builders import isruc_s3
from tfds_builders.sleep_edf import sleep_edf_dataset_builder as sleep_edf


@pytest.mark.parametrize("label, modality", [
    ("EEG Fpz-Cz", "eeg"), ("EEG Pz-Oz", "eeg"), ("EOG horizontal", "eog"),
    ("EMG submental", "emg"), ("Resp oro-nasal", "resp"), ("Temp rectal", None),
    ("Event marker", None), ("Fpz-Cz", "eeg"), ("C3-A2", "eeg"), ("C3_A2", "eeg"),
    ("O2_A1", "eeg"), ("LOC_A2", "eog"), ("ROC_A1", "eog"), ("X1", "emg"), ("X2", "ecg"),
    ("E1-M2", "eog"), ("EKG", "ecg"), ("ECG", "ecg"), ("Thor", "resp"), ("Abdo", "resp"),
    ("Airflow", "resp"), ("SaO2", None), ("EEG T3-REF", "eeg"), ("Cz", "eeg"),
    # DREAMS excerpt3.edf labels.
    ("O1-A1", "eeg"), ("FP1-A1", "eeg"), ("EMG1", "emg"), ("EOG1-A1", "eog"),
    ("NAF1", "resp"), ("VTH", "resp"), ("VAB", "resp"), ("POS", None), ("PHONO", None),
    ("SAO2", None), ("PR", None), ("PULSE", None), ("hypnogram", None),
    ("event_pneumo_aut", None), ("EDF Annotations", None), ("Foo bar", None),
    # SHHS, MESA and MASS spellings.
    ("EEG(sec)", "eeg"), ("EOG(L)", "eog"), ("THOR RES", "resp"), ("ABDO RES", "resp"),
    ("NEW AIR", "resp"), ("H.R.", None), ("EEG1", "eeg"), ("EOG-L", "eog"), ("Pres", "resp"),
    ("Therm", "resp"), ("Leg", "emg"), ("Pleth", None), ("EEG C3-CLE", "eeg"),
    ("EOG Left Horiz", "eog"), ("EMG Chin", "emg"), ("ECG ECGI", "ecg"),
    ("Resp Belt Thor", "resp"),
])
def test_channel_modality(label, modality):
  assert channels.channel_modality(label) == modality


@pytest.mark.parametrize("name, canonical", [
    ("T3", "T7"), ("t4", "T8"), ("T5", "P7"), ("T6", "P8"), ("A1", "M1"), ("a2", "M2"),
    ("EEG Fp1-REF", "Fp1"), ("EEG C3-LE", "C3"), ("EEG C3-CLE", "C3"), ("FPZ", "Fpz"), (" cz ", "Cz")])
def test_canonical_electrode(name, canonical):
  assert channels.canonical_electrode(name) == canonical


def test_positions_follow_spec_axes():
  pos = channels.electrode_position
  assert pos("C3")[0] < -0.5 and pos("C4")[0] > 0.5
  assert pos("Fpz")[1] > 0.9 and pos("Oz")[1] < -0.9
  assert pos("Cz")[2] > 0.99
  for name in ("C3", "Fpz", "Oz", "T7", "M1"):
    assert pos(name).dtype == np.float32 and pos(name).shape == (3,)
    np.testing.assert_allclose(np.linalg.norm(pos(name)), 1.0, atol=1e-6)


def test_position_aliases_and_prefixes():
  pos = channels.electrode_position
  np.testing.assert_array_equal(pos("T3"), pos("T7"))
  np.testing.assert_array_equal(pos("EEG T3-REF"), pos("T7"))
  np.testing.assert_array_equal(pos("A2"), pos("M2"))
  assert not np.array_equal(pos("C3"), pos("C4"))


def test_bipolar_is_midpoint_not_renormalised():
  pos = channels.electrode_position
  mid = (pos("Fpz") + pos("Cz")) / 2
  np.testing.assert_allclose(pos("EEG Fpz-Cz"), mid, atol=1e-7)
  np.testing.assert_allclose(pos("C3_A2"), (pos("C3") + pos("M2")) / 2, atol=1e-7)
  assert np.linalg.norm(pos("Fpz-Cz")) < 1.0


@pytest.mark.parametrize("label", ["ECG", "EMG submental", "Resp oro-nasal", "X1",
                                   "EOG horizontal", "LOC_A2", "Fpz-Foo", ""])
def test_position_nan_for_non_electrodes(label):
  assert np.isnan(channels.electrode_position(label)).all()


def test_montage_modalities_and_by_modality():
  m = sleep_edf.SC_MONTAGE
  assert m.modalities == ("eeg", "eog", "emg", "resp")
  assert [s.name for s in m.by_modality()["eeg"]] == ["EEG Fpz-Cz", "EEG Pz-Oz"]
  assert isinstance(m, tuple) and len(m) == 5


def test_montage_from_dict_and_duplicates():
  m = channels.Montage.from_dict({"eeg": ["C3-A2", channels.ChannelSpec("C4-A1", "eeg")],
                                  "ecg": ["ECG"]})
  assert m.modalities == ("eeg", "ecg") and m[1].name == "C4-A1"
  with pytest.raises(ValueError, match="duplicate"):
    channels.Montage([channels.ChannelSpec("A", "eeg"), channels.ChannelSpec("A", "eog")])
  with pytest.raises(ValueError, match="modality"):
    channels.ChannelSpec("A", "temp")


def test_resolve_aliases_case_and_underscores():
  # ISRUC .rec labels (EOG first, as in the files), two of them in another case / separator.
  labels = ["LOC-A2", "ROC-A1", "F3-A2", "c3_a2", "O1-A2", "F4-A1", "c4-a1", "O2-A1", "X1", "X2",
            "X3", "SaO2"]
  resolved = isruc_s3.MONTAGE.resolve(labels, "1.rec")
  assert resolved["C3_A2"] == "c3_a2"
  assert resolved["C4_A1"] == "c4-a1"
  assert resolved["LOC_A2"] == "LOC-A2"
  assert resolved["X1"] == "X1" and resolved["X2"] == "X2"
  assert list(resolved) == [s.name for s in isruc_s3.MONTAGE]


def test_resolve_missing_required_names_file_channel_and_labels():
  with pytest.raises(errors.MissingChannelError) as info:
    sleep_edf.SC_MONTAGE.resolve(["EEG Fpz-Cz", "EOG horizontal"], "/d/SC4011E0.edf")
  msg = str(info.value)
  assert "/d/SC4011E0.edf" in msg and "'EEG Pz-Oz'" in msg and "EOG horizontal" in msg


def test_resolve_optional_absent_is_left_out():
  m = channels.Montage([channels.ChannelSpec("Fpz-Cz", "eeg", ("EEG Fpz-Cz",)),
                        channels.ChannelSpec("ECG", "ecg", required=False)])
  assert m.resolve(["EEG Fpz-Cz"]) == {"Fpz-Cz": "EEG Fpz-Cz"}
