r"""Transfer of the sleep-pretrained encoder to wake EEG and ECG tasks (SPEC section 2, "Downstream transfer").

  python -m sleepjax.main --config=configs/transfer.py:eegmmidb --workdir=/tmp/sleepjax/transfer_mi \
      --config.pretrained_workdir=/tmp/sleepjax/pretrain --config.pretrained_config=configs/pretrain.py

Variants (`--config=configs/transfer.py:NAME`), all on REAL data from ../shared/data/<name> (or a
user's --config.data.manual_dir), except `ptbxl` (the user's download) and the `*tiny` ones:
  eegmmidb        motor imagery rest / left fist / right fist, 64 EEG channels, 4-s windows at 160 Hz;
                  subject-wise splits of the builder (n % 6: test 0, validation 5).
  eegmmidb_eyes   eyes open vs closed (baseline runs R01/R02). The project's copy holds S001 only,
                  which gives no test subjects: needs more subjects in manual_dir or a download.
  bonn_seizure    Bonn ictal (set S) vs the rest, 1 channel, 23.6 s at 173.61 Hz (segment-level
                  splits: Bonn publishes no subject ids; see its README).
  bonn_five       Bonn sets Z, O, N, F, S as five classes.
  mitdb           MIT-BIH AAMI beat classes N/S/V/F/Q, 2 leads, the builder's `context` windows
                  (4 s around the R peak), inter-patient DS1/DS2 split; training subset of 20000 beats.
  cinc2017        PhysioNet/CinC 2017 AF classification (normal, AF, other, noisy), 1 lead, 30 s at
                  300 Hz (record-level splits: no patient ids).
  ptbxl           PTB-XL multilabel ECG: the six CODE-15 labels (1dAVb, RBBB, LBBB, SB, AF, ST) of the
                  transfer paper's ECG head, sigmoid BCE; 12 leads, 10 s at 500 Hz (`500hz` config),
                  strat_fold splits 1-8 / 9 / 10. The project has no copy: pass
                  --config.data.manual_dir=/path/to/ptb-xl (the folder with ptbxl_database.csv);
                  unset, it fails with that message unless the dataset is already built in data_dir
                  (or --config.data.manual_dir_required=False lets the builder download the zip).
                  Channel ablation over 1..12 leads on macro AUROC.
  tiny            seconds on a CPU (tests, CI): the eegmmidb builder's dummy data (2 windows per
                  split), a tiny encoder, 3 steps, scratch strategy only.
  ptbxl_tiny      seconds on a CPU: the ptbxl builder's native-format dummy data (6 synthetic
                  records: train 3 / validation 1 / test 2), tiny encoder, 3 steps, multilabel head.

Strategies (`config.strategies`): scratch, pretrained, frozen. The pretrained ones need
`config.pretrained_workdir` (a pretraining workdir with checkpoints) and, unless that workdir holds
a config.json, `config.pretrained_config` (the configs/pretrain.py variant it was trained with);
with pretrained_workdir None they are skipped with a message.

A pretrained encoder brings its own encoder config (patch size, rate, width). The scratch strategy
uses the same architecture at random init when a pretrained_workdir is given
(`config.model.scratch_matches_pretrained`, default True), else `config.model.encoder` (the transfer
paper's: 1-s patches at 128 Hz, 3 layers).
"""

import dataclasses
import os

import ml_collections

from sleepjax.models import encoder as encoder_lib

_SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
_REPO = os.path.join(os.path.dirname(__file__), "..")
_PRETRAIN_CONFIG = os.path.join(os.path.dirname(__file__), "pretrain.py")


def _encoder(preset: str, **changes) -> ml_collections.ConfigDict:
  """Every field of sleepjax.models.encoder.EncoderConfig, from a preset, as a ConfigDict."""
  fields = dataclasses.asdict(getattr(encoder_lib, preset)().replace(**changes))
  fields.pop("dtype")
  fields.pop("param_dtype")
  return ml_collections.ConfigDict(fields)


def _none(field_type):
  """None that can still be set from the command line (--config.pretrained_workdir=/path)."""
  return ml_collections.config_dict.placeholder(field_type)


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "finetune"
  c.name = "eegmmidb"  # Task name in the results table.
  c.seeds = (0, 1, 2)
  c.strategies = ("scratch", "pretrained", "frozen")
  c.channel_encodings = (False, True)

  c.pretrained_workdir = _none(str)  # A pretraining workdir (checkpoints/<step>/); None skips pretrained strategies.
  c.pretrained_config = _PRETRAIN_CONFIG  # "path/pretrain.py:VARIANT" the workdir was trained with.
  c.pretrained_step = _none(int)  # None: the latest checkpoint.
  c.pretrained_group = _none(str)  # None: eeg -> "bas", ecg -> "ecg".

  c.data = ml_collections.ConfigDict()
  c.data.builder_module = "tfds_builders.eegmmidb"
  c.data.name = "eegmmidb"
  c.data.builder_config = "motor_imagery"
  c.data.data_dir = _none(str)  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  c.data.manual_dir = os.path.join(_SHARED, "eegmmidb")
  # True: fail with a clear message when manual_dir is unset and the dataset is not built yet
  # (datasets the project has no copy of, whose builder would otherwise try to download).
  c.data.manual_dir_required = False
  c.data.modality = "eeg"
  c.data.sfreq = 160.0  # Hz of the stored windows (eegmmidb 160).
  c.data.train_split = "train"
  c.data.validation_split = "validation"  # "" or missing: 10% of the training subjects.
  c.data.test_split = "test"
  c.data.max_train_examples = _none(int)
  c.data.max_eval_examples = _none(int)
  c.data.class_names = ()  # Only for in-memory sources (tests); builders name their classes.
  c.data_seed = 0

  c.model = ml_collections.ConfigDict()
  c.model.encoder = _encoder("transfer")  # 1-s patches of 128 samples at 128 Hz, 3 layers, E=128.
  c.model.dtype = "float32"
  # True: the scratch strategy uses the pretrained checkpoint's encoder architecture (random init),
  # so scratch and pretrained compare at equal size; False: `model.encoder` below.
  c.model.scratch_matches_pretrained = True
  c.model.head_hidden_dim = 128
  c.model.head_dropout = 0.1
  c.model.mask_rate = 0.2  # Masked-time augmentation: fraction of tokens dropped in training.

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 1e-4  # AdamW 1e-4 (the transfer paper).
  c.optimizer.weight_decay = 1e-4
  c.optimizer.grad_clip_norm = 1.0
  c.label_smoothing = 0.1
  # "balanced": cross-entropy weighted by n / (K n_c) from the training labels (sklearn "balanced") (training loss and
  # the validation loss of early stopping); for skewed single-label tasks (MIT-BIH: 90% N beats).
  c.class_weighting = "none"

  c.batch_size = 16
  c.eval_batch_size = 64
  c.max_steps = 2000
  c.eval_every = 50
  c.patience = 5  # Evaluations without a lower validation loss before stopping.

  c.ablation = ml_collections.ConfigDict()
  c.ablation.enabled = False
  c.ablation.strategy = "scratch"  # Which trained model the subsets are evaluated with.
  c.ablation.channel_encoding = False
  c.ablation.sizes = ()  # (): every k when C <= 20, else 1, 2, 4, ..., C.
  c.ablation.draws = 5  # Random subsets per size (the paper).
  c.ablation.retrain = False  # True: re-train per subset as the paper (accelerator only).
  c.ablation.metric = "balanced_accuracy"
  c.ablation.fraction = 0.95
  c.ablation.seed = 0
  return c


def _ci_sized(c: ml_collections.ConfigDict, builder: str, *, window_s: float) -> None:
  """Seconds on a CPU (the `*_tiny` variants): `builder`'s dummy data, a tiny encoder, 3 steps.

  A separate data_dir keeps the dummy build away from a real build of the same dataset.
  """
  c.data.manual_dir = os.path.join(_REPO, "tfds_builders", builder, "dummy_data")
  c.data.data_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sleepjax_tfds_dummy")
  c.model.encoder = _encoder("tiny", patch_size=128, embed_dim=16, num_heads=2, ff_dim=32,
                             tokenizer_widths=(4, 8, 8, 8, 8, 8), window_s=window_s)
  c.model.head_hidden_dim = 16
  c.strategies = ("scratch",)
  c.batch_size = 2
  c.eval_batch_size = 2
  c.max_steps = 3
  c.eval_every = 1
  c.patience = 2
  c.ablation.draws = 2


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = _base()
  variant = arg or "eegmmidb"
  c.name = variant
  if variant == "eegmmidb":
    c.ablation.enabled = True
    c.ablation.sizes = (1, 2, 4, 8, 16, 32, 48, 64)
  elif variant == "eegmmidb_eyes":
    c.data.builder_config = "eyes"
  elif variant in ("bonn_seizure", "bonn_five"):
    c.data.builder_module = "tfds_builders.bonn_eeg"
    c.data.name = "bonn_eeg"
    c.data.builder_config = "seizure" if variant == "bonn_seizure" else "five_class"
    c.data.manual_dir = os.path.join(_SHARED, "bonn_eeg")
    c.data.sfreq = 173.61  # Hz (Andrzejak et al. 2001); resampled with a ratio approximated to 1e-4.
  elif variant == "mitdb":
    c.data.builder_module = "tfds_builders.mitdb"
    c.data.name = "mitdb"
    # 4 s around the R peak: 4 one-second tokens at 128 Hz (the 0.7-s `beat` window is below one patch).
    c.data.builder_config = "context"
    c.data.manual_dir = os.path.join(_SHARED, "mitdb")
    c.data.modality = "ecg"
    c.data.sfreq = 360.0
    c.data.max_train_examples = 20000  # Of ~41k training beats; N dominates (90%).
    c.data.max_eval_examples = 20000
    c.class_weighting = "balanced"  # Unweighted, short runs predict N for every beat.
    c.ablation.enabled = True  # 2 leads: k = 1, 2.
  elif variant == "cinc2017":
    c.data.builder_module = "tfds_builders.cinc2017"
    c.data.name = "cinc2017"
    c.data.builder_config = "first_30s"
    c.data.manual_dir = os.path.join(_SHARED, "cinc2017")
    c.data.modality = "ecg"
    c.data.sfreq = 300.0
    c.class_weighting = "balanced"  # Of the 8528 records: normal 59%, other 29%, AF 9%, noisy 3%.
  elif variant in ("ptbxl", "ptbxl_tiny"):
    # Multilabel: the builder's `labels` (6,) 0/1 vector makes the trainer use a sigmoid head + BCE.
    c.data.builder_module = "tfds_builders.ptbxl"
    c.data.name = "ptbxl"
    c.data.builder_config = "500hz"  # Native records500; resampled to the encoder's 128 Hz.
    c.data.manual_dir = _none(str)  # The user's PTB-XL 1.0.3 download (not in ../shared/data).
    c.data.manual_dir_required = True
    c.data.modality = "ecg"
    c.data.sfreq = 500.0
    # The builder stores no lead positions (NaN): a channel encoding would see zeros only.
    c.channel_encodings = (False,)
    c.ablation.enabled = True  # 12 leads: k = 1..12, evaluate-only.
    c.ablation.channel_encoding = False
    c.ablation.metric = "auroc"  # Macro AUROC: balanced accuracy does not apply to multilabel tasks.
    if variant == "ptbxl_tiny":
      c.name = "ptbxl_tiny"
      _ci_sized(c, "ptbxl", window_s=10.0)
      c.data.manual_dir_required = False
      c.seeds = (0,)
      c.ablation.sizes = (1, 12)
  elif variant == "tiny":
    # The eegmmidb builder's dummy EDFs: S001 (train), S005 (validation), S006 (test), 2 windows each.
    c.name = "eegmmidb_tiny"
    _ci_sized(c, "eegmmidb", window_s=4.0)
    c.seeds = (0, 1)
    c.channel_encodings = (True,)
    c.ablation.enabled = True
    c.ablation.channel_encoding = True
    c.ablation.sizes = (1, 8, 64)
  else:
    raise ValueError(f"unknown configs/transfer.py variant {variant!r}")
  return c
