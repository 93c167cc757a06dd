"""The data stage at scale: `fetch --from` (scan, decode-validate, hash, deduplicate, store) on
folders of 2,000, 10,000 and 50,000 images.

The folders are generated from the shared images, resized to varied sizes and re-encoded, with
a few broken files (truncated, empty, not an image) among them. Reports images per second, the
peak memory of the whole process tree (proportional set size) and CPU use (2.0 = both cores
busy). Targets: throughput flat, peak memory growing by less than 20% from 2,000 to 50,000
images, both cores used.

    python benchmarks/data_stage.py [--sizes 2000,10000,50000]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from common import SHARED, environment, require, save, table


def source_images(limit: int = 1500) -> list[bytes]:
    blobs = []
    for name in ("pbc-wbc.zip", "cat-breeds-dataset.zip", "chest-xray-pneumonia.zip"):
        with zipfile.ZipFile(require(SHARED / "datasets" / name)) as archive:
            members = [
                n
                for n in archive.namelist()
                if n.lower().endswith((".jpg", ".jpeg"))
                and "__MACOSX" not in n
                and "/chest_xray/chest_xray/" not in n
            ]
            blobs += [archive.read(n) for n in members[: limit // 3]]
    return blobs


def generate(target: Path, count: int, blobs: list[bytes]) -> None:
    import io

    from PIL import Image

    sizes = (96, 160, 224, 320, 480)
    for index in range(count):
        folder = target / f"class_{index % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"img_{index:06d}.jpg"
        if index % 997 == 0:
            path.write_bytes(blobs[index % len(blobs)][:500])  # truncated
        elif index % 1999 == 0:
            path.touch()  # empty
        elif index % 2999 == 0:
            path.write_text("not an image")
        else:
            with Image.open(io.BytesIO(blobs[index % len(blobs)])) as image:
                # A different crop of the source each time, so copies are not near-duplicates
                # of each other (a real collection is not 33 copies of 1,500 pictures).
                rng = random.Random(index)
                width, height = image.size
                scale = rng.uniform(0.55, 0.9)
                w, h = int(width * scale), int(height * scale)
                x, y = rng.randint(0, width - w), rng.randint(0, height - h)
                side = sizes[index % len(sizes)]
                crop = image.convert("RGB").crop((x, y, x + w, y + h))
                crop.resize((side, side + (index % 7) * 8)).save(path, quality=85)


def tree_memory_kb(pid: int) -> int:
    """Proportional set size (PSS) of a process and all its descendants, from /proc: pages
    shared between the forked workers and their parent count once in all, not once each."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
            total += int(next(line.split()[1] for line in rollup.splitlines() if line.startswith("Pss:")))
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack += [int(child) for child in children]
        except (FileNotFoundError, ProcessLookupError, StopIteration, PermissionError):
            continue
    return total


def measure(args: list[str], env: dict[str, str], script: Path | None = None) -> dict:
    """Run the CLI with ``args`` (or ``script``, a wrapper taking the same arguments); its wall
    time, the peak PSS of its process tree, its CPU use and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, str(script)] if script else [sys.executable, "-m", "breedscope.cli"]
    process = subprocess.Popen([*command, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_memory_kb(process.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, stderr = process.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        sys.exit(f"breedscope {' '.join(args)} failed: {stderr.decode()[-1500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": wall, "peak_pss_mb": peak / 1024, "cpu_use": cpu / wall, "stderr": stderr.decode()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,10000,50000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    blobs = source_images()
    work = Path(tempfile.mkdtemp(prefix="bench_data_"))
    results = {}
    for size in sizes:
        folder = work / f"images_{size}"
        generate(folder, size, blobs)
        env = environment(BREEDSCOPE_HOME=tempfile.mkdtemp(prefix="bench_home_"))
        result = measure(["fetch", "folder", "--from", str(folder), "--name", f"scale{size}"], env)
        result.pop("stderr")
        result["images_per_s"] = size / result["seconds"]
        results[size] = result
        print(f"{size} images: {result}", flush=True)
    rows = [
        [f"{s:,}", f"{r['images_per_s']:.0f}", f"{r['peak_pss_mb']:.0f}", f"{r['cpu_use']:.2f}"]
        for s, r in results.items()
    ]
    print(table(rows, ["images", "images/s", "peak memory, PSS (MB)", "CPU use (cores)"]))
    first, last = results[sizes[0]], results[sizes[-1]]
    growth = last["peak_pss_mb"] / first["peak_pss_mb"] - 1
    print(
        f"\nthroughput {sizes[-1]:,} / {sizes[0]:,}: {last['images_per_s'] / first['images_per_s']:.2f} "
        f"(target: flat); peak memory growth: {growth * 100:.0f}% (target: below 20%)"
    )
    print(f"written: {save('data_stage', {'results': results, 'memory_growth': growth})}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
