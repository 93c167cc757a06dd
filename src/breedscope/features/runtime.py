"""The frozen backbone's forward pass for feature extraction, through the fastest runtime here.

LiteRT (the ``ai-edge-litert`` package) with its XNNPACK delegate runs MobileNetV2 about 2.4
times as fast as Keras' ``predict_on_batch`` on the CPUs breedscope is built on
(``benchmarks/extraction.py``). ``train.feature_runtime`` chooses: ``auto`` (LiteRT where it is
installed, agrees with Keras and the run is large enough to repay converting; otherwise Keras),
``litert`` or ``keras``.

The backbone is converted once per extractor (backbone, weights, size, preprocessing) and kept
beside its features; when it is built, its features are compared with Keras' on a few images and
the largest difference is stored with it (``backbone.check.json``) and recorded in every run
that uses it. A conversion that does not agree within :data:`TOLERANCE` is not used.
Prediction converts a run's whole classifier the same way (:class:`Conversion`,
:mod:`breedscope.inference.runtime`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.core import locks, quiet
from breedscope.core.atomic import atomic_path, write_json
from breedscope.core.errors import ConfigError
from breedscope.core.progress import console

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

RUNTIMES = ("auto", "litert", "keras")
# Largest absolute difference from Keras' features accepted from a converted backbone. Pooled
# MobileNetV2 features are about 0.3 in magnitude; LiteRT's differ by about 3e-5 (float
# arithmetic in another order).
TOLERANCE = 1e-3
CHECK_IMAGES = 8
KERAS_BATCH = 32  # predict_on_batch's graph is traced for one batch shape: every batch is this
LITERT_BATCH = 8  # XNNPACK is as fast at 1-8 images as at 32, and small batches stay in cache
# Converting MobileNetV2 at 224 px and checking it takes 3-5 s on two cores, and saves Keras'
# own fixed costs and 3-8 ms an image: a first run of 113 images at 224 px was 1.5 s quicker with
# Keras, one of 351 images 1.6 s quicker with LiteRT (docs/benchmarks.md). ``auto`` converts for
# runs that embed at least this many images' worth of 224 px work; smaller runs use Keras.
WORTH_CONVERTING = 200


@dataclass(frozen=True)
class RuntimeCheck:
    """A converted backbone's features against Keras', on :data:`CHECK_IMAGES` images."""

    images: int
    max_abs_difference: float
    mean_abs_feature: float

    @property
    def agrees(self) -> bool:
        return self.max_abs_difference <= TOLERANCE


@dataclass(frozen=True)
class Forward:
    """Images (RGB [0, 255], float32, any batch length) in, pooled features out.

    ``maps``, when the runtime has it, gives the backbone's last feature maps (before pooling)
    for the same images: Grad-CAM of a frozen backbone needs no second copy of it in Keras.
    """

    runtime: str  # "keras" or "litert": part of the feature cache's key
    run: Callable[[np.ndarray], np.ndarray]
    check: RuntimeCheck | None = None
    maps: Callable[[np.ndarray], np.ndarray] | None = None

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return self.run(pixels)

    def record(self) -> dict:
        """What a run stores about the runtime that made its features."""
        return {"runtime": self.runtime, **({"check": asdict(self.check)} if self.check else {})}


def _fixed_batches(pixels: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Batches of exactly ``size`` float32 images (the last padded with zeros), and how many of
    each are real."""
    for start in range(0, len(pixels), size):
        chunk = pixels[start : start + size].astype(np.float32)
        count = len(chunk)
        if count < size:
            chunk = np.concatenate([chunk, np.zeros((size - count, *chunk.shape[1:]), np.float32)])
        yield chunk, count


def keras_forward(extractor: keras.Model) -> Forward:
    """Keras' compiled ``predict_on_batch`` (about twice the eager speed on a CPU), in batches of
    :data:`KERAS_BATCH`; a short batch is padded, as a new input shape would have TensorFlow
    trace the graph again (about half a second)."""

    def run(pixels: np.ndarray) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray(extractor.predict_on_batch(chunk))[:count]
                for chunk, count in _fixed_batches(pixels, KERAS_BATCH)
            ]
        )

    return Forward("keras", run)


def litert_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def worth_converting(images: int, image_size: int) -> bool:
    """Whether LiteRT repays converting the backbone for a run that embeds ``images`` images of
    ``image_size`` px (a forward pass costs about the square of the size). It depends on the run
    alone, never on what is cached, so one run always gets its features from one runtime."""
    return images * (image_size / 224) ** 2 >= WORTH_CONVERTING


def cpu_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def litert_forward(model_file: Path, image_size: int, check: RuntimeCheck | None = None) -> Forward:
    """The converted backbone in LiteRT's interpreter with XNNPACK on every core."""
    from ai_edge_litert.interpreter import Interpreter

    with quiet.native_output_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
        interpreter = Interpreter(model_path=str(model_file), num_threads=cpu_threads())
        source = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(source, [LITERT_BATCH, image_size, image_size, 3])
        interpreter.allocate_tensors()
    # Pooled features (rank 2) and the maps they pool (rank 4; conversions made by earlier
    # versions have the features alone, and Grad-CAM then runs the Keras backbone).
    outputs = {len(d["shape"]): d["index"] for d in interpreter.get_output_details()}

    def outputs_of(rank: int) -> Callable[[np.ndarray], np.ndarray]:
        def run(pixels: np.ndarray) -> np.ndarray:
            out = []
            for chunk, count in _fixed_batches(pixels, LITERT_BATCH):
                interpreter.set_tensor(source, chunk)
                interpreter.invoke()
                out.append(interpreter.get_tensor(outputs[rank])[:count].copy())
            return np.concatenate(out)

        return run

    return Forward("litert", outputs_of(2), check, outputs_of(4) if 4 in outputs else None)


def tflite_converter(model: keras.Model, *, signature: bool) -> tf.lite.TFLiteConverter:
    """TensorFlow's TFLite converter for ``model``'s inference call (``training=False``).

    Not ``from_keras_model``: it first exports the whole Keras model as a SavedModel, tracing it
    again and walking every layer's state, which is most of its time. The model is traced once
    instead. Without ``signature`` the trace is frozen in memory (MobileNetV2 converts in 2.9 s
    instead of 13 s here); with it, a SavedModel of the trace and the variables alone gives the
    file its ``serving_default`` signature (input ``rgb_0_255``, output ``output_0``) as before,
    in about half the time. Either way the file holds the operators and weights
    ``from_keras_model`` gives, and its outputs are bit-identical (see docs/benchmarks.md).
    """
    import tensorflow as tf

    name = model.inputs[0].name  # "rgb_0_255", see model.build_feature_extractor
    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=name)
    with quiet.native_output_silenced():
        inference = tf.function(lambda pixels: model(pixels, training=False)).get_concrete_function(spec)
    variables = tf.Module()
    variables.tracked = [v.value for v in model.weights]  # the tf.Variables behind Keras' own
    converter = tf.lite.TFLiteConverter.from_concrete_functions([inference], variables)
    converter.experimental_lower_to_saved_model = signature
    return converter


def convert_backbone(extractor: keras.Model, target: Path) -> None:
    """The Keras extractor as a float32 TFLite file, with the backbone's last feature maps as a
    second output."""
    import keras

    maps = extractor.get_layer("pool").input  # see model.build_feature_extractor
    convert_model(keras.Model(extractor.inputs, [extractor.output, maps], name=extractor.name), target)


def convert_model(model: keras.Model, target: Path) -> None:
    """``model``'s inference call as a float32 TFLite file (TensorFlow's converter; written
    atomically)."""
    with quiet.native_output_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = tflite_converter(model, signature=False).convert()
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


@dataclass(frozen=True)
class Conversion:
    """What is converted for LiteRT, how, and the setting that asks for it: the backbone for
    features (here), or a whole classifier for prediction (:mod:`breedscope.inference.runtime`)."""

    kind: str  # names the files (``<kind>.tflite``, ``<kind>.check.json``) and the messages
    make: Callable[[keras.Model, Path], None]
    setting: str  # the setting that chooses the runtime, as a user writes it
    kept: str  # where the conversion is kept, in words

    def model_file(self, directory: Path) -> Path:
        return directory / f"{self.kind}.tflite"

    def check_file(self, directory: Path) -> Path:
        return directory / f"{self.kind}.check.json"


BACKBONE = Conversion("backbone", convert_backbone, "train.feature_runtime", "kept with its features")


def check_images(image_size: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (noise blurred by upsampling), so that features are image-like."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (CHECK_IMAGES, 8, 8, 3)).astype(np.float32)
    repeat = -(-image_size // 8)
    return np.repeat(np.repeat(coarse, repeat, axis=1), repeat, axis=2)[:, :image_size, :image_size]


def compare(reference: Forward, candidate: Forward, image_size: int) -> RuntimeCheck:
    images = check_images(image_size)
    expected, got = reference(images), candidate(images)
    return RuntimeCheck(len(images), float(np.abs(expected - got).max()), float(np.abs(expected).mean()))


def already_converted(
    directory: Path, image_size: int, setting: str, conversion: Conversion = BACKBONE
) -> Forward | None:
    """The LiteRT forward pass :func:`choose` would give, when it needs neither Keras nor
    TensorFlow: the model was converted and agreed with Keras (``None`` otherwise). Features can
    then be computed, or images classified, while TensorFlow is still loading or never loaded."""
    if setting == "keras" or not litert_available() or not conversion.check_file(directory).is_file():
        return None
    forward = _stored_conversion(directory, image_size, conversion)
    return forward if forward is not None and forward.check is not None and forward.check.agrees else None


def _stored_conversion(directory: Path, image_size: int, conversion: Conversion) -> Forward | None:
    """The converted model kept in ``directory`` with its check, or ``None`` when either file
    is missing or unreadable (a truncated model, a damaged check): both are then removed, and
    the model is converted again, as a cache is rebuilt rather than failing a run."""
    model_file, check_file = conversion.model_file(directory), conversion.check_file(directory)
    try:
        check = RuntimeCheck(**json.loads(check_file.read_text(encoding="utf-8")))
        return litert_forward(model_file, image_size, check)
    except Exception:  # the interpreter raises ValueError or RuntimeError for a damaged file
        check_file.unlink(missing_ok=True)  # first: a check never outlives the model it speaks for
        model_file.unlink(missing_ok=True)
        return None


def converted(
    model: keras.Model, directory: Path, image_size: int, conversion: Conversion = BACKBONE
) -> Forward:
    """LiteRT's forward pass of ``model``, converted and checked against Keras once, then reused."""
    model_file, check_file = conversion.model_file(directory), conversion.check_file(directory)
    waiting = f"Another run is converting this {conversion.kind}; waiting."
    with locks.waiting(directory / f".{conversion.kind}.lock", waiting):
        forward = _stored_conversion(directory, image_size, conversion) if check_file.is_file() else None
        if forward is None:
            console.print(f"Converting the {conversion.kind} for LiteRT (once; {conversion.kept}).")
            conversion.make(model, model_file)
            check = compare(keras_forward(model), litert_forward(model_file, image_size), image_size)
            write_json(check_file, asdict(check))
            forward = litert_forward(model_file, image_size, check)
    return forward


def choose(
    model: keras.Model, setting: str, directory: Path, image_size: int, conversion: Conversion = BACKBONE
) -> Forward:
    """The forward pass ``setting`` asks for (``auto``, ``litert`` or ``keras``): with ``auto``,
    LiteRT where it is installed and its conversion agrees with Keras, otherwise Keras."""
    if setting == "keras" or (setting == "auto" and not litert_available()):
        return keras_forward(model)
    if not litert_available():
        raise ConfigError(
            f"{conversion.setting} is 'litert', but the ai-edge-litert package is not installed; "
            "`pip install ai-edge-litert`, or use 'auto' to fall back to Keras."
        )
    forward = converted(model, directory, image_size, conversion)
    assert forward.check is not None
    if forward.check.agrees:
        return forward
    message = (
        f"The LiteRT {conversion.kind}'s outputs differ from Keras' by up to "
        f"{forward.check.max_abs_difference:.2g} (more than {TOLERANCE:g})"
    )
    if setting == "litert":
        raise ConfigError(f"{message}; use {conversion.setting} 'keras' for this {conversion.kind}.")
    console.print(f"[yellow]warning:[/] {message}; Keras is used instead.")
    return keras_forward(model)


def tflite_predict(model_file: Path, images: np.ndarray) -> np.ndarray:
    """Class probabilities from a TFLite model, one image at a time (its batch size is fixed), in
    LiteRT's interpreter (TensorFlow's own, deprecated, where LiteRT has no wheel)."""
    with quiet.native_output_silenced(), warnings.catch_warnings():
        if litert_available():
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
