"""The example notebook runs, offline, as a user would run it: the docs cannot rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "examples" / "quickstart.ipynb"


def test_the_quickstart_notebook_executes(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the kernel inherits the test's environment
    client = nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))
               for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "Results(" in text and "robustness" in text
    assert "mine" in text and "saliency" in text
    assert "index.html" in text and "'robustness'" in text
    assert not any(o.get("output_type") == "error" for c in notebook.cells for o in c.get("outputs", []))
