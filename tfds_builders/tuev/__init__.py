"""TUH EEG Events Corpus (TUEV). Importing this package registers the `tuev` builder."""

from tfds_builders.tuev.tuev_dataset_builder import LABELS
from tfds_builders.tuev.tuev_dataset_builder import TCP_MONTAGE
from tfds_builders.tuev.tuev_dataset_builder import Tuev
from tfds_builders.tuev.tuev_dataset_builder import merge_events
from tfds_builders.tuev.tuev_dataset_builder import parse_tuev_path
from tfds_builders.tuev.tuev_dataset_builder import read_rec
