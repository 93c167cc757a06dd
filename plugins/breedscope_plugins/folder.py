"""The generic ``folder`` dataset: any ``<class>/<image>`` tree, or an archive of one.

``breedscope fetch folder --from PATH --name NAME``. Class folders may sit below wrapper
folders (``dataset/dataset/<class>``): the reader descends through folders that hold only one
folder, then takes every folder there as a class.
"""

from __future__ import annotations

from pathlib import Path

from breedscope import DatasetSpec, Scan, hookimpl, scan_class_folders, single_top_folder


def scan(root: Path) -> Scan:
    classes_root = single_top_folder(root)
    prefix = classes_root.relative_to(root).parts

    def label_of(rel: Path) -> str | None:
        inner = rel.parts[len(prefix) :]
        return inner[0] if len(inner) >= 2 and rel.parts[: len(prefix)] == prefix else None

    result = scan_class_folders(root, label_of)
    if not result.images:
        result.notes.append(_what_was_found(root, classes_root))
    return result


def _what_was_found(root: Path, classes_root: Path) -> str:
    """Why no image has a class: say what the folder holds, and the layout it needs."""
    loose = [p for p in classes_root.iterdir() if p.is_file() and not p.name.startswith(".")]
    shown = classes_root.relative_to(root).as_posix() if classes_root != root else "the top level"
    found = (
        f"found {len(loose)} file(s) directly in {shown} and no class folders"
        if loose
        else f"found no files inside the folders of {shown}"
    )
    return (
        f"{found}; breedscope needs one folder per class (FOLDER/<class>/<image>), so for a single "
        "class folder pass the folder that holds it and its sibling classes"
    )


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
