"""Fetch: get a dataset's files (Kaggle, an archive, a folder, or generated), validate every
image, and store the result under ``BREEDSCOPE_HOME/datasets/NAME``.

Work happens in a staging folder that is renamed into place only when complete, so an
interrupted fetch never leaves something that looks finished; the next fetch starts clean.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

from breedscope.core import locks, paths
from breedscope.core.atomic import write_json
from breedscope.core.errors import ConfigError, DataError, Interrupted
from breedscope.core.hashing import sha256_file
from breedscope.core.names import check_name, check_slug, component_problem
from breedscope.core.progress import console
from breedscope.core.versions import __version__
from breedscope.data import archive, kaggle, store
from breedscope.data.archive import ARCHIVE_SUFFIXES
from breedscope.data.spec import DatasetSpec, Scan, class_problem, confusable_classes
from breedscope.data.validate import DEFAULT_MIN_SIDE, Validation, inspect_all, inspection_workers, resolve


@dataclass
class FetchResult:
    dataset: store.StoredDataset
    scan: Scan | None = None
    validation: Validation | None = None
    reused: bool = False


def _source_description(spec: DatasetSpec, source: Path | None, slug: str | None) -> dict:
    if source is not None:
        kind = "folder" if source.is_dir() else "archive"
        return {"kind": kind, "location": str(source.resolve())}
    if spec.materialize is not None:
        return {"kind": "generated", "location": spec.name}
    return {"kind": "kaggle", "location": slug}


def _obtain(
    spec: DatasetSpec, source: Path | None, kaggle_source: KaggleRequest | None, staging: Path
) -> tuple[Path, dict]:
    """Put the dataset's files somewhere readable; return their root and a source description."""
    described = _source_description(spec, source, kaggle_source.slug if kaggle_source else None)
    if source is not None:
        if not source.exists():
            raise DataError(f"{source} does not exist; pass an existing archive or folder with --from.")
        if not source.is_dir() and not source.is_file():  # opening a pipe waits for ever
            raise DataError(
                f"{source} is neither a folder nor a regular file (a pipe, socket or device); pass an "
                "archive or a folder with --from."
            )
        if source.is_dir():
            return source.resolve(), described
        if not archive.is_archive(source) and not archive.looks_like_archive(source):
            raise DataError(f"{source} is neither a folder nor a zip or tar archive.")
        described["sha256"] = sha256_file(source)
        archive.extract(source, staging / "raw")
        return staging / "raw", described
    if spec.materialize is not None:
        spec.materialize(staging / "raw")
        return staging / "raw", described
    if kaggle_source is None:
        raise DataError(
            f"Dataset '{spec.name}' has no download source; pass an archive or folder with --from."
        )
    copy = kaggle.obtain(kaggle_source.slug, kaggle_source.version, kaggle_source.force, console.print)
    # The images stay where kagglehub keeps them (its versioned cache) or where Kaggle mounts
    # them: a 126,000-image set is not copied a second time.
    described.update(
        handle=copy.handle, version=copy.version, mounted=copy.mounted, page=kaggle.page(kaggle_source.slug)
    )
    return copy.root, described


@dataclass(frozen=True)
class KaggleRequest:
    """Which Kaggle dataset to get: its slug and version (``None``: the current one)."""

    slug: str
    version: int | None
    force: bool


def _kaggle_request(
    spec: DatasetSpec, slug: str | None, version: int | None, latest: bool, force: bool
) -> KaggleRequest | None:
    if version is not None and latest:
        raise ConfigError("Choose one of --version N and --latest.")
    slug = slug or (spec.kaggle[0] if spec.kaggle else None)
    if slug is None:
        return None
    check_slug(slug)
    pinned = spec.kaggle_version if slug == (spec.kaggle[0] if spec.kaggle else None) else None
    return KaggleRequest(slug, None if latest else (version or pinned), force)


def derived_name(source: Path) -> str:
    """A dataset name from its source: ``~/photos/pets.zip`` → ``pets``."""
    name = source.resolve().name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _target_name(spec: DatasetSpec, name: str | None, source: Path | None) -> str:
    if name is not None:
        return check_name(name)
    if not spec.needs_source:
        return spec.name
    assert source is not None
    derived = derived_name(source)
    if component_problem(derived):
        raise ConfigError(
            f"A dataset name cannot be made from '{source.name}' (it {component_problem(derived)}); "
            "give one with --name NAME."
        )
    return derived


def _refuse_source_inside(source: Path | None, target: Path) -> None:
    """A source inside the dataset it would replace would be deleted by the swap."""
    if source is None:
        return
    resolved, inside = source.resolve(), target.resolve()
    if resolved == inside or inside in resolved.parents:
        raise DataError(
            f"{source} lies inside the stored dataset '{target.name}' that this fetch would replace; "
            f"pass the original archive or folder, or check the stored images with "
            f"`breedscope validate {target.name}`."
        )


def fetch(
    spec: DatasetSpec,
    name: str | None = None,
    source: Path | None = None,
    slug: str | None = None,
    force: bool = False,
    min_side: int = DEFAULT_MIN_SIDE,
    *,
    version: int | None = None,
    latest: bool = False,
    classes: Sequence[str] | None = None,
) -> FetchResult:
    """Fetch ``spec`` as ``name``; does no work if a finished fetch exists, unless ``force``
    (which also downloads again).

    ``name`` defaults to the plugin's name, or for a plugin that needs a source (``folder``) to
    the source's own name. A Kaggle download takes the plugin's pinned version, or ``version``,
    or with ``latest`` the current one. ``classes`` keeps only those classes: only their images
    are validated. Only one process fetches a dataset at a time; another waits.
    """
    if spec.needs_source and source is None:
        raise DataError(f"The '{spec.name}' plugin needs a source: add --from PATH (a folder or archive).")
    name = _target_name(spec, name, source)
    needs_download = source is None and spec.materialize is None
    request = _kaggle_request(spec, slug, version, latest, force) if needs_download else None
    target = paths.dataset_dir(name)
    _refuse_source_inside(source, target)
    waiting = f"Another breedscope process is fetching '{name}'; waiting for it to finish."
    with locks.waiting(paths.dataset_lock(name), waiting):
        existing = store.load(name)
        if existing is not None and not force:
            return FetchResult(existing, reused=True)
        return _fetch_locked(spec, name, target, source, request, min_side, classes)


def _fetch_locked(
    spec: DatasetSpec,
    name: str,
    target: Path,
    source: Path | None,
    request: KaggleRequest | None,
    min_side: int,
    classes: Sequence[str] | None,
) -> FetchResult:
    staging = target.parent / f".{name}.staging"
    archive.remove_tree(staging)  # a previous interrupted fetch: start clean
    staging.mkdir(parents=True)
    try:
        root, described = _obtain(spec, source, request, staging)
        image_root = root if staging not in root.parents else Path("raw")
        where = described["location"] or spec.name
        scan, validation = validate_into(spec, root, staging, min_side, where=where, classes=classes)
        described["content_sha256"] = content_digest(validation)
        write_json(
            staging / store.INFO_FILE,
            {
                "name": name,
                "plugin": spec.name,
                "source": described,
                "image_root": str(image_root),
                "min_side": min_side,
                "classes": sorted(classes) if classes else None,
                "breedscope_version": __version__,
                "images": len(validation.kept),
            },
        )
        _swap_into_place(staging, target)
    except KeyboardInterrupt:
        archive.remove_tree(staging)
        raise Interrupted(
            f"nothing was stored for '{name}'"
            + (" (what was downloaded is kept for the next fetch)." if request else ".")
        ) from None
    except BaseException:
        archive.remove_tree(staging)  # downloads are kept; half-extracted files are not
        raise
    result = store.load(name)
    assert result is not None
    return FetchResult(result, scan, validation)


def content_digest(validation: Validation) -> str:
    """One SHA-256 for what was stored: over every kept image's ``path<TAB>sha256`` line, in path
    order (each file's own hash is in images.csv), so two fetches of the same files give the same
    digest. Hashed line by line: at 100,000 images the lines are never all in memory."""
    digest = hashlib.sha256()
    separator = b""
    for record in sorted(validation.kept, key=attrgetter("path")):
        digest.update(separator + f"{record.path}\t{record.sha256}".encode())
        separator = b"\n"
    return digest.hexdigest()


def _keep_classes(scan: Scan, classes: Sequence[str], where: str) -> None:
    """Keep the images of ``classes`` only, before anything is decoded."""
    found = sorted({image.label for image in scan.images})
    unknown = [c for c in classes if c not in found]
    if unknown:
        raise ConfigError(
            f"{where} has no class {', '.join(repr(c) for c in unknown)}; its classes are "
            f"{', '.join(found[:20])}{'…' if len(found) > 20 else ''}."
        )
    kept = [image for image in scan.images if image.label in set(classes)]
    scan.skipped["not among the chosen classes"] += len(scan.images) - len(kept)
    scan.images = kept


def validate_into(
    spec: DatasetSpec,
    root: Path,
    directory: Path,
    min_side: int,
    where: str | None = None,
    classes: Sequence[str] | None = None,
) -> tuple[Scan, Validation]:
    """Scan ``root`` with the plugin's layout reader, validate every candidate, write the results.

    ``where`` names the source in messages (the archive, not the staging folder it was
    extracted into, which is gone by the time the user reads them). A scan that finds fewer
    than two classes, or wrapper folders where classes belong, is refused before any decoding.
    """
    where = where or str(root)
    with inspection_workers() as pool:  # started before the scan fills this process's memory
        scan = spec.scan(root)
        if not scan.images:
            skipped = "; ".join(f"{count} {reason}" for reason, count in sorted(scan.skipped.items()))
            raise DataError(
                f"No images were found for '{spec.name}' in {where}: "
                + (scan.notes[0] if scan.notes else "check that it holds one folder per class")
                + (f" (skipped: {skipped})." if skipped else ".")
            )
        if classes:
            _keep_classes(scan, classes, where)
        problem = class_problem(image.label for image in scan.images)
        if problem:
            raise DataError(
                f"The '{spec.name}' reader {problem} in {where}, so the class folders were not found; "
                "check the layout (see the dataset's page in the docs), or for your own tree use "
                "`breedscope fetch folder --from FOLDER` with one folder per class."
            )
        for group in confusable_classes({image.label for image in scan.images}):
            scan.notes.append(
                f"the classes {' and '.join(ascii(label) for label in group)} differ only in case or Unicode "
                "form: they are kept apart; merge their folders if they are one class"
            )
        records = inspect_all(root, scan.images, min_side=min_side, pool=pool)
    validation = resolve(records)  # with the workers gone, their memory is free for this
    if not validation.kept:
        raise DataError(f"None of the {len(scan.images)} files in {where} is a usable image.")
    _refuse_lost_classes(validation, where)
    store.write_records(directory / store.IMAGES_FILE, validation.kept)
    write_json(
        directory / store.VALIDATION_FILE,
        {**validation.to_json(), "skipped_by_layout": dict(scan.skipped), "notes": scan.notes},
    )
    return scan, validation


def _refuse_lost_classes(validation: Validation, where: str) -> None:
    """The scan found two classes or more; refuse the fetch when validation leaves fewer (every
    file of a class unreadable: HEIC saved as ``.jpg``, say), naming what became of the rest."""
    kept = {record.label for record in validation.kept}
    if len(kept) >= 2:
        return
    lost = sorted({record.label for record in validation.excluded} - kept)
    reasons = Counter(record.reason for record in validation.excluded if record.label in lost)
    why = ", ".join(f"{count} {reason}" for reason, count in reasons.most_common(3))
    raise DataError(
        f"Only the class {', '.join(repr(k) for k in sorted(kept))} has usable images in {where}: every "
        f"file of {', '.join(repr(c) for c in lost)} was excluded ({why}); a classifier needs two "
        "classes or more: convert or replace those files and fetch again."
    )


def revalidate(spec: DatasetSpec, dataset: store.StoredDataset) -> tuple[Scan, Validation]:
    """Validate a fetched dataset's files again (after editing them by hand, say)."""
    if not dataset.image_root.is_dir():
        raise DataError(
            f"The images of '{dataset.name}' are gone from {dataset.image_root}; fetch it again with --force."
        )
    return validate_into(
        spec, dataset.image_root, dataset.directory, dataset.info.get("min_side", DEFAULT_MIN_SIDE)
    )


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` with ``staging``; only ever replaces a breedscope dataset."""
    if target.exists() and not (target / store.INFO_FILE).is_file():
        raise DataError(
            f"{target} exists and is not a dataset breedscope stored (it has no {store.INFO_FILE}); "
            "move it away or choose another --name."
        )
    old = target.parent / f".{target.name}.old"
    archive.remove_tree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
