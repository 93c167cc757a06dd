"""Write files so that a reader never sees half of one: temp name in the same folder, then rename.

The temporary file is created with the ordinary mode (0666 less the umask), like any file a
tool writes, so a report is as readable to a colleague as the umask allows. (``mkstemp``
would make every file 0600, and the rename would keep that.)
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _create_temp(target: Path) -> Path:
    """A new, empty file beside ``target`` with a name no other writer uses."""
    while True:
        candidate = target.parent / f".{target.name}.{secrets.token_hex(4)}.part"
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return candidate
        except FileExistsError:
            continue


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temp(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: Path, data: Any) -> None:
    write_text(target, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def private_tempdir(folder: Path) -> Iterator[None]:
    """Point Python's temporary files (``tempfile``: TensorFlow's converter writes a SavedModel
    there) into ``folder`` for the length of the block, so that whoever removes ``folder``
    removes them too, however the block ends."""
    previous = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = previous
