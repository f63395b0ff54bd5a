"""Reading and validating PSG recordings: EDF/EDF+, hypnograms, montages, 30-s epochs.

NumPy/MNE only (no JAX). See docs/architecture.md §2 for the contract.
"""

from sleepjax.data import stages
from sleepjax.data.channels import MODALITIES
from sleepjax.data.channels import ChannelSpec
from sleepjax.data.channels import Montage
from sleepjax.data.channels import canonical_electrode
from sleepjax.data.channels import channel_modality
from sleepjax.data.channels import electrode_position
from sleepjax.data.edf import EDFHeader
from sleepjax.data.edf import channel_to_microvolts
from sleepjax.data.edf import read_raw
from sleepjax.data.edf import read_raw_edf
from sleepjax.data.edf import to_microvolts_factor
from sleepjax.data.edf import validate_edf
from sleepjax.data.errors import AnnotationError
from sleepjax.data.errors import BadSignalError
from sleepjax.data.errors import EDFHeaderError
from sleepjax.data.errors import EDFTruncatedError
from sleepjax.data.errors import HypnogramMismatchError
from sleepjax.data.errors import MissingChannelError
from sleepjax.data.errors import RecordingError
from sleepjax.data.errors import SamplingRateError
from sleepjax.data.errors import UnitError
from sleepjax.data.hypnogram import Hypnogram
from sleepjax.data.hypnogram import read_edf_hypnogram
from sleepjax.data.hypnogram import read_hypnogram
from sleepjax.data.hypnogram import read_text_hypnogram
from sleepjax.data.hypnogram import to_30s
from sleepjax.data.recording import Recording
from sleepjax.data.recording import epoch_recording
from sleepjax.data.recording import load_recording
from sleepjax.data.report import DROP_REASONS
from sleepjax.data.report import EpochReport
from sleepjax.data.report import merge_reports
