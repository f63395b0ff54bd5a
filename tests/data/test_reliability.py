"""Reliability on inputs derived from the real SC4001 excerpt (docs/reliability.md, issue 13).

The files come from tests/data/make_broken_files.py (small byte-level edits of
$SLEEPJAX_TEST_DATA/sleep_edf_sc4001_excerpt). Each case asserts what sleepjax does; the
"plain MNE" column of docs/reliability.md is measured by `make_broken_files.py --mne-table`.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import mne
import numpy as np
import pytest

from sleepjax.data import channels
from sleepjax.data import edf
from sleepjax.data import errors
from sleepjax.data import recording
from tests.data import make_broken_files as mb
from tfds_builders import _common
from tfds_builders.sleep_edf import sleep_edf_dataset_builder as sleep_edf

REPO = pathlib.Path(__file__).resolve().parents[2]
MONTAGE = sleep_edf.SC_MONTAGE


@pytest.fixture(scope="module")
def source(shared_data):
  folder = shared_data / mb.EXCERPT
  if not (folder / "short_psg.edf").is_file():
    pytest.skip(f"Sleep-EDF excerpt not found in {folder}")
  return mb.source_bytes(folder)


def _load(folder, **kwargs):
  files = _common.RecordFiles("SC4001E0", "SC400", str(folder / mb.PSG_NAME), str(folder / mb.HYP_NAME))
  return _common.edf_night_loader(MONTAGE, sfreq=100.0, max_mismatch_s=None, **kwargs)(files)


@pytest.fixture(scope="module")
def reference(source, tmp_path_factory):
  return _load(mb.write_case(mb.Case("original", "", mb._night, "ok"), tmp_path_factory.mktemp("orig"),
                             source))


# --- One night at a time ------------------------------------------------------------------------

@pytest.mark.parametrize("case", mb.BROKEN_NIGHTS, ids=lambda c: c.name)
def test_broken_night_is_refused_with_its_reason(case, source, tmp_path):
  folder = mb.write_case(case, tmp_path, source)
  with pytest.raises(getattr(errors, case.error), match=case.match) as info:
    _load(folder)
  assert info.value.path == str(folder / mb.PSG_NAME)
  assert "\n" not in str(info.value)
  if case.name in ("zero_sfreq", "bit24_data"):
    assert "CRLF" not in str(info.value)  # Issue 13, item 8: CRLF was blamed for these.


@pytest.mark.parametrize("case", mb.TOLERATED, ids=lambda c: c.name)
def test_tolerated_night_is_read_correctly(case, source, tmp_path, reference):
  rec = _load(mb.write_case(case, tmp_path, source))
  if case.match:
    assert any(__import__("re").search(case.match, w) for w in rec.report.warnings), rec.report.warnings
  if case.name.startswith("hyp_offset"):
    return  # Placement is checked in test_hypnogram_offsets_are_applied.
  for m in reference.signals:
    np.testing.assert_array_equal(rec.signals[m], reference.signals[m])
  np.testing.assert_array_equal(rec.stages, reference.stages)


@pytest.mark.parametrize("case, offset", [(mb.TOLERATED[2], 60.0), (mb.TOLERATED[3], -45.0)])
def test_hypnogram_offsets_are_applied(case, offset, source, tmp_path):
  folder = mb.write_case(case, tmp_path, source)
  header = edf.validate_edf(folder / mb.PSG_NAME)
  hyp = recording.read_aligned_hypnogram(header, folder / mb.HYP_NAME)
  assert hyp.onset_s == offset and not hyp.notes


@pytest.mark.parametrize("case", mb.ALIGNMENT, ids=lambda c: c.name)
def test_unparseable_start_is_an_error_or_a_stated_offset(case, source, tmp_path, reference):
  folder = mb.write_case(case, tmp_path, source)
  with pytest.raises(errors.AlignmentError, match=case.match):
    _load(folder)
  # Opt-in: the user states the offset; the report says it was assumed.
  rec = _load(folder, assume_offset_s=60.0)
  assert any("assumed hypnogram offset 60 s" in w for w in rec.report.warnings), rec.report.warnings
  header = edf.validate_edf(folder / mb.PSG_NAME)
  hyp = recording.read_aligned_hypnogram(header, folder / mb.HYP_NAME, assume_offset_s=60.0)
  assert hyp.onset_s == 60.0


@pytest.mark.parametrize("case", mb.DUPLICATES, ids=lambda c: c.name)
def test_two_candidate_files_are_an_error_naming_both(case, source, tmp_path):
  folder = mb.write_case(case, tmp_path, source)
  with pytest.raises(errors.DuplicateFileError, match=case.match):
    sleep_edf.manual_records(folder, "SC")


# --- Units --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dim, per_uv", mb.UNIT_SPELLINGS, ids=lambda v: repr(v))
def test_stored_amplitude_in_microvolts_for_every_unit_spelling(dim, per_uv, source, tmp_path, reference):
  folder = tmp_path
  (folder / mb.PSG_NAME).write_bytes(mb.unit_case(source[0], dim, per_uv))
  (folder / mb.HYP_NAME).write_bytes(source[1])
  rec = _load(folder)
  got, want = rec.signals["eeg"][:, 0], reference.signals["eeg"][:, 0]
  # The physical range is written in the new unit with 8 characters: exact for these values.
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
  assert 10.0 < float(np.std(got)) < 100.0  # uV, not V (x1e-6) nor x1e6


@pytest.mark.parametrize("channel, dim", [(0, b"uV\xa0"), (0, b"u V"), (3, b"uV\xa0"), (0, b"\xb5 V"),
                                          (0, b"DegC"), (0, b"")])
def test_odd_or_non_voltage_unit_is_an_error_naming_channel_and_bytes(channel, dim, source, tmp_path):
  (tmp_path / mb.PSG_NAME).write_bytes(mb.set_signal(source[0], channel, "dim", dim))
  (tmp_path / mb.HYP_NAME).write_bytes(source[1])
  label = ("EEG Fpz-Cz", "", "", "Resp oro-nasal")[channel]
  with pytest.raises(errors.UnitError, match=f"channel '{label}'") as info:
    _load(tmp_path)
  if dim not in (b"DegC", b""):
    assert repr(dim.ljust(8)) in str(info.value)  # the header bytes are shown


def test_read_physical_matches_mne_divided_by_its_own_scale(source, tmp_path):
  """Measured, not copied: MNE's output is our physical values x 1e-6 for "uV", x1 for others."""
  path = tmp_path / "p.edf"
  path.write_bytes(source[0])
  header = edf.validate_edf(path)
  ours = edf.read_physical(path, list(header.signal_indices), header=header)
  raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
  theirs = raw.get_data()
  for i, label in enumerate(header.labels):
    scale = 1e-6 if header.physical_dims[i] == "uV" else 1.0
    np.testing.assert_allclose(ours[i] * scale, theirs[i], rtol=1e-9, atol=1e-12 * scale, err_msg=label)


# --- Labels and messages ------------------------------------------------------------------------

def test_label_with_trailing_nbsp_is_listed_and_duplicate_labels_are_ambiguous(source, tmp_path):
  psg = mb.set_signal(source[0], 1, "label", b"EEG Pz-Oz\xa0")
  (tmp_path / mb.PSG_NAME).write_bytes(psg)
  (tmp_path / mb.HYP_NAME).write_bytes(source[1])
  montage = channels.Montage([channels.ChannelSpec("EEG Fpz-Cz", "eeg"), channels.ChannelSpec("EEG C3", "eeg")])
  with pytest.raises(errors.MissingChannelError, match=r"available labels: .*'EEG Pz-Oz\\xa0'"):
    recording.load_recording(tmp_path / mb.PSG_NAME, tmp_path / mb.HYP_NAME, montage, subject_id="s",
                             max_mismatch_s=None)
  (tmp_path / mb.PSG_NAME).write_bytes(mb.set_signal(source[0], 1, "label", b"EEG Fpz-Cz"))
  with pytest.raises(errors.MissingChannelError, match=r"label 'EEG Fpz-Cz' is used by 2 signals \(\[0, 1\]\)"):
    _load(tmp_path)


# --- Builds -------------------------------------------------------------------------------------

def _write_night(folder, psg, hyp, subject):
  name = f"SC4{subject:02d}1E0-PSG.edf"
  (folder / name).write_bytes(psg)
  (folder / f"SC4{subject:02d}1EC-Hypnogram.edf").write_bytes(hyp)
  return name


def _build(manual, data_dir, *extra):
  cmd = [sys.executable, "-m", "sleepjax.data.build", "tfds_builders/sleep_edf", "--config", "sleep_cassette",
         "--manual_dir", str(manual), "--data_dir", str(data_dir), *extra]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_build_cli_every_night_broken_ends_with_one_line(source, tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  for k, case in enumerate(mb.BROKEN_NIGHTS):
    files = case.make(*source)
    _write_night(manual, files[mb.PSG_NAME], files[mb.HYP_NAME], k)
  out = _build(manual, tmp_path / "tfds")
  assert out.returncode == 1, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("python -m sleepjax.data.build: error: no usable recording among 13 "), last
  for reason in ("EDFHeaderError x7", "EDFTruncatedError x3", "SamplingRateError x1", "UnitError x1",
                 "MissingChannelError x1"):
    assert reason in last, last
  assert "Traceback" not in out.stderr
  # Nothing is cached: the next run fails the same way instead of serving an empty dataset.
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


@pytest.mark.parametrize("case", mb.BROKEN_NIGHTS, ids=lambda c: c.name)
def test_single_broken_night_builds_nothing(case, source, tmp_path):
  from sleepjax.data import pipeline  # pylint: disable=g-import-not-at-top
  manual = mb.write_case(case, tmp_path / "manual", source)
  with pytest.raises(errors.NoUsableRecordingError, match=rf"no usable recording among 1 .*{case.error} x1"):
    pipeline.prepare("sleep_edf", str(tmp_path / "tfds"), config="sleep_cassette", manual_dir=str(manual))
  assert not list((tmp_path / "tfds").rglob("dataset_info.json"))


def test_build_one_good_one_broken_then_stale_inputs(source, tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  _write_night(manual, source[0], source[1], 0)
  broken = _write_night(manual, source[0][:-1000], source[1], 1)
  data_dir = tmp_path / "tfds"
  out = _build(manual, data_dir)
  assert out.returncode == 0, out.stderr[-3000:]
  assert '"n_failed": 1' in out.stdout and "SC4011E0" in out.stdout and "truncated" in out.stdout
  (built,) = (data_dir / "sleep_edf" / "sleep_cassette").glob("*/metadata.json")  # the builder's version
  meta = json.loads(built.read_text())
  assert [f[0] for f in meta["build_inputs"]["files"]] == sorted(p.name for p in manual.iterdir())
  # The broken night is fixed: the cached build no longer matches its inputs.
  (manual / broken).write_bytes(source[0])
  out = _build(manual, data_dir)
  assert out.returncode == 1
  last = out.stderr.strip().splitlines()[-1]
  assert "other inputs" in last and "1 changed (SC4011E0-PSG.edf)" in last and "--rebuild" in last, last
  # Another manual_dir with other files: refused too.
  other = tmp_path / "other"
  other.mkdir()
  _write_night(other, source[0], source[1], 0)
  out = _build(other, data_dir)
  assert out.returncode == 1 and "other inputs" in out.stderr
  out = _build(manual, data_dir, "--rebuild")
  assert out.returncode == 0, out.stderr[-3000:]
  assert '"n_failed": 0' in out.stdout
  assert _build(manual, data_dir).returncode == 0  # same inputs: reused


def test_concurrent_builds_wait_for_each_other(source, tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  _write_night(manual, source[0], source[1], 0)
  cmd = [sys.executable, "-m", "sleepjax.data.build", "tfds_builders/sleep_edf", "--config", "sleep_cassette",
         "--manual_dir", str(manual), "--data_dir", str(tmp_path / "tfds")]
  procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for _ in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
  for stdout, _ in outs:
    assert "| train | 1 | 1 | 10 | 10 | 0 | 0 | 0 | 0 | 0 |" in stdout


def test_make_broken_files_script_writes_every_case(tmp_path):
  out = subprocess.run([sys.executable, "tests/data/make_broken_files.py", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(c.name for c in mb.CASES)
  shutil.rmtree(tmp_path)
