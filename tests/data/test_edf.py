"""EDF header parsing and physical-unit handling (sleepjax.data.edf)."""

import datetime
import json

import edfio
import numpy as np
import pytest

from sleepjax.data import edf
from sleepjax.data import errors


def _sine_uv(n=3000, sfreq=100.0, amp_uv=50.0):
  return amp_uv * np.sin(2 * np.pi * 1.5 * np.arange(n) / sfreq)


def test_validate_real_sleep_edf_header_matches_reference(shared_data):
  folder = shared_data / "sleep_edf_sc4001_excerpt"
  header = edf.validate_edf(folder / "short_psg.edf")
  reference = json.loads((folder / "short_psg_header_reference.json").read_text())
  assert header.labels == tuple(r["label"] for r in reference)
  assert header.physical_dims == tuple(r["physical_dimension"] for r in reference)
  assert header.n_samples_per_record == tuple(r["samples_per_data_record"] for r in reference)
  assert header.sfreqs == tuple(r["sampling_frequency"] for r in reference)
  assert header.physical_min == tuple(float(r["physical_min"]) for r in reference)
  assert header.digital_max == tuple(float(r["digital_max"]) for r in reference)
  assert header.n_records == 10 and header.record_duration_s == 30.0
  assert header.duration_s == 300.0
  assert header.header_bytes == 256 * 8
  assert header.start == datetime.datetime(1989, 4, 24, 16, 13, 0)
  assert not header.is_edf_plus and header.annotation_indices == ()
  assert header.sfreq_of("EMG submental") == 1.0


def test_validate_annotation_only_edf_plus(shared_data):
  header = edf.validate_edf(shared_data / "sleep_edf_sc4001_excerpt" / "SC4001EC-Hypnogram.edf")
  assert header.is_edf_plus
  assert header.annotation_indices == (0,)
  assert header.record_duration_s == 0.0  # annotation-only EDF+: no sampling rate needed
  assert header.signal_indices == ()


@pytest.mark.parametrize("dim, factor", [
    ("uV", 1.0), ("\u00b5V", 1.0), ("\u03bcV", 1.0), ("UV", 1.0), ("mV", 1e3), ("MV", 1e3),
    ("V", 1e6), ("nV", 1e-3), (" uV ", 1.0)])
def test_to_microvolts_factor(dim, factor):
  assert edf.to_microvolts_factor(dim) == factor


@pytest.mark.parametrize("dim", ["", "DegC", "%", "BPM", "mmHg"])
def test_to_microvolts_factor_rejects_non_voltage(dim):
  with pytest.raises(errors.UnitError, match=r"rec\.edf: channel 'Temp'.*not a voltage"):
    edf.to_microvolts_factor(dim, path="rec.edf", channel="Temp")


def test_units_from_the_header_calibration(tmp_path):
  """read_physical + channel_to_microvolts give uV whatever the unit (no MNE rescaling involved)."""
  x_uv = _sine_uv()
  in_unit = {"uV": 1.0, "mV": 1e-3, "UV": 1.0, "V": 1e-6, "nV": 1e3}
  signals = [edfio.EdfSignal(x_uv * s, 100, label=f"EEG C{i}", physical_dimension=u)
             for i, (u, s) in enumerate(in_unit.items())]
  path = tmp_path / "units.edf"
  edfio.Edf(signals).write(path)
  header = edf.validate_edf(path)
  physical = edf.read_physical(path, header.labels)
  for label, dim, x in zip(header.labels, header.physical_dims, physical):
    got = edf.channel_to_microvolts(x, dim)
    assert got.dtype == np.float32
    # 16-bit quantisation of a +-50 uV range in each unit: well under 0.01 uV.
    np.testing.assert_allclose(got, x_uv, atol=0.01, err_msg=f"{label} [{dim}]")


def test_read_raw_edf_validates_first(tmp_path):
  path = tmp_path / "short.edf"
  edfio.Edf([edfio.EdfSignal(_sine_uv(), 100, label="EEG Cz")]).write(path)
  path.write_bytes(path.read_bytes()[:-10])
  with pytest.raises(errors.EDFTruncatedError, match="short.edf"):
    edf.read_raw_edf(path)


def test_read_raw_edf_mixed_rates_upsampled_by_mne(tmp_path):
  """MNE returns every channel at the highest rate; the header keeps the native ones."""
  path = tmp_path / "mixed.edf"
  edfio.Edf([edfio.EdfSignal(_sine_uv(), 100, label="EEG Cz", physical_dimension="uV"),
             edfio.EdfSignal(np.linspace(0, 3, 30), 1, label="EMG chin",
                             physical_dimension="uV")]).write(path)
  header = edf.validate_edf(path)
  assert header.sfreqs == (100.0, 1.0)
  raw = edf.read_raw_edf(path)
  assert raw.info["sfreq"] == 100.0 and raw.n_times == 3000
