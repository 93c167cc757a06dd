"""Feature extraction throughput: breedscope's pipeline against the bare backbone.

The bare figure is MobileNetV2 (224 px, ImageNet weights) on tensors already in memory: the
limit of this machine. The pipeline figure is what a run does per image: read the file, decode
by content, resize, preprocess, forward pass and write the feature file. Target: the pipeline
reaches at least 0.8 of the bare forward pass.

    python benchmarks/extraction.py [--images 512]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zipfile
from pathlib import Path

from common import SHARED, keras_home, require, save, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=512)
    args = parser.parse_args()
    os.environ["KERAS_HOME"] = str(keras_home())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np

    from breedscope.config import ModelConfig
    from breedscope.features import FeatureCache
    from breedscope.hashing import sha256_file
    from breedscope.loading import ImageLoader
    from breedscope.manifest import Row
    from breedscope.model import build_feature_extractor
    from breedscope.plugins import registry

    work = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    with zipfile.ZipFile(require(SHARED / "datasets" / "pbc-wbc.zip")) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[: args.images]
        archive.extractall(work, members=names)
    rows = [Row(n, n.split("/")[1], "train", n, sha256_file(work / n), "", 0, 0, "") for n in names]

    extractor = build_feature_extractor(registry().pick("backbones", "mobilenet_v2"), ModelConfig())
    batch = 32
    tensors = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    extractor.predict_on_batch(tensors)  # build, compile and warm up
    start = time.perf_counter()
    for _ in range(len(rows) // batch):
        extractor.predict_on_batch(tensors)  # the fastest way Keras offers
    bare = (len(rows) // batch * batch) / (time.perf_counter() - start)

    cache = FeatureCache(work / "features", extractor, batch_size=batch)
    start = time.perf_counter()
    cache.files(rows, ImageLoader(work, 224))
    pipeline = len(rows) / (time.perf_counter() - start)

    ratio = pipeline / bare
    print(
        table(
            [
                ["bare forward pass (tensors in memory)", f"{bare:.1f}"],
                ["pipeline (read, decode, resize, forward, write)", f"{pipeline:.1f}"],
            ],
            [f"MobileNetV2 224 px, {len(rows)} PBC images", "images/s"],
        )
    )
    print(f"\npipeline / bare: {ratio:.2f} (target: at least 0.8)")
    figures = {"images": len(rows), "bare_images_per_s": bare, "pipeline_images_per_s": pipeline}
    print(f"written: {save('extraction', {**figures, 'ratio': ratio})}")


if __name__ == "__main__":
    main()
