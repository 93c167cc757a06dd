"""Classifying through the fastest runtime that agrees with a run's Keras model.

A run's classifier (preprocessing, backbone, head: frozen or fine-tuned alike) is converted whole
to a float32 LiteRT file the first time it predicts, checked against Keras on the same images
extraction's conversions are checked on (:func:`breedscope.features.runtime.compare`), and
kept under ``BREEDSCOPE_HOME/converted/<hash of the model file and the package versions>``.
From then on prediction needs neither Keras nor TensorFlow: no start-up of several seconds, and
a seventh of the memory (0.2 GB against 1.4 for PBC's model, docs/benchmarks.md).

The conversion is kept in the cache, not the run directory, because a run directory may be
someone else's, read-only or shared; the model file's hash names it, so a retrained or replaced
``model.keras`` is converted again, never answered by a stale file. ``auto`` never depends on
how many images are asked for: an image gets the same probabilities whatever it is predicted
with.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from breedscope.core import paths, versions
from breedscope.core.errors import ConfigError
from breedscope.core.hashing import sha256_file, short_hash
from breedscope.features import runtime
from breedscope.features.runtime import Conversion, Forward

if TYPE_CHECKING:
    import keras

RUNTIMES = runtime.RUNTIMES
CLASSIFIER = Conversion("model", runtime.convert_model, "--runtime", "kept in the cache")


def check_runtime(setting: str) -> None:
    if setting not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, not {setting!r}.")


def conversion_dir(model_file: Path) -> Path:
    """Where the LiteRT conversion of this model file is kept: named by the file's content and
    the versions of the packages that convert and check it (as the feature cache is), so that an
    upgrade converts again rather than trust a check made by other code."""
    made_by = versions.package_versions(versions.BACKBONE)
    return paths.converted_dir() / short_hash(json.dumps([sha256_file(model_file), made_by]), 16)


def classifier_forward(
    model_file: Path, image_size: int, setting: str, keras_model: Callable[[], keras.Model]
) -> Forward:
    """Images (RGB [0, 255]) in, class probabilities out, through the runtime ``setting`` asks
    for: ``auto`` (LiteRT where it is installed and agrees with Keras, else Keras), ``litert``
    or ``keras``. ``keras_model`` is called only when Keras is needed: to predict, or to convert
    and check a model not converted before."""
    check_runtime(setting)
    directory = conversion_dir(model_file)
    ready = runtime.already_converted(directory, image_size, setting, CLASSIFIER)
    return ready or runtime.choose(keras_model(), setting, directory, image_size, CLASSIFIER)
