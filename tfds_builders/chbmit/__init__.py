"""CHB-MIT Scalp EEG (PhysioNet chbmit 1.0.0). Importing this package registers the `chbmit` builder."""

from tfds_builders.chbmit.chbmit_dataset_builder import CHANNELS
from tfds_builders.chbmit.chbmit_dataset_builder import Chbmit
from tfds_builders.chbmit.chbmit_dataset_builder import LABELS
from tfds_builders.chbmit.chbmit_dataset_builder import parse_summary
from tfds_builders.chbmit.chbmit_dataset_builder import seizure_overlap_s
from tfds_builders.chbmit.chbmit_dataset_builder import subject_of
