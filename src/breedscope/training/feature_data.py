"""The head's data when the backbone is frozen: its features, computed once per image and view
by the fastest runtime that agrees with Keras and kept in the feature cache, then served epoch by
epoch (one view of each training image, chosen from the seed and the epoch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from breedscope.config.settings import RunConfig
from breedscope.core import devices, quiet
from breedscope.core.paths import features_dir
from breedscope.data.manifest import Manifest, Row
from breedscope.features import runtime
from breedscope.features.augment import Augmenter, AugmentPreset
from breedscope.features.batching import batch_slices
from breedscope.features.cache import FeatureCache, FeatureSet, extractor_key
from breedscope.features.loading import (
    FeaturePlan,
    ImageLoader,
    epoch_order,
    feature_batches,
    in_memory_batches,
    one_hot,
)
from breedscope.training.job import Prepared


@dataclass
class Splits:
    """The manifest's splits as rows and integer labels."""

    classes: list[str]
    rows: dict[str, list[Row]]
    labels: dict[str, np.ndarray]

    @classmethod
    def of(cls, manifest: Manifest) -> Splits:
        classes = manifest.classes
        index_of = {name: i for i, name in enumerate(classes)}
        rows = {name: manifest.split(name) for name in ("train", "val", "test")}
        labels = {
            name: np.array([index_of[r.label] for r in rs], dtype=np.int64) for name, rs in rows.items()
        }
        return cls(classes, rows, labels)


def uses_feature_cache(config: RunConfig) -> bool:
    """Whether the run trains its head on cached features of a frozen backbone."""
    return config.train.feature_cache and not config.model.train_base


def tests_on_features(config: RunConfig) -> bool:
    """Whether the test split is predicted from cached features: fine-tuned models see images."""
    return uses_feature_cache(config) and not config.train.fine_tune_epochs


def runtime_setting(config: RunConfig, splits: Splits, views: int) -> str:
    """``train.feature_runtime``, with ``auto`` settled to Keras where LiteRT cannot help: a
    visible GPU (Keras runs the backbone there many times faster than LiteRT on the CPU), a
    float16 graph, or a run too small to repay converting the backbone."""
    setting = config.train.feature_runtime
    if setting != "auto":
        return setting
    if config.train.mixed_precision or devices.gpus():
        return "keras"  # a float16 graph stays with Keras; a GPU runs Keras' backbone
    rows = splits.rows
    embedded = len(rows["train"]) * views + len(rows["val"]) + len(rows["test"])
    return setting if runtime.worth_converting(embedded, config.model.image_size) else "keras"


def extractor_dir(config: RunConfig, backbone: str) -> Path:
    return features_dir() / extractor_key(backbone, config.model, config.train.seed)


def feature_cache(config: RunConfig, prepared: Prepared, splits: Splits, views: int) -> FeatureCache:
    """The cache of the frozen backbone's features, made by the runtime ``train.feature_runtime``
    asks for (or the fastest that agrees with Keras): the one features were computed ahead in,
    if they were."""
    if prepared.feature_cache is not None:
        return prepared.feature_cache
    backbone, extractor = prepared.backbone, prepared.extractor
    size = config.model.image_size
    key_dir = extractor_dir(config, backbone.name)
    forward = runtime.choose(extractor, runtime_setting(config, splits, views), key_dir, size)
    return FeatureCache(key_dir / forward.runtime, forward, size)


def augmented_views(config: RunConfig, augmentation: AugmentPreset) -> tuple[Augmenter | None, int]:
    """The augmenter training images go through (``None`` for none) and how many views of each."""
    augmenter = Augmenter(augmentation, config.train.seed)
    if augmenter.is_identity:
        return None, 1
    return augmenter, config.augment.views


def train_features(
    cache: FeatureCache,
    rows: dict[str, list[Row]],
    loader: ImageLoader,
    augmenter: Augmenter | None,
    views: int,
) -> tuple[list[FeatureSet], FeatureSet | None]:
    """Each training view's and validation's features, computed where the cache lacks them
    (every view an image lacks from one decoding of it)."""
    label = "Features: train" if views == 1 else f"Features: train, {views} views"
    train_sets = cache.features_of_views(rows["train"], loader, augmenter, range(views), label)
    val_set = cache.features(rows["val"], loader, label="Features: val") if rows["val"] else None
    return train_sets, val_set


def features_for_testing(
    cache: FeatureCache, rows: list[Row], loader: ImageLoader, split: str = "test"
) -> FeatureSet:
    return cache.features(rows, loader, label=f"Features: {split}")


def features_ahead(
    config: RunConfig, manifest: Manifest, image_root: Path, backbone: str, augmentation: AugmentPreset
) -> FeatureCache | None:
    """Compute a frozen run's features of every split before training needs TensorFlow, while
    TensorFlow loads in a background thread: LiteRT needs neither it nor Keras once the backbone
    is converted (the first run converts it, and computes its features in :func:`train`). The
    two share the cores, and together take about a second less than one after the other (PBC);
    :func:`train` then finds every feature in the cache, which is returned (``None`` when
    nothing was computed).

    Nothing happens for runs whose features come from Keras, that train the backbone, that
    cross-validate, or that train on several machines (whose start waits for the other workers
    through TensorFlow).
    """
    if not uses_feature_cache(config) or config.cv.folds or config.train.strategy == "multiworker":
        return None
    size = config.model.image_size
    key_dir = extractor_dir(config, backbone)
    splits = Splits.of(manifest)
    augmenter, views = augmented_views(config, augmentation)
    forward = runtime.already_converted(key_dir, size, runtime_setting(config, splits, views))
    if forward is None:
        return None
    cache = FeatureCache(key_dir / forward.runtime, forward, size)
    loader = ImageLoader(image_root, size)
    with quiet.tensorflow_loading_behind():
        train_features(cache, splits.rows, loader, augmenter, views)
        if tests_on_features(config):
            features_for_testing(cache, splits.rows["test"], loader)
    return cache


@dataclass
class FeatureEpochs:
    """The head's data on cached features: every epoch's batches (one view of each training
    image, chosen from the seed and epoch) and validation's.

    Within ``train.feature_memory_mb`` the vectors sit in memory and feed a ``tf.data``
    pipeline (fastest); beyond it each batch reads just its vectors from the shards, so memory
    stays bounded."""

    train_sets: list[FeatureSet]  # one per augmented view
    val_set: FeatureSet | None
    splits: Splits
    config: RunConfig
    cut: int  # batches are cut to a multiple of this many replicas
    train_table: np.ndarray | None = None  # views x images x features, when in memory
    val_table: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        cache: FeatureCache,
        dim: int,
        splits: Splits,
        loader: ImageLoader,
        augmenter: Augmenter | None,
        views: int,
        config: RunConfig,
        cut: int,
    ) -> FeatureEpochs:
        """Each training view's and validation's features, computed where the cache lacks them."""
        train_sets, val_set = train_features(cache, splits.rows, loader, augmenter, views)
        data = cls(train_sets, val_set, splits, config, cut)
        vectors = len(train_sets[0]) * views + (len(val_set) if val_set is not None else 0)
        if vectors * dim * 4 <= config.train.feature_memory_mb * 2**20:
            data.train_table = np.stack([features.read() for features in train_sets])
            data.val_table = val_set.read() if val_set is not None else None
        return data

    def _batches(
        self, split: str, sets: list[FeatureSet], order: np.ndarray, view_of: np.ndarray, drop: bool
    ) -> object:
        labels, batch = self.splits.labels[split], self.config.train.batch_size
        n_classes = len(self.splits.classes)
        if self.train_table is not None:
            table = self.train_table if split == "train" else self.val_table[None]
            return in_memory_batches(table[view_of, order], one_hot(labels[order], n_classes), batch)
        slices = batch_slices(len(order), batch, self.cut, drop_remainder=drop)
        return feature_batches(FeaturePlan(sets, labels, order, view_of, slices, n_classes))

    def epoch(self, epoch: int) -> dict:
        seed, views = self.config.train.seed, len(self.train_sets)
        oversample = self.config.balance.policy == "oversample"
        order = epoch_order(self.splits.labels["train"], seed, epoch, oversample)
        view_of = np.random.default_rng([seed, epoch, 1]).integers(0, views, size=len(order))
        return {"x": self._batches("train", self.train_sets, order, view_of, True), "shuffle": False}

    @property
    def validation(self) -> object | None:
        if self.val_set is None:
            return None
        count = len(self.val_set)
        return self._batches("val", [self.val_set], np.arange(count), np.zeros(count, int), self.cut > 1)
