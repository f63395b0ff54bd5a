"""PhysioNet EEG Motor Movement/Imagery (eegmmidb). Importing this package registers `eegmmidb`."""

from tfds_builders.eegmmidb.eegmmidb_dataset_builder import Builder
