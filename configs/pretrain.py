r"""SleepFM multimodal contrastive pretraining (leave-one-out), the main job.

  python -m sleepjax.main --config=configs/pretrain.py --workdir=/tmp/sleepjax/pretrain

Variants (`--config=configs/pretrain.py:NAME`):
  (default)  the embedded synthetic PSG dataset (SYNTHETIC signals), a small encoder, 2-min windows,
             AdamW, logit scale starting at CLIP's exp(2.66), 400 steps; under ten minutes on 2 CPU
             cores, dataset build included.
  tiny       seconds on a CPU: tests, CI and notebooks.
  dreams     the REAL DREAMS Spindles excerpt3 PSG (30 min, one subject, 50 Hz); needs
             --config.data.manual_dir=DIR, the folder holding the DREAMS archive or its files.
  sleep_edf  REAL Sleep-EDF Expanded sleep-cassette nights (download or manual_dir).
  clinical   SleepFM-Clinical size for accelerators (E=128, 6 layers, 8 heads, 5-s patches at
             128 Hz, 5-min windows, batch 128).
  transfer   the transfer paper's 1-s patches and 60-s windows, CPU-sized (E=64, 2 layers), on the
             synthetic default: the checkpoint for configs/transfer.py (4-s wake EEG/ECG windows).
  transfer_paper  the same at the paper's size (E=128, 3 layers, batch 128) for accelerators.

Every field and its reference value: `sleepjax.train.pretrain.default_config`. Any field can be
overridden: --config.steps=200 --config.optimizer.name=adamw.
"""

from sleepjax.train import config as config_lib
from sleepjax.train import pretrain

VARIANTS = ("default", "tiny", "dreams", "sleep_edf", "clinical", "transfer", "transfer_paper")


def get_config(arg: str | None = None):
  c = pretrain.default_config()
  variant = arg or "default"
  if variant not in VARIANTS:
    raise config_lib.variant_error("configs/pretrain.py", variant, VARIANTS)
  # A CPU-sized set transformer: 5-s patches at 128 Hz as SleepFM-Clinical, narrower tokenizer,
  # E=64 and 2 layers instead of E=128 and 6 (`clinical` has the paper's sizes).
  c.model.encoder = config_lib.encoder("tiny", patch_size=640, embed_dim=64, num_layers=2, num_heads=4,
                                       pooling_heads=4, ff_dim=128, dropout=0.1,
                                       tokenizer_widths=(4, 8, 8, 16, 16, 32), channel_encoding=True, window_s=300.0)
  if variant == "default":
    # Sized for 2 CPU cores: 2-min windows (4 epochs) instead of SleepFM-Clinical's 5-min ones, and
    # AdamW 1e-3 because the reference SGD (lr 1e-3) barely moves the loss from log(B) in a few
    # hundred steps (measured: 2.773 = log 16 after 50 steps). `clinical` keeps the paper's setup.
    # t starts at CLIP's log(1/0.07) instead of SleepFM's 0: at s = exp(0) = 1 the logits of unit
    # vectors span [-1, 1], the loss sits near log(B) and t grows by ~lr per step, so a few hundred
    # steps learn little (README, "Main job").
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
    c.model.log_scale_init = 2.66
    c.data.window_epochs = 2
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 1e-3
    if variant == "transfer":
      c.model.encoder = config_lib.encoder("transfer", embed_dim=64, num_layers=2, num_heads=4, pooling_heads=4,
                                           ff_dim=128, dropout=0.1, tokenizer_widths=(4, 8, 8, 16, 16, 32),
                                           channel_encoding=True)
      c.batch_size = 16
      c.steps = 400
      c.log_every = 25
      c.checkpoint_every = 100
    else:
      c.model.encoder = config_lib.encoder("transfer", channel_encoding=True)
      c.model.dtype = "bfloat16"
      c.data.builder_config = "large"
      c.batch_size = 128
      c.steps = 20000
      c.log_every = 100
      c.checkpoint_every = 2000
  elif variant == "tiny":
    c.data.builder_config = "tiny"
    c.data.window_epochs = 2
    c.model.encoder = config_lib.encoder("tiny", patch_size=640, tokenizer_widths=(4, 8, 8, 8, 8, 8),
                                         channel_encoding=True, window_s=60.0)
    c.batch_size = 8
    c.eval_batch_size = 8
    c.steps = 6
    c.log_every = 2
    c.checkpoint_every = 3
    c.progress_bar = False
  elif variant == "dreams":
    # Real PSG: DREAMS excerpt3.edf, 20 channels at 50 Hz resampled by the builder, 30 minutes of
    # one subject (so the probe is within-subject: see the README).
    c.data.builder_module = "tfds_builders.dreams"
    c.data.name = "dreams"
    c.data.builder_config = "excerpt3_psg"
    c.data.manual_dir_required = True  # The DREAMS licence allows no redistribution: the user's copy.
    c.data.window_epochs = 2
    c.model.encoder.patch_size = 500  # The builder resamples to 100 Hz: 5-s patches.
    c.model.encoder.sfreq = 100.0
    # One subject: there is no held-out subject, so the probe is fitted on the first half of the
    # night and tested on the second (within-subject; says little, but runs on real input).
    c.eval.fit_split = "train[:50%]"
    c.eval.test_split = "train[50%:]"
    c.optimizer.name = "adamw"  # As the default: SGD at 1e-3 stays at log(B) for hundreds of steps.
    c.batch_size = 8
    c.eval_batch_size = 8
    c.steps = 200
    c.log_every = 20
    c.checkpoint_every = 100
  elif variant == "sleep_edf":
    # Real Sleep-EDF SC: 2 EEG (Fpz-Cz, Pz-Oz), 1 EOG, EMG envelope, oro-nasal resp at 100 Hz.
    c.data.builder_module = "tfds_builders.sleep_edf"
    c.data.name = "sleep_edf"
    c.data.builder_config = "sleep_cassette"
    c.data.modalities = ("eeg", "eog", "emg", "resp")
    c.data.modality_groups = {"bas": ("eeg", "eog"), "emg": ("emg",), "resp": ("resp",)}
    c.model.encoder.patch_size = 500  # 100 Hz data: 5-s patches are 500 samples.
    c.model.encoder.sfreq = 100.0
    c.steps = 20000
  elif variant == "clinical":
    c.data.builder_config = "large"
    c.data.channel_caps = {"bas": 10, "ecg": 2, "emg": 4, "resp": 7}
    c.model.encoder = config_lib.encoder("sleepfm_clinical", channel_encoding=True)
    c.model.dtype = "bfloat16"
    c.batch_size = 128
    c.steps = 50000
    c.optimizer.decay_steps = (30000, 45000)
    c.log_every = 100
    c.checkpoint_every = 2000
  return c
