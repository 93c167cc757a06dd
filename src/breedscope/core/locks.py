"""One lock per thing two breedscope processes could both write: a dataset being fetched, a run
directory, a feature-cache folder. Built on ``filelock`` (an OS lock, released by the kernel
when its process dies, so a ``kill -9`` never leaves a stale lock behind)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from breedscope.core.errors import BreedscopeError
from breedscope.core.progress import console


class Busy(BreedscopeError):
    """Another breedscope process holds the lock."""


@contextmanager
def waiting(lock_file: Path, waiting_message: str | None = None) -> Iterator[None]:
    """Hold ``lock_file``; if another process holds it, say ``waiting_message`` and wait."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if waiting_message:
            console.print(waiting_message)
        lock.acquire()  # Ctrl-C still ends the wait
    try:
        yield
    finally:
        lock.release()


@contextmanager
def exclusive(lock_file: Path, refusal: str) -> Iterator[None]:
    """Hold ``lock_file``, or raise :class:`Busy` with ``refusal`` at once if another process does."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise Busy(refusal) from None
    try:
        yield
    finally:
        lock.release()
