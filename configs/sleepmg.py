r"""SleepMG and its baselines: subject-wise cross-validated multimodal sleep staging (docs/specification.md §4).

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

Every field and the paper's value: `sleepjax.train.sleepmg.default_config`. The paper trains with
Adam (lr 1e-3, b1 0.5, b2 0.999), batch 256, 50 epochs (passes over the data), 5-fold subject-wise
CV with 20% of the training data for validation; gradient reversal ratio 0.1 on ISRUC-S3, 1.0 on
MASS-SS3.
"""

from sleepjax.train import config as config_lib
from sleepjax.train import sleepmg

METHODS = sleepmg.METHODS
VARIANTS = ("tiny", "toy", "full", "large", *METHODS)


def get_config(arg: str | None = None):
  """SleepMG config; `arg` is a comma-separated list of variants (module docstring)."""
  c = sleepmg.default_config()
  variants = [v.strip() for v in arg.split(",")] if arg else []
  # Method names select methods whatever their position (`sleepmg,tiny` == `tiny,sleepmg`).
  methods = tuple(v for v in variants if v in METHODS)
  for variant in variants:
    if variant in METHODS:
      continue
    if variant == "tiny":
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
      c.progress_bar = False
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
      raise config_lib.variant_error("configs/sleepmg.py", variant, VARIANTS)
  if methods:
    c.methods = methods
  return c
