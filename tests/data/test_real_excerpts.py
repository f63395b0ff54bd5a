"""Real recordings from $SLEEPJAX_TEST_DATA (skipped with a reason when absent).

- Sleep-EDF SC4001 night 1: the first 300 s of the PSG (10 records of 30 s) and the full 22-h
  expert hypnogram: "hypnogram longer than the signal" by construction of the excerpt.
- DREAMS spindles excerpt3.edf: a 20-channel, 50 Hz PSG with DREAMS' own labels and "UV"/"MV"
  unit spellings, plus its 5-s R&K hypnogram and the C3-A1 trace as text.
"""

import tarfile

import mne
import numpy as np
import pytest

from sleepjax.data import channels
from sleepjax.data import edf
from sleepjax.data import errors
from sleepjax.data import hypnogram
from sleepjax.data import recording
from tfds_builders.dreams import dreams_dataset_builder as dreams_builder
from tfds_builders.sleep_edf import sleep_edf_dataset_builder as sleep_edf_builder

SC_FILES = ("short_psg.edf", "SC4001EC-Hypnogram.edf")
DREAMS_MEMBERS = ("dreams_spindles/excerpt3.edf", "dreams_spindles/excerpt3.txt",
                  "dreams_spindles/Hypnogram_excerpt3.txt")


@pytest.fixture(scope="module")
def sleep_edf(shared_data):
  folder = shared_data / "sleep_edf_sc4001_excerpt"
  if not all((folder / f).is_file() for f in SC_FILES):
    pytest.skip(f"Sleep-EDF excerpt files {SC_FILES} not found in {folder}")
  return folder


@pytest.fixture(scope="session")
def dreams(shared_data, tmp_path_factory):
  archive = shared_data / "dreams_spindles" / "dreams_spindles_8excerpts.tar.xz"
  if not archive.is_file():
    pytest.skip(f"DREAMS archive not found at {archive}")
  out = tmp_path_factory.mktemp("dreams")
  with tarfile.open(archive, "r:xz") as tar:
    members = [tar.getmember(m) for m in DREAMS_MEMBERS]
    tar.extractall(out, members=members, filter="data")
  return out / "dreams_spindles"


def test_sleep_edf_excerpt_epochs(sleep_edf):
  rec = recording.load_recording(
      sleep_edf / "short_psg.edf", sleep_edf / "SC4001EC-Hypnogram.edf",
      sleep_edf_builder.SC_MONTAGE, record_id="SC4001E0", subject_id="SC400-1", sfreq=100.0,
      trim_wake_min=None, max_mismatch_s=None)
  assert rec.record_id == "SC4001E0" and rec.subject_id == "SC400-1"
  np.testing.assert_array_equal(rec.stages, np.zeros(10, np.int32))  # all W
  np.testing.assert_array_equal(rec.epoch_index, np.arange(10))
  assert rec.channel_names == {"eeg": ("EEG Fpz-Cz", "EEG Pz-Oz"), "eog": ("EOG horizontal",),
                               "emg": ("EMG submental",), "resp": ("Resp oro-nasal",)}
  for sig in rec.signals.values():
    assert sig.shape[0] == 10 and sig.shape[2] == 3000 and sig.dtype == np.float32
  # The README's check: Fpz-Cz standard deviation about 28 uV (so units are microvolts).
  fpz = rec.signals["eeg"][:, 0]
  assert 20.0 < fpz.std() < 40.0
  assert np.abs(fpz).max() <= 192.5  # the header's physical range
  # The 1 Hz EMG envelope (physical range +-5 uV) stays in microvolts after upsampling.
  assert np.abs(rec.signals["emg"]).max() < 6.0
  rep = rec.report
  assert rep.n_epochs_total == 2880 and rep.n_kept == 10
  assert rep.dropped["beyond_signal"] == 2870 and rep.n_dropped == 2870


def test_sleep_edf_excerpt_header_rates(sleep_edf):
  header = edf.validate_edf(sleep_edf / "short_psg.edf")
  rates = dict(zip(header.labels, header.sfreqs))
  assert rates == {"EEG Fpz-Cz": 100.0, "EEG Pz-Oz": 100.0, "EOG horizontal": 100.0,
                   "Resp oro-nasal": 1.0, "EMG submental": 1.0, "Temp rectal": 1.0,
                   "Event marker": 1.0}
  assert [channels.channel_modality(lab) for lab in header.labels] == [
      "eeg", "eeg", "eog", "resp", "emg", None, None]


def test_sleep_edf_excerpt_mismatch_rule(sleep_edf):
  """The default tolerance refuses a hypnogram scoring 22 h the 300-s signal lacks."""
  with pytest.raises(errors.HypnogramMismatchError, match="short_psg.edf.*beyond the 300.0-s"):
    recording.load_recording(sleep_edf / "short_psg.edf", sleep_edf / "SC4001EC-Hypnogram.edf",
                             sleep_edf_builder.SC_MONTAGE, subject_id="SC400-1")
  # With wake trimming the 5 pre-lights-off minutes fall outside the window (sleep at 30630 s).
  rec = recording.load_recording(sleep_edf / "short_psg.edf",
                                 sleep_edf / "SC4001EC-Hypnogram.edf",
                                 sleep_edf_builder.SC_MONTAGE, subject_id="SC400-1",
                                 max_mismatch_s=None)
  assert rec.report.n_kept == 0 and rec.report.dropped["outside_trimmed_window"] == 10
  assert rec.signals["eeg"].shape == (0, 2, 3000)


def test_sleep_edf_hypnogram_counts_match_mne(sleep_edf):
  path = sleep_edf / "SC4001EC-Hypnogram.edf"
  hyp = hypnogram.read_edf_hypnogram(path)
  ann = mne.read_annotations(path)
  seconds = {}
  for d, t in zip(ann.duration, ann.description):
    seconds[t] = seconds.get(t, 0.0) + d
  expected = {0: seconds["Sleep stage W"], 1: seconds["Sleep stage 1"],
              2: seconds["Sleep stage 2"],
              3: seconds["Sleep stage 3"] + seconds["Sleep stage 4"],
              4: seconds["Sleep stage R"], -1: seconds["Sleep stage ?"]}
  for stage, s in expected.items():
    assert int(np.sum(hyp.stages == stage)) == s / 30, stage
  assert hyp.onset_s == 0.0 and hyp.n_epochs == 2880
  first_sleep = np.flatnonzero(hyp.stages >= 1)[0]
  assert first_sleep * 30 == 30630


def test_dreams_excerpt3_header_and_types(dreams):
  header = edf.validate_edf(dreams / "excerpt3.edf")
  assert header.n_signals == 20 and header.n_records == 900
  assert header.record_duration_s == 2.0
  rates = dict(zip(header.labels, header.sfreqs))
  assert rates["C3-A1"] == 50.0 and rates["hypnogram"] == 1.0
  types = {lab: channels.channel_modality(lab) for lab in header.labels}
  assert [lab for lab, m in types.items() if m == "eeg"] == ["O1-A1", "C3-A1", "FP1-A1"]
  assert [lab for lab, m in types.items() if m == "eog"] == ["EOG2-A1", "EOG1-A1"]
  assert types["EMG1"] == "emg" and types["ECG"] == "ecg"
  assert {lab for lab, m in types.items() if m == "resp"} == {"NAF1", "VAB", "VTH"}
  for lab in ("SAO2", "PR", "PULSE", "POS", "PHONO", "hypnogram", "event_neuro"):
    assert types[lab] is None
  assert header.physical_dim_of("C3-A1") == "UV" and header.physical_dim_of("ECG") == "MV"


def test_dreams_excerpt3_c3_in_microvolts_matches_text(dreams):
  """DREAMS writes "UV", which MNE leaves unscaled: our conversion must still give uV."""
  raw = edf.read_raw_edf(dreams / "excerpt3.edf", include=["C3-A1"])
  c3 = edf.channel_to_microvolts(raw.get_data(picks=["C3-A1"])[0], "UV")
  text = np.loadtxt(dreams / "excerpt3.txt", skiprows=1)
  assert c3.shape == text.shape == (50 * 1800,)
  assert np.corrcoef(c3, text)[0, 1] > 0.9999
  np.testing.assert_allclose(c3.std(), text.std(), rtol=0.01)
  assert 10.0 < c3.std() < 40.0  # README: SD 20-29 uV across excerpts


def test_dreams_excerpt3_recording(dreams):
  montage = channels.Montage([
      channels.ChannelSpec("C3-A1", "eeg"), channels.ChannelSpec("O1-A1", "eeg"),
      channels.ChannelSpec("Fp1-A1", "eeg", ("FP1-A1",)),
      channels.ChannelSpec("EOG1-A1", "eog"), channels.ChannelSpec("EOG2-A1", "eog"),
      channels.ChannelSpec("EMG1", "emg"), channels.ChannelSpec("ECG", "ecg"),
  ])
  rec = recording.load_recording(
      dreams / "excerpt3.edf", dreams / "Hypnogram_excerpt3.txt", montage,
      hypnogram_kwargs={"epoch_s": 5.0, "mapping": dreams_builder.DREAMS_RK_CODES},
      record_id="dreams_excerpt3", subject_id="dreams_3", sfreq=100.0, trim_wake_min=None)
  assert rec.report.n_epochs_total == 60
  assert rec.report.n_kept + rec.report.n_dropped == 60
  assert rec.signals["eeg"].shape == (rec.report.n_kept, 3, 3000)  # 50 Hz upsampled to 100
  assert set(np.unique(rec.stages)) <= {0, 1, 2, 3}
  np.testing.assert_allclose(rec.positions["eeg"][2], channels.electrode_position("Fp1-M1"))
  assert np.isnan(rec.positions["ecg"]).all()
  # The ECG's dimension is "MV", read as millivolts (DREAMS upper-cases units: "UV" = uV), so
  # its header range -136..63 becomes -136000..63000 uV. That range is implausible for an ECG
  # (DREAMS calibrates non-EEG channels loosely: SaO2 "%" spans -32..89 too); the test pins
  # the documented conversion, not physiology.
  peak = np.abs(rec.signals["ecg"]).max()
  assert 0.5 * 136e3 < peak < 1.2 * 136e3
