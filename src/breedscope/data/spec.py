"""What a dataset plugin describes: where a dataset comes from and how to read its layout."""

from __future__ import annotations

import os
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
# Files every archive tool leaves behind; never images, never worth a warning.
JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True, slots=True)
class SourceImage:
    """One file a layout reader believes is an image of ``label``.

    ``path`` is relative to the dataset root. ``group`` ties images that must share a split
    (one patient's X-rays); ``source_split`` keeps the split the publisher shipped, if any.
    """

    path: str
    label: str
    group: str = ""
    source_split: str = ""


@dataclass
class Scan:
    """What a layout reader found: the candidate images, and what it skipped and why."""

    images: list[SourceImage] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset source, as a plugin registers it.

    Attributes:
        name: the name users type (``breedscope fetch NAME``).
        description: one line for ``breedscope datasets``.
        scan: reads an extracted archive or folder and returns a :class:`Scan`.
        kaggle: Kaggle dataset slugs, the first being the default download.
        kaggle_version: the version of that dataset the plugin was written and checked against
            (``fetch --version N`` takes another, ``--latest`` the current one).
        aliases: other names that reach this dataset (``mammography`` for ``breast``).
        materialize: for datasets that need no download (``demo``): writes the images into a folder.
        needs_source: ``True`` when ``--from`` is required (the generic ``folder`` plugin).
        default_preset: the preset ``breedscope run`` applies when the user names none.
        licence, homepage: shown in ``breedscope datasets`` and the report.
    """

    name: str
    description: str
    scan: Callable[[Path], Scan]
    kaggle: tuple[str, ...] = ()
    kaggle_version: int | None = None
    aliases: tuple[str, ...] = ()
    materialize: Callable[[Path], None] | None = None
    needs_source: bool = False
    default_preset: str | None = None
    licence: str = "unknown"
    homepage: str = ""


def is_junk(path: Path | str) -> bool:
    """macOS and Windows litter: AppleDouble stubs, ``__MACOSX`` trees, ``.DS_Store``.
    ``path`` is relative to the dataset root (a ``/``-separated string is taken too)."""
    parts = path.split("/") if isinstance(path, str) else path.parts
    name = parts[-1]
    return name in JUNK_NAMES or name.startswith("._") or "__MACOSX" in parts


# Why a symbolic link in a source is not read as an image (shown in the fetch's summary).
LINK_OUTSIDE = (
    "link leading outside the source (copy the files in, e.g. `cp -rL`, or pass the folder it leads into)"
)
LINK_TO_FOLDER = "link to a folder (not followed: it could loop, and its files are reached where they are)"


def iter_files(
    root: Path, prefix: str = "", *, source: Path | None = None, skipped: Counter[str] | None = None
) -> Iterator[str]:
    """Every regular file under ``root`` as a ``/``-separated path relative to it, in sorted path
    order so that scans are deterministic.

    A symbolic link to a file is followed when the file lies inside ``source`` (default
    ``root``): a tree of links within the dataset reads like the files. Links leading outside
    it, and links to folders, are counted in ``skipped`` by reason instead, so that a dataset
    never reads a file its source does not hold.

    Plain strings, one folder's names at a time: a path object per file of a 100,000-image
    tree would be a fifth of the data stage's memory.
    """
    source = (source or root).resolve()

    # A stack of listings, not recursion: a tree thousands of folders deep is read like any other,
    # in the same order (a folder's entries by name, each subfolder's files where it sorts).
    def listing(folder: Path) -> Iterator[os.DirEntry[str]]:
        with os.scandir(folder) as entries:
            return iter(sorted(entries, key=lambda entry: entry.name))

    stack = [(listing(root), prefix)]
    while stack:
        entries, at = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
        elif entry.is_symlink():
            reason = _link_problem(Path(entry.path), source)
            if reason is None:
                yield at + entry.name
            elif skipped is not None:
                skipped[reason] += 1
        elif entry.is_dir(follow_symlinks=False):
            stack.append((listing(Path(entry.path)), f"{at}{entry.name}/"))
        elif entry.is_file(follow_symlinks=False):
            yield at + entry.name


def _link_problem(link: Path, source: Path) -> str | None:
    """Why the link ``link`` is not read as a file of ``source`` (``None``: it is)."""
    target = link.resolve()
    if target.is_dir():
        return LINK_TO_FOLDER
    if source not in target.parents:
        return LINK_OUTSIDE
    if not target.is_file():  # dangling, or a pipe or device
        return "link to no regular file"
    return None


def scan_class_folders(
    root: Path,
    class_dir_of: Callable[[Path], str | None] | None = None,
    *,
    under: str | Path | None = None,
) -> Scan:
    """Read a ``<class>/<image>`` tree: the label is the name of each image's parent folder.

    ``under`` is the folder below ``root`` that holds the class folders (``"leaves"`` for an
    archive laid out as ``leaves/<species>/<image>``); image paths are relative to ``root``
    either way, as a dataset's paths must be. Every file is offered to validation (which
    decides by content what is an image), except known litter. ``class_dir_of`` may map a path
    (relative to the scanned folder) to its label, or ``None`` to skip it.
    """
    scan = Scan()
    top = root / under if under is not None else root
    relative_top = Path(under or ".").as_posix().strip("/")
    prefix = "" if relative_top in ("", ".") else relative_top + "/"
    for rel in iter_files(top, source=root, skipped=scan.skipped):
        if is_junk(rel):
            scan.skipped["system file (.DS_Store, __MACOSX, ._*)"] += 1
            continue
        if class_dir_of is not None:
            label = class_dir_of(Path(rel))
        else:
            folders = rel.split("/")[:-1]
            label = folders[-1] if folders else None
        if label is None:
            scan.skipped["outside the class folders"] += 1
            continue
        # One string per class, not one per image.
        scan.images.append(SourceImage(path=prefix + rel, label=sys.intern(label)))
    return scan


def single_top_folder(root: Path) -> Path:
    """Descend through wrapper folders (``dataset/dataset/...``): folders that hold exactly one
    folder and no images; stray files beside it (a README, a licence, a CSV) do not stop the
    descent."""
    current = root
    while True:
        entries = [p for p in current.iterdir() if not is_junk(p.relative_to(root))]
        folders = [p for p in entries if p.is_dir()]
        images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if len(folders) == 1 and not images:
            current = folders[0]
        else:
            return current


def folder_holding(root: Path, class_names: Iterable[str]) -> Path | None:
    """The shallowest folder under ``root`` (``root`` itself included) holding folders named like
    at least two of ``class_names`` (case-insensitively), wherever wrapper folders put it."""
    wanted = {name.lower() for name in class_names}
    candidates = [root, *(p for p in root.rglob("*") if p.is_dir() and not is_junk(p.relative_to(root)))]
    for folder in sorted(candidates, key=lambda p: (len(p.parts), str(p))):
        children = {c.name.lower() for c in folder.iterdir() if c.is_dir()}
        if len(children & wanted) >= 2:
            return folder
    return None


# Folder names that wrap a dataset rather than name a class: a fetch whose "classes" are these
# found the wrong level of the tree.
WRAPPER_NAMES = frozenset(
    {
        "train",
        "training",
        "test",
        "testing",
        "val",
        "valid",
        "validation",
        "images",
        "imgs",
        "data",
        "dataset",
        "datasets",
        "raw",
        "all",
        "files",
    }
)


def class_problem(labels: Iterable[str]) -> str | None:
    """Why ``labels`` (the classes a scan found) cannot be a dataset's classes, or ``None``."""
    found = sorted(set(labels))
    for label in found:
        control = next((c for c in label if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")), None)
        if control is not None:
            # A line break in a name ends the line of labels.txt: every label after it would be wrong.
            return (
                f"found a class named {label!r}, which holds a control character (U+{ord(control):04X}) "
                "that no label file can keep; rename that folder"
            )
    if len(found) < 2:
        return f"found only the class {found[0]!r}" if found else "found no class"
    wrappers = [label for label in found if label.lower() in WRAPPER_NAMES]
    if wrappers:
        return (
            f"found folders named like wrappers, not classes ({', '.join(wrappers)}), among "
            f"{', '.join(found[:8])}{'…' if len(found) > 8 else ''}"
        )
    return None


def confusable_classes(labels: Iterable[str]) -> list[list[str]]:
    """Groups of class names that differ only in Unicode normalisation (``café`` composed and
    decomposed) or in case (``Cat`` and ``cat``): different classes to breedscope, one to a
    reader, and usually one class split in two by accident."""
    groups: dict[str, set[str]] = {}
    for label in labels:
        groups.setdefault(unicodedata.normalize("NFKC", label).casefold(), set()).add(label)
    return [sorted(group, key=ascii) for _, group in sorted(groups.items()) if len(group) > 1]
