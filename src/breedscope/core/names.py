"""Names that become paths: a dataset, a run, each half of a Kaggle slug.

A name is one safe path component, checked before any work is done, so that no name a user
types can reach outside the folder it is meant for (``--name ..``, ``--name /home/me``).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from breedscope.core.errors import ConfigError

_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+")
MAX_LENGTH = 100  # well below every file system's 255-byte limit, with room for suffixes


def component_problem(name: str) -> str | None:
    """Why ``name`` cannot be one path component, or ``None`` when it can."""
    if not name:
        return "is empty"
    if name in (".", ".."):
        return "is a path, not a name"
    if len(name) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if not _COMPONENT.fullmatch(name):
        return "may only hold letters, digits, '_', '-' and '.'"
    return None


def check_name(name: str, what: str = "dataset name") -> str:
    """Return ``name`` if it is a safe single path component; otherwise raise :class:`ConfigError`."""
    problem = component_problem(name)
    if problem:
        raise ConfigError(f"The {what} '{name}' {problem}; choose a name like 'chest_xray' or 'pets-2'.")
    return name


def check_slug(slug: str) -> tuple[str, str]:
    """Split a Kaggle slug ``owner/name``, each part a safe name; raise :class:`ConfigError` otherwise."""
    owner, sep, name = slug.partition("/")
    parts = (owner, name)
    if not sep or any(component_problem(part) or part.startswith(".") for part in parts):
        raise ConfigError(
            f"The Kaggle slug '{slug}' is not of the form owner/dataset (letters, digits, '_', '-', "
            "'.'); copy it from the dataset's address, kaggle.com/datasets/OWNER/DATASET."
        )
    return owner, name


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` (``/`` or ``\\`` separated) could lead outside the folder it is read from:
    it is absolute, has a drive, or climbs with ``..``. ``None`` when it stays inside."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if not path or pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        return "has an absolute path"
    if ".." in pure.parts:
        return "climbs out of its folder with '..'"
    return None
