"""``bccd``: white blood cells cropped from BCCD smears (Kaggle ``brikwerk/bccd-white-blood-cell``).

Layout: ``bccd_wbc/<class>/*.jpg``, no split folders. The Kaggle copy is augmented copies of a
few hundred cells: validation's exact and near-duplicate clusters keep copies on one side of
every split, and classes too small for every split are reported by the manifest.
"""

from __future__ import annotations

from pathlib import Path

from breedscope import DatasetSpec, Scan, folder_holding, hookimpl, scan_class_folders
from breedscope_plugins import folder

CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")


def scan(root: Path) -> Scan:
    """The class folders wherever they sit (found by their names, any case, below wrapper folders
    of any name); failing that, the generic folder reader."""
    classes_root = folder_holding(root, CLASSES)
    result = (
        scan_class_folders(root, under=classes_root.relative_to(root)) if classes_root else folder.scan(root)
    )
    result.images = [
        type(image)(image.path, image.label.lower(), image.group, image.source_split)
        for image in result.images
    ]
    return result


@hookimpl
def breedscope_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="bccd",
            description="White blood cells, 5 types, cropped from BCCD smear photos",
            scan=scan,
            kaggle=("brikwerk/bccd-white-blood-cell",),
            kaggle_version=1,  # not checked against Kaggle from here: --latest if it is refused
            aliases=("wbc",),
            default_preset="bccd",
            licence="MIT (BCCD)",
            homepage="https://github.com/Shenggan/BCCD_Dataset",
        )
    ]
