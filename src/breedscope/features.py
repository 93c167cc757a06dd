"""The feature cache: a frozen backbone's pooled output, computed once per image and view.

With the base frozen, an image's features never change between epochs, so the head trains
on these vectors instead of pushing every image through the backbone every epoch. Files are
keyed by what determines them (backbone, weights, size, preprocessing; augmentation preset,
seed and view number; the image's content hash), so any later run on the same images reuses
them, whatever its manifest.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope import locks
from breedscope.atomic import atomic_path
from breedscope.batching import batch_slices
from breedscope.hashing import sha256_file, short_hash
from breedscope.images import DECODER_VERSION
from breedscope.manifest import Row
from breedscope.progress import progress_bar

if TYPE_CHECKING:
    import keras

    from breedscope.augment import Augmenter
    from breedscope.config import ModelConfig

ImageLoader = Callable[[Row], np.ndarray]

# Decoded 8-bit images waiting for the backbone at most (13 batches of 32 at 224 px).
DECODE_AHEAD_BYTES = 64 * 2**20


def weights_identity(weights: str) -> str:
    """What identifies a weights setting: a file by its content, ``none`` by nothing (seeded)."""
    if weights in ("imagenet", "none"):
        return weights
    return "file-" + sha256_file(Path(weights).expanduser())[:16]


def extractor_key(backbone: str, model: ModelConfig, seed: int) -> str:
    parts = {
        "backbone": backbone,
        "weights": weights_identity(model.weights),
        "alpha": model.alpha,
        "size": model.image_size,
        "pixels": model.pixel_range,
        "decoder": DECODER_VERSION,
        # Random weights differ per seed; ImageNet and file weights do not.
        "seed": seed if model.weights == "none" else None,
    }
    return short_hash(json.dumps(parts, sort_keys=True), 16)


def view_key(augmenter: Augmenter | None) -> str:
    if augmenter is None or augmenter.is_identity:
        return "clean"
    return f"{augmenter.preset.name}-{short_hash(str(augmenter.seed), 8)}"


class FeatureCache:
    def __init__(self, directory: Path, extractor: keras.Model, batch_size: int = 32) -> None:
        self.directory = directory
        self.extractor = extractor
        self.batch_size = batch_size

    def _file(self, row: Row, views: str, view: int) -> Path:
        suffix = "" if views == "clean" else f"_{view}"
        return self.directory / views / row.sha256[:2] / f"{row.sha256}{suffix}.npy"

    def files(
        self,
        rows: Sequence[Row],
        load: ImageLoader,
        augmenter: Augmenter | None = None,
        view: int = 0,
        label: str = "Extracting features",
    ) -> list[Path]:
        """The feature files of ``rows`` (one view), computing only those not cached yet."""
        views = view_key(augmenter)
        files = [self._file(row, views, view) for row in rows]
        if all(f.is_file() for f in files):
            return files
        # Two runs needing the same features: one computes them, the other waits and reuses them.
        waiting = "Another breedscope run is computing these features; waiting to reuse them."
        with locks.waiting(self.directory / views / f".view-{view}.lock", waiting):
            missing = [i for i, f in enumerate(files) if not f.is_file()]
            if missing:
                self._compute(
                    [rows[i] for i in missing], [files[i] for i in missing], load, augmenter, view, label
                )
        return files

    def _forward(self, pixels: np.ndarray) -> np.ndarray:
        """The extractor's output for one batch. predict_on_batch runs a compiled graph (about
        twice the eager speed on a CPU); a short last batch is padded to the full batch size, as
        a new input shape would have TensorFlow trace that graph again (about half a second)."""
        count = len(pixels)
        if count < self.batch_size:
            padding = np.zeros((self.batch_size - count, *pixels.shape[1:]), pixels.dtype)
            pixels = np.concatenate([pixels, padding])
        return np.asarray(self.extractor.predict_on_batch(pixels.astype(np.float32)))[:count]

    def _compute(
        self,
        rows: Sequence[Row],
        files: Sequence[Path],
        load: ImageLoader,
        augmenter: Augmenter | None,
        view: int,
        label: str,
    ) -> None:
        def prepare(chunk: Sequence[Row]) -> np.ndarray:
            images = [load(row) for row in chunk]
            if augmenter is not None:
                images = [
                    augmenter(image, row.sha256, view) for row, image in zip(chunk, images, strict=True)
                ]
            return np.stack(images)

        slices = batch_slices(len(rows), self.batch_size)
        row_batches = [rows[s] for s in slices]
        file_batches = [files[s] for s in slices]
        size = self.extractor.input_shape[1] or 224
        ahead = max(2, DECODE_AHEAD_BYTES // (self.batch_size * size * size * 3))
        # Decoding (Pillow releases the GIL) runs ahead of the forward passes: the first pass
        # traces the graph on one core for about a second while the other core decodes.
        with ThreadPoolExecutor(max_workers=2) as pool, progress_bar(label, len(rows)) as advance:
            pending = deque(pool.submit(prepare, batch) for batch in row_batches[:ahead])
            try:
                for index, chunk_files in enumerate(file_batches):
                    pixels = pending.popleft().result()
                    if index + ahead < len(row_batches):
                        pending.append(pool.submit(prepare, row_batches[index + ahead]))
                    vectors = self._forward(pixels)
                    for path, vector in zip(chunk_files, vectors, strict=True):
                        path.parent.mkdir(parents=True, exist_ok=True)
                        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                            np.save(handle, vector.astype(np.float32))
                    advance(len(chunk_files))
            finally:
                for future in pending:
                    future.cancel()  # after an error, decode nothing more


def read(files: Sequence[Path]) -> np.ndarray:
    """Stack feature files into one array: call it per batch, never for a whole dataset."""
    return np.stack([np.load(f) for f in files])
