"""PhysioNet/CinC Challenge 2017 AF classification. Importing this package registers `cinc2017`."""

from tfds_builders.cinc2017.cinc2017_dataset_builder import Builder
