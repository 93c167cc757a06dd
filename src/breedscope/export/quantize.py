"""int8 TFLite that keeps its model's decisions: full int8, or float for the few layers int8
hurts most, whichever moves the model's outputs least.

Post-training int8 sets each activation's range from calibration images. In MobileNetV2 a few
layers (the first depthwise convolution above all, whose channels' ranges differ by orders of
magnitude) lose far more than the rest; on the bccd preset's run full int8 changed the class of
one test image in five. TensorFlow's quantization debugger measures each layer's error against
float on calibration images (RMSE over the quantization step), and its selective quantization
keeps the worst layers in float. Each of :data:`FALLBACK_STEPS` is tried; the one whose
probabilities are closest to Keras' on held-out *training* images (the validation split, or
training images left out of calibration) is kept, the fewest float layers among near ties. The
test split, on which the export is checked afterwards, never chooses.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.core import quiet
from breedscope.features import runtime

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

FALLBACK_STEPS = (0, 4, 8, 12, 16, 24)  # layers kept in float, each tried
# The fewest float layers within this share of the least distortion win: each float layer makes
# the file larger and slower. Measured (2026-12-06, mean total variation on held-out training
# images, then test agreement): bccd 0.038/0.027/0.013 for 0/8/12 layers (80.6/95.8/98.6%),
# PBC 0.064/0.035/0.026 for 0/12/24 (96.5/97.4/97.4%): 12 layers in both, not 24 for PBC.
DISTORTION_SLACK = 0.4
RANKING_IMAGES = 16  # calibration images the per-layer errors are measured on


@dataclass(frozen=True)
class Int8Model:
    """The chosen model and how it was chosen (recorded beside the export)."""

    model: bytes
    float_layers: int  # layers kept in float
    quantized_layers: int  # layers the debugger measured
    holdout_images: int
    holdout_distortion: float  # mean total variation distance from Keras' probabilities

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "model"}

    def describe(self) -> str:
        kept = (
            "every layer int8"
            if not self.float_layers
            else f"{self.float_layers} of {self.quantized_layers} layers kept in float (those int8 hurt most)"
        )
        return (
            f"int8: {kept}; its probabilities differ from Keras' by {self.holdout_distortion:.3f} "
            f"(mean total variation) on {self.holdout_images} held-out training images"
        )


def int8_model(model: keras.Model, calibration: np.ndarray, holdout: np.ndarray) -> Int8Model:
    """``model`` as int8 TFLite (float input and output), calibrated on ``calibration`` images,
    with float fallback as the module describes, judged on ``holdout`` images."""
    import tensorflow as tf

    converter = runtime.tflite_converter(model, signature=True)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _samples(calibration)
    # int8 kernels, and float ones for the layers kept in float
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    reference = _keras_probabilities(model, holdout)
    tried: list[tuple[float, int, bytes]] = []
    with quiet.native_output_silenced():
        # Calibrated once: each variant only re-quantizes the calibrated model (20 s, not 100).
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=_samples(calibration[:RANKING_IMAGES])
        )
        ranked = _noisiest_layers(debugger)
        for kept in (k for k in FALLBACK_STEPS if k <= len(ranked)):
            debugger.options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=ranked[:kept])
            blob = debugger.get_nondebug_quantized_model()
            tried.append((_distortion(blob, holdout, reference), kept, blob))
    best = min(distortion for distortion, _, _ in tried)
    # The fewest float layers whose outputs are nearly the least distorted (DISTORTION_SLACK).
    distortion, kept, blob = next(t for t in tried if t[0] <= best * (1 + DISTORTION_SLACK))
    return Int8Model(blob, kept, len(ranked), len(holdout), distortion)


def _samples(images: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def samples() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [image[None].astype(np.float32)]

    return samples


def _noisiest_layers(debugger: tf.lite.experimental.QuantizationDebugger) -> list[str]:
    """The quantized tensors, worst first by RMSE over their quantization step on the debugger's
    images."""
    import csv
    import io

    debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    errors = []
    for row in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(row["scale"])
        if scale > 0:
            errors.append((float(row["mean_squared_error"]) ** 0.5 / scale, row["tensor_name"]))
    return [name for _, name in sorted(errors, key=lambda pair: -pair[0])]


def _keras_probabilities(model: keras.Model, images: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [np.asarray(model.predict_on_batch(images[i : i + 32])) for i in range(0, len(images), 32)]
    )


def _distortion(blob: bytes, images: np.ndarray, reference: np.ndarray) -> float:
    """How far the int8 model's class probabilities are from Keras' on ``images``: the mean total
    variation distance (half the summed absolute difference; 0 same, 1 disjoint). Held-out
    training images are classified confidently, so whether their class changes says little of
    unseen ones (full int8 kept every one of bccd's while changing a fifth of its test images);
    how far the probabilities move does (it tracked the test split's agreement there)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "candidate.tflite"
        path.write_bytes(blob)
        probabilities = runtime.tflite_predict(path, images)
    return float(0.5 * np.abs(probabilities - reference).sum(axis=1).mean())
