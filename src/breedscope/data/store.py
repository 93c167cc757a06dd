"""A fetched dataset on disk: ``images.csv`` (every kept image, measured), ``validation.json``
(everything excluded and why, duplicates, conflicts) and ``dataset.json`` (where it came from).

The presence of ``dataset.json`` is what marks a fetch as finished: it is written last.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from breedscope.core import paths
from breedscope.core.atomic import atomic_path
from breedscope.core.markdown import markdown_literal
from breedscope.data.validate import ImageRecord, findings

INFO_FILE = "dataset.json"
IMAGES_FILE = "images.csv"
VALIDATION_FILE = "validation.json"
RECORD_FIELDS = [f.name for f in fields(ImageRecord) if f.name not in ("reason", "mode")]


@dataclass(frozen=True)
class StoredDataset:
    """A fetched dataset (``breedscope.fetch`` returns one): its images, classes and origin."""

    name: str
    directory: Path
    info: dict

    @property
    def plugin(self) -> str:
        return self.info["plugin"]

    @property
    def image_root(self) -> Path:
        """Where the image paths in ``images.csv`` are relative to."""
        root = Path(self.info["image_root"])
        return root if root.is_absolute() else self.directory / root

    def records(self) -> list[ImageRecord]:
        # Row by row, with one string per label and one int per size (not one of each per image).
        names: dict[str, str] = {}
        sizes: dict[str, int] = {}
        with open(self.directory / IMAGES_FILE, newline="", encoding="utf-8") as handle:
            return [
                ImageRecord(
                    path=row["path"],
                    label=names.setdefault(row["label"], row["label"]),
                    group=row["group"],
                    source_split=names.setdefault(row["source_split"], row["source_split"]),
                    sha256=row["sha256"],
                    phash=row["phash"],
                    width=sizes.setdefault(row["width"], int(row["width"])),
                    height=sizes.setdefault(row["height"], int(row["height"])),
                )
                for row in csv.DictReader(handle)
            ]

    def validation(self) -> dict:
        return json.loads((self.directory / VALIDATION_FILE).read_text(encoding="utf-8"))

    def class_counts(self) -> dict[str, int]:
        """Images kept per class, in class-name order."""
        return dict(sorted(Counter(record.label for record in self.records()).items()))

    def validation_summary(self) -> list[str]:
        """What validation found, in sentences (what ``breedscope fetch`` prints below its table)."""
        return findings(self.validation())

    def _repr_markdown_(self) -> str:
        by_class = self.validation().get("by_class", {})
        reasons = sorted({k for counts in by_class.values() for k in counts} - {"found", "kept"})
        header = ["class", "found", "kept", *reasons]
        rows = [[label, *(str(counts.get(c, 0)) for c in header[1:])] for label, counts in by_class.items()]
        table = "\n".join(
            "| " + " | ".join(markdown_literal(cell) for cell in row) + " |"
            for row in [header, ["---"] * len(header), *rows]
        )
        kept = sum(int(counts.get("kept", 0)) for counts in by_class.values())
        notes = "".join(f"\n\n{markdown_literal(line)}" for line in self.validation_summary())
        name, plugin, folder = (markdown_literal(v) for v in (self.name, self.plugin, self.directory))
        return (
            f"**Dataset `{name}`** ({plugin} plugin): {kept} images in {len(by_class)} classes, "
            f"stored in `{folder}`\n\n{table}{notes}"
        )


def write_records(path: Path, records: list[ImageRecord]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in records:
            row = asdict(record)
            writer.writerow({key: row[key] for key in RECORD_FIELDS})


def load(name: str) -> StoredDataset | None:
    directory = paths.dataset_dir(name)
    info_file = directory / INFO_FILE
    if not info_file.is_file():
        return None
    return StoredDataset(name, directory, json.loads(info_file.read_text(encoding="utf-8")))


def stored_names() -> list[str]:
    root = paths.datasets_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / INFO_FILE).is_file())
