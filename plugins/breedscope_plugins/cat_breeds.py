"""``cat_breeds``: cat photos by breed (Kaggle ``ma7555/cat-breeds-dataset``).

Layout: ``images/<Breed Name>/*.jpg``, 67 breeds in the full set; every breed is fetched and a
run picks its breeds with ``dataset.classes`` (the ``cats`` preset picks the study's five).
Some files are WEBP or PNG with a ``.jpg`` name: validation decodes by content. When
``data/cats.csv`` is present and has ``id`` and ``breed`` columns, folder labels are checked
against it and disagreements are reported (labels are not changed).
"""

from __future__ import annotations

import csv
from pathlib import Path

from breedscope import DatasetSpec, Scan, hookimpl, is_junk, scan_class_folders, single_top_folder


def _images_dir(root: Path) -> Path:
    candidates = sorted(
        (p for p in root.rglob("images") if p.is_dir() and not is_junk(p.relative_to(root))),
        key=lambda p: len(p.parts),
    )
    return candidates[0] if candidates else single_top_folder(root)


def _check_against_csv(root: Path, result: Scan) -> None:
    tables = sorted(root.rglob("cats.csv"))
    if not tables:
        return
    with open(tables[0], newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        if not {"id", "breed"} <= set(reader.fieldnames or ()):
            result.notes.append(f"{tables[0].name} has no 'id' and 'breed' columns; not used")
            return
        breed_of = {row["id"]: row["breed"] for row in reader}
    disagreements = sum(
        1
        for image in result.images
        if (ident := Path(image.path).stem.split("_")[0]) in breed_of and breed_of[ident] != image.label
    )
    if disagreements:
        result.notes.append(f"{disagreements} image(s) sit in a breed folder that cats.csv disagrees with")


def scan(root: Path) -> Scan:
    images = _images_dir(root)
    prefix = images.relative_to(root).parts

    def label_of(rel: Path) -> str | None:
        inner = rel.parts[len(prefix) :]
        return inner[0] if rel.parts[: len(prefix)] == prefix and len(inner) == 2 else None

    result = scan_class_folders(root, label_of)
    _check_against_csv(root, result)
    return result


@hookimpl
def breedscope_datasets() -> list[DatasetSpec]:
    return [
        DatasetSpec(
            name="cat_breeds",
            description="Cat photos by breed (Petfinder); 67 breeds, pick some with dataset.classes",
            scan=scan,
            kaggle=("ma7555/cat-breeds-dataset",),
            kaggle_version=2,
            aliases=("cats",),
            default_preset="cats",
            licence="see the Kaggle page (Petfinder user photos)",
            homepage="https://www.kaggle.com/datasets/ma7555/cat-breeds-dataset",
        )
    ]
