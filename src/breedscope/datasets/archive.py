"""Safe extraction of zip and tar archives.

Every entry is checked before anything is written: no absolute paths, no ``..``, no links
that point outside the target, no sizes that could only be a decompression bomb, and enough
free disk. The caller extracts into a staging folder and renames it only on success.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from breedscope.errors import DataError

MAX_TOTAL_BYTES = 200 * 1024**3  # larger than any dataset this tool is for
MAX_COMPRESSION_RATIO = 200  # images barely compress; ratios like 1000:1 are bombs


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    is_dir: bool = False
    link_target: str | None = None


def is_archive(path: Path) -> bool:
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def _unsafe_reason(name: str, link_target: str | None) -> str | None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")):
        return "has an absolute path"
    if ".." in pure.parts:
        return "climbs out of the target with '..'"
    if link_target is not None:
        target = PurePosixPath(link_target.replace("\\", "/"))
        resolved = (pure.parent / target).parts
        depth = 0
        for part in resolved:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                break
        if target.is_absolute() or depth < 0:
            return f"is a link pointing outside the archive ({link_target})"
    return None


def _zip_entries(archive: zipfile.ZipFile) -> list[Entry]:
    entries = []
    for info in archive.infolist():
        mode = info.external_attr >> 16
        link = archive.read(info).decode("utf-8", "replace") if stat.S_ISLNK(mode) else None
        entries.append(Entry(info.filename, info.file_size, info.is_dir(), link))
    return entries


def _tar_entries(archive: tarfile.TarFile) -> list[Entry]:
    entries = []
    for member in archive.getmembers():
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise DataError(f"Archive entry '{member.name}' is a device or pipe; refusing to extract it.")
        link = member.linkname if (member.issym() or member.islnk()) else None
        entries.append(Entry(member.name, member.size, member.isdir(), link))
    return entries


def check_entries(entries: list[Entry], archive_bytes: int, target: Path) -> None:
    """Raise :class:`DataError` naming the first unsafe entry, or when sizes are absurd."""
    for entry in entries:
        reason = _unsafe_reason(entry.name, entry.link_target)
        if reason:
            raise DataError(f"Archive entry '{entry.name}' {reason}; refusing to extract the archive.")
    total = sum(e.size for e in entries)
    if total > MAX_TOTAL_BYTES or total > MAX_COMPRESSION_RATIO * max(archive_bytes, 1):
        raise DataError(
            f"The archive would unpack to {total / 1e9:.1f} GB from {archive_bytes / 1e9:.3f} GB, "
            "which only a decompression bomb does; refusing to extract it."
        )
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if total > free:
        raise DataError(
            f"Extracting needs {total / 1e9:.1f} GB but only {free / 1e9:.1f} GB is free at "
            f"{target}; free some space or set BREEDSCOPE_HOME to a larger disk."
        )


def extract(archive_path: Path, target: Path) -> None:
    """Extract ``archive_path`` into ``target`` after checking every entry. Links are not created."""
    size = archive_path.stat().st_size
    try:
        if zipfile.is_zipfile(archive_path):
            with zipfile.ZipFile(archive_path) as archive:
                entries = _zip_entries(archive)
                check_entries(entries, size, target)
                for info, entry in zip(archive.infolist(), entries, strict=True):
                    if entry.link_target is None:
                        archive.extract(info, target)
        elif tarfile.is_tarfile(archive_path):
            with tarfile.open(archive_path) as archive:
                check_entries(_tar_entries(archive), size, target)
                regular = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
                archive.extractall(target, members=regular, filter="data")
        else:
            raise DataError(
                f"{archive_path} is neither a zip nor a tar archive; pass a folder or an archive."
            )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DataError(f"The archive {archive_path.name} is damaged ({exc}); download it again.") from exc
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise DataError(
                f"The disk filled up while extracting into {target}; free some space and fetch again."
            ) from exc
        raise


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        os.unlink(path)
