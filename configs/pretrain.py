r"""SleepFM multimodal contrastive pretraining (leave-one-out), the main job.

  python -m sleepjax.main --config=configs/pretrain.py --workdir=/tmp/sleepjax/pretrain

Variants (`--config=configs/pretrain.py:NAME`):
  (default)  the embedded synthetic PSG dataset (SYNTHETIC signals), a small encoder, 2-min windows,
             AdamW, logit scale starting at CLIP's exp(2.66), 400 steps; under ten minutes on 2 CPU
             cores, dataset build included.
  tiny       seconds on a CPU: tests, CI and notebooks.
  dreams     the REAL DREAMS Spindles excerpt3 PSG (30 min, one subject, 50 Hz), from
             ../shared/data/dreams_spindles or a user's --config.data.manual_dir.
  sleep_edf  REAL Sleep-EDF Expanded sleep-cassette nights (download or manual_dir).
  clinical   SleepFM-Clinical size for accelerators (E=128, 6 layers, 8 heads, 5-s patches at
             128 Hz, 5-min windows, batch 128).
  transfer   the transfer paper's 1-s patches and 60-s windows, CPU-sized (E=64, 2 layers), on the
             synthetic default: the checkpoint for configs/transfer.py (4-s wake EEG/ECG windows).
  transfer_paper  the same at the paper's size (E=128, 3 layers, batch 128) for accelerators.

Any field can be overridden: --config.steps=200 --config.optimizer.name=adamw.
"""

import dataclasses
import os

import ml_collections

from sleepjax.models import encoder as encoder_lib

# Where the real DREAMS archive lives in a checkout of this project (tests and the :dreams
# variant); users point --config.data.manual_dir at their own copy.
_SHARED_DREAMS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "dreams_spindles")


def _encoder(preset: str, **changes) -> ml_collections.ConfigDict:
  """Every field of sleepjax.models.encoder.EncoderConfig, from a preset, as a ConfigDict.

  All fields are spelled out so that any of them can be overridden on the command line
  (--config.model.encoder.num_layers=4).
  """
  fields = dataclasses.asdict(getattr(encoder_lib, preset)().replace(**changes))
  fields.pop("dtype")
  fields.pop("param_dtype")
  return ml_collections.ConfigDict(fields)


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "pretrain"
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  # TFDS dataset: the builder module is imported to register it (sleepjax never imports
  # tfds_builders itself; it reads prepared datasets by name).
  c.data.builder_module = "tfds_builders.synthetic_psg"
  c.data.name = "synthetic_psg"
  c.data.builder_config = "default"
  # placeholder(str): None by default, yet overridable from the command line (a plain None is not).
  c.data.data_dir = ml_collections.config_dict.placeholder(str)  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  c.data.manual_dir = ml_collections.config_dict.placeholder(str)
  c.data.modalities = ("eeg", "eog", "emg", "ecg", "resp")
  # SleepFM-Clinical feeds EEG + EOG as one "BAS" modality; the others stand alone.
  c.data.modality_groups = {"bas": ("eeg", "eog"), "ecg": ("ecg",), "emg": ("emg",), "resp": ("resp",)}
  # Channel caps per encoder modality (static shapes: pad to the cap and mask). SleepFM-Clinical
  # caps are BAS 10, ECG 2, EMG 4, RESP 7; the synthetic montage has 6 EEG + 2 EOG + 1 EMG + 1 ECG
  # + 3 RESP channels.
  # None pads nothing (the dataset's own counts); `clinical` uses the caps of SleepFM-Clinical.
  c.data.channel_caps = None
  c.data.window_epochs = 10  # 5-min windows of ten 30-s epochs (SleepFM-Clinical).
  c.data.train_split = "train"

  c.model = ml_collections.ConfigDict()
  # A CPU-sized set transformer: 5-s patches at 128 Hz as SleepFM-Clinical, narrower tokenizer,
  # E=64 and 2 layers instead of E=128 and 6 (the `clinical` variant has the paper's sizes).
  c.model.encoder = _encoder("tiny", patch_size=640, embed_dim=64, num_layers=2, num_heads=4,
                             ff_dim=128, dropout=0.1, tokenizer_widths=(4, 8, 8, 16, 16, 32),
                             channel_encoding=True, window_s=300.0)
  c.model.dtype = "float32"  # bfloat16 on accelerators.
  c.model.shared_encoder = True  # False: one encoder per modality (SleepFM-ICML style).
  # t of the logit scale s = exp(t): 0 in SleepFM (SPEC 2); the CPU default starts at CLIP's value.
  c.model.log_scale_init = 0.0

  c.loss = "loo"  # loo | pairwise

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"  # SleepFM reference: SGD, momentum 0.9, lr 1e-3, step decay x0.1.
  c.optimizer.learning_rate = 1e-3
  c.optimizer.momentum = 0.9
  c.optimizer.weight_decay = 0.0
  c.optimizer.decay_steps = ()
  c.optimizer.decay_factor = 0.1
  c.optimizer.schedule = "step"  # step (decay_steps x decay_factor) | cosine (warm-up + cosine decay)
  c.optimizer.warmup_steps = 0  # cosine only
  c.optimizer.final_fraction = 0.0  # cosine only: the last rate as a fraction of learning_rate
  c.optimizer.grad_clip_norm = 0.0

  c.batch_size = 32
  c.steps = 1000
  c.log_every = 50
  c.checkpoint_every = 250
  c.keep_checkpoints = 3
  c.num_devices = ml_collections.config_dict.placeholder(int)  # None: every device of every process.
  c.progress_bar = True
  c.summary_only = False  # True: build the dataset, print its summary, stop.

  c.eval = ml_collections.ConfigDict()
  # SleepFM's probe: a logistic regression fitted on the training subjects' frozen embeddings
  # (their labels were never used in pretraining) and tested on held-out subjects.
  c.eval.fit_split = "train"
  c.eval.test_split = "validation+test"
  c.eval.batch_size = 32
  c.eval.max_fit_windows = ml_collections.config_dict.placeholder(int)
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = _base()
  variant = arg or "default"
  if variant == "default":
    # Sized for 2 CPU cores: 2-min windows (4 epochs) instead of SleepFM-Clinical's 5-min ones, and
    # AdamW 1e-3 because the reference SGD (lr 1e-3) barely moves the loss from log(B) in a few
    # hundred steps (measured: 2.773 = log 16 after 50 steps). `clinical` keeps the paper's setup.
    # t starts at CLIP's log(1/0.07) instead of SleepFM's 0: at s = exp(0) = 1 the logits of unit
    # vectors span [-1, 1], the loss sits near log(B) and t grows by ~lr per step, so a few hundred
    # steps learn little (measured on synthetic_psg/default: probe macro-F1 +2.0 points over random
    # init with t0 = 0, +4.5 with t0 = 2.66 at 300 steps on the 10-subject set; README, "Main job").
    c.model.log_scale_init = 2.66
    c.data.window_epochs = 4
    c.batch_size = 16
    c.steps = 400
    c.log_every = 25
    c.checkpoint_every = 100
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
  elif variant in ("transfer", "transfer_paper"):
    # The transfer paper's variant (1-s patches, 60-s windows) for checkpoints that fine-tune on
    # short wake windows (EEGMMIDB and MIT-BIH beats are 4 s: shorter than one 5-s patch).
    # `transfer`: CPU-sized (the default's widths, E=64, 2 layers) on the embedded synthetic data;
    # `transfer_paper`: the paper's E=128, 3 layers, for accelerators.
    c.model.log_scale_init = 2.66
    c.data.window_epochs = 2
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    if variant == "transfer":
      c.model.encoder = _encoder("transfer", embed_dim=64, num_layers=2, num_heads=4, ff_dim=128,
                                 dropout=0.1, tokenizer_widths=(4, 8, 8, 16, 16, 32), channel_encoding=True)
      c.batch_size = 16
      c.steps = 400
      c.log_every = 25
      c.checkpoint_every = 100
    else:
      c.model.encoder = _encoder("transfer", channel_encoding=True)
      c.model.dtype = "bfloat16"
      c.data.builder_config = "large"
      c.batch_size = 128
      c.steps = 20000
      c.log_every = 100
      c.checkpoint_every = 2000
  elif variant == "tiny":
    c.data.builder_config = "tiny"
    c.data.window_epochs = 2
    c.model.encoder = _encoder("tiny", patch_size=640, tokenizer_widths=(4, 8, 8, 8, 8, 8),
                               channel_encoding=True, window_s=60.0)
    c.batch_size = 8
    c.steps = 6
    c.log_every = 2
    c.checkpoint_every = 3
    c.eval.batch_size = 8
    c.progress_bar = False
  elif variant == "dreams":
    # Real PSG: DREAMS excerpt3.edf, 20 channels at 50 Hz resampled by the builder, 30 minutes of
    # one subject (so the probe is within-subject: see the README).
    c.data.builder_module = "tfds_builders.dreams"
    c.data.name = "dreams"
    c.data.builder_config = "excerpt3_psg"
    c.data.manual_dir = _SHARED_DREAMS
    c.data.window_epochs = 2
    c.model.encoder.patch_size = 500  # the builder resamples to 100 Hz: 5-s patches.
    c.model.encoder.sfreq = 100.0
    # One subject: there is no held-out subject, so the probe is fitted on the first half of the
    # night and tested on the second (within-subject; says little, but runs on real input).
    c.eval.fit_split = "train[:50%]"
    c.eval.test_split = "train[50%:]"
    c.optimizer.name = "adamw"  # As the default: SGD at 1e-3 stays at log(B) for hundreds of steps.
    c.batch_size = 8
    c.steps = 200
    c.log_every = 20
    c.checkpoint_every = 100
    c.eval.batch_size = 8
  elif variant == "sleep_edf":
    # Real Sleep-EDF SC: 2 EEG (Fpz-Cz, Pz-Oz), 1 EOG, EMG envelope, oro-nasal resp at 100 Hz.
    c.data.builder_module = "tfds_builders.sleep_edf"
    c.data.name = "sleep_edf"
    c.data.builder_config = "sleep_cassette"
    c.data.modalities = ("eeg", "eog", "emg", "resp")
    c.data.modality_groups = {"bas": ("eeg", "eog"), "emg": ("emg",), "resp": ("resp",)}
    # 100 Hz data: 5-s patches are 500 samples.
    c.model.encoder.patch_size = 500
    c.model.encoder.sfreq = 100.0
    c.steps = 20000
  elif variant == "clinical":
    c.data.builder_config = "large"
    c.data.channel_caps = {"bas": 10, "ecg": 2, "emg": 4, "resp": 7}
    c.model.encoder = _encoder("sleepfm_clinical", channel_encoding=True)
    c.model.dtype = "bfloat16"
    c.batch_size = 128
    c.steps = 50000
    c.optimizer.decay_steps = (30000, 45000)
    c.log_every = 100
    c.checkpoint_every = 2000
  else:
    raise ValueError(f"unknown configs/pretrain.py variant {variant!r}")
  return c
