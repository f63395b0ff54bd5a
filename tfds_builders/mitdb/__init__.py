"""MIT-BIH Arrhythmia Database (AAMI beat classes). Importing this package registers `mitdb`."""

from tfds_builders.mitdb.mitdb_dataset_builder import Builder
