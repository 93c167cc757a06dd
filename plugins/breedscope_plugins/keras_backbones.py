"""More backbones for comparisons like the breast study's: ResNet50 and DenseNet121 from Keras
applications, and an AlexNet-style network (which has no ImageNet weights in Keras)."""

from __future__ import annotations

from breedscope import BackboneSpec, BreedscopeError, hookimpl

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resnet50(image_size: int, alpha: float, weights: str | None):
    import keras

    return keras.applications.ResNet50(
        include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
    )


def _caffe(pixel_range: str):
    from breedscope import ReverseChannelsAndCenter

    return ReverseChannelsAndCenter(name="resnet50_preprocess")


def _densenet121(image_size: int, alpha: float, weights: str | None):
    import keras

    return keras.applications.DenseNet121(
        include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
    )


def _torch(pixel_range: str):
    import keras

    return keras.Sequential(
        [
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Normalization(mean=IMAGENET_MEAN, variance=[s**2 for s in IMAGENET_STD]),
        ],
        name="densenet121_preprocess",
    )


def _alexnet(image_size: int, alpha: float, weights: str | None):
    """Krizhevsky et al. 2012, with BatchNorm in place of local response normalisation."""
    import keras
    from keras import layers

    if weights == "imagenet":
        raise BreedscopeError(
            "Keras has no ImageNet weights for alexnet: use --weights none, or a weights file you trained."
        )
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for filters, kernel, stride, pool in (
        (96, 11, 4, True),
        (256, 5, 1, True),
        (384, 3, 1, False),
        (384, 3, 1, False),
        (256, 3, 1, True),
    ):
        x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        if pool and x.shape[1] >= 3:
            x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    model = keras.Model(inputs, x, name="alexnet")
    if weights is not None:
        model.load_weights(weights)
    return model


def _unit(pixel_range: str):
    import keras

    return keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="alexnet_preprocess")


@hookimpl
def breedscope_backbones() -> list[BackboneSpec]:
    return [
        BackboneSpec(
            name="resnet50",
            description="ResNet50 (Keras applications), ImageNet weights, 23.6M parameters",
            build=_resnet50,
            preprocessing=_caffe,
            weights_file=lambda size, alpha: "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        BackboneSpec(
            name="densenet121",
            description="DenseNet121 (Keras applications), ImageNet weights, 7.0M parameters",
            build=_densenet121,
            preprocessing=_torch,
            weights_file=lambda size, alpha: "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        ),
        BackboneSpec(
            name="alexnet",
            description="AlexNet-style network (BatchNorm for LRN); no ImageNet weights, use weights none",
            build=_alexnet,
            preprocessing=_unit,
        ),
    ]
