"""Sleep-EDF Expanded TFDS builder; importing this package registers `sleep_edf`."""

from tfds_builders.sleep_edf.sleep_edf_dataset_builder import Builder
