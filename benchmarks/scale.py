"""Every stage at scale: validate → split → feature extraction → train the head, on generated
folders of 10,000, 30,000 and 100,000 images (mixed sizes, 2% exact duplicates, a few broken
files), with wall time per stage and the peak memory of the whole process tree.

Images come from the shared archives, cropped and resized differently each time (so copies are
not near-duplicates); a smaller backbone (MobileNetV2 alpha 0.35 at 96 px, random weights, no
download) keeps extraction short, and ``train.feature_memory_mb = 64`` makes the head read its
features from the shards batch by batch, as a dataset beyond the memory budget does. Targets:
time per image flat (time linear in the images), peak memory flat.

    python benchmarks/scale.py [--sizes 10000,30000,100000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import tempfile
from pathlib import Path

from common import environment, save, table
from data_stage import generate, measure, source_images

RUN_CONFIG = """\
model: {weights: none, alpha: 0.35, image_size: 96}
augment: {preset: none}
split: {train: 0.7, val: 0.15, test: 0.15}
train: {epochs: 3, batch_size: 256, feature_memory_mb: 64}
report: {formats: [markdown]}
"""
STAGE = re.compile(r"^\s*[\d.]+ s\s+\+\s*([\d.]+) s\s+(\S+)$")


def with_duplicates(folder: Path, every: int = 50) -> None:
    """Copy every ``every``-th image of each class over the next one: 2% exact duplicates."""
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(class_dir.iterdir())
        for index in range(0, len(files) - 1, every):
            shutil.copyfile(files[index], files[index + 1])


def stage_seconds(stderr: str) -> dict[str, float]:
    """Seconds per timed stage, from ``benchmarks/stages.py`` output (summed over calls)."""
    found: dict[str, float] = {}
    for line in stderr.splitlines():
        match = STAGE.match(line)
        if match:
            found[match.group(2)] = found.get(match.group(2), 0.0) + float(match.group(1))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,30000,100000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    blobs = source_images()
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    config = work / "run.yaml"
    config.write_text(RUN_CONFIG)
    stages_script = Path(__file__).with_name("stages.py")
    results = {}
    for size in sizes:
        folder = work / f"images_{size}"
        generate(folder, size, blobs)
        with_duplicates(folder)
        home = Path(tempfile.mkdtemp(prefix="bench_home_", dir=work))
        env = environment(BREEDSCOPE_HOME=str(home))
        name = f"scale{size}"
        validate = measure(["fetch", "folder", "--from", str(folder), "--name", name], env)
        split = measure(["split", name], env)
        run = measure(
            [
                "run",
                "--dataset",
                name,
                "--config",
                str(config),
                "--runs-dir",
                str(work / "runs"),
            ],
            env,
            script=stages_script,
        )
        timed = stage_seconds(run["stderr"])
        results[size] = {
            "validate": {k: v for k, v in validate.items() if k != "stderr"},
            "split": {k: v for k, v in split.items() if k != "stderr"},
            "run": {k: v for k, v in run.items() if k != "stderr"},
            "extraction_seconds": timed.get("FeatureCache.features", 0.0),
            "head_training_seconds": timed.get("_Trainer.fit", 0.0),
        }
        print(f"{size} images: {results[size]}", flush=True)
        shutil.rmtree(folder)
        shutil.rmtree(home)

    rows = []
    for size, r in results.items():
        per_k = 1000 / size
        rows.append(
            [
                f"{size:,}",
                f"{r['validate']['seconds']:.0f} ({r['validate']['seconds'] * per_k:.2f})",
                f"{r['split']['seconds']:.1f}",
                f"{r['extraction_seconds']:.0f} ({r['extraction_seconds'] * per_k:.2f})",
                f"{r['head_training_seconds']:.0f}",
                f"{r['run']['seconds']:.0f} ({r['run']['seconds'] * per_k:.2f})",
                f"{r['validate']['peak_pss_mb']:.0f}",
                f"{r['run']['peak_pss_mb']:.0f}",
            ]
        )
    print(
        table(
            rows,
            [
                "images",
                "validate s (per 1k)",
                "split s",
                "extraction s (per 1k)",
                "head s",
                "whole run s (per 1k)",
                "validate peak MB",
                "run peak MB",
            ],
        )
    )
    print(f"written: {save('scale', {'results': results})}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
