"""sleepjax.stage, the Hypnogram type and the sleepjax-stage CLI (docs/staging.md).

The stager is a SleepMG model saved the way the SleepMG trainer saves its models (random weights:
these tests check the plumbing, not accuracy). Statistics are checked against yasa's when yasa is
installed (the `test` extra).
"""

import datetime
import json
import pathlib
import warnings

import mne
import numpy as np
import pytest
from flax import nnx

import sleepjax
from sleepjax import models as models_lib
from sleepjax import staging
from sleepjax import staging_cli
from sleepjax.data import hypnogram as data_hypnogram
from sleepjax.data import stages as S
from sleepjax.data.errors import EDFTruncatedError
from sleepjax.data.errors import MissingChannelError
from sleepjax.data.errors import RecordingError
from sleepjax.hypnogram import Hypnogram
from sleepjax.models.sleepmg import SleepMGModel
from sleepjax.train import sleepmg as sleepmg_train

# The model's input: two EEG channels (Sleep-EDF's), two EOG (one Sleep-EDF lacks), ECG (absent).
MONTAGE = {"eeg": ["EEG Fpz-Cz", "EEG Pz-Oz"], "eog": ["EOG horizontal", "EOG E2-M1"], "ecg": ["ECG"]}


def _save_model(path, *, with_input=True):
  model = SleepMGModel({m: len(v) for m, v in MONTAGE.items()}, rngs=nnx.Rngs(0))
  model.eval()
  meta = {"task": "sleepmg", "grouping": "per_modality",
          "data": {"modalities": list(MONTAGE), "channels": {m: len(v) for m, v in MONTAGE.items()}, "sfreq": 100.0}}
  if with_input:
    meta["input"] = sleepmg_train.preprocessing_metadata(
        {m: [{"name": n, "aliases": []} for n in v] for m, v in MONTAGE.items()}, sfreq=100.0,
        lowpass_at_nyquist=False, zscore=False)
  return models_lib.save(model, path, label_names=S.STAGE_NAMES, metadata=meta)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return _save_model(tmp_path_factory.mktemp("stager") / "model")


@pytest.fixture(scope="module")
def stager(model_dir):
  return staging.load_stager(model_dir)


@pytest.fixture(scope="module")
def sc4001(shared_data):
  d = shared_data / "sleep_edf_sc4001_excerpt"
  if not (d / "short_psg.edf").is_file():
    pytest.skip(f"{d}/short_psg.edf not found")
  return d


def _raw(channels, seconds=300, sfreq=100.0, seed=0):
  """An mne RawArray (volts) of noise with the given channel names."""
  rng = np.random.default_rng(seed)
  data = 20e-6 * rng.standard_normal((len(channels), int(seconds * sfreq)))
  return mne.io.RawArray(data, mne.create_info(list(channels), sfreq, ch_types="eeg"), verbose="error")


# ------------------------------------------------------------------------------------------------
# stage()
# ------------------------------------------------------------------------------------------------


def test_stage_real_sleep_edf_excerpt(sc4001, model_dir):
  with pytest.warns(staging.StagingWarning, match=r"modalities \['ecg'\] absent.*'EOG E2-M1'") as rec:
    hyp = sleepjax.stage(sc4001 / "short_psg.edf", model_dir)
  assert len([w for w in rec if issubclass(w.category, staging.StagingWarning)]) == 1
  assert isinstance(hyp, sleepjax.Hypnogram) and isinstance(hyp, data_hypnogram.Hypnogram)
  assert hyp.n_epochs == 10  # 300 s of signal.
  assert hyp.probabilities.shape == (10, 5) and hyp.probabilities.dtype == np.float32
  np.testing.assert_allclose(hyp.probabilities.sum(1), 1.0, atol=1e-5)
  np.testing.assert_array_equal(hyp.stages, hyp.probabilities.argmax(1))
  np.testing.assert_allclose(hyp.confidence, hyp.probabilities.max(1))
  np.testing.assert_array_equal(hyp.onsets, 30.0 * np.arange(10))
  assert hyp.start == datetime.datetime(1989, 4, 24, 16, 13)
  assert hyp.record_id == "short_psg"
  assert hyp.channels == {"EEG Fpz-Cz": "EEG Fpz-Cz", "EEG Pz-Oz": "EEG Pz-Oz", "EOG horizontal": "EOG horizontal"}


def test_masked_channels_are_zero_signals(stager):
  """Staging a raw that lacks ECG and one EOG equals staging it with those channels at zero input."""
  full = _raw(["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"], seed=1)
  with pytest.warns(staging.StagingWarning, match="ecg"):
    hyp = staging.stage(full, stager)
  # The same epochs through the model directly, missing channels as zeros.
  x = full.get_data() * 1e6
  epochs = x.reshape(3, 10, 3000).transpose(1, 0, 2).astype(np.float32)  # (N, C, T)
  signals = {"eeg": epochs[:, :2], "eog": np.concatenate([epochs[:, 2:3], np.zeros_like(epochs[:, :1])], 1),
             "ecg": np.zeros_like(epochs[:, :1])}
  logits = stager.model(signals)["logits_y"]
  want = np.asarray(nnx.softmax(logits, axis=-1))
  np.testing.assert_allclose(hyp.probabilities, want, atol=1e-5)


def test_channels_typed_by_the_alias_table(stager):
  """File labels unlike the model's are assigned by modality (alias table), in file order."""
  raw = _raw(["C3-A2", "LOC", "ROC", "EKG", "SaO2"])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", staging.StagingWarning)
    hyp = staging.stage(raw, stager)
  assert hyp.channels == {"EEG Pz-Oz": "C3-A2", "EOG horizontal": "LOC", "EOG E2-M1": "ROC", "ECG": "EKG"}
  np.testing.assert_allclose(hyp.probabilities.sum(1), 1.0, atol=1e-5)


def test_eeg_assigned_by_active_electrode():
  """The synthetic montage's mastoid derivations get DREAMS' A1-referenced channels by position."""
  from sleepjax.data import synthetic
  spec = staging.InputSpec({"eeg": tuple((n, ()) for n in synthetic.EEG_CHANNELS),
                            "eog": tuple((n, ()) for n in synthetic.EOG_CHANNELS)})
  got = staging.assign_channels(spec, ["O1-A1", "EMG1", "ECG", "C3-A1", "FP1-A1", "EOG2-A1", "EOG1-A1"])
  assert got == {"EEG F3-M2": "FP1-A1", "EEG C3-M2": "C3-A1", "EEG O1-M2": "O1-A1", "EOG E1-M2": "EOG2-A1",
                 "EOG E2-M1": "EOG1-A1"}


def test_montage_override_and_mistyped_label(stager):
  raw = _raw(["EEG A", "EEG B", "EOG horizontal"])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", staging.StagingWarning)
    hyp = staging.stage(raw, stager, montage={"EEG Fpz-Cz": "EEG B", "ECG": "EOG horizontal"})
  assert hyp.channels == {"EEG Fpz-Cz": "EEG B", "ECG": "EOG horizontal"}
  with pytest.raises(MissingChannelError, match="EEG Q"):
    staging.stage(raw, stager, montage={"EEG Fpz-Cz": "EEG Q"})
  with pytest.raises(ValueError, match="does not have"):
    staging.stage(raw, stager, montage={"EEG Cz": "EEG A"})


def test_no_usable_channel_is_one_line_error(sc4001, stager, tmp_path):
  raw = _raw(["Temp rectal", "Event marker", "SaO2"])
  with pytest.raises(RecordingError) as e:
    staging.stage(raw, stager)
  msg = str(e.value)
  assert "\n" not in msg and "no channel this model can use" in msg
  assert "Temp rectal" in msg and "Event marker" in msg and "EEG Fpz-Cz" in msg
  # A flat EEG is no usable channel either.
  flat = _raw(["EEG Fpz-Cz"])
  flat._data[:] = 0.0
  with pytest.raises(RecordingError, match="entirely NaN or flat"):
    staging.stage(flat, stager)
  with pytest.raises(FileNotFoundError, match="no such file"):
    staging.stage(tmp_path / "missing.edf", stager)
  broken = tmp_path / "broken.edf"
  broken.write_bytes((sc4001 / "short_psg.edf").read_bytes()[:3000])
  with pytest.raises(EDFTruncatedError, match="broken.edf"):
    staging.stage(broken, stager)


def test_non_finite_epoch_is_unscored(stager):
  raw = _raw(["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "EOG E2-M1", "ECG"])
  raw._data[0, 3000 * 4 + 10] = np.nan  # Epoch 4.
  hyp = staging.stage(raw, stager)
  assert hyp.stages[4] == S.UNSCORED and np.isnan(hyp.probabilities[4]).all() and np.isnan(hyp.confidence[4])
  ok = np.arange(10) != 4
  np.testing.assert_allclose(hyp.probabilities[ok].sum(1), 1.0, atol=1e-5)


def test_model_saved_without_input_block(tmp_path):
  old = _save_model(tmp_path / "old", with_input=False)
  with pytest.warns(staging.StagingWarning, match="saved without its preprocessing"):
    st = staging.load_stager(old)
  assert st.input.channel_names() == {"eeg": ["eeg0", "eeg1"], "eog": ["eog0", "eog1"], "ecg": ["ecg0"]}
  assert st.input.sfreq == 100.0 and not st.input.zscore


def test_not_a_stager(tmp_path):
  from sleepjax.models.encoder import EncoderConfig, SetTransformerEncoder
  enc = SetTransformerEncoder(EncoderConfig(patch_size=64, embed_dim=16, num_heads=2, num_layers=1, pooling_heads=2,
                                            ff_dim=32), rngs=nnx.Rngs(0))
  models_lib.save(enc, tmp_path / "enc", metadata={"task": "pretrain"})
  with pytest.raises(ValueError, match="is not a stager"):
    staging.load_stager(tmp_path / "enc")


def test_sleepmg_trainer_saves_the_input_block():
  data = sleepmg_train.make_toy_data(num_subjects=2, epochs_per_subject=5, channels={"eeg": 2, "emg": 1})
  assert data.input["montage"] == {"eeg": [{"name": "eeg0", "aliases": []}, {"name": "eeg1", "aliases": []}],
                                   "emg": [{"name": "emg0", "aliases": []}]}
  assert (data.input["sfreq"], data.input["zscore"], data.input["lowpass_at_nyquist"]) == (100.0, False, False)

  class Cfg:  # A PSG builder config (tfds_builders/synthetic_psg): sfreq, flags and the montage.
    sfreq, zscore, lowpass_at_nyquist = 100.0, True, True
    from sleepjax.data.channels import ChannelSpec, Montage
    montage = Montage([ChannelSpec("EEG C3-M2", "eeg", ("C3-A2",)), ChannelSpec("EMG Chin", "emg"),
                       ChannelSpec("Resp Thorax", "resp")])

  class Builder:
    builder_config = Cfg()

  block = sleepmg_train._builder_input(Builder(), ("eeg", "emg"))
  assert block["montage"] == {"eeg": [{"name": "EEG C3-M2", "aliases": ["C3-A2"]}],
                              "emg": [{"name": "EMG Chin", "aliases": []}]}
  assert block["zscore"] and block["lowpass_at_nyquist"]
  spec = staging.InputSpec.from_metadata(block, "test")
  assert spec.montage == {"eeg": (("EEG C3-M2", ("C3-A2",)),), "emg": (("EMG Chin", ()),)}


def test_import_sleepjax_stays_light():
  import subprocess
  import sys
  code = ("import sys, sleepjax; heavy = [m for m in ('jax', 'flax', 'mne', 'matplotlib', 'orbax') if m in sys.modules];"
          "print(heavy); assert not heavy; assert callable(sleepjax.stage)")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[1])


# ------------------------------------------------------------------------------------------------
# Hypnogram: statistics (against yasa), exports.
# ------------------------------------------------------------------------------------------------


def _hypnograms():
  rng = np.random.default_rng(0)
  night = np.concatenate([np.zeros(20), np.repeat(rng.choice([1, 2, 3, 2, 4, 0], size=120), rng.integers(1, 8, 120)),
                          np.zeros(15)]).astype(int)
  yield "night", night
  yield "all_wake", np.zeros(60, int)
  yield "no_rem", np.array([0] * 5 + [1, 2, 2, 3, 3, 0, 2, 2] * 6 + [0] * 3)
  yield "unscored_and_movement", np.array([-1, -1, 0, 0, 1, 2, -2, 2, 2, 0, -1, 4, 4, 2, 0, -1])
  yield "single_sleep_epoch", np.array([0, 0, 2, 0])
  yield "sleep_at_both_ends", np.array([2, 2, 0, 0, 4, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1])
  yield "all_unscored", np.full(8, -1)
  yield "one_epoch_rem", np.array([4])
  yield "random", rng.integers(-1, 5, size=500)


@pytest.mark.parametrize("name,stages", list(_hypnograms()), ids=[n for n, _ in _hypnograms()])
def test_sleep_statistics_equal_yasa(name, stages):
  yasa = pytest.importorskip("yasa", reason="yasa not installed (pip install sleepjax[test])")
  labels = np.array([{0: "WAKE", 1: "N1", 2: "N2", 3: "N3", 4: "REM", -1: "UNS", -2: "ART"}[int(s)] for s in stages])
  want = {k: float(v) for k, v in yasa.Hypnogram(labels, n_stages=5).sleep_statistics().items()}
  got = Hypnogram(stages=stages).sleep_statistics()
  assert set(got) - set(want) == {"Lat_N1", "Lat_N2", "Lat_N3"}, name
  for k, v in want.items():
    np.testing.assert_equal(got[k], v, err_msg=f"{name}: {k}")
  # The latencies yasa 0.8 dropped: minutes from the start to the stage's first epoch.
  for st, key in ((1, "Lat_N1"), (2, "Lat_N2"), (3, "Lat_N3")):
    hit = np.flatnonzero(stages == st)
    np.testing.assert_equal(got[key], hit[0] / 2.0 if hit.size else np.nan)


def test_sleep_statistics_by_hand():
  # W W N1 N2 N2 W N2 REM W: TIB 4.5 min, SPT epochs 2..7 (3 min), WASO 0.5, TST 2.5.
  st = Hypnogram(stages=[0, 0, 1, 2, 2, 0, 2, 4, 0]).sleep_statistics()
  assert (st["TIB"], st["SPT"], st["WASO"], st["TST"], st["SOL"], st["Lat_REM"]) == (4.5, 3.0, 0.5, 2.5, 1.0, 3.5)
  assert st["SE"] == round(100 * 2.5 / 4.5, 4) and st["SME"] == round(100 * 2.5 / 3.0, 4)
  assert np.isnan(st["SOL_5min"]) and st["%N2"] == 60.0
  with pytest.raises(ValueError, match="no epochs"):
    Hypnogram(stages=np.zeros(0, int)).sleep_statistics()


def test_to_yasa_carries_probabilities():
  yasa = pytest.importorskip("yasa", reason="yasa not installed (pip install sleepjax[test])")
  p = np.random.default_rng(0).dirichlet(np.ones(5), size=6).astype(np.float32)
  hyp = Hypnogram(stages=p.argmax(1), probabilities=p, start=datetime.datetime(2020, 1, 1, 23, 0), scorer="m")
  y = hyp.to_yasa()
  assert isinstance(y, yasa.Hypnogram) and y.n_epochs == 6 and y.scorer == "m"
  np.testing.assert_allclose(y.proba.to_numpy(), p, rtol=1e-6)
  assert list(y.hypno.astype(str)) == [["WAKE", "N1", "N2", "N3", "REM"][i] for i in p.argmax(1)]


def test_edf_annotations_read_back(tmp_path):
  stages = np.array([0, 0, 1, 2, 2, 3, 3, 2, 4, 4, -1, 0, -2, 2])
  hyp = Hypnogram(stages=stages, onset_s=60.0, start=datetime.datetime(2001, 2, 3, 22, 15, 30))
  path = hyp.to_edf_annotations(tmp_path / "h.edf")
  ann = mne.read_annotations(path)
  assert list(ann.description) == ["Sleep stage W", "Sleep stage N1", "Sleep stage N2", "Sleep stage N3",
                                   "Sleep stage N2", "Sleep stage R", "Sleep stage ?", "Sleep stage W",
                                   "Movement time", "Sleep stage N2"]
  np.testing.assert_allclose(ann.onset, [60, 120, 150, 210, 270, 300, 360, 390, 420, 450])
  np.testing.assert_allclose(ann.duration, [60, 30, 60, 60, 30, 60, 30, 30, 30, 30])
  import edfio
  edf = edfio.read_edf(path)
  assert (edf.startdate, edf.starttime) == (datetime.date(2001, 2, 3), datetime.time(22, 15, 30))
  back = data_hypnogram.read_edf_hypnogram(path)
  np.testing.assert_array_equal(back.stages, stages)
  assert back.onset_s == 60.0


def test_csv_one_row_per_epoch(tmp_path):
  p = np.random.default_rng(1).dirichlet(np.ones(5), size=4).astype(np.float32)
  p[2] = np.nan
  stages = p.argmax(1)
  stages[2] = S.UNSCORED
  path = Hypnogram(stages=stages, probabilities=p).to_csv(tmp_path / "h.csv")
  lines = path.read_text().splitlines()
  assert lines[0] == "onset_s,duration_s,stage,confidence,p_W,p_N1,p_N2,p_N3,p_REM"
  rows = [line.split(",") for line in lines[1:]]
  assert len(rows) == 4 and [r[0] for r in rows] == ["0.000", "30.000", "60.000", "90.000"]
  assert rows[2][2] == "?" and rows[2][3:] == [""] * 6
  for i in (0, 1, 3):
    assert rows[i][2] == S.STAGE_NAMES[stages[i]]
    assert abs(sum(float(x) for x in rows[i][4:]) - 1.0) < 1e-5


def test_plot_writes_png(tmp_path):
  p = np.random.default_rng(2).dirichlet(np.ones(5), size=20).astype(np.float32)
  fig = Hypnogram(stages=p.argmax(1), probabilities=p).plot(tmp_path / "h.png", title="t")
  assert (tmp_path / "h.png").stat().st_size > 5000
  assert len(fig.axes) == 2


def test_aasm_stage_texts():
  assert [S.map_stage_text(f"Sleep stage {c}") for c in ("N1", "N2", "N3", "R", "W", "4")] == [1, 2, 3, 4, 0, 3]


# ------------------------------------------------------------------------------------------------
# The console script.
# ------------------------------------------------------------------------------------------------


def test_cli_good_and_broken_night(sc4001, model_dir, tmp_path, capsys):
  broken = tmp_path / "broken.edf"
  broken.write_bytes((sc4001 / "short_psg.edf").read_bytes()[:3000])
  hyp = str(sc4001 / "SC4001EC-Hypnogram.edf")
  out = tmp_path / "out"
  rc = staging_cli.main([str(sc4001 / "short_psg.edf"), str(broken), "--model", str(model_dir), "--out", str(out),
                         "--hypnogram", hyp, hyp, "--no-progress"])
  cap = capsys.readouterr()
  assert rc == 0
  assert sorted(p.name for p in out.iterdir()) == ["short_psg.hypnogram.csv", "short_psg.hypnogram.edf",
                                                  "short_psg.png", "short_psg.stats.json"]
  bad = [line for line in cap.err.splitlines() if "broken.edf" in line]
  assert len(bad) == 1 and "skipped: EDFTruncatedError" in bad[0]
  assert "Staged 1 of 2 nights" in cap.out and "| short_psg" in cap.out and "Failed (1)" in cap.out
  rows = (out / "short_psg.hypnogram.csv").read_text().splitlines()[1:]
  assert len(rows) == 10
  for r in rows:
    cells = r.split(",")
    assert cells[2] in S.STAGE_NAMES and abs(sum(map(float, cells[4:9])) - 1.0) <= 1e-5
  ann = mne.read_annotations(out / "short_psg.hypnogram.edf")
  assert sum(ann.duration) == 300.0
  report = json.loads((out / "short_psg.stats.json").read_text())
  assert report["statistics"]["TIB"] == 5.0 and report["epochs"] == 10
  assert report["agreement"]["epochs"] == 10  # The expert scores these 5 minutes as Wake.
  assert np.sum(report["agreement"]["confusion"]) == 10 and np.sum(report["agreement"]["confusion"][0]) == 10
  assert report["agreement"]["accuracy"] == np.mean(np.array([r.split(",")[2] for r in rows]) == "W")
  assert report["warnings"] and "ecg" in report["warnings"][0]


def test_cli_exit_codes(sc4001, model_dir, tmp_path, capsys):
  broken = tmp_path / "broken.edf"
  broken.write_bytes(b"0" * 100)
  assert staging_cli.main([str(broken), "--model", str(model_dir), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
  assert staging_cli.main([str(tmp_path / "typo.edf"), "--model", str(model_dir), "--out", str(tmp_path / "o")]) == 2
  assert "typo.edf: no such file" in capsys.readouterr().err
  assert staging_cli.main([str(sc4001 / "short_psg.edf"), "--model", str(tmp_path / "nomodel"),
                           "--out", str(tmp_path / "o")]) == 2
  assert "nomodel" in capsys.readouterr().err
  assert staging_cli.main([str(sc4001 / "short_psg.edf"), "--model", str(model_dir), "--out", str(tmp_path / "o"),
                           "--hypnogram", str(broken), str(broken)]) == 2


def test_console_script_is_declared():
  import configparser
  cfg = configparser.ConfigParser()
  cfg.read(pathlib.Path(__file__).parents[1] / "setup.cfg")
  scripts = cfg["options.entry_points"]["console_scripts"]
  assert "sleepjax-stage = sleepjax.staging_cli:main" in scripts
  assert "sleepjax-embed = sleepjax.embed_cli:main" in scripts
