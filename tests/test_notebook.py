"""The example notebook, executed in a real Jupyter kernel (nbclient + ipykernel) on small data."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from tests.helpers import REPO, TINY_SETTINGS, notebook_client

pytestmark = pytest.mark.whole_run

NOTEBOOK = REPO / "docs" / "examples" / "quickstart.ipynb"


def _outputs(cell) -> list[dict]:
    return cell.get("outputs", [])


def test_the_quickstart_notebook_runs_in_a_kernel_and_shows_the_run(
    make_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A notebook user's kernel has no TF_CPP_MIN_LOG_LEVEL (scripts/setup.sh sets it for the tests).
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    make_tree(classes=3, per_class=14, size=40, root=tmp_path / "shapes")
    archive = shutil.make_archive(str(tmp_path / "shapes"), "zip", root_dir=tmp_path, base_dir="shapes")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    settings = {**TINY_SETTINGS, "epochs": 2, "runs_dir": str(tmp_path / "runs"), "positive": "class_1"}
    parameters.source = f"ARCHIVE = {archive!r}\nPLUGIN = 'folder'\nSETTINGS = {settings!r}"

    # The kernel inherits this process's environment: BREEDSCOPE_HOME is the test's own.
    notebook_client(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()

    code = [c for c in notebook.cells if c.cell_type == "code"]
    errors = [o for c in code for o in _outputs(c) if o["output_type"] == "error"]
    assert errors == []
    run_cell = next(c for c in code if c.source.startswith("run = bs.run("))
    shown = next(o for o in _outputs(run_cell) if o["output_type"] == "execute_result")["data"]
    assert "Test accuracy" in shown["text/html"] and "(95% CI" in shown["text/html"]
    assert "data:image/png;base64," in shown["text/html"]  # the confusion matrix
    # Progress was shown in the notebook, as a live widget (rich draws notebook bars with ipywidgets),
    # for the run and for the export, which converts the model and checks it for several seconds.
    export_cell = next(c for c in code if c.source.startswith("exported = run.export("))
    for cell in (run_cell, export_cell):
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in _outputs(cell))
    figures = [o for c in code for o in _outputs(c) if "image/png" in o.get("data", {})]
    assert figures, "the training-curves figure was not displayed"
    printed = "".join(o.get("text", "") for c in code for o in _outputs(c) if o["output_type"] == "stream")
    assert "F1" in printed and "test images" in printed and "agrees with Keras on" in printed
    assert "Called class_1 when its probability is at least" in printed  # the operating point
    # TensorFlow's C++ log lines ("I0000 00:00:... generator_dataset_op.cc ...") are not for users.
    assert not re.search(r"^[IWE]\d{4} \d\d:\d\d:", printed, re.MULTILINE), printed
    assert (tmp_path / "runs" / "shapes" / "run" / "export" / "model.tflite").is_file()
    # Every bar ends where its work ended (a notebook's bars are not refreshed on a timer), as
    # the widgets' stored state shows them.
    widgets = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    bars = [
        re.sub(r"\x1b\[[0-9;]*m", "", output.get("data", {}).get("text/plain", ""))
        for widget in widgets.values()
        for output in widget.get("state", {}).get("outputs", [])
    ]
    counts = [re.search(r"(\d+)/(\d+)", bar) for bar in bars if "━" in bar]
    assert counts and all(c is not None and c.group(1) == c.group(2) for c in counts), bars
    assert any(bar.startswith("Exporting (tflite)") for bar in bars)
    # The fetch shows what validation found; the epochs are one output growing in place.
    fetch_cell = next(c for c in code if "bs.fetch(" in c.source)
    fetched = next(o for o in _outputs(fetch_cell) if o["output_type"] == "execute_result")["data"]
    assert "| class | found | kept |" in fetched["text/markdown"]
    (epochs,) = [o for o in _outputs(run_cell) if "epoch 1/2" in str(o.get("data", ""))]
    assert "epoch 2/2" in epochs["data"]["text/plain"]
    assert "INFO:tensorflow" not in printed + str([o for c in code for o in _outputs(c)])
    # The label audit shows itself, and the run without its suspects says what it left out.
    audit_cell = next(c for c in code if c.source.startswith("audit = bs.audit("))
    audit_shown = next(o for o in _outputs(audit_cell) if o["output_type"] == "execute_result")["data"]
    assert "Label audit" in audit_shown["text/html"] and "images suspect" in audit_shown["text/html"]
    audit_dir = tmp_path / "runs" / "shapes" / "audit"
    assert (audit_dir / "issues.csv").is_file() and (audit_dir / "audit.md").is_file()
    suspects = len((audit_dir / "issues.csv").read_text().splitlines()) - 1
    compare_cell = next(c for c in code if c.source.startswith("clean = bs.run("))
    compared = next(o for o in _outputs(compare_cell) if o["output_type"] == "execute_result")["data"]
    assert f"{suspects} excluded" in compared["text/markdown"]


def test_the_harness_reads_each_reply_within_a_second_of_its_arrival() -> None:
    # The stall tests/helpers.notebook_client works round: with nbclient's own client, about
    # one cell in forty of these waited for its whole timeout (here 30 s) before its reply was read.
    notebook = nbformat.v4.new_notebook()
    bar = "from rich.progress import track\nfor _ in track(range(3), description='cell {}'): pass"
    notebook.cells = [nbformat.v4.new_code_cell(bar.format(index)) for index in range(100)]
    started: dict[int, float] = {}
    took: list[float] = []

    def start(cell, cell_index: int, **_) -> None:
        started[cell_index] = time.monotonic()

    def executed(cell, cell_index: int, **_) -> None:
        took.append(time.monotonic() - started[cell_index])

    notebook_client(
        notebook, timeout=30, kernel_name="python3", on_cell_start=start, on_cell_executed=executed
    ).execute()
    assert len(took) == 100 and max(took) < 5, sorted(took)[-3:]
