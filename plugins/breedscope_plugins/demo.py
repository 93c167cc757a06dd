"""The ``demo`` dataset: scikit-learn's bundled handwritten digits, written out as PNG files.

Needs no network, so ``breedscope run --dataset demo`` works on a fresh offline machine. The
8x8 originals are enlarged to 32x32 (bicubic), the smallest size validation accepts by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from breedscope import DatasetSpec, hookimpl
from breedscope_plugins.folder import scan

SIDE = 32


def materialize(target: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        folder = target / "digits" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        grey = (pixels / 16.0 * 255.0).astype(np.uint8)
        image = Image.fromarray(grey).resize((SIDE, SIDE), Image.Resampling.BICUBIC)
        image.save(folder / f"digit_{index:04d}.png")


@hookimpl
def breedscope_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="demo",
            description="1,797 handwritten digits bundled with scikit-learn (no download)",
            scan=scan,
            materialize=materialize,
            default_preset="demo",
            licence="BSD-3-Clause (scikit-learn; UCI optical digits)",
            homepage="https://scikit-learn.org/stable/datasets/toy_dataset.html#digits-dataset",
        )
    ]
