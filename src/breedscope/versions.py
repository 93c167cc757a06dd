"""Installed package versions, read from their metadata (nothing is imported): recorded with every
run, and part of the cache keys of what those packages compute."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

# What a run records in its environment.json.
RECORDED = (
    "breedscope",
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "albumentations",
    "opencv-python-headless",
    "scikit-learn",
    "numpy",
    "pillow",
    "pydantic",
    "pluggy",
    "matplotlib",
    "fpdf2",
)


def package_versions(packages: Iterable[str] = RECORDED) -> dict[str, str]:
    versions = {}
    for package in packages:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions
