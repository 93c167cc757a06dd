"""What a training works from: :func:`prepare` sets up the devices and the backbone before a
run directory exists; a :class:`Job` bundles that with the settings, the images and the run
directory, and is what the trainer and cross-validation receive."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from breedscope.config.settings import RunConfig
from breedscope.core import quiet
from breedscope.data.manifest import Manifest
from breedscope.features.augment import AugmentPreset
from breedscope.features.cache import FeatureCache
from breedscope.model.backbone import BackboneSpec, build_feature_extractor
from breedscope.runs.rundir import RunDir
from breedscope.training import distribute

if TYPE_CHECKING:
    import keras
    import tensorflow as tf


@dataclass
class Prepared:
    """What training starts from, set up before a run directory exists: seeded, on its devices,
    with the backbone built (so missing or wrong weights are refused before any file is written)."""

    strategy: tf.distribute.Strategy
    backbone: BackboneSpec
    extractor: keras.Model
    feature_cache: FeatureCache | None = None  # the cache :func:`features_ahead` filled, if it did


def prepare(config: RunConfig, backbone: BackboneSpec, cache: FeatureCache | None = None) -> Prepared:
    """Seed everything, choose the devices and build the feature extractor with its weights
    (``cache``: the feature cache :func:`features_ahead` filled, handed on to :func:`train`)."""
    quiet.load_tensorflow()
    import keras
    import tensorflow as tf

    strategy = distribute.strategy(config.train.strategy)  # first: it may set up TensorFlow's context
    keras.utils.set_random_seed(config.train.seed)
    random.seed(config.train.seed)
    tf.config.experimental.enable_op_determinism()
    distribute.set_precision(config.train.mixed_precision)
    # Several workers: features are each worker's own work, so the extractor stays outside the
    # strategy (a model made in its scope would make every forward pass a collective operation).
    scope = contextlib.nullcontext() if distribute.needs_custom_loop(strategy) else strategy.scope()
    with scope:
        extractor = build_feature_extractor(backbone, config.model)
    return Prepared(strategy, backbone, extractor, cache)


@dataclass(frozen=True)
class Job:
    """One training: its settings, the manifest and the folder its paths are relative to, the
    run directory it writes (checkpoints, history, TensorBoard), the augmentation preset and
    what :func:`prepare` set up. Cross-validation trains one per fold, each in its fold's folder."""

    config: RunConfig
    manifest: Manifest
    image_root: Path
    run: RunDir
    augmentation: AugmentPreset
    prepared: Prepared
