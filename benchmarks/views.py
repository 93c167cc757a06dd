"""Augmented views of training images: each image decoded once for all its views, against once
per view (as breedscope did before it computed the views together).

A run caches ``augment.views`` augmented views of every training image (four by default, and in
the chest and breast presets). Both ways give the same vectors; the difference is decoding, which
for a Kaggle chest X-ray (about 2,000 px) costs more than the backbone's forward pass. Measured on
PBC's own 360 px JPEGs, and on generated grayscale JPEGs of a Kaggle X-ray's size, with the
studies' augmentation presets and the runtime ``auto`` picks here; medians of ``--repeats``.

    python benchmarks/views.py [--images 128] [--views 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import imagenet_extractor, pbc_images, save, table

XRAY_SIZE = (2000, 1700)  # width, height: the middle of the Kaggle chest X-rays' range


def xray_like(path: Path, seed: int) -> None:
    """A smooth grayscale JPEG of an X-ray's size (content does not matter to the timing as much
    as size and smoothness, which set how long decoding takes)."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.uniform(40, 220, (24, 20)).astype(np.uint8))
    image = coarse.resize(XRAY_SIZE, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3))
    grain = rng.normal(0, 2, (XRAY_SIZE[1], XRAY_SIZE[0]))
    pixels = (np.asarray(image, dtype=np.float64) + grain).clip(0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=92)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    extractor = imagenet_extractor()

    from breedscope.core.hashing import sha256_file
    from breedscope.data.manifest import Row
    from breedscope.features import runtime
    from breedscope.features.augment import Augmenter
    from breedscope.features.cache import FeatureCache
    from breedscope.features.loading import ImageLoader
    from breedscope.plugins import registry

    work = Path(tempfile.mkdtemp(prefix="bench_views_"))
    pbc = pbc_images(work, args.images)
    (work / "xray").mkdir()
    xrays = [f"xray/{i:04d}.jpeg" for i in range(args.images)]
    for i, name in enumerate(xrays):
        xray_like(work / name, i)
    sets = {"PBC, 360 px JPEG": (pbc, "light"), "X-ray, 2000x1700 JPEG": (xrays, "xray")}

    if runtime.litert_available():
        forward = runtime.converted(extractor, work / "backbone", 224)
    else:
        forward = runtime.keras_forward(extractor)
    forward(np.zeros((8, 224, 224, 3), np.float32))  # warm up
    loader = ImageLoader(work, 224)
    presets = registry().augmentations
    views = range(args.views)

    results, rows_out = {}, []
    for label, (names, preset) in sets.items():
        rows = [Row(n, "x", "train", n, sha256_file(work / n), "", 0, 0, "") for n in names]
        augmenter = Augmenter(presets[preset], seed=0)
        start = time.process_time()
        for row in rows:
            loader(row)
        decode_ms = (time.process_time() - start) / len(rows) * 1000
        each, together = [], []
        for repeat in range(args.repeats):
            cache = FeatureCache(work / f"apart-{label[:3]}-{repeat}", forward, 224)
            start = time.perf_counter()
            apart = [cache.features(rows, loader, augmenter, view=v).read() for v in views]
            each.append(time.perf_counter() - start)
            cache = FeatureCache(work / f"together-{label[:3]}-{repeat}", forward, 224)
            start = time.perf_counter()
            joint = [stored.read() for stored in cache.features_of_views(rows, loader, augmenter, views)]
            together.append(time.perf_counter() - start)
            assert all(np.array_equal(a, b) for a, b in zip(apart, joint, strict=True))
        vectors = len(rows) * args.views
        results[label] = {
            "images": len(rows),
            "views": args.views,
            "preset": preset,
            "decode_ms_one_core": decode_ms,
            "once_per_view_s": each,
            "once_per_image_s": together,
        }
        rows_out.append(
            [
                label,
                preset,
                f"{decode_ms:.1f}",
                f"{vectors / statistics.median(each):.0f}",
                f"{vectors / statistics.median(together):.0f}",
                f"{statistics.median(each) / statistics.median(together):.2f}x",
            ]
        )
    print(
        table(
            rows_out,
            [
                f"{args.images} images x {args.views} views ({forward.runtime})",
                "augmentation",
                "decode + resize (ms, one core)",
                "decoded once per view (vectors/s)",
                "decoded once per image (vectors/s)",
                "speed-up",
            ],
        )
    )
    print("The vectors are the same both ways (np.array_equal, every view).")
    print(f"written: {save('views', {'runtime': forward.runtime, 'sets': results})}")


if __name__ == "__main__":
    main()
