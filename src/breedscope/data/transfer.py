"""Saving a download to disk, bounded: never more than was announced, never past a ceiling,
checked against the MD5 the server sends, resumed where an earlier attempt stopped.

A response body is a stream from someone else's machine: a body that never ends, one larger
than announced or one cut short must each end in a sentence, with memory and disk bounded and
what did arrive kept for the next attempt.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from breedscope.core.errors import DataError
from breedscope.core.progress import progress_bar
from breedscope.data.archive import human_size

if TYPE_CHECKING:
    import requests

CHUNK_BYTES = 1 << 16  # a connection cut mid-chunk loses at most this much of what arrived
READ_TIMEOUT_S = 60.0  # a server silent this long is not going to send the rest
# When the size is not announced, the most a download may be: above every dataset this tool is
# for (Kaggle's whole cat breeds set is 4 GB), far below a disk.
UNANNOUNCED_CEILING_BYTES = 64 * 1024**3


class ChecksumMismatch(DataError):
    """What arrived is not what the server's MD5 describes (the file is deleted)."""


class CutShort(OSError):
    """Fewer bytes arrived than were announced (the connection closed early): worth a retry,
    which resumes from what was kept."""


@contextmanager
def read_timeout(seconds: float = READ_TIMEOUT_S) -> Iterator[None]:
    """Every socket made in the block gives up after ``seconds`` of silence. The clients that
    make them (kagglesdk's session) take no timeout of their own, and urllib3 falls back on this."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def announced_md5(response: requests.Response) -> str | None:
    """The MD5 a Google Cloud Storage response announces (``x-goog-hash: md5=...``), base64."""
    match = re.search(r"md5=([A-Za-z0-9+/=]+)", response.headers.get("x-goog-hash", ""))
    return match.group(1) if match else None


def save(
    open_from: Callable[[int], requests.Response],
    target: Path,
    label: str,
    *,
    ceiling: int | None = None,
) -> Path:
    """Stream a download into ``target`` (kept as ``target.part`` until complete).

    ``open_from(n)`` asks for the body from byte ``n`` on (``n`` > 0 where a ``.part`` is left
    from an earlier attempt: an HTTP range). The body may not exceed the size the server
    announced, or ``ceiling`` (:data:`UNANNOUNCED_CEILING_BYTES` unless given) when it announced
    none. A body cut short raises :class:`CutShort` (the part is kept, to resume from), one
    whose MD5 differs from the announced one :class:`ChecksumMismatch` (the part is deleted)."""
    ceiling = UNANNOUNCED_CEILING_BYTES if ceiling is None else ceiling
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    response = open_from(have)
    if have and response.status_code != 206:  # the whole body after all: start the file again
        part.unlink()
        have = 0
    announced = _announced_total(response, have)
    expected_md5 = announced_md5(response)
    _check_room(target.parent, (announced or 0) - have, label)
    digest = _md5_of(part) if have else hashlib.md5()
    limit = announced if announced is not None else ceiling
    with progress_bar(label, announced) as advance, open(part, "ab") as out:
        advance(have)
        for chunk in response.iter_content(CHUNK_BYTES):
            if have + len(chunk) > limit:
                response.close()
                out.close()
                part.unlink(missing_ok=True)
                raise DataError(_too_much(label, announced, ceiling))
            out.write(chunk)
            digest.update(chunk)
            have += len(chunk)
            advance(len(chunk))
    if announced is not None and have < announced:
        raise CutShort(f"{human_size(have)} of {human_size(announced)} arrived")
    if expected_md5 is not None and base64.b64encode(digest.digest()).decode() != expected_md5:
        part.unlink()
        raise ChecksumMismatch(f"{label}: what arrived does not match the MD5 the server sent")
    part.replace(target)
    return target


def _announced_total(response: requests.Response, start: int) -> int | None:
    """The whole file's size as the server announced it: a range's total, or its length."""
    match = re.fullmatch(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    length = response.headers.get("Content-Length")
    return start + int(length) if length is not None and length.isdigit() else None


def _too_much(label: str, announced: int | None, ceiling: int) -> str:
    promised = (
        f"the {human_size(announced)} it announced"
        if announced is not None
        else f"{human_size(ceiling)}, the most a dataset download may be when no size is announced"
    )
    return f"The server sent more than {promised} for {label}; nothing was kept, fetch again later."


def _md5_of(path: Path) -> hashlib._Hash:
    digest = hashlib.md5()
    with open(path, "rb") as kept:
        while chunk := kept.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest


def _check_room(folder: Path, needed: int, label: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DataError(
            f"{label} needs {human_size(needed)} but only {human_size(free)} is free at {folder}; free some "
            "space or set BREEDSCOPE_HOME to a larger disk."
        )
