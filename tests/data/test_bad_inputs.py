"""Every documented bad input raises its documented error, naming the file (Foundation item 7)."""

import datetime

import edfio
import mne
import numpy as np
import pytest

from sleepjax.data import channels
from sleepjax.data import edf
from sleepjax.data import errors
from sleepjax.data import hypnogram
from sleepjax.data import recording
from sleepjax.data.hypnogram import Hypnogram

W, N1, N2, U = 0, 1, 2, -1
EEG_ONLY = channels.Montage([channels.ChannelSpec("C3-M2", "eeg", ("EEG C3-M2",)),
                             channels.ChannelSpec("C4-M1", "eeg", ("EEG C4-M1",))])


def _write_psg(path, n_epochs=4, c4=None, c4_dim="uV"):
  rng = np.random.default_rng(1)
  n = n_epochs * 3000
  c3 = rng.normal(0, 10, n)
  c4 = rng.normal(0, 10, n) if c4 is None else c4
  edfio.Edf([edfio.EdfSignal(c3, 100, label="EEG C3-M2", physical_dimension="uV",
                             physical_range=(-100, 100)),
             edfio.EdfSignal(c4, 100, label="EEG C4-M1", physical_dimension=c4_dim,
                             physical_range=(-100, 100))],
            starttime=datetime.time(23, 0, 0), data_record_duration=30).write(path)
  return path


@pytest.fixture
def psg(tmp_path):
  return _write_psg(tmp_path / "night.edf")


# --- File-level damage ---------------------------------------------------------------------

def test_missing_and_empty_file(tmp_path):
  with pytest.raises(errors.EDFHeaderError, match=r"nope\.edf: file does not exist"):
    edf.validate_edf(tmp_path / "nope.edf")
  (tmp_path / "empty.edf").write_bytes(b"")
  with pytest.raises(errors.EDFHeaderError, match=r"empty\.edf: file is empty"):
    edf.validate_edf(tmp_path / "empty.edf")
  (tmp_path / "tiny.edf").write_bytes(b"0       ")
  with pytest.raises(errors.EDFHeaderError, match="fewer than the 256-byte"):
    edf.validate_edf(tmp_path / "tiny.edf")


def test_truncated(psg):
  data = psg.read_bytes()
  psg.write_bytes(data[:-1000])
  with pytest.raises(errors.EDFTruncatedError, match=r"night\.edf: truncated.*3 whole data"):
    edf.validate_edf(psg)
  with pytest.raises(errors.EDFTruncatedError, match="truncated"):
    recording.load_recording(psg, Hypnogram(np.array([W])), EEG_ONLY, subject_id="s")
  psg.write_bytes(data[:700])  # inside the signal header
  with pytest.raises(errors.EDFTruncatedError, match="truncated"):
    edf.validate_edf(psg)


def test_crlf_corrupted(psg):
  data = psg.read_bytes()
  header_bytes = int(data[184:192])
  body = data[header_bytes:]
  assert body.count(b"\n") > 0
  psg.write_bytes(data[:header_bytes] + body.replace(b"\n", b"\r\n"))
  with pytest.raises(errors.EDFTruncatedError, match=r"night\.edf: longer than declared, e\.g\. "
                     r"CRLF-corrupted download \(0x0D inserted before 0x0A\)"):
    edf.validate_edf(psg)


@pytest.mark.parametrize("offset, width, value, error, message", [
    (0, 8, b"1", errors.EDFHeaderError, "version field is '1'"),
    (236, 8, b"-1", errors.EDFTruncatedError, "n_records is -1"),
    (236, 8, b"abc", errors.EDFHeaderError, "n_records is not an integer"),
    (184, 8, b"1024", errors.EDFHeaderError, "header_bytes field is 1024"),
    (252, 4, b"0", errors.EDFHeaderError, "number of signals is 0"),
    (244, 8, b"x", errors.EDFHeaderError, "record_duration is not a number"),
])
def test_corrupted_fixed_header_fields(psg, offset, width, value, error, message):
  data = bytearray(psg.read_bytes())
  data[offset:offset + width] = value.ljust(width)
  psg.write_bytes(bytes(data))
  with pytest.raises(error, match=message) as info:
    edf.validate_edf(psg)
  assert info.value.path == str(psg)


def test_zero_sampling_rate(psg):
  data = bytearray(psg.read_bytes())
  data[244:252] = b"0".ljust(8)  # record duration 0 for ordinary signals
  psg.write_bytes(bytes(data))
  with pytest.raises(errors.SamplingRateError, match="'EEG C3-M2' has no positive sampling"):
    edf.validate_edf(psg)


def test_non_numeric_signal_field_names_channel(psg):
  data = bytearray(psg.read_bytes())
  ns = 2
  physical_min_col = 256 + ns * (16 + 80 + 8)
  data[physical_min_col + 8:physical_min_col + 16] = b"oops".ljust(8)  # 2nd signal
  psg.write_bytes(bytes(data))
  with pytest.raises(errors.EDFHeaderError, match="physical_min of 'EEG C4-M1'"):
    edf.validate_edf(psg)


def test_zero_width_calibration_names_channel(psg):
  data = bytearray(psg.read_bytes())
  ns = 2
  physical_max_col = 256 + ns * (16 + 80 + 8 + 8)
  data[physical_max_col:physical_max_col + 8] = b"-100".ljust(8)  # 1st signal: max == min
  psg.write_bytes(bytes(data))
  with pytest.raises(errors.EDFHeaderError, match="'EEG C3-M2' has an unusable calibration"):
    edf.validate_edf(psg)


def test_discontinuous_edf_plus_refused(psg):
  data = bytearray(psg.read_bytes())
  data[192:236] = b"EDF+D".ljust(44)
  psg.write_bytes(bytes(data))
  assert edf.validate_edf(psg).is_edf_plus  # a valid header ...
  with pytest.raises(errors.EDFHeaderError, match=r"night\.edf: discontinuous EDF\+D"):
    recording.load_recording(psg, Hypnogram(np.array([W])), EEG_ONLY, subject_id="s")


def test_read_raw_edf_wraps_mne_errors(psg, monkeypatch):
  def boom(*args, **kwargs):
    raise ValueError("bad things")
  monkeypatch.setattr(mne.io, "read_raw_edf", boom)
  with pytest.raises(errors.EDFHeaderError, match=r"night\.edf: MNE could not read.*bad things"):
    edf.read_raw_edf(psg)


# --- Hypnogram vs signal -------------------------------------------------------------------

def test_hypnogram_shorter_than_signal_is_fine(psg):
  rec = recording.load_recording(psg, Hypnogram(np.array([W, N1])), EEG_ONLY, subject_id="s",
                                 trim_wake_min=None)
  assert rec.report.n_kept == 2 and rec.report.n_epochs_total == 2
  assert any("beyond the hypnogram" in w for w in rec.report.warnings)


def test_hypnogram_longer_than_signal_scored_raises(psg):
  hyp = Hypnogram(np.array([W, N1, N2, N2, N2, N2]), path="night-hyp.edf")
  with pytest.raises(errors.HypnogramMismatchError,
                     match=r"night\.edf: hypnogram night-hyp\.edf scores 2 epochs beyond the "
                     r"120\.0-s signal, reaching 60\.0 s"):
    recording.load_recording(psg, hyp, EEG_ONLY, subject_id="s", trim_wake_min=None)
  # Explicitly unlimited (excerpts): counted, not raised.
  rec = recording.load_recording(psg, hyp, EEG_ONLY, subject_id="s", trim_wake_min=None,
                                 max_mismatch_s=None)
  assert rec.report.dropped["beyond_signal"] == 2 and rec.report.n_kept == 4


def test_hypnogram_longer_within_tolerance_or_unscored_tail(psg):
  hyp = Hypnogram(np.array([W, N1, N2, N2, N2]))  # one scored epoch past the end: 30 s
  rec = recording.load_recording(psg, hyp, EEG_ONLY, subject_id="s", trim_wake_min=None)
  assert rec.report.dropped["beyond_signal"] == 1 and rec.report.n_kept == 4
  hyp = Hypnogram(np.array([W, N1, N2, N2] + [U] * 100))  # Sleep-EDF style "?" tail
  rec = recording.load_recording(psg, hyp, EEG_ONLY, subject_id="s", trim_wake_min=None)
  assert rec.report.dropped["beyond_signal"] == 100 and rec.report.n_kept == 4


def test_hypnogram_starting_before_signal(psg):
  hyp = Hypnogram(np.array([N2, N2, W, N1]), onset_s=-60.0)
  with pytest.raises(errors.HypnogramMismatchError, match="reaching 60.0 s"):
    recording.load_recording(psg, hyp, EEG_ONLY, subject_id="s", trim_wake_min=None)


def test_hypnogram_not_overlapping_always_raises(psg):
  hyp = Hypnogram(np.array([W, W]), onset_s=3600.0)
  with pytest.raises(errors.HypnogramMismatchError, match="does not overlap"):
    recording.load_recording(psg, hyp, EEG_ONLY, subject_id="s", max_mismatch_s=None)


def test_unknown_annotation_text(tmp_path, psg):
  hyp_path = tmp_path / "night-Hypnogram.edf"
  edfio.Edf([], annotations=[edfio.EdfAnnotation(0, 60, "Sleep stage W"),
                             edfio.EdfAnnotation(60, 30, "Sleep stage N5")]).write(hyp_path)
  # (AASM "Sleep stage N1/N2/N3" are known: sleepjax.hypnogram writes them.)
  with pytest.raises(errors.AnnotationError,
                     match=r"night-Hypnogram\.edf: unknown sleep stage annotation text "
                     r"'Sleep stage N5'"):
    recording.load_recording(psg, hyp_path, EEG_ONLY, subject_id="s")


def test_truncated_hypnogram_file(tmp_path):
  hyp_path = tmp_path / "h.edf"
  edfio.Edf([], annotations=[edfio.EdfAnnotation(0, 60, "Sleep stage W")]).write(hyp_path)
  hyp_path.write_bytes(hyp_path.read_bytes()[:-5])
  with pytest.raises(errors.EDFTruncatedError, match=r"h\.edf: truncated"):
    hypnogram.read_edf_hypnogram(hyp_path)


# --- Channels and signal quality -----------------------------------------------------------

def test_required_channel_missing(psg):
  montage = channels.Montage([channels.ChannelSpec("C3-M2", "eeg", ("EEG C3-M2",)),
                              channels.ChannelSpec("O1-M2", "eeg", ("EEG O1-M2",))])
  with pytest.raises(errors.MissingChannelError,
                     match=r"night\.edf: required eeg channel 'O1-M2'.*available labels: "
                     r"\['EEG C3-M2', 'EEG C4-M1'\]"):
    recording.load_recording(psg, Hypnogram(np.array([W])), montage, subject_id="s")


def _raw(data_uv, names=("C3-M2", "C4-M1")):
  info = mne.create_info(list(names), 100.0, "eeg")
  return mne.io.RawArray(np.asarray(data_uv) * 1e-6, info, verbose="error")


def test_nan_channel():
  data = np.random.default_rng(0).normal(0, 10, (2, 4 * 3000))
  data[1] = np.nan
  with pytest.raises(errors.BadSignalError, match=r"x\.edf: required eeg channel 'C4-M1' is "
                     "entirely NaN"):
    recording.epoch_recording(_raw(data), Hypnogram(np.array([W] * 4)), EEG_ONLY,
                              record_id="r", subject_id="s", source_path="x.edf")


def test_flat_channel_from_edf(tmp_path):
  path = _write_psg(tmp_path / "flat.edf", c4=np.full(4 * 3000, 3.0))
  with pytest.raises(errors.BadSignalError, match=r"flat\.edf: required eeg channel "
                     r"'EEG C4-M1' is flat over the whole night"):
    recording.load_recording(path, Hypnogram(np.array([W] * 4)), EEG_ONLY, subject_id="s")


def test_flat_optional_channel_is_dropped_with_warning():
  data = np.random.default_rng(0).normal(0, 10, (2, 4 * 3000))
  data[1] = 0.0
  montage = channels.Montage([channels.ChannelSpec("C3-M2", "eeg"),
                              channels.ChannelSpec("C4-M1", "eeg", required=False)])
  rec = recording.epoch_recording(_raw(data), Hypnogram(np.array([W] * 4)), montage,
                                  record_id="r", subject_id="s")
  assert rec.channel_names["eeg"] == ("C3-M2",) and rec.signals["eeg"].shape == (4, 1, 3000)
  assert "flat" in rec.report.warnings[0]


def test_bad_epochs_are_dropped_and_counted():
  rng = np.random.default_rng(0)
  data = rng.normal(0, 10, (2, 6 * 3000))
  data[0, 3000 + 17] = np.nan                    # epoch 1: one NaN sample
  data[1, 2 * 3000:3 * 3000] = 4.0               # epoch 2: flat
  data[0, 3 * 3000:4 * 3000] = np.where(rng.random(3000) > 0.5, 60.0, -60.0)  # epoch 3: clipped
  data[0, 0] = -60.0                             # make +-60 the night's rails
  data[0, -1] = 60.0
  rec = recording.epoch_recording(_raw(data), Hypnogram(np.array([N2] * 6)), EEG_ONLY,
                                  record_id="r", subject_id="s", trim_wake_min=None)
  np.testing.assert_array_equal(rec.epoch_index, [0, 4, 5])
  assert rec.report.dropped["bad_signal"] == 3
  assert np.isfinite(rec.signals["eeg"]).all()


def test_non_voltage_eeg_unit(tmp_path):
  path = _write_psg(tmp_path / "units.edf", c4_dim="DegC")
  with pytest.raises(errors.UnitError, match=r"units\.edf: eeg channel 'EEG C4-M1': physical "
                     r"dimension 'DegC' is not a voltage"):
    recording.load_recording(path, Hypnogram(np.array([W])), EEG_ONLY, subject_id="s")


def test_bad_output_sfreq(psg):
  with pytest.raises(errors.SamplingRateError, match="output sfreq 33.33 Hz"):
    recording.load_recording(psg, Hypnogram(np.array([W])), EEG_ONLY, subject_id="s",
                             sfreq=33.33)


def test_all_errors_are_recording_errors():
  for cls in (errors.EDFHeaderError, errors.EDFTruncatedError, errors.AnnotationError,
              errors.HypnogramMismatchError, errors.MissingChannelError,
              errors.SamplingRateError, errors.UnitError, errors.BadSignalError):
    assert issubclass(cls, errors.RecordingError)


def test_edf_raw_whose_file_vanished(psg):
  # Samples and calibration are read from the EDF file itself, never from MNE's rescaled data.
  raw = edf.read_raw_edf(psg)
  moved = psg.with_name("moved.edf")
  psg.rename(moved)
  with pytest.raises(errors.RecordingError, match="EDF raw without a readable file.*source_path="):
    recording.epoch_recording(raw, Hypnogram(np.array([W])), EEG_ONLY, record_id="r",
                              subject_id="s", physical_dims={"EEG C3-M2": "uV", "EEG C4-M1": "uV"})
  rec = recording.epoch_recording(raw, Hypnogram(np.array([W])), EEG_ONLY, record_id="r",
                                  subject_id="s", source_path=moved)
  assert 5 < rec.signals["eeg"].std() < 15
