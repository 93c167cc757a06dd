"""How many planted label errors the label audit finds (issue 33).

The 750 shared PBC images are extracted, ``--planted`` of them (30 by default, drawn with
``--seed``) are moved into another class's folder, the result is fetched as dataset
``pbc_planted`` and audited with the ``bccd`` preset (ImageNet MobileNetV2 features, 5 grouped
folds). Reported: how many planted images are among the audit's flagged label issues, among the
first 60 of its ranking (``ranking.csv``), how many images it flags in all, and its wall time.

    python benchmarks/audit_recall.py [--planted 30] [--seed 2026]
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from common import SHARED, breedscope, environment, keras_home, require, save, table


def plant(root: Path, count: int, seed: int) -> set[str]:
    """Move ``count`` images into another class's folder; their new dataset-relative paths."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rng = random.Random(seed)
    planted = set()
    for image in rng.sample(sorted(root.rglob("*.jpg")), count):
        wrong = rng.choice([c for c in classes if c != image.parent.name])
        shutil.move(image, root / wrong / image.name)
        planted.add(f"{wrong}/{image.name}")
    return planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--planted", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2026)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    with zipfile.ZipFile(require(SHARED / "datasets" / "pbc-wbc.zip")) as archive:
        archive.extractall(work / "zip")
    root = work / "zip" / "PBC_dataset_normal_DIB"
    planted = plant(root, options.planted, options.seed)
    env = environment(BREEDSCOPE_HOME=str(work / "home"), KERAS_HOME=str(keras_home()))
    breedscope("fetch", "folder", "--from", str(root), "--name", "pbc_planted", env=env)
    start = time.perf_counter()
    breedscope("audit", "pbc_planted", "--preset", "bccd", "--runs-dir", str(work / "runs"), env=env)
    seconds = time.perf_counter() - start
    folder = work / "runs" / "pbc_planted" / "audit"
    with open(folder / "issues.csv", newline="") as handle:
        issues = list(csv.DictReader(handle))
    with open(folder / "ranking.csv", newline="") as handle:
        ranking = [row["path"] for row in csv.DictReader(handle)]
    labels = [row["path"] for row in issues if row["kind"] == "label"]
    result = {
        "planted": len(planted),
        "flagged_label_issues": len(labels),
        "planted_among_flagged": len(planted & set(labels)),
        "planted_in_first_60_of_ranking": len(planted & set(ranking[:60])),
        "flagged_in_all": len(issues),
        "seconds": round(seconds, 1),
    }
    print(table([[k, v] for k, v in result.items()], ["", "value"]))
    print(f"saved {save('audit_recall', result)}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
