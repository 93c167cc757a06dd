"""The Python API: what a notebook does, in-process, on small images."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import breedscope as bs
from breedscope import plugins
from breedscope.config import layering
from tests.helpers import TINY_SETTINGS, notebook_client


def test_importing_breedscope_changes_nothing_in_the_session() -> None:
    # Run in a fresh interpreter: what the session looked like before and after the import.
    code = """
import logging, sys, warnings
import matplotlib
from PIL import Image
before = (matplotlib.get_backend(), Image.MAX_IMAGE_PIXELS, len(logging.root.handlers), len(warnings.filters))
import breedscope as bs
bs.Run, bs.fetch, bs.hookimpl, bs.DatasetSpec, bs.Evaluation  # the public names, resolved
from breedscope.report import figures  # drawing the report's figures must not change it either
after = (matplotlib.get_backend(), Image.MAX_IMAGE_PIXELS, len(logging.root.handlers), len(warnings.filters))
print(before == after, "tensorflow" in sys.modules, "matplotlib.pyplot" in sys.modules)
"""
    env = {"MPLBACKEND": "svg", "PATH": "/usr/bin:/bin"}  # a backend Agg is not: a switch would show
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]


def test_every_public_name_resolves() -> None:
    for name in bs.__all__:
        assert getattr(bs, name) is not None, name
    assert set(dir(bs)) >= set(bs.__all__)
    with pytest.raises(AttributeError):
        bs.no_such_name  # noqa: B018


def test_settings_are_the_cli_flags_and_a_misspelt_one_is_named() -> None:
    layer = layering.settings_layer(epochs=3, lr=0.01, seed=7, classes=["a", "b"], runs_dir=Path("out"))
    assert layer == {
        "train": {"epochs": 3, "learning_rate": 0.01, "seed": 7},
        "dataset": {"classes": ["a", "b"]},
        "runs_dir": "out",
        "split": {"seed": 7},
    }
    with pytest.raises(bs.ConfigError, match=r"Unknown setting 'epoch' \(did you mean 'epochs'\?\)"):
        bs.configure("demo", epoch=3)
    config = bs.configure("demo", preset="demo", epochs=4, config={"train": {"batch_size": 16}})
    assert (config.train.epochs, config.train.batch_size, config.preset) == (4, 16, "demo")


@pytest.mark.whole_run
def test_a_notebook_session_fetches_runs_shows_predicts_and_compares(make_tree, tmp_path: Path) -> None:
    tree = make_tree(classes=3, per_class=14, size=40, root=tmp_path / "shapes")
    archive = Path(shutil.make_archive(str(tmp_path / "shapes"), "zip", root_dir=tmp_path, base_dir="shapes"))

    dataset = bs.fetch("folder", source=archive)
    assert dataset.name == "shapes"
    assert dataset.class_counts() == {"class_0": 14, "class_1": 14, "class_2": 14}
    assert "42 images in 3 classes" in dataset._repr_markdown_()

    run = bs.run(dataset="shapes", epochs=2, runs_dir=tmp_path / "runs", **TINY_SETTINGS)
    stored = json.loads((run.path / "evaluation.json").read_text())
    assert run.status == "succeeded"
    assert run.metrics.accuracy == stored["accuracy"]
    assert run.metrics.interval("accuracy") == tuple(stored["intervals"]["accuracy"])
    assert {k: m.support for k, m in run.metrics.per_class.items()} == {
        k: int(v["support"]) for k, v in stored["per_class"].items()
    }
    assert [record["epoch"] for record in run.history] == [1.0, 2.0]
    assert run.report_path("pdf").is_file() and run.report_path("markdown").name == "report.md"
    assert run.reports() == [run.path / "report.md", run.path / "report.pdf"]

    html = run._repr_html_()
    low, high = run.metrics.interval("accuracy")
    assert f"(95% CI {low:.3f}–{high:.3f})" in html
    assert "data:image/png;base64," in html  # the confusion matrix, embedded
    assert all(f"<td>{name}</td>" in html for name in ("class_0", "class_1", "class_2"))

    again = bs.open_run(run.path)
    assert again.metrics == run.metrics
    image = tree / "class_1" / "img_000.png"
    (prediction,) = again.predict([image], top=2)
    assert prediction.path == str(image) and len(prediction.top) == 2
    expected = next(
        line.split(",") for line in (run.path / "predictions.csv").read_text().splitlines()[1:]
    )  # a test image: the API's prediction equals the run's own for it
    (same,) = again.predict([dataset.image_root / expected[0]], top=1)
    assert same.top[0][0] == expected[2]

    comparison = bs.compare([run, run.path])
    assert len(comparison.table.rows) == 2 and comparison.notes == []
    assert comparison._repr_markdown_().startswith("| run | dataset |")


def test_api_errors_are_sentences_not_tracebacks(tmp_path: Path) -> None:
    with pytest.raises(bs.BreedscopeError, match="is not a folder"):
        bs.open_run(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(bs.BreedscopeError, match=r"half is not a breedscope run directory"):
        bs.open_run(tmp_path / "half").metrics  # noqa: B018
    with pytest.raises(bs.BreedscopeError, match=r"Unknown dataset 'bcdd'\. Did you mean 'bccd'"):
        bs.fetch("bcdd")
    with pytest.raises(bs.BreedscopeError, match="resume continues a run with its own settings"):
        bs.run(resume=tmp_path / "half", epochs=3)


def test_plugin_names_come_from_one_registry() -> None:
    registry = plugins.registry()
    assert {"cats", "breast", "generic", "bccd", "chest_xray", "demo"} <= set(registry.presets)
    assert registry.presets["chest_xray"].study is not None
    assert bs.Preset is type(registry.presets["demo"])


@pytest.mark.whole_run
def test_in_a_notebook_errors_and_ctrl_c_show_a_sentence_and_the_call_that_continues(
    make_tree, tmp_path: Path
) -> None:
    # IPython shows any exception with a traceback through breedscope's own code; an error the
    # user can fix shows the one sentence the command line prints. It is still an exception,
    # caught like any other. Ctrl-C in a run (the kernel's interrupt, a SIGINT to its main
    # thread) names what was kept and the Python call that continues, not the command line's.
    import nbformat

    missing, runs = tmp_path / "nowhere", tmp_path / "runs"
    archive = shutil.make_archive(
        str(tmp_path / "shapes"), "zip", make_tree(classes=3, per_class=14, size=40)
    )
    interrupt_after_one_epoch = f"""
import _thread, json, threading, time
from pathlib import Path
def interrupt():  # what the kernel's interrupt button does, once the first epoch is saved
    for _ in range(1200):
        for state in Path({str(runs)!r}).glob("*/*/checkpoints/state.json"):
            if json.loads(state.read_text()).get("next_epoch", 0) >= 1:
                return _thread.interrupt_main()
        time.sleep(0.1)
threading.Thread(target=interrupt, daemon=True).start()
bs.run(dataset="shapes", epochs=30, patience=100, runs_dir={str(runs)!r}, **{TINY_SETTINGS!r})
"""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(f"import breedscope as bs\nbs.open_run({str(missing)!r})"),
        nbformat.v4.new_code_cell(
            f"try:\n    bs.open_run({str(missing)!r})\nexcept bs.BreedscopeError:\n    print('caught')"
        ),
        nbformat.v4.new_code_cell(f"bs.fetch('folder', source={archive!r}, name='shapes');"),
        nbformat.v4.new_code_cell(interrupt_after_one_epoch),
        # The call it names continues the run to its end, in the same session.
        nbformat.v4.new_code_cell(f"bs.run(resume=next(Path({str(runs)!r}, 'shapes').iterdir())).status"),
    ]
    notebook_client(notebook, timeout=300, kernel_name="python3", allow_errors=True).execute()
    (shown,) = notebook.cells[0].outputs
    assert shown.output_type == "error" and shown.ename == "BreedscopeError"
    sentence = f"{missing} is not a folder; pass a run directory (RUNS_DIR/DATASET/NAME)."
    assert shown.traceback == [f"BreedscopeError: {sentence}"]
    assert [output.text for output in notebook.cells[1].outputs] == ["caught\n"]

    (run_dir,) = (runs / "shapes").iterdir()
    (interrupted,) = [output for output in notebook.cells[3].outputs if output.output_type == "error"]
    assert interrupted.ename == "Interrupted"
    assert interrupted.traceback == [
        f"Interrupted: {run_dir} keeps its manifest and the checkpoints of every finished epoch. "
        f"Continue with: bs.run(resume={str(run_dir)!r})"
    ]
    assert notebook.cells[4].outputs[-1]["data"]["text/plain"] == "'succeeded'"
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 30  # every epoch, once


def test_the_api_refuses_at_its_boundary_in_the_command_lines_sentences(
    finished_run: Path, tmp_path: Path
) -> None:
    from tests.helpers import shape_image

    image = tmp_path / "image.png"
    shape_image(0, seed=1, size=40).save(image)
    run = bs.open_run(finished_run)
    for top in (-1, 0, True):  # top=-1 used to show 2 of the 3 classes
        with pytest.raises(bs.BreedscopeError, match=r"top \(how many classes to show per image\) must be 1"):
            run.predict([image], top=top)
    assert len(run.predict([image], top=10)[0].top) == 3  # more than there are: all of them

    # "could not be downloaded" used to answer an alpha no ImageNet weights exist for.
    with pytest.raises(bs.BreedscopeError, match=r"mobilenet_v2 has no ImageNet weights at alpha 1e-300"):
        bs.run(dataset="shapes", alpha=1e-300, epochs=1, runs_dir=tmp_path / "new-runs")
    assert not (tmp_path / "new-runs").exists()

    # A name given as a Path is the name it spells (it used to raise TypeError).
    assert bs.configure("shapes", name=Path("my-run")).name == "my-run"

    # A folder that is not a run is refused when opened, not at the first figure asked of it.
    with pytest.raises(bs.BreedscopeError, match=r"is not a breedscope run directory"):
        bs.open_run(tmp_path)
