"""Feature extraction throughput: breedscope's pipeline against the bare forward pass of the same
runtime, for LiteRT (XNNPACK) and Keras, beside the machine's theoretical fp32 rate.

The bare figure is the runtime alone on tensors already in memory (the limit for that runtime).
The pipeline figure is what a run does per image: read the file, decode by content, resize,
forward pass, write the vectors to a shard. Target: the pipeline reaches at least 0.9 of the bare
forward pass of its runtime. "Backbone busy" is the share of the pipeline's time spent inside the
forward pass: 1.0 means the backbone never waited for an image, and what separates the pipeline
from the bare figure is the CPU that decoding takes on the same cores. Each figure is the median
of ``--repeats`` measurements.

    python benchmarks/extraction.py [--images 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import imagenet_extractor, pbc_images, save, table

# MobileNetV2 1.0 at 224 px: about 300 million multiply-adds per image (Sandler et al. 2018).
GFLOP_PER_IMAGE = 0.6


def theoretical_images_per_second() -> tuple[float, str]:
    """fp32 peak of this machine's cores over MobileNetV2's work per image, and how it was got."""
    cores = len(os.sched_getaffinity(0))
    family = next(
        (
            int(line.split(":")[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu family")
        ),
        0,
    )
    # AMD family 26 (Zen 5) has two 512-bit FMA pipes per core: 64 fp32 FLOP per cycle; Zen 4 and
    # most Intel server cores that run AVX-512 on two 256-bit halves reach 32.
    per_cycle = 64 if family == 26 else 32
    ghz = 3.0  # the VM reports no clock; a typical all-core clock for these parts
    peak = cores * per_cycle * ghz
    note = f"{cores} cores x {per_cycle} FLOP/cycle x {ghz} GHz (assumed) = {peak:.0f} GFLOP/s"
    return peak / GFLOP_PER_IMAGE, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    extractor = imagenet_extractor()

    import numpy as np

    from breedscope.core.hashing import sha256_file
    from breedscope.data.manifest import Row
    from breedscope.features import runtime
    from breedscope.features.cache import FeatureCache
    from breedscope.features.loading import ImageLoader

    work = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    names = pbc_images(work, args.images)
    rows = [Row(n, n.split("/")[1], "train", n, sha256_file(work / n), "", 0, 0, "") for n in names]

    forwards = {"keras": runtime.keras_forward(extractor)}
    if runtime.litert_available():
        forwards["litert"] = runtime.converted(extractor, work / "backbone", 224)
    tensors = np.random.default_rng(0).uniform(0, 255, (len(rows), 224, 224, 3)).astype(np.float32)
    loader = ImageLoader(work, 224)
    start = time.perf_counter()
    for row in rows:
        loader(row)
    decode = len(rows) / (time.perf_counter() - start)  # images/s on one core
    cores = runtime.cpu_threads()

    figures: dict[str, dict[str, float]] = {}
    for name, forward in forwards.items():
        forward(tensors[:32])  # build, trace and warm up
        bare, pipeline, busy = [], [], []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            forward(tensors)
            bare.append(len(rows) / (time.perf_counter() - start))
            inside = [0.0]

            def timed(pixels, forward=forward, inside=inside):
                begun = time.perf_counter()
                out = forward(pixels)
                inside[0] += time.perf_counter() - begun
                return out

            cache = FeatureCache(work / f"features-{name}-{repeat}", replace(forward, run=timed), 224)
            start = time.perf_counter()
            cache.features(rows, ImageLoader(work, 224))
            wall = time.perf_counter() - start
            pipeline.append(len(rows) / wall)
            busy.append(inside[0] / wall)  # 1.0: the backbone never waited for an image
        # Decoding shares the cores with the forward pass: per image it costs cores/bare + 1/decode
        # core-seconds, which bounds what any overlap can reach on this machine.
        bound = cores / (cores / statistics.median(bare) + 1 / decode)
        figures[name] = {
            "bound_images_per_s": bound,
            "bare_images_per_s": statistics.median(bare),
            "pipeline_images_per_s": statistics.median(pipeline),
            "bare_each": bare,
            "pipeline_each": pipeline,
            "backbone_busy": statistics.median(busy),
        }

    peak, note = theoretical_images_per_second()
    keras_bare = figures["keras"]["bare_images_per_s"]
    rows_out = []
    for name, f in figures.items():
        ratio = f["pipeline_images_per_s"] / f["bare_images_per_s"]
        f["ratio"] = ratio
        rows_out.append(
            [
                name,
                f"{f['bare_images_per_s']:.0f}",
                f"{f['pipeline_images_per_s']:.0f}",
                f"{ratio:.2f}",
                f"{f['pipeline_images_per_s'] / f['bound_images_per_s']:.2f}",
                f"{f['pipeline_images_per_s'] / keras_bare:.2f}",
                f"{f['bare_images_per_s'] / peak:.2f}",
                f"{f['backbone_busy']:.2f}",
            ]
        )
    print(
        table(
            rows_out,
            [
                f"runtime ({len(rows)} PBC images, 224 px)",
                "bare img/s",
                "pipeline img/s",
                "pipeline / bare",
                "pipeline / (bare + decoding)",
                "pipeline / Keras bare",
                "bare / peak",
                "backbone busy",
            ],
        )
    )
    print(f"\ntheoretical fp32 peak: {peak:.0f} img/s ({note}, {GFLOP_PER_IMAGE} GFLOP per image)")
    print(f"decoding and resizing: {decode:.0f} img/s on one core ({cores} cores in all)")
    print("target: pipeline / bare at least 0.9")
    results = {
        "images": len(rows),
        "peak_images_per_s": peak,
        "decode_images_per_s": decode,
        "runtimes": figures,
    }
    print(f"written: {save('extraction', results)}")


if __name__ == "__main__":
    main()
