"""Using a trained model: predicting new images and exporting the model for deployment."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from breedscope import manifest as manifest_module
from breedscope.datasets import store
from breedscope.errors import BreedscopeError
from breedscope.images import UnreadableImage, load_rgb
from breedscope.model import load_model

if TYPE_CHECKING:
    import keras

FORMATS = ("keras", "savedmodel", "tflite")


@dataclass(frozen=True)
class TrainedRun:
    run_dir: Path
    model: keras.Model
    classes: list[str]
    image_size: int


def load_run(run_dir: Path) -> TrainedRun:

    model_file = run_dir / "model.keras"
    if not model_file.is_file():
        raise BreedscopeError(f"{run_dir} has no model.keras; the run did not finish (see status.json).")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    classes = json.loads((run_dir / "manifest.json").read_text())["classes"]
    return TrainedRun(run_dir, load_model(model_file), classes, config["model"]["image_size"])


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


def representative_images(run: TrainedRun, count: int = 100) -> np.ndarray:
    """Training images of the run, from every class, for int8 calibration."""
    manifest = manifest_module.read(run.run_dir)
    dataset = store.load(manifest.header["dataset"]["name"])
    if dataset is None:
        raise BreedscopeError("int8 calibration needs the run's training images; fetch its dataset again.")
    rows = calibration_rows(manifest.split("train"), count)
    return np.stack([load_rgb(dataset.image_root / r.path, run.image_size) for r in rows]).astype(np.float32)


def export(run: TrainedRun, fmt: str, output: Path, representative: np.ndarray | None = None) -> Path:
    """Write the model as ``keras``, ``savedmodel`` or ``tflite`` (int8 when given sample images)."""
    output.mkdir(parents=True, exist_ok=True)
    if fmt == "keras":
        target = output / "model.keras"
        shutil.copy(run.run_dir / "model.keras", target)
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
