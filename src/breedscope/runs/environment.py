"""What made a run, recorded in its ``environment.json``: seed, manifest hash, package versions,
interpreter, machine and command line."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from breedscope.core import devices
from breedscope.core.versions import package_versions


def environment(seed: int, manifest_sha256: str) -> dict:
    return {
        "seed": seed,
        "manifest_sha256": manifest_sha256,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gb": memory_gb(),
        "gpus": devices.gpus(),
        "command": command(),
    }


def memory_gb() -> float | None:
    """Physical memory, where the platform says (``os.sysconf`` exists on Unix only)."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1)
    except (AttributeError, ValueError, OSError):
        return None


def command() -> str:
    """The command line that made the run (``python -m breedscope.cli run ...`` reads as the
    ``breedscope run ...`` it is)."""
    program = Path(sys.argv[0]).name
    if program == "__main__.py" and "breedscope" in Path(sys.argv[0]).parts:
        program = "breedscope"
    return " ".join([*program.split(), *sys.argv[1:]])
