"""DREAMS Spindles TFDS builder; importing this package registers `dreams`."""

from tfds_builders.dreams.dreams_dataset_builder import Builder
