"""Synthetic PSG TFDS builder (the embedded default dataset); importing registers `synthetic_psg`."""

from tfds_builders.synthetic_psg.synthetic_psg_dataset_builder import Builder
