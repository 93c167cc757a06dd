"""The MobileNetV2 backbone from Keras applications (the studies' model)."""

from __future__ import annotations

from breedscope import BackboneSpec, hookimpl

IMAGENET_SIZES = (96, 128, 160, 192, 224)


def build(image_size: int, alpha: float, weights: str | None):
    import keras

    return keras.applications.MobileNetV2(
        input_shape=(image_size, image_size, 3), alpha=alpha, include_top=False, weights=weights
    )


def preprocessing(pixel_range: str):
    import keras

    if pixel_range == "unit":  # what some studies did; the ImageNet weights expect [-1, 1]
        return keras.layers.Rescaling(1 / 255.0, name="to_unit_range")
    return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="mobilenet_v2_preprocess")


def weights_file(image_size: int, alpha: float) -> str:
    size = image_size if image_size in IMAGENET_SIZES else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{size}_no_top.h5"


@hookimpl
def breedscope_backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name="mobilenet_v2",
            description="MobileNetV2 (Keras applications), ImageNet weights, 3.5M parameters at alpha 1",
            build=build,
            preprocessing=preprocessing,
            weights_file=weights_file,
        )
    ]
