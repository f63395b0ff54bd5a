"""PTB-XL 12-lead ECG (PhysioNet ptb-xl 1.0.3). Importing this package registers the `ptbxl` builder."""

from tfds_builders.ptbxl.ptbxl_dataset_builder import CODE15_LABELS
from tfds_builders.ptbxl.ptbxl_dataset_builder import Ptbxl
from tfds_builders.ptbxl.ptbxl_dataset_builder import SCP_TO_CODE15
from tfds_builders.ptbxl.ptbxl_dataset_builder import code15_targets
