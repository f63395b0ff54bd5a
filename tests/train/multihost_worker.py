"""One process of the 2-process pretraining test (tests/train/test_multihost.py); not a test itself.

  python -m tests.train.multihost_worker PROCESS_ID PORT WORKDIR STEPS OUTDIR

Runs `pretrain.train` on the fake source with 4 local CPU devices after
`jax.distributed.initialize` (JAX's CPU collectives through gloo), records which examples this
process read, and process 0 writes the final parameters.
"""

import json
import os
import pathlib
import sys
import types


class RecordingSource(list):
  """A list of examples that remembers which rows were read, with a TFDS-like stored row index."""

  def __init__(self, examples):
    super().__init__(examples)
    self.split = "train"
    index = {"record_id": [], "subject_id": [], "epoch_index": []}
    for ex in examples:
      if not index["record_id"] or index["record_id"][-1] != ex["record_id"]:
        index["record_id"].append(ex["record_id"])
        index["subject_id"].append(ex["subject_id"])
        index["epoch_index"].append([])
      index["epoch_index"][-1].append(int(ex["epoch_index"]))
    self.dataset_info = types.SimpleNamespace(metadata={"build_report": {"train": {"index": index}}})
    self.read = set()

  def __getitem__(self, i):
    self.read.add(int(i))
    return super().__getitem__(i)


def main(process_id: int, port: int, workdir: str, steps: int, outdir: str) -> None:
  os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=process_id)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from sleepjax.train import pretrain  # pylint: disable=g-import-not-at-top
  from tests.train.conftest import fake_source, tiny_pretrain_config  # pylint: disable=g-import-not-at-top

  source = RecordingSource(fake_source())
  _, state, _ = pretrain.train(tiny_pretrain_config(steps=steps), workdir, train_source=source)
  out = pathlib.Path(outdir)
  (out / f"read_{process_id}_{steps}.json").write_text(json.dumps(sorted(source.read)))
  leaves = [np.asarray(x) for x in jax.tree.leaves(state["params"])]
  if process_id == 0:
    np.savez(out / f"params_{steps}.npz", *leaves)


if __name__ == "__main__":
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5])
