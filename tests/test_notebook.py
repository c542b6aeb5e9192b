"""notebooks/quickstart.ipynb executes top to bottom without an error (issue 21).

Runs the notebook with nbclient in a fresh kernel of *this* interpreter (a
kernelspec written to a temporary JUPYTER_PATH, so a user's own ``python3``
kernel pointing elsewhere cannot be picked up), in a temporary working
directory, with ``FOOLJAX_NOTEBOOK_SMALL=1`` (tiny budgets). The one-pixel
cell needs ``$FOOLJAX_DATA`` and says SKIPPED without it; both paths are
checked through the cell outputs. Skipped where nbclient/nbformat/ipykernel
are not installed (the ``test`` extra installs them).
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

NOTEBOOK = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "notebooks",
    "quickstart.ipynb",
)


def _require(name: str):
    try:
        return __import__(name)
    except ImportError:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")


def _text_outputs(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                out.append(o.get("text", ""))
            elif "data" in o and "text/plain" in o["data"]:
                out.append(o["data"]["text/plain"])
    return "\n".join(out)


def test_committed_notebook_has_no_outputs():
    nbformat = _require("nbformat")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    stored = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count)
    ]
    assert not stored, f"clear the outputs of cells {stored} before committing"
    assert 'REPO_URL = "' in nb.cells[1].source


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    nbformat = _require("nbformat")
    nbclient = _require("nbclient")
    _require("ipykernel")

    kernel_dir = tmp_path / "jupyter" / "kernels" / "fooljax-test"
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f"]
                + ["{connection_file}"],
                "display_name": "fooljax test",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("FOOLJAX_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the inline backend
    work = tmp_path / "work"
    work.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="fooljax-test",
        timeout=300,  # per cell
        resources={"metadata": {"path": str(work)}},
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on any error
    print(f"notebook executed in {time.perf_counter() - t0:.1f} s; per cell:")
    for i, c in enumerate(nb.cells):
        t = c.metadata.get("execution", {})
        if "iopub.execute_input" in t and "shell.execute_reply" in t:
            print(f"  cell {i}: {t['iopub.execute_input']} {t['shell.execute_reply']}")

    text = _text_outputs(nb)
    assert "backend: CPU" in text
    assert (work / "runs" / "quickstart_mnist_direct" / "summary.json").exists()
    assert (work / "runs" / "quickstart_mnist_direct" / "archive.png").exists()
    images = sum(
        "image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])
    )
    assert images >= 3, f"expected the inline pictures, got {images}"
    if os.environ.get("FOOLJAX_DATA"):
        assert "one pixel fooled" in text
    else:
        assert "SKIPPED: FOOLJAX_DATA is unset" in text
