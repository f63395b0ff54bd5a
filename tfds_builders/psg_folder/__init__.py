"""psg_folder: any folder of PSG recordings, read with a JSON dataset spec (README.md)."""

from tfds_builders.psg_folder.psg_folder_dataset_builder import Builder
from tfds_builders.psg_folder.psg_folder_dataset_builder import builder
from tfds_builders.psg_folder.psg_folder_dataset_builder import config_from_spec

__all__ = ["Builder", "builder", "config_from_spec"]
