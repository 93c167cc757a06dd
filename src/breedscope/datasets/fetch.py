"""Fetch: get a dataset's files (Kaggle, an archive, a folder, or generated), validate every
image, and store the result under ``BREEDSCOPE_HOME/datasets/NAME``.

Work happens in a staging folder that is renamed into place only when complete, so an
interrupted fetch never leaves something that looks finished; the next fetch starts clean.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from breedscope import __version__, paths
from breedscope.atomic import write_json
from breedscope.datasets import archive, kaggle, store
from breedscope.datasets.spec import DatasetSpec, Scan
from breedscope.datasets.validate import DEFAULT_MIN_SIDE, Validation, inspect_all, resolve
from breedscope.errors import DataError
from breedscope.hashing import sha256_file


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


def _obtain(spec: DatasetSpec, source: Path | None, slug: str | None, staging: Path) -> tuple[Path, dict]:
    """Put the dataset's files somewhere readable; return their root and a source description."""
    described = _source_description(spec, source, slug)
    if source is not None:
        if not source.exists():
            raise DataError(f"{source} does not exist; pass an existing archive or folder with --from.")
        if source.is_dir():
            return source.resolve(), described
        if not archive.is_archive(source):
            raise DataError(f"{source} is neither a folder nor a zip or tar archive.")
        described["sha256"] = sha256_file(source)
        archive.extract(source, staging / "raw")
        return staging / "raw", described
    if spec.materialize is not None:
        spec.materialize(staging / "raw")
        return staging / "raw", described
    if not slug:
        raise DataError(
            f"Dataset '{spec.name}' has no download source; pass an archive or folder with --from."
        )
    downloaded = kaggle.download(slug, paths.downloads_dir())
    described["sha256"] = sha256_file(downloaded)
    described["archive"] = str(downloaded)
    archive.extract(downloaded, staging / "raw")
    return staging / "raw", described


def fetch(
    spec: DatasetSpec,
    name: str | None = None,
    source: Path | None = None,
    slug: str | None = None,
    force: bool = False,
    min_side: int = DEFAULT_MIN_SIDE,
) -> FetchResult:
    """Fetch ``spec`` as ``name``; does no work if a finished fetch exists, unless ``force``."""
    name = name or spec.name
    if spec.needs_source and source is None:
        raise DataError(f"The '{spec.name}' plugin needs a source: add --from PATH (a folder or archive).")
    existing = store.load(name)
    if existing is not None and not force:
        return FetchResult(existing, reused=True)

    target = paths.dataset_dir(name)
    staging = target.parent / f".{name}.staging"
    archive.remove_tree(staging)  # a previous interrupted fetch: start clean
    staging.mkdir(parents=True)

    try:
        root, described = _obtain(spec, source, slug or (spec.kaggle[0] if spec.kaggle else None), staging)
        image_root = root if staging not in root.parents else Path("raw")
        scan, validation = validate_into(spec, root, staging, min_side)
        write_json(
            staging / store.INFO_FILE,
            {
                "name": name,
                "plugin": spec.name,
                "source": described,
                "image_root": str(image_root),
                "min_side": min_side,
                "breedscope_version": __version__,
                "images": len(validation.kept),
            },
        )
        _swap_into_place(staging, target)
    except BaseException:
        archive.remove_tree(staging)  # downloads are kept; half-extracted files are not
        raise
    result = store.load(name)
    assert result is not None
    return FetchResult(result, scan, validation)


def validate_into(spec: DatasetSpec, root: Path, directory: Path, min_side: int) -> tuple[Scan, Validation]:
    """Scan ``root`` with the plugin's layout reader, validate every candidate, write the results."""
    scan = spec.scan(root)
    if not scan.images:
        raise DataError(
            f"No images were found for '{spec.name}' in {root}; "
            + (scan.notes[0] if scan.notes else "check that it holds one folder per class.")
        )
    validation = resolve(inspect_all(root, scan.images, min_side=min_side))
    if not validation.kept:
        raise DataError(f"None of the {len(scan.images)} files in {root} is a usable image.")
    store.write_records(directory / store.IMAGES_FILE, validation.kept)
    write_json(
        directory / store.VALIDATION_FILE,
        {**validation.to_json(), "skipped_by_layout": dict(scan.skipped), "notes": scan.notes},
    )
    return scan, validation


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
    old = target.parent / f".{target.name}.old"
    archive.remove_tree(old)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
