"""``--exclude FILE``: train without the images a CSV lists (an audit's ``issues.csv``, or any
CSV with a ``path`` column of dataset-relative paths). Every path must be one of the dataset's
images, so a file written for another dataset, or by hand with a typo, is refused rather than
silently excluding nothing."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from breedscope.core.errors import ConfigError
from breedscope.core.hashing import sha256_file
from breedscope.data.validate import ImageRecord


@dataclass(frozen=True)
class Exclusion:
    """The paths a file lists, and where they came from (recorded in the manifest's header)."""

    file: Path
    sha256: str
    paths: frozenset[str]

    def kept(self, records: Sequence[ImageRecord]) -> list[ImageRecord]:
        return [record for record in records if record.path not in self.paths]

    def header(self) -> dict:
        return {"file": str(self.file), "sha256": self.sha256, "images": len(self.paths)}


def read_exclusion(file: Path, records: Sequence[ImageRecord], dataset: str) -> Exclusion:
    """The paths ``file`` lists, each checked to be one of ``records``' (one sentence otherwise)."""
    try:
        with open(file, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or "path" not in reader.fieldnames:
                raise ConfigError(
                    f"--exclude {file} has no 'path' column; give a CSV whose 'path' column lists "
                    "dataset-relative image paths (an audit's issues.csv has one)."
                )
            paths = frozenset(row["path"] for row in reader if row.get("path"))
    except FileNotFoundError:
        raise ConfigError(f"--exclude {file} does not exist; give the CSV of images to leave out.") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"--exclude {file} is not a readable UTF-8 CSV ({exc}).") from None
    known = {record.path for record in records}
    unknown = sorted(paths - known)
    if unknown:
        shown = ", ".join(unknown[:3]) + (", …" if len(unknown) > 3 else "")
        raise ConfigError(
            f"--exclude {file} names {len(unknown)} path(s) that are not images of dataset '{dataset}' "
            f"({shown}); was it written for another dataset? Its paths must be as in the dataset's "
            "manifest.csv."
        )
    return Exclusion(file, sha256_file(file), paths)
