"""Installed package versions, read from their metadata (nothing is imported): recorded with every
run, and part of the cache keys of what those packages compute."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("breedscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# The packages whose versions decide what the caches hold; each group is part of a cache key, so
# a cache that outlived an upgrade is not mixed in. The backbone's features: TensorFlow and Keras
# build and convert it, LiteRT runs the conversion. The decoded pixels: Pillow. An augmented
# view's pixels: albumentations, and the OpenCV it calls.
BACKBONE = ("tensorflow", "keras", "ai-edge-litert")
DECODER = ("pillow",)
AUGMENTATION = ("albumentations", "opencv-python-headless")

# What a run records in its environment.json: every package above, and the rest the run uses.
RECORDED = (
    "breedscope",
    *BACKBONE,
    *DECODER,
    *AUGMENTATION,
    "scikit-learn",
    "numpy",
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
