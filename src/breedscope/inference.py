"""Using a trained model: predicting new images and exporting the model for deployment."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope import manifest as manifest_module
from breedscope import rundir
from breedscope.atomic import write_json
from breedscope.datasets import store
from breedscope.errors import BreedscopeError
from breedscope.images import UnreadableImage, load_rgb
from breedscope.model import load_model
from breedscope.rundir import RunDir

if TYPE_CHECKING:
    import keras

FORMATS = ("keras", "savedmodel", "tflite")
CALIBRATION_IMAGES = 200  # int8 ranges from 40 training images per class of a 5-class run
MAX_ACCURACY_DROP = 0.01  # an export that loses more than a point of test accuracy is flagged


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    model: keras.Model
    classes: list[str]
    image_size: int


def load_run(run_dir: Path) -> TrainedRun:
    """A finished run's model, classes and input size, or a sentence saying what is missing."""
    directory = RunDir(run_dir)
    model_file = directory.model_file
    image_size = directory.config().model.image_size
    classes = directory.manifest().classes
    return TrainedRun(run_dir, load_model(model_file), classes, image_size)


@dataclass(frozen=True)
class Prediction:
    path: str
    top: list[tuple[str, float]]
    error: str = ""


def predict(run: TrainedRun, paths: list[Path], top: int = 3, batch_size: int = 32) -> list[Prediction]:
    """Top classes for each image; an unreadable or missing file gets an error, the rest still run."""
    results: dict[int, Prediction] = {}
    readable: list[tuple[int, np.ndarray]] = []
    for index, path in enumerate(paths):
        try:
            readable.append((index, load_rgb(path, run.image_size)))
        except FileNotFoundError:
            results[index] = Prediction(str(path), [], "file not found")
        except UnreadableImage as exc:
            results[index] = Prediction(str(path), [], exc.reason)
        except OSError as exc:
            results[index] = Prediction(str(path), [], f"cannot read ({exc.strerror or exc})")
    for start in range(0, len(readable), batch_size):
        chunk = readable[start : start + batch_size]
        batch = np.stack([image for _, image in chunk]).astype(np.float32)
        probabilities = np.asarray(run.model.predict_on_batch(batch))
        for (index, _), p in zip(chunk, probabilities, strict=True):
            order = np.argsort(-p)[:top]
            results[index] = Prediction(str(paths[index]), [(run.classes[i], float(p[i])) for i in order])
    return [results[i] for i in range(len(paths))]


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


def _run_images(run: TrainedRun, rows: list[manifest_module.Row], purpose: str) -> np.ndarray:
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
    return _run_images(run, rows, "int8 calibration")


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


def check_tflite(run: TrainedRun, model_file: Path) -> ExportCheck:
    """Predict the run's test split with the TFLite file and with the Keras model; compare."""
    manifest = manifest_module.read(run.run_dir)
    rows = manifest.split("test")
    images = _run_images(run, rows, "Checking the exported model")
    labels = np.array([manifest.classes.index(r.label) for r in rows])
    keras_p = np.concatenate(
        [np.asarray(run.model.predict_on_batch(images[i : i + 32])) for i in range(0, len(images), 32)]
    )
    lite_p = tflite_predict(model_file, images)
    return ExportCheck(
        images=len(rows),
        keras_accuracy=float(np.mean(keras_p.argmax(1) == labels)),
        exported_accuracy=float(np.mean(lite_p.argmax(1) == labels)),
        agreement=float(np.mean(keras_p.argmax(1) == lite_p.argmax(1))),
        max_probability_difference=float(np.abs(keras_p - lite_p).max()),
    )


def check_export_options(fmt: str, quantize: str | None) -> None:
    """Refuse a format or quantisation this module cannot write, before any work."""
    if fmt not in FORMATS:
        raise BreedscopeError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'.")
    if quantize not in (None, "int8") or (quantize and fmt != "tflite"):
        raise BreedscopeError("--quantize int8 works with --format tflite only.")


def export(run: TrainedRun, fmt: str, output: Path, representative: np.ndarray | None = None) -> Path:
    """Write the model as ``keras``, ``savedmodel`` or ``tflite`` (int8 when given sample images)."""
    if output.exists() and not output.is_dir():
        raise BreedscopeError(f"--output {output} is a file; pass a folder to write the export into.")
    output.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        target = output / rundir.MODEL
        shutil.copy(RunDir(run.run_dir).model_file, target)
        return target
    if fmt == "savedmodel":
        target = output / "savedmodel"
        run.model.export(str(target), format="tf_saved_model", verbose=False)
        return target
    if fmt == "tflite":
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_keras_model(run.model)
        name = "model.tflite"
        if representative is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]

            def samples():
                for image in representative:
                    yield [image[None].astype(np.float32)]

            converter.representative_dataset = samples
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            name = "model_int8.tflite"  # weights and activations int8; float input and output
        target = output / name
        target.write_bytes(converter.convert())
        return target
    raise BreedscopeError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'.")


def export_checked(
    run: TrainedRun, fmt: str, output: Path, quantize: str | None = None
) -> tuple[Path, ExportCheck | None]:
    """Export, and for a TFLite file measure it against the Keras model on the run's test split
    and record the figures beside it (``model_int8.tflite.check.json``)."""
    representative = representative_images(run) if quantize == "int8" else None
    path = export(run, fmt, output, representative)
    if fmt != "tflite":
        return path, None  # the same Keras model, saved in another container
    check = check_tflite(run, path)
    write_json(
        path.parent / f"{path.name}.check.json", {"file": path.name, "quantize": quantize, **check.to_json()}
    )
    return path, check


def tflite_predict(model_file: Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities from a TFLite model, one image at a time (its batch size is fixed).

    ``tf.lite.Interpreter`` is deprecated in favour of the separate LiteRT package; it still
    ships with TensorFlow and avoids a second runtime dependency until TensorFlow drops it.
    """
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(model_file))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(np.float32))
        interpreter.invoke()
        results.append(interpreter.get_tensor(out["index"])[0])
    return np.stack(results)
