r"""SleepMG and its baselines: subject-wise cross-validated multimodal sleep staging (SPEC section 3).

  python -m sleepjax.main --config=configs/sleepmg.py --workdir=/tmp/sleepmg
  python -m sleepjax.main --config=configs/sleepmg.py:tiny --workdir=/tmp/sleepmg_tiny

Variants (`--config=configs/sleepmg.py:NAME`):
  (default)  every method on the embedded synthetic dataset `synthetic_psg/sleepmg` (SYNTHETIC
             signals in SleepMG's layout), 5-fold subject-wise CV, one seed; shortened training
             (see `steps`) so that it fits a CPU.
  full       the measurement run: every method, 5 folds, 3 seeds (mean +- std). Hours on a CPU.
  tiny       the whole CV in a couple of minutes on 2 CPU cores (CI, notebooks): the
             `synthetic_psg/sleepmg_tiny` dataset (3 subjects x 15 min, built in seconds), 3 folds,
             4 steps per fold, batch 8; FeatureNet, NaiveMG and SleepMG (jit compilation dominates).
  toy        in-memory toy data instead of a TFDS dataset (`make_toy_data`; tests: `tiny,toy`).
  large      the paper's protocol for accelerators: batch 256, 50 passes over the training data.
  featurenet | naivemg | ogmge | sleepmg | sleepmg_y_only | sleepmg_d_only | sleepmg_sgd
             the default with a single method (e.g. `configs/sleepmg.py:naivemg`).
  Variants combine with commas: `configs/sleepmg.py:tiny,sleepmg`.

Data facts (SleepMG section 5.1): ISRUC-S3 (10 subjects, 8589 epochs) and MASS-SS3 (62 subjects,
59304 epochs) both as EEG 6 (C3, C4, F3, F4, O1, O2 to the contralateral mastoid) / EOG 2 (LOC, ROC)
/ EMG 1 (chin) / ECG 1, resampled to 100 Hz and cut into 30-s epochs of 3000 samples, which
FeatureNet requires. Gradient reversal ratio lambda: 0.1 on ISRUC-S3, 1.0 on MASS-SS3. The paper
trains with Adam (lr 1e-3, b1 0.5, b2 0.999), batch 256, 50 epochs (passes over the data), 5-fold
subject-wise CV with 20% of the training data for validation.
"""

import ml_collections

METHODS = ("featurenet", "naivemg", "ogmge", "sleepmg", "sleepmg_y_only", "sleepmg_d_only",
           "sleepmg_sgd")


def _base() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = "sleepmg"
  c.methods = METHODS
  c.seeds = (0,)
  c.dataset_label = "synthetic_psg/sleepmg"

  c.data = ml_collections.ConfigDict()
  c.data.source = "tfds"  # "tfds" | "toy" (in-memory, sleepjax.train.sleepmg.make_toy_data)
  # The builder module is imported to register it; sleepjax never imports tfds_builders itself.
  c.data.builder_module = "tfds_builders.synthetic_psg"
  c.data.name = "synthetic_psg"
  # 100 Hz, EEG 6 / EOG 2 / EMG 1 / ECG 1 per 30-s epoch: SleepMG's layout (resp is not used).
  c.data.builder_config = "sleepmg"
  c.data.data_dir = ml_collections.config_dict.placeholder(str)  # None: $TFDS_DATA_DIR or ~/tensorflow_datasets.
  c.data.manual_dir = ml_collections.config_dict.placeholder(str)
  # Every split is read and re-split by subject for cross-validation.
  c.data.splits = ("train", "validation", "test")
  # Order fixes the column blocks of G_y / G_d (the paper's u in {e, o, m, c}).
  c.data.modalities = ("eeg", "eog", "emg", "ecg")
  c.data.toy = ml_collections.ConfigDict()
  c.data.toy.num_subjects = 4
  c.data.toy.epochs_per_subject = 40
  c.data.toy.channels = ml_collections.ConfigDict({"eeg": 6, "eog": 2, "emg": 1, "ecg": 1})
  c.data.toy.seed = 0

  c.model = ml_collections.ConfigDict()
  # MSTGCN's FeatureNet is one per-channel extractor shared by the channels of a modality.
  c.model.share_channel_weights = True
  c.model.dropout_rate = 0.5
  c.model.bn_momentum = 0.9  # Running-average decay (PyTorch momentum 0.1).

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.learning_rate = 1e-3  # SleepMG: Adam lr 1e-3, b1 0.5, b2 0.999.
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.999
  c.optimizer.momentum = 0.9  # sleepmg_sgd only.
  c.optimizer.sgd_learning_rate = 1e-2  # sleepmg_sgd only.

  c.grl_ratio = 0.1  # lambda: 0.1 on ISRUC-S3, 1.0 on MASS-SS3 (SleepMG section 5.2).
  c.ogm_alpha = 0.1  # OGM-GE modulation strength (Peng et al. 2022).
  c.ogmge_domain_head = False  # OGM-GE as published has no domain discriminator.

  c.num_folds = 5
  c.val_fraction = 0.2
  c.val_by_subject = False  # False: 20% of the training subjects' epochs (the paper).
  c.batch_size = 64  # The paper: 256 (see `large`).
  c.eval_batch_size = 256
  # Training length in steps. 50 passes over ~7k training epochs at batch 256 is ~1.4k steps
  # per fold (`large`); the default is shortened for CPUs.
  c.steps = 300
  c.eval_every = 50
  c.log_every = 25
  c.plot_smoothing = 5
  c.tensorboard = False
  return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """SleepMG config; `arg` is a comma-separated list of variants (module docstring)."""
  c = _base()
  variants = [v.strip() for v in arg.split(",")] if arg else []
  # Method names select methods whatever their position (`sleepmg,tiny` == `tiny,sleepmg`).
  methods = tuple(v for v in variants if v in METHODS)
  for variant in variants:
    if variant in METHODS:
      continue
    elif variant == "tiny":
      c.methods = ("featurenet", "naivemg", "sleepmg")
      c.data.builder_config = "sleepmg_tiny"
      c.dataset_label = "synthetic_psg/sleepmg_tiny"
      c.data.toy.num_subjects = 3
      c.data.toy.epochs_per_subject = 20
      c.num_folds = 3
      c.batch_size = 8
      c.eval_batch_size = 32
      c.steps = 4
      c.eval_every = 2
      c.log_every = 2
      c.plot_smoothing = 1
    elif variant == "toy":
      c.data.source = "toy"
      c.dataset_label = "toy"
    elif variant == "full":
      c.seeds = (0, 1, 2)
    elif variant == "large":
      c.batch_size = 256
      c.eval_batch_size = 512
      c.steps = 1400  # ~50 passes over ~7k training epochs (ISRUC-S3-sized folds).
      c.eval_every = 100
      c.log_every = 20
      c.seeds = (0, 1, 2)
    else:
      raise ValueError(f"unknown configs/sleepmg.py variant {variant!r}")
  if methods:
    c.methods = methods
  return c
