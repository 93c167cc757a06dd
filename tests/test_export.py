"""Exporting a run's model: a stopped export leaves nothing half-made behind."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest

from breedscope import export, signals
from breedscope.inference import load_run


@pytest.mark.parametrize("stop", [signals.Terminated(signal.SIGTERM), KeyboardInterrupt(), RuntimeError("x")])
def test_a_stopped_export_leaves_no_model_labels_or_temporary_files(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: BaseException
) -> None:
    # SIGTERM during an export used to leave labels.txt without a model, and an 11 MB
    # SavedModel of TensorFlow's converter in the system's temporary folder.
    made: list[Path] = []

    def converter_stopped(run, output: Path, quantize: str | None) -> Path:
        (output / "model.tflite").write_bytes(b"half a model")
        made.append(Path(tempfile.mkdtemp()))  # where TensorFlow's converter writes its SavedModel
        (made[-1] / "saved_model.pb").write_bytes(b"graph")
        raise stop

    monkeypatch.setattr(export, "_tflite", converter_stopped)
    output = tmp_path / "exported"
    before = tempfile.gettempdir()
    with pytest.raises(type(stop)):
        export.export(load_run(finished_run), "tflite", output)
    assert list(output.iterdir()) == []  # no model, no labels.txt, no hidden staging folder
    assert made and not made[0].exists()
    assert tempfile.gettempdir() == before


def test_an_export_writes_its_labels_after_its_model(finished_run: Path, tmp_path: Path) -> None:
    path = export.export(load_run(finished_run), "keras", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["labels.txt", "model.keras"]
    assert path == tmp_path / "out" / "model.keras"
    assert (tmp_path / "out" / "labels.txt").read_text().splitlines() == ["class_0", "class_1", "class_2"]


def test_exported_labels_are_one_line_per_output() -> None:
    assert export.labels_text(["a", "b c", "é"]).splitlines() == ["a", "b c", "é"]
    with pytest.raises(export.BreedscopeError, match=r"'bad\\nclass' holds a line break"):
        export.labels_text(["good", "bad\nclass", "other"])
