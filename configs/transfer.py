r"""Transfer of the sleep-pretrained encoder to wake EEG and ECG tasks (docs/specification.md §3).

  python -m sleepjax.main --config=configs/transfer.py:eegmmidb --workdir=/tmp/sleepjax/transfer_mi \
      --config.data.manual_dir=/path/to/eegmmidb --config.pretrained_workdir=/tmp/sleepjax/pretrain_transfer

Variants (`--config=configs/transfer.py:NAME`), on REAL data that the user points to with
--config.data.manual_dir (the folder with the dataset's files or archive; each builder's README
says which), except the `*tiny` ones, which use the builders' committed dummy data:
  eegmmidb        motor imagery rest / left fist / right fist, 64 EEG channels, 4-s windows at 160 Hz;
                  subject-wise splits of the builder (n % 6: test 0, validation 5).
  eegmmidb_eyes   eyes open vs closed (baseline runs R01/R02).
  bonn_seizure    Bonn ictal (set S) vs the rest, 1 channel, 23.6 s at 173.61 Hz (segment-level
                  splits: Bonn publishes no subject ids; see its README).
  bonn_five       Bonn sets Z, O, N, F, S as five classes.
  mitdb           MIT-BIH AAMI beat classes N/S/V/F/Q, 2 leads, the builder's `context` windows
                  (4 s around the R peak), inter-patient DS1/DS2 split; training subset of 20000 beats.
  cinc2017        PhysioNet/CinC 2017 AF classification (normal, AF, other, noisy), 1 lead, 30 s at
                  300 Hz (record-level splits: no patient ids).
  ptbxl           PTB-XL multilabel ECG: the six CODE-15 labels (1dAVb, RBBB, LBBB, SB, AF, ST) of the
                  transfer paper's ECG head, sigmoid BCE; 12 leads, 10 s at 500 Hz (`500hz` config),
                  strat_fold splits 1-8 / 9 / 10. Channel ablation over 1..12 leads on macro AUROC.
  tiny            seconds on a CPU (tests, CI): the eegmmidb builder's dummy data (2 windows per
                  split), a tiny encoder, 3 steps, scratch strategy only.
  ptbxl_tiny      seconds on a CPU: the ptbxl builder's native-format dummy data (6 synthetic
                  records: train 3 / validation 1 / test 2), tiny encoder, 3 steps, multilabel head.

Without --config.data.manual_dir a real-data variant stops with a message naming the flag (never a
download), unless the dataset is already built in the TFDS data_dir.

Strategies (`config.strategies`): scratch, pretrained, frozen. The pretrained ones need
`config.pretrained_workdir` (a pretraining workdir, `sleepjax.models.load` reads its model/);
with it None they are skipped with a message. A pretrained encoder brings its own architecture
(patch size, rate, width); the scratch strategy uses the same architecture at random init when a
pretrained_workdir is given (`config.model.scratch_matches_pretrained`), else
`config.model.encoder` (the transfer paper's: 1-s patches at 128 Hz, 3 layers).

Every table starts with classic baselines on the same splits (`config.baselines`, per variant:
band power + logistic regression and CSP + LDA for EEG, RR + morphology + gradient boosting for ECG;
sleepjax.evaluation.baselines).

Every field: `sleepjax.train.finetune.default_config`.
"""

import os

from sleepjax.train import config as config_lib
from sleepjax.train import finetune

VARIANTS = ("eegmmidb", "eegmmidb_eyes", "bonn_seizure", "bonn_five", "mitdb", "cinc2017", "ptbxl", "tiny",
            "ptbxl_tiny")
_REPO = os.path.join(os.path.dirname(__file__), "..")


def _ci_sized(c, builder: str, *, window_s: float) -> None:
  """Seconds on a CPU (the `*tiny` variants): `builder`'s dummy data, a tiny encoder, 3 steps.

  A separate data_dir keeps the dummy build away from a real build of the same dataset.
  """
  c.data.manual_dir = os.path.join(_REPO, "tfds_builders", builder, "dummy_data")
  c.data.manual_dir_required = False
  c.data.data_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sleepjax_tfds_dummy")
  c.model.encoder = config_lib.encoder("tiny", patch_size=128, embed_dim=16, num_heads=2, pooling_heads=2, ff_dim=32,
                                       tokenizer_widths=(4, 8, 8, 8, 8, 8), window_s=window_s)
  c.model.head_hidden_dim = 16
  c.strategies = ("scratch",)
  c.batch_size = 2
  c.eval_batch_size = 2
  c.steps = 3
  c.eval_every = 1
  c.log_every = 1
  c.patience = 2
  c.ablation.draws = 2


def get_config(arg: str | None = None):
  c = finetune.default_config()
  variant = arg or "eegmmidb"
  if variant not in VARIANTS:
    raise config_lib.variant_error("configs/transfer.py", variant, VARIANTS)
  c.name = variant
  # Real data: the user's copy (the project distributes none of these recordings).
  c.data.manual_dir_required = True
  if variant == "eegmmidb":
    c.baselines = ("band_power", "csp_lda")
    # The runs are unfiltered: DC offsets up to 300 uV and drifts put 31% of the samples beyond the
    # +-50 uV clip; 1-40 Hz leaves 11% (docs/transfer.md "EEGMMIDB diagnosis").
    c.data.bandpass_hz = (1.0, 40.0)
    c.class_weighting = "balanced"  # Rest is half of the windows (15 T0 vs 15 T1 + T2 per run).
    c.ablation.enabled = True
    c.ablation.sizes = (1, 2, 4, 8, 16, 32, 48, 64)
  elif variant == "eegmmidb_eyes":
    c.data.builder_config = "eyes"
  elif variant in ("bonn_seizure", "bonn_five"):
    c.data.builder_module = "tfds_builders.bonn_eeg"
    c.data.name = "bonn_eeg"
    c.data.builder_config = "seizure" if variant == "bonn_seizure" else "five_class"
    c.data.sfreq = 173.61  # Hz (Andrzejak et al. 2001); resampled with a ratio approximated to 1e-4.
    c.baselines = ("band_power",)
  elif variant == "mitdb":
    c.data.builder_module = "tfds_builders.mitdb"
    c.data.name = "mitdb"
    # 4 s around the R peak: 4 one-second tokens at 128 Hz (the 0.7-s `beat` window is below one patch).
    c.data.builder_config = "context"
    c.data.modality = "ecg"
    c.data.sfreq = 360.0
    c.baselines = ("ecg_beat",)  # The annotated beat sits at the window centre.
    c.data.max_train_examples = 20000  # Of ~41k training beats; N dominates (90%).
    c.data.max_eval_examples = 20000
    c.class_weighting = "balanced"  # Unweighted, short runs predict N for every beat.
    c.ablation.enabled = True  # 2 leads: k = 1, 2.
  elif variant == "cinc2017":
    c.data.builder_module = "tfds_builders.cinc2017"
    c.data.name = "cinc2017"
    c.data.builder_config = "first_30s"
    c.data.modality = "ecg"
    c.data.sfreq = 300.0
    c.baselines = ("ecg_rhythm",)
    c.class_weighting = "balanced"  # Of the 8528 records: normal 59%, other 29%, AF 9%, noisy 3%.
  elif variant in ("ptbxl", "ptbxl_tiny"):
    # Multilabel: the builder's `labels` (6,) 0/1 vector makes the trainer use a sigmoid head + BCE.
    c.data.builder_module = "tfds_builders.ptbxl"
    c.data.name = "ptbxl"
    c.data.builder_config = "500hz"  # Native records500; resampled to the encoder's 128 Hz.
    c.data.modality = "ecg"
    c.data.sfreq = 500.0
    c.baselines = ("ecg_rhythm",)  # Multilabel: one logistic regression per label.
    # The builder stores no lead positions (NaN): a channel encoding would see zeros only.
    c.channel_encodings = (False,)
    c.ablation.enabled = True  # 12 leads: k = 1..12, evaluate-only.
    c.ablation.channel_encoding = False
    c.ablation.metric = "auroc"  # Macro AUROC: balanced accuracy does not apply to multilabel tasks.
    if variant == "ptbxl_tiny":
      _ci_sized(c, "ptbxl", window_s=10.0)
      c.seeds = (0,)
      c.ablation.sizes = (1, 12)
  elif variant == "tiny":
    # The eegmmidb builder's dummy EDFs: S001 (train), S005 (validation), S006 (test), 2 windows each.
    c.name = "eegmmidb_tiny"
    c.baselines = ("band_power", "csp_lda")
    _ci_sized(c, "eegmmidb", window_s=4.0)
    c.seeds = (0, 1)
    c.channel_encodings = (True,)
    c.ablation.enabled = True
    c.ablation.channel_encoding = True
    c.ablation.sizes = (1, 8, 64)
  return c
