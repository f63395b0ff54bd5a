"""The prepared GPU check runs in its --smoke mode; the PyTorch baseline matches the JAX model's size."""

import json
import os
import pathlib
import subprocess
import sys

import jax
from flax import nnx
import pytest

from sleepjax.models import encoder as encoder_lib
from sleepjax.models import multimodal

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402  pylint: disable=g-import-not-at-top


@pytest.mark.slow
def test_gpu_check_smoke_runs_every_dtype_and_writes_json(tmp_path):
  out = tmp_path / "gpu_check.json"
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"),
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "").replace("device_count=8", "device_count=1"))
  proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke", "--no_torch",
                         f"--output={out}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  result = json.loads(out.read_text())
  assert result["smoke"] and {r["dtype"] for r in result["rows"]} == {"float32", "bfloat16"}
  for row in result["rows"]:
    assert row["windows_per_s"] > 0 and row["compile_s"] > 0 and row["peak_mem_MiB"] > 0
  assert result["pipeline"]["windows_per_s"] > 0
  assert "| float32 | 2 |" in proc.stdout and "PyTorch baseline: --no_torch" in proc.stdout


def test_analytic_flops_of_the_sleepfm_clinical_step():
  # 71.04 GFLOP at batch 4 (XLA's own cost analysis of the compiled CPU step: 75.1, the
  # difference being normalisations, activations and the optimizer; benchmarks/README.md).
  assert gpu_check.step_flops(gpu_check._sizes(False), 4) == pytest.approx(71.036928e9, rel=1e-9)
  assert gpu_check.step_flops(gpu_check._sizes(False), 8) == pytest.approx(2 * 71.036928e9, rel=1e-9)


def test_torch_baseline_has_the_jax_encoders_parameter_count():
  torch_baseline = pytest.importorskip("torch_baseline", reason="torch is not installed (optional benchmark extra)")
  jax_model = multimodal.MultiModalEncoder(("bas", "ecg"), encoder_lib.sleepfm_clinical(), rngs=nnx.Rngs(0))
  n_jax = sum(x.size for x in jax.tree.leaves(nnx.state(jax_model, nnx.Param)))
  assert torch_baseline.parameter_count(torch_baseline.LOOModel()) == n_jax == 4_831_657


@pytest.mark.slow
def test_input_benchmarks_run_on_the_tiny_dataset(tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"),
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "").replace("device_count=8", "device_count=1"))
  runs = {
      "input_pipeline.py": ["--config=tiny", "--window_epochs=1", "--batch_size=2", "--batches=2", "--threads=1"],
      "train_input.py": ["--variant=tiny", "--steps=2", "--warmup=1", "--threads=1"],
  }
  for script, args in runs.items():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, script + proc.stdout[-3000:] + proc.stderr[-3000:]
  rows = [line for line in proc.stdout.splitlines() if line.startswith("| real") or line.startswith("| synthetic")]
  assert len(rows) == 3 and all(float(r.split("|")[3]) > 0 for r in rows)
