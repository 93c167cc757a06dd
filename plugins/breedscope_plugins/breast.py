"""``breast`` (alias ``mammography``): benign / malignant / normal breast images.

Works for BUSI (``aryashah2k/breast-ultrasound-images-dataset``, the default download) and for
the study's own set (``--slug anissaapril/kanker-payudara``), whose layout is unknown: class
folders are found at any depth and in any case (English or Indonesian names), segmentation
masks (``_mask``, ``_mask_1``...) are skipped, and split folders above a class folder are kept
as the source split.
"""

from __future__ import annotations

import re
from pathlib import Path

from breedscope import DatasetSpec, Scan, SourceImage, hookimpl, is_junk

CLASS_NAMES = {
    "benign": "benign",
    "jinak": "benign",
    "malignant": "malignant",
    "ganas": "malignant",
    "normal": "normal",
}
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
MASK = re.compile(r"_mask(_\d+)?$", re.IGNORECASE)


def scan(root: Path) -> Scan:
    result = Scan()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root)
        if is_junk(rel):
            result.skipped["system file (.DS_Store, __MACOSX, ._*)"] += 1
            continue
        folders = [part.lower() for part in rel.parts[:-1]]
        labels = [CLASS_NAMES[f] for f in folders if f in CLASS_NAMES]
        if not labels:
            result.skipped["outside the class folders"] += 1
            continue
        if MASK.search(path.stem):
            result.skipped["segmentation mask"] += 1
            continue
        splits = [SPLIT_NAMES[f] for f in folders if f in SPLIT_NAMES]
        result.images.append(
            SourceImage(rel.as_posix(), labels[-1], source_split=splits[-1] if splits else "")
        )
    found = sorted({image.label for image in result.images})
    if found != sorted(set(CLASS_NAMES.values())):
        top = sorted(p.name for p in root.iterdir())[:10]
        result.notes.append(
            f"found class folders {found or 'none'} (expected benign, malignant, normal); "
            f"top-level entries: {', '.join(top)}"
        )
    return result


@hookimpl
def breedscope_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="breast",
            description="Breast images: benign / malignant / normal (BUSI ultrasound by default)",
            scan=scan,
            kaggle=("aryashah2k/breast-ultrasound-images-dataset", "anissaapril/kanker-payudara"),
            kaggle_version=1,
            aliases=("mammography",),
            default_preset="breast",
            licence="CC0 (BUSI, Al-Dhabyani et al. 2020)",
            homepage="https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
        )
    ]
