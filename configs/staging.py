r"""Sleep staging: a sequence stager on set-transformer tokens (SleepFM-Clinical's recipe).

  python -m sleepjax.main --config=configs/staging.py --workdir=/tmp/staging
  python -m sleepjax.main --config=configs/staging.py:tiny --workdir=/tmp/staging_tiny
  python -m sleepjax.staging_cli night.edf --model /tmp/staging_tiny --out /tmp/hypnograms

Variants (`--config=configs/staging.py:NAME`, combined with commas):
  (default)  the embedded synthetic dataset `synthetic_psg/sleepmg` (SYNTHETIC signals: 12
             subjects x 2 h, 100 Hz, EEG 6 / EOG 2 / EMG 1 / ECG 1), a 1-layer E=32 encoder
             from scratch, a 1-layer transformer (D=64) and a BiLSTM (32 per direction) over
             10-min windows, 300 steps of 8 windows; minutes on 2 CPU cores.
  tiny       seconds on 2 CPU cores (CI, notebooks): `synthetic_psg/sleepmg_tiny` (3 subjects x
             15 min, one per split), 5-min windows, no LSTM, 12 steps.
  clinical   SleepFM-Clinical's sizes for accelerators: 128 Hz five-modality `synthetic_psg/large`
             (100 subjects x 7.5 h), the E=128 6-layer encoder, 2 transformer layers (D=128) and a
             BiLSTM (128 per direction) over 1-h windows, bfloat16, 20k steps.
  frozen     the encoder frozen (with `--config.model.pretrained=WORKDIR`: a linear-probe-like
             stager on pretrained tokens).

Every field: `sleepjax.train.staging.default_config`. Start from a pretrained encoder with
`--config.model.pretrained=/tmp/sleepjax/pretrain` (its rate must be the dataset's).
"""

from sleepjax.train import config as config_lib
from sleepjax.train import staging

VARIANTS = ("default", "tiny", "clinical", "frozen")


def get_config(arg: str | None = None):
  """Staging config; `arg` is a comma-separated list of variants (module docstring)."""
  c = staging.default_config()
  for variant in [v.strip() for v in arg.split(",")] if arg else []:
    if variant == "default":
      continue
    if variant == "tiny":
      c.data.builder_config = "sleepmg_tiny"
      c.window_epochs = 10
      c.train_stride_epochs = 2
      c.model.encoder = config_lib.encoder("tiny", patch_size=500, sfreq=100.0, embed_dim=16, num_layers=1,
                                           num_heads=2, pooling_heads=2, ff_dim=32, dropout=0.1,
                                           tokenizer_widths=(4, 8, 8, 8, 8, 16), window_s=30.0)
      c.model.model_dim = 32
      c.model.num_heads = 2
      c.model.ff_dim = 64
      c.model.lstm_hidden = 0
      c.batch_size = 4
      c.eval_batch_size = 4
      c.steps = 12
      c.eval_every = 6
      c.log_every = 6
      c.progress_bar = False
    elif variant == "clinical":
      c.data.builder_config = "large"
      c.data.modalities = ("eeg", "eog", "emg", "ecg", "resp")
      c.model.encoder = config_lib.encoder("sleepfm_clinical", window_s=30.0)
      c.model.dtype = "bfloat16"
      c.window_epochs = 120
      c.train_stride_epochs = 30
      c.model.model_dim = 128
      c.model.num_layers = 2
      c.model.num_heads = 8
      c.model.ff_dim = 512
      c.model.lstm_hidden = 128
      c.model.dropout = 0.3
      c.batch_size = 32
      c.eval_batch_size = 32
      c.steps = 20000
      c.eval_every = 1000
      c.log_every = 100
    elif variant == "frozen":
      c.model.freeze_encoder = True
    else:
      raise config_lib.variant_error("configs/staging.py", variant, VARIANTS)
  return c
