"""The feature cache: computed once per image and view, whoever asks first."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from breedscope.features import FeatureCache, read
from breedscope.manifest import Row


class CountingExtractor:
    """Stands in for a backbone: counts the images it is asked to embed, and is slow enough that
    two callers overlap."""

    input_shape = (None, 8, 8, 3)

    def __init__(self) -> None:
        self.images = 0
        self.lock = threading.Lock()

    def predict_on_batch(self, pixels: np.ndarray) -> np.ndarray:
        with self.lock:
            self.images += len(pixels)
        time.sleep(0.05)
        return pixels.mean(axis=(1, 2))


def _rows(count: int) -> list[Row]:
    return [Row(f"{i}.png", "a", "train", f"{i}", f"{i:064x}", "0" * 16, 8, 8, "") for i in range(count)]


def test_two_callers_needing_the_same_features_compute_them_once(tmp_path: Path) -> None:
    rows = _rows(40)
    extractor = CountingExtractor()

    def load(row: Row) -> np.ndarray:
        return np.full((8, 8, 3), int(row.path.split(".")[0]), np.uint8)

    results: list[list[Path]] = []

    def ask() -> None:
        results.append(FeatureCache(tmp_path / "features", extractor, batch_size=8).files(rows, load))

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert extractor.images == 40  # not 80: the second caller waited and reused the files
    assert results[0] == results[1]
    assert read(results[0])[:, 0].tolist() == list(range(40))
