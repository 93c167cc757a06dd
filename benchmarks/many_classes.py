"""Peak memory of a whole run, report included, as the number of classes grows.

A generated folder of N classes x 3 images (shapes with noise, 40 px) is fetched and run with a
small from-scratch MobileNetV2 (alpha 0.35, 32 px, one epoch, no download): the images are few,
so the peak is what grows with the classes (the confusion matrix, the per-class tables and
curves, the report). Peak PSS of the process tree, sampled every 0.1 s, and wall time.
Target (issue 31): a 150-class run peaks under 3 GB; every figure and table scales.

    python benchmarks/many_classes.py [--classes 10,100,300]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import environment, save, table
from data_stage import measure
from PIL import Image

RUN = ["--weights", "none", "--alpha", "0.35", "--image-size", "32", "--augment", "none"]
RUN += ["--split", "0.34,0.33,0.33", "--epochs", "1", "--batch-size", "64", "--format", "markdown,pdf"]


def generate(folder: Path, classes: int, per_class: int = 3) -> None:
    rng = np.random.default_rng(0)
    for label in range(classes):
        (folder / f"class_{label:03d}").mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            pixels[label % 40, :] = 255  # each class a bright row of its own
            Image.fromarray(pixels).save(folder / f"class_{label:03d}" / f"{index}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--classes", default="10,100,300")
    counts = [int(c) for c in parser.parse_args().classes.split(",")]
    results, rows = {}, []
    for classes in counts:
        work = Path(tempfile.mkdtemp(prefix=f"bench_classes_{classes}_"))
        generate(work / "tree", classes)
        env = environment(BREEDSCOPE_HOME=str(work / "home"))
        measure(["fetch", "folder", "--from", str(work / "tree"), "--name", "many"], env)
        run = measure(["run", "--dataset", "many", *RUN, "--runs-dir", str(work / "runs")], env)
        report = work / "runs" / "many" / "run" / "report.pdf"
        results[classes] = {
            "peak_pss_mb": round(run["peak_pss_mb"]),
            "seconds": round(run["seconds"], 1),
            "report_pdf_kb": round(report.stat().st_size / 1024),
        }
        rows.append(
            [classes, round(run["peak_pss_mb"]), round(run["seconds"], 1), results[classes]["report_pdf_kb"]]
        )
        print(table(rows[-1:], ["classes", "peak PSS (MB)", "seconds", "report.pdf (KB)"]), flush=True)
    print(table(rows, ["classes", "peak PSS (MB)", "seconds", "report.pdf (KB)"]))
    print(f"Saved {save('many_classes', {'classes': results})}")


if __name__ == "__main__":
    main()
