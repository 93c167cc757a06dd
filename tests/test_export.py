"""Exporting a run's model (export/): TFLite (float and int8, with metadata a reader finds) and ONNX
measured against Keras; int8 calibration; the same file every time; a stopped export leaves
nothing half-made behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from breedscope.core import signals
from breedscope.data.manifest import Row
from breedscope.export import convert as export
from breedscope.export.convert import calibration_rows
from breedscope.inference.predict import load_run
from breedscope.runs.rundir import RunDir
from tests.helpers import (
    cli,
    pip_install_apart,
)


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
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "MODEL_CARD.md",
        "labels.txt",
        "model.keras",
    ]
    assert path == tmp_path / "out" / "model.keras"
    assert (tmp_path / "out" / "labels.txt").read_text().splitlines() == ["class_0", "class_1", "class_2"]


def test_every_export_has_a_model_card_with_the_runs_data_protocol_figures_and_limits(
    finished_run: Path, tmp_path: Path
) -> None:
    from breedscope.runs.rundir import RunDir

    export.export(load_run(finished_run), "keras", tmp_path / "out")
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    evaluation = RunDir(finished_run).evaluation()
    low, high = evaluation.interval("accuracy")
    assert "# Model card: shapes classifier" in card and "`model.keras`" in card
    assert f"accuracy {evaluation.accuracy:.3f} (95% CI {low:.3f}–{high:.3f})" in card
    assert "grouped: a patient's images" in card  # the protocol
    for name in evaluation.classes:
        assert f"| {name} |" in card
    # The run's test classes are few images each: the support rule is among the limits.
    assert "## Limits" in card and all(caveat in card for caveat in evaluation.caveats())


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


def _rows(per_class: dict[str, int]) -> list[Row]:
    # Sorted by class, as a manifest's split is: the first rows are all one class.
    return [
        Row(f"{label}/{i}.png", label, "train", f"{label}/{i}.png", f"{label}{i}", "0" * 16, 64, 64, "")
        for label, count in per_class.items()
        for i in range(count)
    ]


def test_int8_calibration_draws_every_class_in_turn() -> None:
    rows = _rows({"basophil": 50, "eosinophil": 50, "lymphocyte": 50})

    picked = calibration_rows(rows, 30)

    assert Counter(r.label for r in picked) == {"basophil": 10, "eosinophil": 10, "lymphocyte": 10}
    assert len({r.path for r in picked}) == 30
    assert calibration_rows(rows, 30) == picked  # seeded: the same export calibrates the same way


def test_int8_calibration_takes_all_of_a_small_class_and_fills_up_from_the_others() -> None:
    picked = calibration_rows(_rows({"rare": 3, "common": 100}), 20)
    assert Counter(r.label for r in picked) == {"rare": 3, "common": 17}


def test_the_same_model_exported_at_another_time_is_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user checks an export by its checksum: the labels packed into a TFLite file must not
    # carry the time of the export (zip entries do, unless told otherwise).
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from breedscope.export import tflite_metadata

    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers = 3, [], [schema.BufferT()]
    empty_model = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    files = []
    for index, clock in enumerate((time.time(), time.time() + 3600)):  # an hour apart
        monkeypatch.setattr(time, "time", lambda clock=clock: clock)
        model_file = tmp_path / f"model_{index}.tflite"
        model_file.write_bytes(empty_model)
        tflite_metadata.attach(model_file, b"metadata", {"labels.txt": "basophil\neosinophil\n"})
        files.append(model_file.read_bytes())
    assert files[0] == files[1]


@pytest.mark.whole_run
def test_int8_export_is_measured_against_keras_and_recorded(finished_run: Path) -> None:

    from breedscope.export import convert as export
    from breedscope.inference import predict as inference

    run_dir = finished_run
    result = cli("export", str(run_dir), "--format", "tflite", "--quantize", "int8")
    record = json.loads((run_dir / "export" / "model_int8.tflite.check.json").read_text())
    said = " ".join(result.stderr.split())
    assert f"the two agree on {record['agreement']:.1%} of images" in said
    # The check, recomputed from its figures; a failed one is an error (the file is kept).
    passes = record["agreement"] >= 0.95 and record["accuracy_drop"] <= 0.015 + 1e-9
    assert record["acceptable"] == passes
    assert result.returncode == (0 if passes else 2), result.stderr
    assert ("fails its check" in said) == (not passes)
    # How it was made: full int8, or float for the layers int8 hurt most, chosen on training images.
    assert record["int8"]["float_layers"] in (0, 4, 8, 12, 16, 24)
    assert record["int8"]["holdout_images"] > 0 and "int8: " in said

    # The record, recomputed here from the files: the exported model against the test labels.
    run = inference.load_run(run_dir)
    predictions = (run_dir / "predictions.csv").read_text().splitlines()[1:]
    images = export.run_images(run, RunDir(run_dir).manifest().split("test"), "test")
    labels = np.array([run.classes.index(line.split(",")[1]) for line in predictions])
    lite = export.tflite_predict(run_dir / "export" / "model_int8.tflite", images).argmax(1)
    assert record["images"] == len(labels)
    assert record["exported_accuracy"] == pytest.approx(float(np.mean(lite == labels)))


@pytest.mark.whole_run
def test_every_export_has_its_labels_and_is_measured_against_keras(
    finished_run: Path, tmp_path: Path
) -> None:

    from breedscope.export import convert as export
    from breedscope.inference import predict as inference

    run_dir = finished_run
    classes = RunDir(run_dir).manifest().classes
    produced = {}
    for fmt, quantize in (("tflite", "fp16"), ("tflite", "dynamic"), ("onnx", None), ("keras", None)):
        flags = ["--quantize", quantize] if quantize else []
        result = cli("export", str(run_dir), "--format", fmt, *flags, "--output", str(tmp_path / fmt))
        assert result.returncode == 0, result.stderr
        said = " ".join(result.stderr.split())
        assert (tmp_path / fmt / "labels.txt").read_text().splitlines() == classes
        path = Path(said.split("Exported: ")[1].split(" (class names")[0])
        produced[(fmt, quantize)] = path
        if fmt != "keras":
            record = json.loads(path.with_name(path.name + ".check.json").read_text())
            assert f"the two agree on {record['agreement']:.1%} of images" in said
            assert record["format"] == fmt and record["quantize"] == quantize
    assert produced[("tflite", "fp16")].name == "model_fp16.tflite"
    assert produced[("tflite", "dynamic")].stat().st_size < produced[("tflite", "fp16")].stat().st_size

    # ONNX against Keras, computed here: probabilities within 1e-4 on every test image.
    run = inference.load_run(run_dir)
    images = export.run_images(run, RunDir(run_dir).manifest().split("test"), "test")
    keras_p = np.asarray(run.model.predict_on_batch(images))
    onnx_p = export.onnx_predict(produced[("onnx", None)], images)
    assert np.abs(onnx_p - keras_p).max() < 1e-4
    assert (onnx_p.argmax(1) == keras_p.argmax(1)).all()

    # Apps call a TFLite export by its signature (LiteRT's get_signature_runner): it has one,
    # named as Keras' own conversion names it, and it answers as the Keras model does.
    Interpreter = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="LiteRT has no wheel here"
    ).Interpreter
    interpreter = Interpreter(model_path=str(produced[("tflite", "fp16")]))
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["rgb_0_255"], "outputs": ["output_0"]}
    }
    runner = interpreter.get_signature_runner("serving_default")
    fp16_p = np.concatenate([runner(rgb_0_255=image[None])["output_0"] for image in images])
    assert np.abs(fp16_p - keras_p).max() < 1e-2


READ_METADATA = """
import json, sys, zipfile
from tensorflow_lite_support.metadata import metadata_schema_py_generated as meta_fb
from tensorflow_lite_support.metadata import schema_py_generated as model_fb

data = open(sys.argv[1], "rb").read()
model = model_fb.Model.GetRootAsModel(data, 0)
entries = {
    model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())
}
buffer = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
assert meta_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
meta = meta_fb.ModelMetadataT.InitFromObj(meta_fb.ModelMetadata.GetRootAsModelMetadata(buffer, 0))
tensors = meta.subgraphMetadata[0]
image, output = tensors.inputTensorMetadata[0], tensors.outputTensorMetadata[0]
labels_file = output.associatedFiles[0]
print(json.dumps({
    "name": meta.name.decode(),
    "color_space": image.content.contentProperties.colorSpace,
    "mean": image.processUnits[0].options.mean.tolist(),
    "std": image.processUnits[0].options.std.tolist(),
    "labels_file": labels_file.name.decode(),
    "labels_type": labels_file.type,
    "labels": zipfile.ZipFile(sys.argv[1]).read(labels_file.name.decode()).decode().split("\\n")[:-1],
}))
"""


@pytest.mark.whole_run
def test_tflite_exports_carry_metadata_a_reader_finds_the_labels_in(
    finished_run: Path, tmp_path: Path
) -> None:
    # The reader: TFLite Support's generated schema code (Google's parser of the format MediaPipe
    # and the Task Library read), installed on its own since it cannot share TensorFlow's
    # environment. Its full MetadataDisplayer needs libusb from the system, which CI lacks.
    reader = tmp_path / "reader"
    installed = pip_install_apart(reader, "tflite-support==0.4.4")
    if installed.returncode != 0:
        pytest.skip(f"tflite-support (the metadata reader) could not be installed: {installed.stderr[-200:]}")
    run_dir = finished_run
    assert cli("export", str(run_dir), "--format", "tflite", "--quantize", "dynamic").returncode == 0

    read = subprocess.run(
        [sys.executable, "-c", READ_METADATA, str(run_dir / "export" / "model_dynamic.tflite")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(reader)},
    )
    assert read.returncode == 0, read.stderr
    found = json.loads(read.stdout)
    assert found["labels"] == RunDir(run_dir).manifest().classes
    assert (found["labels_file"], found["labels_type"]) == ("labels.txt", 2)  # TENSOR_AXIS_LABELS
    assert (found["color_space"], found["mean"], found["std"]) == (1, [0.0], [1.0])  # RGB, pixels as they are
    assert found["name"] == "breedscope shapes classifier"
