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

from breedscope.core.errors import DataError
from breedscope.core.names import relative_path_problem

MAX_TOTAL_BYTES = 200 * 1024**3  # larger than any dataset this tool is for
MAX_COMPRESSION_RATIO = 200  # images barely compress; ratios like 1000:1 are bombs
MAX_LINK_BYTES = 4096  # PATH_MAX: a link's target is never longer
MAX_NAME_BYTES = 255  # the longest file or folder name common file systems take
# An entry's whole path: far beyond any dataset's layout, well within PATH_MAX (4096) once the
# staging folder is put before it. Deeper or longer entries are hostile or broken archives.
MAX_ENTRY_BYTES = 1024
MAX_ENTRY_DEPTH = 64
ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".tar", ".zip")
# How each kind of archive begins (offset, bytes): enough to tell a damaged archive from a file
# that never was one.
_SIGNATURES = (
    (0, b"PK\x03\x04"),  # zip
    (0, b"PK\x05\x06"),  # empty zip
    (0, b"\x1f\x8b"),  # gzip (.tar.gz)
    (0, b"BZh"),  # bzip2
    (0, b"\xfd7zXZ\x00"),  # xz
    (257, b"ustar"),  # tar
)


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    is_dir: bool = False
    link_target: str | None = None


def is_archive(path: Path) -> bool:
    """A complete zip or tar archive."""
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def looks_like_archive(path: Path) -> bool:
    """Begins like a zip or tar archive (or bears an archive's name): a complete one, or a
    truncated or damaged one, as opposed to a file that never was an archive."""
    if path.name.lower().endswith(ARCHIVE_SUFFIXES):
        return True
    with open(path, "rb") as handle:
        head = handle.read(512)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def human_size(count: float) -> str:
    """``1536`` → ``1.5 KB``: sizes in messages, readable at any scale."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def _unsafe_reason(name: str, link_target: str | None) -> str | None:
    pure = PurePosixPath(name.replace("\\", "/"))
    if (problem := relative_path_problem(name)) is not None:
        return problem
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


def _zip_link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
    """A link entry's target, read only once its declared size is known to be a path's size."""
    if info.file_size > MAX_LINK_BYTES:
        raise DataError(
            f"Archive entry '{info.filename}' is a link of {human_size(info.file_size)}, longer than "
            "any link target can be; the archive is damaged or hostile, refusing to extract it."
        )
    with archive.open(info) as handle:
        return handle.read(MAX_LINK_BYTES + 1).decode("utf-8", "replace")


def _zip_entries(archive: zipfile.ZipFile) -> list[Entry]:
    entries = []
    for info in archive.infolist():
        mode = info.external_attr >> 16
        link = _zip_link_target(archive, info) if stat.S_ISLNK(mode) else None
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


def _long_name_part(name: str) -> str | None:
    for part in PurePosixPath(name.replace("\\", "/")).parts:
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            return part
    return None


def _file_folder_clash(entries: list[Entry]) -> tuple[str, str] | None:
    """A file entry whose name is also the folder of another entry (``a`` and ``a/b.png``)."""
    files = {e.name.rstrip("/"): e.name for e in entries if not e.is_dir}
    for entry in entries:
        parents = PurePosixPath(entry.name.replace("\\", "/").rstrip("/")).parents
        for parent in parents:
            if str(parent) in files:
                return files[str(parent)], entry.name
    return None


def check_entries(entries: list[Entry], archive_bytes: int, target: Path) -> None:
    """Raise :class:`DataError` naming the first unsafe entry, or when sizes are absurd."""
    for entry in entries:
        reason = _unsafe_reason(entry.name, entry.link_target)
        if reason:
            raise DataError(f"Archive entry '{entry.name}' {reason}; refusing to extract the archive.")
        depth = len(PurePosixPath(entry.name.replace("\\", "/")).parts)
        if len(entry.name.encode("utf-8")) > MAX_ENTRY_BYTES or depth > MAX_ENTRY_DEPTH:
            raise DataError(
                f"Archive entry '{entry.name[:60]}…' is {len(entry.name.encode('utf-8'))} bytes long and "
                f"{depth} folders deep, past any dataset's layout ({MAX_ENTRY_BYTES} bytes, "
                f"{MAX_ENTRY_DEPTH} folders); the archive is damaged or hostile, refusing to extract it."
            )
        if (part := _long_name_part(entry.name)) is not None:
            raise DataError(
                f"Archive entry '{part[:40]}…' has a name of {len(part.encode('utf-8'))} bytes, longer "
                f"than the {MAX_NAME_BYTES} a file system takes; rename it (extract the archive by hand "
                "and pass the folder with --from)."
            )
    seen: set[str] = set()
    for entry in entries:
        name = entry.name.replace("\\", "/").rstrip("/")
        if name in seen and not entry.is_dir:
            raise DataError(
                f"Archive entry '{entry.name}' appears twice, and only one of the two files could be "
                "extracted; the archive is damaged or was appended to: download it again or repack it."
            )
        seen.add(name)
    if (clash := _file_folder_clash(entries)) is not None:
        raise DataError(
            f"Archive entries '{clash[0]}' and '{clash[1]}' use one name for a file and a folder, which "
            "no file system can hold; the archive is damaged: download it again or repack it."
        )
    total = sum(e.size for e in entries)
    if total > MAX_TOTAL_BYTES or total > MAX_COMPRESSION_RATIO * max(archive_bytes, 1):
        raise DataError(
            f"The archive would unpack to {human_size(total)} from {human_size(archive_bytes)}, "
            "which only a decompression bomb does; refusing to extract it."
        )
    target.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target).free
    if total > free:
        raise DataError(
            f"Extracting needs {human_size(total)} but only {human_size(free)} is free at "
            f"{target.parent}; free some space or set BREEDSCOPE_HOME to a larger disk."
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
        elif looks_like_archive(archive_path):
            raise DataError(
                f"The archive {archive_path.name} is damaged or truncated (it does not end like a complete "
                "zip or tar); download it again."
            )
        else:
            raise DataError(
                f"{archive_path} is neither a zip nor a tar archive; pass a folder or an archive."
            )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as exc:
        raise DataError(f"The archive {archive_path.name} is damaged ({exc}); download it again.") from exc
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise DataError(
                f"The disk filled up while extracting {archive_path.name} into {target.parent}; free some "
                "space and fetch again."
            ) from exc
        raise


def remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        os.unlink(path)
