"""BDF / BDF+ input (24-bit samples): validation, readers against MNE (and pyedflib's files)."""

import glob
import os

import mne
import numpy as np
import pytest
import scipy.signal

from sleepjax.data import channels
from sleepjax.data import edf
from sleepjax.data import errors
from sleepjax.data import recording
from sleepjax.data.hypnogram import Hypnogram
from tests.data import make_bdf_files as mk

N_RECORDS = 60  # 60 one-second data records: two 30-s epochs.


@pytest.fixture(scope="module")
def bdfs(tmp_path_factory):
  out = tmp_path_factory.mktemp("bdf")
  identity = [mk.BdfSignal("Cz", mk.extremes_signal(64 * 4, np.random.default_rng(5)), 64,
                           "uV", mk.DMIN, mk.DMAX)]
  return {
      "plain": mk.write_bdf(out / "plain.bdf", mk.example_signals(N_RECORDS), n_records=N_RECORDS),
      "plus": mk.write_bdf(out / "plus.bdf", mk.example_signals(N_RECORDS, 1),
                           n_records=N_RECORDS, plus=True,
                           annotations=[(0.0, 30.0, "Sleep stage W"),
                                        (30.0, 30.0, "Sleep stage 2")]),
      "gaps": mk.write_bdf(out / "gaps.bdf", mk.example_signals(N_RECORDS, 2),
                           n_records=N_RECORDS, plus=True, reserved="BDF+D"),
      "identity": mk.write_bdf(out / "identity.BDF", identity, n_records=4),
      "identity_digital": identity[0].digital,
  }


def _scale(dim):  # MNE's volts for the spellings it scales (uV, mV), as in test_edf.py.
  return {"uV": 1e-6, "mV": 1e-3}[dim]


def test_header_format_and_sizes(bdfs):
  plain, plus = edf.validate_edf(bdfs["plain"]), edf.validate_edf(bdfs["plus"])
  assert (plain.format, plain.reserved, plain.bytes_per_sample) == ("BDF", "24BIT", 3)
  assert plain.is_bdf and not plain.is_edf_plus and not plain.is_discontinuous
  assert plain.version == "\xffBIOSEMI" and plain.annotation_indices == ()
  assert plain.record_bytes == 3 * (256 + 256 + 128 + 128)
  assert plain.header_bytes + N_RECORDS * plain.record_bytes == os.path.getsize(bdfs["plain"])
  assert plain.sfreqs == (256.0, 256.0, 128.0, 128.0)
  assert (plus.format, plus.is_edf_plus, plus.annotation_indices) == ("BDF+C", True, (4,))
  assert plus.signal_indices == (0, 1, 2, 3)
  gaps = edf.validate_edf(bdfs["gaps"])
  assert gaps.format == "BDF+D" and gaps.is_discontinuous


def test_24bit_extremes_read_exactly(bdfs):
  """Identity calibration (physical = digital): every 24-bit value comes back as written."""
  x = edf.read_physical(bdfs["identity"], ["Cz"])
  np.testing.assert_array_equal(x[0], bdfs["identity_digital"].astype(np.float64))
  assert x.min() == -(1 << 23) and x.max() == (1 << 23) - 1


@pytest.mark.parametrize("name", ["plain", "plus", "identity"])
def test_readers_equal_mne(bdfs, name):
  path = bdfs[name]
  header = edf.validate_edf(path)
  ours = edf.read_physical(path, list(header.signal_indices), header=header)
  raw = edf.read_raw_edf(path)
  assert type(raw).__name__ == "RawBDF"
  ref = mne.io.read_raw_bdf(path, preload=True, verbose="error")
  labels = [header.labels[i] for i in header.signal_indices]
  assert raw.ch_names == ref.ch_names == labels
  for row, i in enumerate(header.signal_indices):
    mne_x = ref.get_data(picks=[header.labels[i]])[0] / _scale(header.physical_dims[i])
    np.testing.assert_allclose(ours[row], mne_x, rtol=1e-9, atol=1e-9 * np.abs(mne_x).max())
  if name == "plus":
    assert sorted(ref.annotations.description) == ["Sleep stage 2", "Sleep stage W"]


def test_truncated_bdf_is_one_line_error(bdfs, tmp_path):
  data = bdfs["plain"].read_bytes()
  cut = tmp_path / "cut.bdf"
  cut.write_bytes(data[:-1000])
  with pytest.raises(errors.EDFTruncatedError, match=r"cut.bdf: truncated: .*59 whole data") as e:
    edf.validate_edf(cut)
  assert "\n" not in str(e.value)
  # A BDF version field on 16-bit data (an EDF relabelled BDF) is named as such.
  header = edf.validate_edf(bdfs["plain"])
  body = data[header.header_bytes:]
  short = tmp_path / "sixteen.bdf"
  short.write_bytes(data[:header.header_bytes] + body[:len(body) * 2 // 3])
  with pytest.raises(errors.EDFHeaderError, match="2 bytes per sample"):
    edf.validate_edf(short)


MONTAGE = channels.Montage([
    channels.ChannelSpec("C4-M1", "eeg", ("C4:M1",)),
    channels.ChannelSpec("E1-M2", "eog"),
    channels.ChannelSpec("Chin", "emg", ("Chin1-Chin2",)),
    channels.ChannelSpec("ECG", "ecg", ("ECG II",)),
])


def test_load_recording_reads_bdf(bdfs):
  hyp = Hypnogram(np.array([0, 2]))
  rec = recording.load_recording(bdfs["plain"], hyp, MONTAGE, subject_id="S1",
                                 trim_wake_min=None)
  assert rec.n_epochs == 2 and rec.signals["eeg"].shape == (2, 1, 3000)
  assert rec.signals["ecg"].shape == (2, 1, 3000)
  via_mne = recording.epoch_recording(edf.read_raw_edf(bdfs["plain"]), hyp, MONTAGE,
                                      record_id="plain", subject_id="S1", trim_wake_min=None)
  # The 256-Hz channels agree with the MNE path; the 128-Hz ones are resampled from their own
  # rate (MNE first upsamples them to 256 Hz: docs/building.md), from read_physical's values.
  for m in ("eeg", "eog"):
    np.testing.assert_allclose(rec.signals[m], via_mne.signals[m], rtol=1e-5, atol=1e-2)
  for m, label, factor in (("emg", "Chin1-Chin2", 1.0), ("ecg", "ECG II", 1e3)):
    native = edf.read_physical(bdfs["plain"], [label], samples_per_record=128)[0]
    expected = scipy.signal.resample_poly(native * factor, 25, 32).reshape(2, 1, 3000)
    np.testing.assert_allclose(rec.signals[m], expected, rtol=1e-5, atol=1e-2)
    if m == "ecg":  # The mV ECG (full scale +-10 mV, extremes written) is scaled x1e3 to uV.
      assert np.abs(native).max() == pytest.approx(10.0, rel=1e-6)
  # BDF+ reads too; BDF+D (records with gaps) is refused like EDF+D.
  rec_plus = recording.load_recording(bdfs["plus"], hyp, MONTAGE, subject_id="S1",
                                      trim_wake_min=None)
  assert rec_plus.n_epochs == 2
  with pytest.raises(errors.EDFHeaderError, match="discontinuous BDF\\+D"):
    recording.load_recording(bdfs["gaps"], hyp, MONTAGE, subject_id="S1")


def _pyedflib_files():
  try:
    import pyedflib  # pylint: disable=import-outside-toplevel
  except ImportError:
    return []
  root = os.path.join(os.path.dirname(pyedflib.__file__), "tests", "data")
  return sorted(glob.glob(os.path.join(root, "*.bdf")) + glob.glob(os.path.join(root, "*.edf")))


@pytest.mark.parametrize("path", _pyedflib_files() or [None],
                         ids=lambda p: os.path.basename(p) if p else "absent")
def test_pyedflib_bundled_files(path):
  """pyedflib's bundled test files: BDFs validate and read like MNE (and pyedflib); EDFs pass."""
  if path is None:
    pytest.skip("pyedflib (test extra) is not installed")
  import pyedflib  # pylint: disable=import-outside-toplevel
  header = edf.validate_edf(path)
  assert header.format.startswith("BDF" if path.endswith(".bdf") else "EDF")
  if not header.is_bdf:
    return
  ours = edf.read_physical(path, list(header.signal_indices), header=header)
  ref = mne.io.read_raw_bdf(path, preload=True, verbose="error")
  with pyedflib.EdfReader(path) as reader:
    for row, i in enumerate(header.signal_indices):
      label = header.labels[i]
      mne_x = ref.get_data(picks=[label])[0] / _scale(header.physical_dims[i])
      np.testing.assert_allclose(ours[row], mne_x, rtol=1e-9, atol=1e-9 * np.abs(mne_x).max())
      if header.n_samples_per_record[i] == max(header.n_samples_per_record[j]
                                               for j in header.signal_indices):
        digital = reader.readSignal(i, digital=True)
        gain = ((header.physical_max[i] - header.physical_min[i])
                / (header.digital_max[i] - header.digital_min[i]))
        np.testing.assert_allclose(
            ours[row], header.physical_min[i] + (digital - header.digital_min[i]) * gain,
            rtol=0, atol=1e-9 * abs(gain) * (1 << 23))
