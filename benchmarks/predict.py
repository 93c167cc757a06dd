"""`breedscope predict` as a user runs it: wall time, images/s and peak memory, Keras against LiteRT.

Trains a short PBC run (frozen ImageNet MobileNetV2, 224 px, the bccd preset), then classifies
the 750 PBC images and 10,000 files (the same 750 linked over and over) with
``--runtime keras`` and with ``--runtime auto``: first with no conversion kept (it converts
and checks the model: a first prediction), then with the conversion kept (every later one).
Each command is a fresh process, timed from start to exit; peak memory is its maximum
resident set. The predictions of both runtimes are compared file by file.

    python benchmarks/predict.py
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common import SHARED, environment, keras_home, pbc_run, require, save, table

SIZES = (750, 10_000)


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run the CLI in its own process: (wall seconds, peak resident memory in GB)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "breedscope.cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"breedscope {' '.join(args)} failed:\n{process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def image_folder(work: Path, count: int, images: list[Path]) -> Path:
    folder = work / f"images_{count}"
    folder.mkdir()
    for index in range(count):
        source = images[index % len(images)]
        (folder / f"{index:05d}_{source.name}").symlink_to(source)
    return folder


def top_classes(path: Path) -> dict[str, tuple[str, float]]:
    with open(path, newline="") as handle:
        rows = csv.DictReader(handle)
        return {Path(r["path"]).name: (r["class_1"], float(r["probability_1"])) for r in rows}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    home, runs = work / "home", work / "runs"
    env = environment(BREEDSCOPE_HOME=str(home), KERAS_HOME=str(keras_home()))
    pbc_run(env, runs, "--epochs", "3")
    run_dir = next((runs / "pbc").iterdir())
    with zipfile.ZipFile(require(SHARED / "datasets" / "pbc-wbc.zip")) as archive:
        archive.extractall(work / "pbc", members=[n for n in archive.namelist() if n.endswith(".jpg")])
    images = sorted((work / "pbc").rglob("*.jpg"))

    results: dict[str, dict[str, float]] = {}
    agreement: dict[int, dict[str, float]] = {}
    for count in SIZES:
        folder = image_folder(work, count, images)

        def predict(runtime: str, name: str, folder: Path = folder, count: int = count) -> Path:
            out = work / f"{name}_{count}.csv"
            seconds, memory = timed(
                ["predict", str(run_dir), str(folder), "--runtime", runtime, "--csv", str(out)], env
            )
            rate = count / seconds
            results[f"{name} {count}"] = {"seconds": seconds, "images_per_s": rate, "peak_gb": memory}
            return out

        keras = predict("keras", "keras")
        shutil.rmtree(home / "converted", ignore_errors=True)
        predict("auto", "litert, first (converts)")
        litert = predict("auto", "litert, converted")
        expected, got = top_classes(keras), top_classes(litert)
        agreement[count] = {
            "images": len(expected),
            "same_top_class": sum(got[n][0] == c for n, (c, _) in expected.items()),
            "max_top_probability_difference": max(abs(got[n][1] - p) for n, (_, p) in expected.items()),
        }

    rows = [
        [name, f"{r['seconds']:.2f}", f"{r['images_per_s']:.0f}", f"{r['peak_gb']:.2f}"]
        for name, r in results.items()
    ]
    print(table(rows, ["predict (images)", "wall s", "images/s", "peak memory GB"]))
    for count in SIZES:
        litert, keras = results[f"litert, converted {count}"], results[f"keras {count}"]
        speedup = litert["images_per_s"] / keras["images_per_s"]
        a = agreement[count]
        print(
            f"{count} images: LiteRT x{speedup:.1f} Keras' rate; same top class on {a['same_top_class']} "
            f"of {a['images']}, top probabilities within {a['max_top_probability_difference']:.1g}"
        )
    print(f"written: {save('predict', {'results': results, 'agreement': agreement})}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
