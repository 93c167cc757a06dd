"""Feeding images to the trainer: decoding (once, cached), epoch order, and batches that
every replica of a distribution strategy can take."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from breedscope.core.atomic import atomic_path
from breedscope.core.errors import DataError
from breedscope.data.images import UnreadableImage, load_rgb
from breedscope.data.manifest import Row
from breedscope.features.augment import Augmenter
from breedscope.features.cache import FeatureSet, read_views


class ImageLoader:
    """Decodes a manifest row's image at the model's input size.

    With ``cache_dir``, each decoded and resized image is kept as a ``.npy`` file keyed by its
    content hash, so training on images (no feature cache, fine-tuning) decodes each file once,
    not once per epoch, while memory holds only the current batches.
    """

    def __init__(self, root: Path, size: int, cache_dir: Path | None = None) -> None:
        self.root = root
        self.size = size
        self.cache_dir = cache_dir

    def _decode(self, row: Row) -> np.ndarray:
        try:
            return load_rgb(self.root / row.path, self.size)
        except (UnreadableImage, FileNotFoundError) as exc:
            raise DataError(
                f"{row.path} changed or vanished since validation ({exc}); run "
                "`breedscope fetch` again with --force."
            ) from exc

    def _read_cached(self, cached: Path) -> np.ndarray | None:
        """A decoded image from the cache, or ``None`` when the file is not one (cut short by a
        full disk, damaged): the cache is rebuilt, never fatal."""
        try:
            image = np.load(cached, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None
        if image.dtype != np.uint8 or image.shape != (self.size, self.size, 3):
            return None
        return image

    def __call__(self, row: Row) -> np.ndarray:
        if self.cache_dir is None:
            return self._decode(row)
        cached = self.cache_dir / row.sha256[:2] / f"{row.sha256}.npy"
        if cached.is_file():
            kept = self._read_cached(cached)
            if kept is not None:
                return kept
        image = self._decode(row)  # not cached yet, or the cached file is damaged: decoded anew
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
            np.save(handle, image)
        return image


def epoch_order(labels: np.ndarray, seed: int, epoch: int, oversample: bool) -> np.ndarray:
    """Training indices for one epoch: shuffled, and with minority classes repeated if asked."""
    rng = np.random.default_rng([seed, epoch])
    if oversample:
        counts = np.bincount(labels)
        largest = counts.max()
        parts = [
            rng.choice(np.flatnonzero(labels == c), size=largest, replace=counts[c] < largest)
            for c in range(len(counts))
            if counts[c] > 0
        ]
        indices = np.concatenate(parts)
    else:
        indices = np.arange(len(labels))
    return rng.permutation(indices)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Integer labels as float32 one-hot targets, as categorical cross-entropy takes them."""
    return np.eye(n_classes, dtype=np.float32)[labels]


@dataclass(frozen=True)
class BatchPlan:
    """Which images one epoch shows, in which batches, with which augmentation."""

    rows: list[Row]
    labels: np.ndarray
    order: np.ndarray
    slices: list[slice]
    augmenter: Augmenter | None
    epoch: int
    n_classes: int


@cache
def _image_batches_class() -> type:
    import keras

    class ImageBatches(keras.utils.PyDataset):
        """A Keras PyDataset of (augmented) images following a :class:`BatchPlan`."""

        def __init__(self, plan: BatchPlan, loader: ImageLoader) -> None:
            # Two threads decode (Pillow releases the GIL) and queue batches ahead of the model.
            super().__init__(workers=2, use_multiprocessing=False, max_queue_size=4)
            self.plan, self.loader = plan, loader

        def __len__(self) -> int:
            return len(self.plan.slices)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            plan = self.plan
            chosen = plan.order[plan.slices[index]]
            images = []
            for i in chosen:
                image = self.loader(plan.rows[i])
                if plan.augmenter is not None:
                    image = plan.augmenter(image, plan.rows[i].sha256, plan.epoch)
                images.append(image)
            return np.stack(images).astype(np.float32), one_hot(plan.labels[chosen], plan.n_classes)

    return ImageBatches


def image_batches(plan: BatchPlan, loader: ImageLoader) -> object:
    return _image_batches_class()(plan, loader)


@dataclass(frozen=True)
class FeaturePlan:
    """One epoch over cached features: ``features[view]`` holds every image seen through ``view``."""

    features: list[FeatureSet]
    labels: np.ndarray
    order: np.ndarray
    view_of: np.ndarray  # the view each position of ``order`` shows
    slices: list[slice]
    n_classes: int


@cache
def _feature_batches_class() -> type:
    import keras

    class FeatureBatches(keras.utils.PyDataset):
        """Batches of cached features, read from disk as they are needed."""

        def __init__(self, plan: FeaturePlan) -> None:
            super().__init__()
            self.plan = plan

        def __len__(self) -> int:
            return len(self.plan.slices)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            plan = self.plan
            chosen, views = plan.order[plan.slices[index]], plan.view_of[plan.slices[index]]
            x = read_views(plan.features, chosen, views)
            return x, one_hot(plan.labels[chosen], plan.n_classes)

    return FeatureBatches


def feature_batches(plan: FeaturePlan) -> object:
    return _feature_batches_class()(plan)


def in_memory_batches(x: np.ndarray, y: np.ndarray, batch: int) -> object:
    """Arrays already in memory as a ``tf.data`` pipeline. Given bare arrays, Keras builds a new
    pipeline in every ``fit`` call, which doubles the cost of the one-epoch calls made here."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).prefetch(tf.data.AUTOTUNE)
