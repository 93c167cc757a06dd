"""Exporting a trained model for deployment, and measuring the export against the Keras model.

Formats: ``keras`` (the run's own file), ``savedmodel`` (TensorFlow Serving), ``tflite``
(float, or ``--quantize fp16``, ``dynamic`` or ``int8``) and ``onnx``. Every export gets a
``labels.txt`` beside it (one class per line, in the model's output order). A TFLite or ONNX
file runs on another runtime, so it is run on the run's test split and compared with the Keras
model: both accuracies, their agreement and the largest probability difference are printed and
recorded next to the file (``<file>.check.json``). An export that agrees on fewer than 95% of
the test images, or loses more than 1.5 points, fails its check (:class:`ExportCheckFailed`)
unless the loss is accepted. int8 is made by :mod:`breedscope.export.quantize`.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from breedscope.core import paths, quiet
from breedscope.core.atomic import private_tempdir, write_json, write_text
from breedscope.core.errors import BreedscopeError
from breedscope.core.progress import progress_bar
from breedscope.core.versions import __version__
from breedscope.data import manifest as manifest_module
from breedscope.data import store
from breedscope.data.images import load_rgb
from breedscope.export import tflite_metadata
from breedscope.export.model_card import MODEL_CARD, model_card
from breedscope.export.quantize import int8_model
from breedscope.features import runtime
from breedscope.features.runtime import tflite_predict
from breedscope.inference.predict import TrainedRun
from breedscope.runs import rundir
from breedscope.runs.rundir import RunDir

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("fp16", "dynamic", "int8")  # TFLite only
CALIBRATION_IMAGES = 200  # int8 ranges from 40 training images per class of a 5-class run
# An export's check fails below this agreement with Keras on the test split, or beyond this loss
# of test accuracy (one of the bccd preset's 72 test images is 1.4 points).
MIN_AGREEMENT = 0.95
MAX_ACCURACY_DROP = 0.015
INT8_CHOICE_SUFFIX = ".int8.json"  # how the int8 export was made, beside it
LABELS_FILE = "labels.txt"


def check_request(fmt: str, quantize: str | None, output: Path, run_dir: Path | None = None) -> None:
    """Refuse a format or quantisation this module cannot write, or an ``output`` that is a
    file or the run directory itself, before any work (and before any progress shows)."""
    if fmt not in FORMATS:
        raise BreedscopeError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'.")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise BreedscopeError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, not '{quantize}'.")
    if quantize is not None and fmt != "tflite":
        raise BreedscopeError(f"--quantize {quantize} works with --format tflite only.")
    if (blocking := paths.file_in_the_way(output)) is not None:
        raise BreedscopeError(
            f"--output {output}: {blocking} is a file; pass a folder to write the export into."
        )
    paths.check_outside_datasets(output, "--output")
    if run_dir is not None and output.resolve() == run_dir.resolve():
        raise BreedscopeError(
            f"--output {output} is the run directory itself, whose files the export would replace; "
            f"pass another folder (the default is {run_dir / rundir.EXPORT})."
        )


# --- the images an export needs: calibration (int8) and the test split (the check) ----------


def calibration_rows(rows: list[manifest_module.Row], count: int, seed: int = 0) -> list[manifest_module.Row]:
    """``count`` rows taken in turn from each class (a seeded draw within each). int8 ranges are
    set from these images, and the manifest's first rows are often one class alone, whose
    activations would leave every other class's clipped."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[manifest_module.Row]] = {}
    for row in rows:
        by_class.setdefault(row.label, []).append(row)
    shuffled = [[members[i] for i in rng.permutation(len(members))] for members in by_class.values()]
    in_turn = [row for turn in itertools.zip_longest(*shuffled) for row in turn if row is not None]
    return in_turn[:count]


def run_images(run: TrainedRun, rows: list[manifest_module.Row], purpose: str) -> np.ndarray:
    """The pixels of ``rows`` of the run's dataset, as the model takes them."""
    manifest = RunDir(run.run_dir).manifest()
    dataset = store.load(manifest.header["dataset"]["name"])
    if dataset is None:
        raise BreedscopeError(
            f"{purpose} needs the run's images; fetch dataset '{manifest.header['dataset']['name']}' again."
        )
    return np.stack([load_rgb(dataset.image_root / r.path, run.image_size) for r in rows]).astype(np.float32)


def representative_images(run: TrainedRun, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """Training images of the run, from every class in turn, for int8 calibration."""
    rows = calibration_rows(RunDir(run.run_dir).manifest().split("train"), count)
    return run_images(run, rows, "int8 calibration")


def int8_images(run: TrainedRun, count: int = CALIBRATION_IMAGES) -> tuple[np.ndarray, np.ndarray]:
    """int8's calibration images (training images from every class in turn) and the held-out
    images its float fallback is judged on: the validation split, or the training images left
    out of calibration (the calibration images themselves when none are left). Never the test
    split, on which the export is checked afterwards."""
    manifest = RunDir(run.run_dir).manifest()
    train = manifest.split("train")
    chosen = calibration_rows(train, count)
    picked = {row.path for row in chosen}
    held_out = manifest.split("val") or [row for row in train if row.path not in picked] or chosen
    held_out = calibration_rows(held_out, count, seed=1)
    return run_images(run, chosen, "int8 calibration"), run_images(run, held_out, "int8 calibration")


# --- measuring an export ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExportCheck:
    """An exported model measured against the Keras model on the run's test split."""

    images: int
    keras_accuracy: float
    exported_accuracy: float
    agreement: float  # share of test images on which both predict the same class
    max_probability_difference: float

    @property
    def accuracy_drop(self) -> float:
        return self.keras_accuracy - self.exported_accuracy

    @property
    def acceptable(self) -> bool:
        """Whether the check passes: the export agrees with Keras on at least
        :data:`MIN_AGREEMENT` of the test images and loses at most :data:`MAX_ACCURACY_DROP`."""
        return self.agreement >= MIN_AGREEMENT and self.accuracy_drop <= MAX_ACCURACY_DROP + 1e-9

    def failure(self) -> str:
        """What the failed check measured, in one clause."""
        return (
            f"it agrees with the Keras model on {self.agreement:.1%} of the run's {self.images} test images "
            f"and is {100 * self.accuracy_drop:+.1f} points less accurate (the check asks at least "
            f"{MIN_AGREEMENT:.0%} and at most {100 * MAX_ACCURACY_DROP:.1f})"
        )

    def to_json(self) -> dict:
        return {**asdict(self), "accuracy_drop": self.accuracy_drop, "acceptable": self.acceptable}


def onnx_predict(model_file: Path, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Class probabilities from an ONNX model with ONNX Runtime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate(
        [session.run(None, {name: images[i : i + batch_size]})[0] for i in range(0, len(images), batch_size)]
    )


RUNTIMES: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
    "tflite": tflite_predict,
    "onnx": onnx_predict,
}


def measure(run: TrainedRun, model_file: Path, fmt: str) -> ExportCheck:
    """Predict the run's test split with the exported file and with the Keras model; compare."""
    manifest = RunDir(run.run_dir).manifest()
    rows = manifest.split("test")
    images = run_images(run, rows, "Checking the exported model")
    labels = np.array([manifest.classes.index(r.label) for r in rows])
    keras_p = np.concatenate(
        [np.asarray(run.model.predict_on_batch(images[i : i + 32])) for i in range(0, len(images), 32)]
    )
    exported_p = RUNTIMES[fmt](model_file, images)
    return ExportCheck(
        images=len(rows),
        keras_accuracy=float(np.mean(keras_p.argmax(1) == labels)),
        exported_accuracy=float(np.mean(exported_p.argmax(1) == labels)),
        agreement=float(np.mean(keras_p.argmax(1) == exported_p.argmax(1))),
        max_probability_difference=float(np.abs(keras_p - exported_p).max()),
    )


# --- writing an export ------------------------------------------------------------------------


def _tflite(run: TrainedRun, output: Path, quantize: str | None) -> Path:
    converter = runtime.tflite_converter(run.model, signature=True)  # TensorFlow starts, quietly

    import tensorflow as tf

    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8 weights
    if quantize == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    target = output / (f"model_{quantize}.tflite" if quantize else "model.tflite")
    if quantize == "int8":  # weights and activations int8 (float input and output), float fallback
        calibration, holdout = int8_images(run)
        chosen = int8_model(run.model, calibration, holdout)
        target.write_bytes(chosen.model)
        write_json(target.with_name(target.name + INT8_CHOICE_SUFFIX), chosen.to_json())
    else:
        with quiet.native_output_silenced():  # a page of TensorSpec(...) lines and converter logs
            target.write_bytes(converter.convert())
    dataset = RunDir(run.run_dir).manifest_header()["dataset"]["name"]
    labels = labels_text(run.classes)
    metadata = tflite_metadata.classifier_metadata(
        name=f"breedscope {dataset} classifier",
        description=f"{len(run.classes)} classes, trained by breedscope in {run.run_dir}.{_decided(run)}",
        version=__version__,
        image_size=run.image_size,
        labels_file=LABELS_FILE,
    )
    tflite_metadata.attach(target, metadata, {LABELS_FILE: labels})
    return target


def _onnx(run: TrainedRun, output: Path) -> Path:
    import importlib.util

    missing = [m for m in ("tf2onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise BreedscopeError(
            f"ONNX export needs {' and '.join(missing)}: pip install 'breedscope[onnx]', then export again."
        )
    target = output / "model.onnx"
    # Keras exports only a model that has been called once; a loaded model has not.
    run.model(np.zeros((1, run.image_size, run.image_size, 3), np.float32), training=False)
    with quiet.native_output_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # tf2onnx probes numpy's removed aliases
        run.model.export(str(target), format="onnx", verbose=False)
    _describe_onnx(run, target)
    return target


def _decided(run: TrainedRun) -> str:
    """The run's operating point, as a sentence an exported model's description carries."""
    point = run.operating_point
    if point is None:
        return ""
    return (
        f" Operating point: {point.positive} when its probability is at least {point.threshold:.6f} "
        f"(chosen for {point.target} on {point.chosen_on} predictions)."
    )


def _describe_onnx(run: TrainedRun, target: Path) -> None:
    """What a reader of the ONNX file needs, in its metadata (``session.get_modelmeta()
    .custom_metadata_map`` in onnxruntime): the labels in output order, the input it expects,
    and the operating point when the run has one."""
    import onnx

    model = onnx.load(str(target))
    entries = {
        "labels": "\n".join(run.classes),
        "input": f"RGB image, {run.image_size}x{run.image_size} pixels, values in [0, 255]",
        "description": f"{len(run.classes)} classes, trained by breedscope.{_decided(run)}",
    }
    point = run.operating_point
    if point is not None:
        entries |= {"positive_class": point.positive, "threshold": f"{point.threshold:.6f}"}
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    _rename_output(model.graph, ONNX_OUTPUT)
    onnx.save(model, str(target))


ONNX_OUTPUT = "probabilities"  # the ONNX output's name (Keras' export calls it "output_0")


def _rename_output(graph, name: str) -> None:
    """Give the graph's one output a name that says what it holds, wherever it is referred to."""
    old = graph.output[0].name
    for node in graph.node:
        node.output[:] = [name if value == old else value for value in node.output]
        node.input[:] = [name if value == old else value for value in node.input]
    graph.output[0].name = name


def export(run: TrainedRun, fmt: str, output: Path, quantize: str | None = None) -> Path:
    """Write the model in ``fmt`` into the folder ``output``, with ``labels.txt`` beside it (the
    request checked by :func:`check_request`).

    The model is made in a hidden folder inside ``output`` (TensorFlow's own temporary files
    too) and moved into place whole; ``labels.txt`` follows it. However the export ends (an
    error, Ctrl-C, SIGTERM), no half-written model, no labels without their model and no
    temporary SavedModel are left."""
    labels = labels_text(run.classes)  # refused before any work
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output, prefix=".export-") as folder, private_tempdir(Path(folder)):
        made = _write(run, fmt, Path(folder) / "model", quantize)
        for file in sorted(made.parent.iterdir(), key=lambda f: f != made):  # the model, then notes
            placed = output / file.name
            if placed.is_dir() and not placed.is_symlink():  # a SavedModel exported before
                shutil.rmtree(placed)
            os.replace(file, placed)
        target = output / made.name
    write_text(output / LABELS_FILE, labels)  # for every format
    write_text(output / MODEL_CARD, model_card(run.run_dir, target))
    return target


def labels_text(classes: list[str]) -> str:
    """``labels.txt``: exactly one line per output of the model, in output order. A class name
    with a line break would shift every label after it, so it is refused (a fetch refuses such
    names; a dataset stored before that rule may still hold one)."""
    text = "".join(f"{label}\n" for label in classes)
    if len(text.splitlines()) != len(classes):
        broken = next(label for label in classes if len(f"{label}\n".splitlines()) != 1)
        raise BreedscopeError(
            f"The class name {broken!r} holds a line break, so labels.txt could not name one class per "
            "output; rename that class folder and fetch the dataset again."
        )
    return text


def _write(run: TrainedRun, fmt: str, staging: Path, quantize: str | None) -> Path:
    """The model file (or SavedModel folder) of ``fmt``, written into the empty folder ``staging``."""
    staging.mkdir()
    if fmt == "keras":
        target = staging / rundir.MODEL
        shutil.copyfile(run.model_file, target)
        return target
    if fmt == "savedmodel":
        target = staging / "savedmodel"
        with quiet.native_output_silenced():
            run.model.export(str(target), format="tf_saved_model", verbose=False)
        return target
    if fmt == "onnx":
        return _onnx(run, staging)
    return _tflite(run, staging, quantize)


class ExportCheckFailed(BreedscopeError):
    """An export was written, but it changes the model's decisions more than the check allows."""

    def __init__(self, path: Path, check: ExportCheck) -> None:
        self.path, self.check = path, check
        super().__init__(
            f"The export {path} fails its check: {check.failure()}. It is kept; accept the loss with "
            "--accept-loss (accept_loss=True), or ship a float export (no --quantize) or the Keras model."
        )


def export_checked(
    run: TrainedRun, fmt: str, output: Path, quantize: str | None = None, *, accept_loss: bool = False
) -> tuple[Path, ExportCheck | None]:
    """Export, and for a TFLite or ONNX file measure it against the Keras model on the run's test
    split and record the figures beside it (``model_int8.tflite.check.json``). Each step shows
    its elapsed time: converting takes seconds to a minute (int8 calibrates on images).
    The request is checked first, so that a refusal comes before any bar. An export that fails
    its check raises :class:`ExportCheckFailed` (the file is kept) unless ``accept_loss``."""
    check_request(fmt, quantize, output, run.run_dir)
    with progress_bar(f"Exporting ({fmt}{f', {quantize}' if quantize else ''})", total=1) as advance:
        path = export(run, fmt, output, quantize)
        advance(1)
    if fmt not in RUNTIMES:
        return path, None  # the same Keras model, saved in another container
    with progress_bar("Checking it against Keras", total=1) as advance:
        check = measure(run, path, fmt)
        advance(1)
    record = {"file": path.name, "format": fmt, "quantize": quantize, **check.to_json()}
    choice = path.with_name(path.name + INT8_CHOICE_SUFFIX)
    if choice.is_file():
        record["int8"] = json.loads(choice.read_text(encoding="utf-8"))
    record["accepted_loss"] = bool(accept_loss and not check.acceptable)
    write_json(path.parent / f"{path.name}.check.json", record)
    if not check.acceptable and not accept_loss:
        raise ExportCheckFailed(path, check)
    return path, check
