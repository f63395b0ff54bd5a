"""Shared pytest fixtures.

Eight simulated CPU devices are configured here, before JAX is imported anywhere, so that
sharding tests see a real multi-device mesh (HOUSE_STYLE: tests on CPU with 8 devices).
"""

import os

# Skipping LLVM's expensive passes cuts XLA's CPU compile time (most of the suite's run time);
# tests check numbers, not speed. Benchmarks never set it. Not --xla_backend_optimization_level=0:
# with it, XLA 0.10's CPU backend computes NaN gradients for FeatureNet (SleepMG's backbone) that
# the default level computes finite (tests/models/test_featurenet.py checks them).
_TEST_XLA_FLAGS = "--xla_force_host_platform_device_count=8 --xla_llvm_disable_expensive_passes=true"
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _TEST_XLA_FLAGS).strip()
elif "xla_llvm_disable_expensive_passes" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_llvm_disable_expensive_passes=true"
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
