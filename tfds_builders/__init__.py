"""TFDS dataset builders. Import a sub-package (e.g. `import tfds_builders.sleep_edf`) to register it."""
