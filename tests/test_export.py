"""Exporting a run's model: a stopped export leaves nothing half-made behind."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest

from breedscope.core import signals
from breedscope.export import convert as export
from breedscope.inference.predict import load_run


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


def test_an_export_that_fails_its_check_is_an_error_unless_the_loss_is_accepted(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # int8 that lost 8.3 points used to warn and exit 0: a script could not tell.
    import json

    import breedscope as bs
    from tests.helpers import cli_here

    failing = export.ExportCheck(
        images=72, keras_accuracy=0.79, exported_accuracy=0.71, agreement=0.81, max_probability_difference=0.6
    )
    monkeypatch.setattr(export, "measure", lambda run, path, fmt: failing)  # the check's figures, as measured
    result = cli_here("export", str(finished_run), "--format", "tflite")
    assert result.returncode == 2
    said = " ".join(result.stderr.split())
    assert "fails its check: it agrees with the Keras model on 81.0% of the run's 72 test images" in said
    assert "accept the loss with --accept-loss" in said
    model = finished_run / "export" / "model.tflite"
    assert model.is_file()  # kept
    assert (
        json.loads((finished_run / "export" / "model.tflite.check.json").read_text())["acceptable"] is False
    )

    accepted = cli_here("export", str(finished_run), "--format", "tflite", "--accept-loss")
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted with --accept-loss" in " ".join(accepted.stderr.split())
    record = json.loads((finished_run / "export" / "model.tflite.check.json").read_text())
    assert record["accepted_loss"] is True

    run = bs.open_run(finished_run)
    with pytest.raises(export.ExportCheckFailed) as caught:  # the API cannot miss it either
        run.export("tflite")
    assert caught.value.check == failing and isinstance(caught.value, bs.BreedscopeError)
    assert run.export("tflite", accept_loss=True).check == failing
