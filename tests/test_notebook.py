"""notebooks/results.ipynb runs top to bottom on the committed results and draws its figures."""

from __future__ import annotations

import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOK = REPO / "notebooks" / "results.ipynb"


def test_results_notebook_runs_on_the_committed_results():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "report tables under multirun" in text
    for report in ("cherry", "classifier-sweep", "sardet", "promptsg"):
        assert report in text, f"the summary has no {report} row"
    pictures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pictures) >= 4, "a reproduced-vs-reported figure per report and the training curves"
