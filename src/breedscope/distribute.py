"""Choosing a ``tf.distribute`` strategy and the precision policy for a run."""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from breedscope.errors import BreedscopeError

if TYPE_CHECKING:
    import tensorflow as tf

# Split the CPU into this many logical devices (set before TensorFlow starts). It lets the
# mirrored strategy be exercised on a machine without GPUs, as the test suite does.
LOGICAL_CPUS_VARIABLE = "BREEDSCOPE_LOGICAL_CPUS"


def configure_devices() -> None:
    import tensorflow as tf

    count = int(os.environ.get(LOGICAL_CPUS_VARIABLE, "0") or 0)
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        # RuntimeError: devices were initialised earlier in this process; keep what exists.
        with contextlib.suppress(RuntimeError):
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )


def strategy(name: str) -> tf.distribute.Strategy:
    """``one``: the default device; ``mirrored``: every GPU (else every logical CPU);
    ``multiworker``: refused (see below); ``auto``: mirrored when there are several GPUs."""
    import tensorflow as tf

    configure_devices()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one"
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    # Two workers on 127.0.0.1 fail in every worker's first model.fit with Keras 3.15 and
    # TensorFlow 2.21 ("Attempt to convert a value (PerReplica...) to a Tensor"), even for a one-layer
    # model: keras-team/keras#20585, tensorflow/tensorflow#72388. Refused before any work is done.
    raise BreedscopeError(
        "train.strategy multiworker cannot train with Keras 3's model.fit in this TensorFlow (an upstream "
        "bug, keras-team/keras#20585); train on one machine: 'mirrored' uses every GPU it has."
    )


def set_precision(mixed: bool) -> None:
    import keras
    import tensorflow as tf

    if mixed and not tf.config.list_physical_devices("GPU"):
        raise BreedscopeError(
            "train.mixed_precision speeds up GPUs only; this machine has none, so leave it off."
        )
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
