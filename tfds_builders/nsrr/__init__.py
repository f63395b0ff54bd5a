"""NSRR cohorts (SHHS, MESA, MrOS, CFS); importing this package registers `nsrr`."""

from tfds_builders.nsrr.nsrr_dataset_builder import Builder

__all__ = ["Builder"]
