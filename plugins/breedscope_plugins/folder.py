"""The generic ``folder`` dataset: any ``<class>/<image>`` tree, or an archive of one.

``breedscope fetch folder --from PATH --name NAME``. Class folders may sit below wrapper
folders (``dataset/dataset/<class>``): the reader descends through folders that hold only one
folder, then takes every folder there as a class.
"""

from __future__ import annotations

from pathlib import Path

from breedscope.datasets.spec import DatasetSpec, Scan, scan_class_folders, single_top_folder
from breedscope.hookspecs import hookimpl


def scan(root: Path) -> Scan:
    classes_root = single_top_folder(root)
    prefix = classes_root.relative_to(root).parts

    def label_of(rel: Path) -> str | None:
        inner = rel.parts[len(prefix) :]
        return inner[0] if len(inner) >= 2 and rel.parts[: len(prefix)] == prefix else None

    result = scan_class_folders(root, label_of)
    if not result.images:
        result.notes.append(f"expected one folder per class under {classes_root}")
    return result


@hookimpl
def breedscope_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="folder",
            description="Any folder (or zip/tar) of <class>/<image> files: --from PATH --name NAME",
            scan=scan,
            needs_source=True,
            default_preset="generic",
        )
    ]
