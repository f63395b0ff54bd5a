"""Executes every notebook in notebooks/ from a working directory outside the repository.

As on Colab after the notebook's own `pip install`: the package is importable (here through
PYTHONPATH, pointing at this checkout), but nothing may depend on the current directory.
"""

import os
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
  nb = nbformat.read(path, as_version=4)
  workdir = tmp_path / "cwd"
  workdir.mkdir()
  assert REPO not in workdir.resolve().parents
  # The kernel inherits this environment: this checkout first on the path, no Agg backend forced
  # (the notebooks show their plots inline), TFDS data in the temporary folder.
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
  monkeypatch.delenv("MPLBACKEND", raising=False)
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  client = NotebookClient(nb, timeout=1200, kernel_name="python3",
                          resources={"metadata": {"path": str(workdir)}})
  client.execute()
  errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if o.get("output_type") == "error"]
  assert not errors, errors
  images = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if "image/png" in o.get("data", {})]
  assert images, f"{path.name} shows no plot inline"
