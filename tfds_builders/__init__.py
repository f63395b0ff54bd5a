"""TFDS dataset builders. Import a sub-package (e.g. `import tfds_builders.sleep_edf`) to register it.

One folder per dataset holds its builder and its facts (montages, stage codes, protocol
constants). Helpers shared by several builders sit beside the folders: `_common` (PSG nights ->
30-s epochs), `_downstream` (downstream features, resampling, folds, files), `_eeg` (windowed
EEG from EDF), `_tuh_eeg` (TUH corpus conventions) and `_report` (the build report).
"""
