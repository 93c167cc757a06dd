"""Exporting a trained model for deployment, and measuring the export against the Keras model.

Formats: ``keras`` (the run's own file), ``savedmodel`` (TensorFlow Serving), ``tflite``
(float, or ``--quantize fp16``, ``dynamic`` or ``int8``) and ``onnx``. Every export gets a
``labels.txt`` beside it (one class per line, in the model's output order). A TFLite or ONNX
file runs on another runtime, so it is run on the run's test split and compared with the Keras
model: both accuracies, their agreement and the largest probability difference are printed and
recorded next to the file (``<file>.check.json``), and a loss of more than a point is flagged.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from breedscope import __version__, paths, quiet, rundir, runtime, tflite_metadata
from breedscope import manifest as manifest_module
from breedscope.atomic import private_tempdir, write_json, write_text
from breedscope.datasets import store
from breedscope.errors import BreedscopeError
from breedscope.images import load_rgb
from breedscope.inference import TrainedRun
from breedscope.progress import progress_bar
from breedscope.rundir import RunDir

FORMATS = ("keras", "savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("fp16", "dynamic", "int8")  # TFLite only
CALIBRATION_IMAGES = 200  # int8 ranges from 40 training images per class of a 5-class run
MAX_ACCURACY_DROP = 0.01  # an export that loses more than a point of test accuracy is flagged
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
    for folder in (output, *output.parents):  # the output, or a folder above it, is a file
        if folder.exists():
            if not folder.is_dir():
                raise BreedscopeError(
                    f"--output {output}: {folder} is a file; pass a folder to write the export into."
                )
            break
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
    manifest = manifest_module.read(run.run_dir)
    dataset = store.load(manifest.header["dataset"]["name"])
    if dataset is None:
        raise BreedscopeError(
            f"{purpose} needs the run's images; fetch dataset '{manifest.header['dataset']['name']}' again."
        )
    return np.stack([load_rgb(dataset.image_root / r.path, run.image_size) for r in rows]).astype(np.float32)


def representative_images(run: TrainedRun, count: int = CALIBRATION_IMAGES) -> np.ndarray:
    """Training images of the run, from every class in turn, for int8 calibration."""
    rows = calibration_rows(manifest_module.read(run.run_dir).split("train"), count)
    return run_images(run, rows, "int8 calibration")


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
        return self.accuracy_drop <= MAX_ACCURACY_DROP

    def to_json(self) -> dict:
        return {**asdict(self), "accuracy_drop": self.accuracy_drop, "acceptable": self.acceptable}


def tflite_predict(model_file: Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities from a TFLite model, one image at a time (its batch size is fixed), in
    LiteRT's interpreter (TensorFlow's own, deprecated, where LiteRT has no wheel)."""
    with quiet.native_output_silenced(), warnings.catch_warnings():
        if runtime.litert_available():
            from ai_edge_litert.interpreter import Interpreter
        else:
            import tensorflow as tf

            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            Interpreter = tf.lite.Interpreter
        interpreter = Interpreter(model_path=str(model_file))
        interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(results)


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
    manifest = manifest_module.read(run.run_dir)
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
    if quantize == "int8":
        representative = representative_images(run)

        def samples():
            for image in representative:
                yield [image[None].astype(np.float32)]

        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # weights and activations int8; float input and output
    target = output / (f"model_{quantize}.tflite" if quantize else "model.tflite")
    with quiet.native_output_silenced():  # a page of TensorSpec(...) lines and converter logs
        target.write_bytes(converter.convert())
    dataset = RunDir(run.run_dir).manifest_header()["dataset"]["name"]
    labels = labels_text(run.classes)
    metadata = tflite_metadata.classifier_metadata(
        name=f"breedscope {dataset} classifier",
        description=f"{len(run.classes)} classes, trained by breedscope in {run.run_dir}.",
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
    return target


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
        target = output / made.name
        if target.is_dir() and not target.is_symlink():  # a SavedModel exported before
            shutil.rmtree(target)
        os.replace(made, target)
    write_text(output / LABELS_FILE, labels)  # for every format
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


def export_checked(
    run: TrainedRun, fmt: str, output: Path, quantize: str | None = None
) -> tuple[Path, ExportCheck | None]:
    """Export, and for a TFLite or ONNX file measure it against the Keras model on the run's test
    split and record the figures beside it (``model_int8.tflite.check.json``). Each step shows
    its elapsed time: converting takes seconds to a minute (int8 calibrates on images).
    The request is checked first, so that a refusal comes before any bar."""
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
    write_json(path.parent / f"{path.name}.check.json", record)
    return path, check
