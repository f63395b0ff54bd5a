"""TUH EEG Abnormal Corpus (TUAB). Importing this package registers the `tuab` builder."""

from tfds_builders.tuab.tuab_dataset_builder import LABELS
from tfds_builders.tuab.tuab_dataset_builder import Tuab
from tfds_builders.tuab.tuab_dataset_builder import parse_tuab_path
