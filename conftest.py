"""Shared pytest fixtures.

Eight simulated CPU devices are configured here, before JAX is imported anywhere, so that
sharding tests see a real multi-device mesh (tests run on CPU with 8 simulated devices).
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
# The folder of real recordings the real-bytes tests read (licences in each subfolder's README):
# $SLEEPJAX_TEST_DATA, by default `shared/data` beside the checkout, where this project's CI keeps it.
SHARED_DATA = pathlib.Path(os.environ.get("SLEEPJAX_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """The real recordings ($SLEEPJAX_TEST_DATA); skips the test when absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real recordings not found at {SHARED_DATA} (set SLEEPJAX_TEST_DATA to their folder)")
  return SHARED_DATA
