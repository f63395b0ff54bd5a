"""Bonn University EEG (sets Z, O, N, F, S). Importing this package registers `bonn_eeg`."""

from tfds_builders.bonn_eeg.bonn_eeg_dataset_builder import Builder
