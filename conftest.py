"""Shared pytest fixtures.

Eight simulated CPU devices are configured here, before JAX is imported anywhere, so that
sharding tests see a real multi-device mesh (HOUSE_STYLE: tests on CPU with 8 devices).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[0]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """The project's real recordings (../shared/data); skips the test when absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real recordings not found at {SHARED_DATA} (../shared/data is absent on this machine)")
  return SHARED_DATA
