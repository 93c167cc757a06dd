"""Run directories: ``runs/<dataset>/<name>``, never overwritten, holding everything a run made
and everything needed to make it again (config, manifest and hash, versions, seed)."""

from __future__ import annotations

import errno
import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from breedscope.atomic import write_json
from breedscope.errors import ConfigError

STATUS_FILE = "status.json"
LOCK_FILE = ".lock"  # held by the one process writing the run directory
PACKAGES = (
    "breedscope",
    "tensorflow",
    "keras",
    "albumentations",
    "scikit-learn",
    "numpy",
    "pillow",
    "pydantic",
    "pluggy",
    "matplotlib",
    "fpdf2",
)


def check_runs_dir(runs_dir: Path) -> None:
    """Refuse a runs folder that is a file (or lies below one) before any work is done."""
    for folder in (runs_dir, *runs_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise ConfigError(
                    f"runs_dir: {folder} is a file, so run directories cannot go in {runs_dir}; "
                    "pass a folder with --runs-dir."
                )
            return


def new_run_dir(runs_dir: Path, dataset: str, name: str) -> Path:
    """Create and return ``runs_dir/dataset/name``, or ``name-2``, ``name-3``... if taken."""
    check_runs_dir(runs_dir / dataset)
    parent = runs_dir / dataset
    parent.mkdir(parents=True, exist_ok=True)
    candidate, number = parent / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1
            candidate = parent / f"{name}-{number}"


def package_versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def environment(seed: int, manifest_sha256: str) -> dict:
    return {
        "seed": seed,
        "manifest_sha256": manifest_sha256,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "gpus": gpus(),
        "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:]),
    }


def gpus() -> list[str]:
    import tensorflow as tf  # imported for training anyway

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def set_status(run_dir: Path, state: str, **details: object) -> None:
    """``running`` until the very end: a run directory never claims a success it did not have.

    On a full disk the atomic write (a new file, then a rename) has no room, so the status is
    rewritten in place: truncating the old file frees the block the new text then takes. A run
    that failed for want of space must not go on saying ``running``.
    """
    status = {"state": state, "updated": datetime.now(UTC).isoformat(timespec="seconds"), **details}
    try:
        write_json(run_dir / STATUS_FILE, status)
    except OSError as exc:
        if exc.errno != errno.ENOSPC or not (run_dir / STATUS_FILE).is_file():
            raise
        (run_dir / STATUS_FILE).write_text(json.dumps(status, sort_keys=True) + "\n", encoding="utf-8")
