"""The backbone: a plugin's convolutional network with its own preprocessing, pooled into features.

The extractor takes RGB pixels in [0, 255]; preprocessing lives inside it, so training,
predicting, exporting and the feature cache all see exactly the same inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedscope.config.settings import ModelConfig
from breedscope.core.errors import BreedscopeError, ConfigError

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class BackboneSpec:
    """A convolutional backbone, as a plugin registers it.

    Attributes:
        name: the value of ``model.backbone``.
        build: ``build(image_size, alpha, weights)`` returns a Keras model without its top,
            taking preprocessed pixels; ``weights`` is ``"imagenet"``, ``None`` or a file path.
        preprocessing: ``preprocessing(pixel_range)`` returns a Keras layer that maps RGB
            [0, 255] to what ``build``'s model expects.
        weights_file: the file name Keras caches ImageNet weights under, for error messages.
    """

    name: str
    description: str
    build: Callable[[int, float, str | None], keras.Model]
    preprocessing: Callable[[str], keras.layers.Layer]
    weights_file: Callable[[int, float], str] = lambda size, alpha: "(see Keras applications)"


def weights_argument(weights: str) -> str | None:
    """``model.weights`` as Keras takes it: ``None``, ``"imagenet"`` or an existing file's path."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    if not Path(weights).expanduser().is_file():
        raise BreedscopeError(f"model.weights: the weights file {weights} does not exist.")
    return str(Path(weights).expanduser())


def build_feature_extractor(spec: BackboneSpec, config: ModelConfig) -> keras.Model:
    """RGB [0, 255] in, pooled backbone features out."""
    import keras

    weights = weights_argument(config.weights)
    try:
        base = spec.build(config.image_size, config.alpha, weights)
    except Exception as exc:
        if isinstance(exc, BreedscopeError) or weights is None:
            raise
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if weights != "imagenet":
            raise BreedscopeError(
                f"model.weights: {weights} could not be loaded into {spec.name} at alpha {config.alpha} "
                f"and {config.image_size} px ({detail[:160]}); pass a Keras weights file (.h5) made "
                "for this backbone and size, 'imagenet' or 'none'."
            ) from exc
        if isinstance(exc, ValueError):  # Keras refuses the request itself: no such weights exist
            raise ConfigError(
                f"{spec.name} has no ImageNet weights at alpha {config.alpha} and {config.image_size} px "
                f"({detail[:200]}); choose a model.alpha and model.image_size they exist for, or "
                "--weights none to train from scratch."
            ) from exc
        file_name = spec.weights_file(config.image_size, config.alpha)
        raise BreedscopeError(
            f"The ImageNet weights for {spec.name} could not be downloaded ({exc}). Either connect "
            f"to the internet once, pass a weights file with --weights PATH, or put {file_name} "
            "in $KERAS_HOME/models/ (default ~/.keras/models/)."
        ) from exc
    base.trainable = config.train_base
    if config.train_base and weights is None:
        # Trained from scratch, BatchNorm's moving statistics must settle within a short run;
        # Keras applications use momentum 0.999, which takes thousands of steps.
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    inputs = keras.Input((config.image_size, config.image_size, 3), name="rgb_0_255")
    x = spec.preprocessing(config.pixel_range)(inputs)
    # training=False keeps BatchNorm in inference mode even when the base is later unfrozen.
    x = base(x, training=False if not config.train_base else None)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name=f"{spec.name}_features")
