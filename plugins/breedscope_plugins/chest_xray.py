"""``chest_xray``: Kermany et al. paediatric chest X-rays, pneumonia vs normal.

Layout: ``chest_xray/{train,val,test}/{NORMAL,PNEUMONIA}/*.jpeg``. The Kaggle archive also
holds a complete nested copy (``chest_xray/chest_xray/``) and macOS litter; only the shallowest
copy is read. File names carry the patient, which becomes the group: one child's X-rays never
straddle train and test.
"""

from __future__ import annotations

import re
from pathlib import Path

from breedscope import DatasetSpec, Scan, SourceImage, hookimpl, is_junk

CLASSES = ("NORMAL", "PNEUMONIA")
SPLITS = {"train": "train", "val": "val", "test": "test"}
PATIENT_PATTERNS = (
    re.compile(r"^(person\d+)_(?:bacteria|virus)_\d+", re.IGNORECASE),
    re.compile(r"^(NORMAL2-IM-\d+)-\d+", re.IGNORECASE),
    re.compile(r"^(IM-\d+)-\d+", re.IGNORECASE),
)


def patient_of(file_name: str) -> str:
    """``person1234_virus_56.jpeg`` → ``person1234``; ``IM-0115-0001.jpeg`` → ``IM-0115``."""
    for pattern in PATIENT_PATTERNS:
        match = pattern.match(file_name)
        if match:
            return match.group(1)
    return ""


def _split_roots(root: Path) -> list[Path]:
    """Folders holding split folders with class folders in them, shallowest first."""
    found = {
        class_dir.parent.parent
        for class_dir in root.rglob("*")
        if class_dir.is_dir()
        and class_dir.name.upper() in CLASSES
        and class_dir.parent.name.lower() in SPLITS
        and not is_junk(class_dir.relative_to(root))
    }
    return sorted(found, key=lambda p: (len(p.relative_to(root).parts), str(p)))


def scan(root: Path) -> Scan:
    result = Scan()
    roots = _split_roots(root)
    if not roots:
        result.notes.append("expected {train,val,test}/{NORMAL,PNEUMONIA} folders, found none")
        return result
    chosen = roots[0]
    for other in roots[1:]:
        copies = sum(1 for p in other.rglob("*") if p.is_file())
        result.notes.append(
            f"ignored another copy of the dataset at {other.relative_to(root)} ({copies} files)"
        )
        result.skipped["nested duplicate copy"] += copies
    unknown_patients = 0
    for path in sorted(p for p in chosen.rglob("*") if p.is_file()):
        rel = path.relative_to(chosen)
        if is_junk(rel):
            result.skipped["system file (.DS_Store, __MACOSX, ._*)"] += 1
            continue
        if len(rel.parts) != 3 or rel.parts[0].lower() not in SPLITS or rel.parts[1].upper() not in CLASSES:
            if not any(other in path.parents for other in roots[1:]):
                result.skipped["outside the class folders"] += 1
            continue
        patient = patient_of(path.name)
        unknown_patients += not patient
        result.images.append(
            SourceImage(
                path=path.relative_to(root).as_posix(),
                label=rel.parts[1].upper(),
                group=f"patient:{patient}" if patient else "",
                source_split=SPLITS[rel.parts[0].lower()],
            )
        )
    junk_outside = sum(
        1 for p in root.rglob("*") if p.is_file() and is_junk(p.relative_to(root)) and chosen not in p.parents
    )
    result.skipped["system file (.DS_Store, __MACOSX, ._*)"] += junk_outside
    if unknown_patients:
        result.notes.append(f"{unknown_patients} file name(s) carry no patient id; each is its own group")
    return result


@hookimpl
def breedscope_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="chest_xray",
            description="Paediatric chest X-rays, NORMAL vs PNEUMONIA (Kermany et al. 2018)",
            scan=scan,
            kaggle=("paultimothymooney/chest-xray-pneumonia",),
            kaggle_version=2,
            aliases=("pneumonia",),
            default_preset="chest_xray",
            licence="CC BY 4.0",
            homepage="https://data.mendeley.com/datasets/rscbjbr9sj/2",
        )
    ]
