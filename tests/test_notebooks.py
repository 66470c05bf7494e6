"""The notebook runs top to bottom against the embedded simulator and store, and draws its figures."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_explore_motion_notebook_executes_and_plots(monkeypatch, tmp_path):
    monkeypatch.delenv("EV_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("EV_SIGNING_KEY_FILE")  # the sandbox signs with a key of its own
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the kernel's temporary files land here
    notebook = nbformat.read(ROOT / "notebooks" / "explore_motion.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 4  # heatmap, timeline, event sheet, comparison
    text = "".join(o.get("text", "") for o in outputs)
    assert "events" in text and "files opened" in text
    # The sandbox's simulator cache, store and key went with it (it used to leave ~2 GB).
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("ev-sandbox-")] == []
