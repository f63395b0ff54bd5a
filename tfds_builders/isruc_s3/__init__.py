"""ISRUC-Sleep subgroup III. Importing this package registers the `isruc_s3` builder."""

from tfds_builders.isruc_s3.isruc_s3_dataset_builder import IsrucConfig
from tfds_builders.isruc_s3.isruc_s3_dataset_builder import IsrucS3
from tfds_builders.isruc_s3.isruc_s3_dataset_builder import MONTAGE
from tfds_builders.isruc_s3.isruc_s3_dataset_builder import find_records
from tfds_builders.isruc_s3.isruc_s3_dataset_builder import load_night
from tfds_builders.isruc_s3.isruc_s3_dataset_builder import read_isruc_hypnogram
