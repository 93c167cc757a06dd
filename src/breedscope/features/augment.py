"""The augmentation stage: albumentations pipelines, looked up by preset name, training images only.

Presets come from plugins (``breedscope_augmentations``); each view of each image gets its own
seed derived from the run seed, the image's content hash and the view number, so the same run
sees the same augmented pixels every time, on any machine.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import albumentations as A


@dataclass(frozen=True)
class AugmentPreset:
    """A named augmentation recipe.

    ``build`` returns the list of albumentations transforms; an empty list means no augmentation.
    """

    name: str
    description: str
    build: Callable[[], list[A.BasicTransform]]


class Augmenter:
    """Applies one preset reproducibly: ``augmenter(image, sha256, view)``."""

    def __init__(self, preset: AugmentPreset, seed: int) -> None:
        self.preset = preset
        self.seed = seed
        transforms = preset.build()
        self.is_identity = not transforms
        self.pipeline: A.Compose | None = None
        if transforms:  # without any, albumentations is not even imported
            import albumentations as A

            self.pipeline = A.Compose(transforms, seed=seed)
        # Seeding and applying must not interleave between the threads that load batches.
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray, sha256: str, view: int) -> np.ndarray:
        if self.pipeline is None:
            return image
        with self._lock:
            self.pipeline.set_random_seed(zlib.crc32(f"{self.seed}:{sha256}:{view}".encode()))
            return self.pipeline(image=image)["image"]
