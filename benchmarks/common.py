"""Shared helpers for the benchmark scripts: locating the shared data, running the CLI, timing."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RESULTS = REPO / "benchmarks" / "results"
WEIGHTS_NAME = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def require(path: Path) -> Path:
    if not path.exists():
        sys.exit(
            f"{path} is missing: the benchmarks use the shared datasets and weights beside the repository."
        )
    return path


def keras_home() -> Path:
    """A KERAS_HOME with the ImageNet MobileNetV2 weights from ../shared/weights."""
    home = Path(tempfile.mkdtemp(prefix="bench_keras_"))
    (home / "models").mkdir()
    shutil.copy(require(SHARED / "weights" / WEIGHTS_NAME), home / "models" / WEIGHTS_NAME)
    return home


def imagenet_extractor():
    """The ImageNet MobileNetV2 feature extractor at 224 px, as a run builds it (weights from
    ../shared/weights, TensorFlow's log quiet), for the scripts that time its forward pass."""
    os.environ["KERAS_HOME"] = str(keras_home())
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from breedscope.config.settings import ModelConfig
    from breedscope.model.backbone import build_feature_extractor
    from breedscope.plugins import registry

    return build_feature_extractor(registry().pick("backbones", "mobilenet_v2"), ModelConfig())


def pbc_images(work: Path, count: int) -> list[str]:
    """The first ``count`` PBC JPEGs of the shared archive, extracted into ``work``: their paths
    relative to it."""
    with zipfile.ZipFile(require(SHARED / "datasets" / "pbc-wbc.zip")) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))[:count]
        archive.extractall(work, members=names)
    return names


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def breedscope(*args: str, env: dict[str, str]) -> float:
    """Run the CLI; return its wall time in seconds (exits on failure)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "breedscope.cli", *args], env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"breedscope {' '.join(args)} failed:\n{result.stderr[-2000:]}")
    return elapsed


def machine() -> dict[str, object]:
    return {
        "date": date.today().isoformat(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n")
    return path


def table(rows: list[list[object]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def pbc_run(env: dict[str, str], runs: Path, *run_args: str) -> float:
    """Fetch the shared PBC images as dataset `pbc` and run `breedscope run` on them with the
    `bccd` preset and ``run_args``; returns the run's wall time in seconds."""
    breedscope(
        "fetch",
        "folder",
        "--from",
        str(require(SHARED / "datasets" / "pbc-wbc.zip")),
        "--name",
        "pbc",
        env=env,
    )
    return breedscope(
        "run",
        "--dataset",
        "pbc",
        "--preset",
        "bccd",
        "--format",
        "markdown",
        "--runs-dir",
        str(runs),
        *run_args,
        env=env,
    )
