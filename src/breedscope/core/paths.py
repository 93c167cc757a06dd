"""Where breedscope keeps its data: one cache root, overridable with BREEDSCOPE_HOME."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from breedscope.core.errors import ConfigError
from breedscope.core.names import check_name


def home() -> Path:
    """The data cache root: ``$BREEDSCOPE_HOME`` or the platform's user cache directory."""
    configured = os.environ.get("BREEDSCOPE_HOME")
    root = Path(configured).expanduser() if configured else Path(platformdirs.user_cache_dir("breedscope"))
    if (blocking := file_in_the_way(root)) is not None:
        where = "BREEDSCOPE_HOME" if configured else "The cache folder"
        raise ConfigError(
            f"{where} {root} cannot hold breedscope's data: {blocking} is a file; point "
            "BREEDSCOPE_HOME at a folder (it is made if missing)."
        )
    return root


def file_in_the_way(folder: Path) -> Path | None:
    """The file that keeps ``folder`` from being made or used as a folder: ``folder`` itself, or
    the nearest existing folder above it, when that is a file (``None`` when there is none)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def datasets_dir() -> Path:
    return home() / "datasets"


def downloads_dir() -> Path:
    """Downloaded archives and their extracted files, one folder per source and version."""
    return home() / "downloads"


def manifests_dir() -> Path:
    """Split manifests ``breedscope split`` writes by default, one folder per dataset: kept apart
    from the dataset store, which ``fetch --force`` replaces whole."""
    return home() / "manifests"


def check_outside_datasets(path: Path, option: str) -> None:
    """Refuse an output folder inside the dataset store: ``fetch --force`` replaces a dataset's
    folder whole, and would take the user's runs or manifests with it."""
    store = datasets_dir().resolve()
    if store == path.resolve() or store in path.resolve().parents:
        raise ConfigError(
            f"{option} {path} lies inside breedscope's dataset store ({store}), which `fetch --force` "
            "replaces whole; choose a folder outside it."
        )


def dataset_dir(name: str) -> Path:
    """The folder of the fetched dataset ``name``; a name that is not one safe path component is
    refused here, so no caller can build a path outside ``datasets/``."""
    return datasets_dir() / check_name(name)


def dataset_lock(name: str) -> Path:
    """The lock a fetch of ``name`` holds (kept apart, so that ``datasets/`` holds only datasets)."""
    return home() / "locks" / f"dataset-{check_name(name)}.lock"


def features_dir() -> Path:
    return home() / "features"


def converted_dir() -> Path:
    """Run models converted to LiteRT for prediction, one folder per model file; safe to delete."""
    return home() / "converted"


def images_dir() -> Path:
    """Decoded, resized images (``.npy``) for training on images; safe to delete."""
    return home() / "images"
