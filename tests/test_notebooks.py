"""The walk-through notebooks in notebooks/ run top to bottom (nbclient, the project's own Python as the kernel):
a cell that raises fails the test with the cell's id and its traceback. They write under var/ as they do when a
person runs them; the committed files keep no outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_ID = r"^[a-zA-Z0-9-_]+$"


def test_there_are_three_notebooks_each_cell_with_a_stable_id_and_no_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01-model-and-engine.ipynb", "02-ledger-and-review.ipynb", "03-retraining-loop.ipynb"]
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert cells, path.name
        ids = [c.get("id") for c in cells]
        assert all(i and re.match(CELL_ID, i) for i in ids) and len(set(ids)) == len(ids), (path.name, ids)
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells if c["cell_type"] == "code"), path.name


def test_the_generator_writes_the_committed_notebooks():
    """`notebooks/make_notebooks.py` is where the cells are edited: what it writes is what is committed, so a
    rewrite never undoes an edit made in the notebook alone (notebook 3 had drifted so)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_notebooks", REPO / "notebooks" / "make_notebooks.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # defines the cells; writes only under `__main__`
    for cells, name, path in ((gen.MODEL, "model", NOTEBOOKS[0]), (gen.LEDGER, "ledger", NOTEBOOKS[1]), (gen.LOOP, "loop", NOTEBOOKS[2])):
        assert json.dumps(gen.nb(cells, name), indent=1, ensure_ascii=False) + "\n" == path.read_text(), f"{path.name}: run notebooks/make_notebooks.py, or edit its cells there"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_without_an_error(path: Path):
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)  # ids included: nbformat 4.5 requires them
    # the kernel is this interpreter (ipykernel's spec says `python`, which jupyter_client runs as sys.executable),
    # started in notebooks/ as Jupyter would; it inherits this process's environment (PYTHONPATH, YOLO_OFFLINE)
    client = NotebookClient(nb, timeout=840, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except CellExecutionError as e:
        failed = next((c for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        pytest.fail(f"{path.name}: cell {failed.id if failed else '?'} raised:\n{e}", pytrace=False)
    errors = [c.id for c in nb.cells if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert errors == []
