"""The split manifest: one schema for every dataset, one row per image, and a JSON sidecar.

Splits are stratified by class and grouped at once (a patient, a duplicate cluster), and the
same records, parameters and seed always give byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from breedscope.config.settings import BalanceConfig, SplitConfig
from breedscope.core.atomic import atomic_path, write_json
from breedscope.core.errors import BreedscopeError, ConfigError, DataError
from breedscope.core.hashing import sha256_file
from breedscope.core.names import relative_path_problem
from breedscope.data.validate import ImageRecord

SCHEMA_VERSION = 1
SPLITS = ("train", "val", "test")
COLUMNS = ["path", "label", "split", "group", "sha256", "phash", "width", "height", "source_split"]


@dataclass(frozen=True, slots=True)
class Row:
    path: str
    label: str
    split: str
    group: str
    sha256: str
    phash: str
    width: int
    height: int
    source_split: str

    @classmethod
    def of(cls, record: ImageRecord, split: str = "", label: str | None = None) -> Row:
        """A validated image as a manifest row: in ``split`` (none yet: ``""``), under its own
        label or ``label`` (an external set's class mapped onto the model's)."""
        return cls(
            record.path,
            record.label if label is None else label,
            split,
            record.group,
            record.sha256,
            record.phash,
            record.width,
            record.height,
            record.source_split,
        )


@dataclass
class Manifest:
    rows: list[Row]
    header: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return sorted({row.label for row in self.rows})

    def split(self, name: str) -> list[Row]:
        return [row for row in self.rows if row.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        for row in self.rows:
            table[row.split][row.label] += 1
        return {split: dict(sorted(counts.items())) for split, counts in table.items()}

    def csv_lines(self) -> Iterator[str]:
        """The CSV file, line by line (one row at a time: at 100,000 images the whole text would
        be another 20 MB)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        rows = ([getattr(row, column) for column in COLUMNS] for row in self.rows)
        for values in itertools.chain([COLUMNS], rows):
            writer.writerow(values)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    def csv_text(self) -> str:
        return "".join(self.csv_lines())

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for line in self.csv_lines():
            digest.update(line.encode("utf-8"))
        return digest.hexdigest()

    def write(self, rows_file: Path, header_file: Path) -> str:
        """Write the rows (CSV) and the header (JSON, with the CSV's SHA-256), each atomically;
        return that SHA-256."""
        digest = hashlib.sha256()
        with atomic_path(rows_file) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
            for line in self.csv_lines():
                handle.write(line)
                digest.update(line.encode("utf-8"))
        write_json(header_file, {**self.header, "csv_sha256": digest.hexdigest()})
        return digest.hexdigest()


def read(rows_file: Path, header_file: Path) -> Manifest:
    """The manifest stored in ``rows_file`` (CSV) and ``header_file`` (JSON), checked as the input
    it is: the CSV must be the one the header hashes, and every image path must stay inside the
    dataset's folder."""
    import json

    directory = rows_file.parent
    for file in (rows_file, header_file):
        if not file.is_file():
            raise BreedscopeError(
                f"{directory} has no {file.name}, so it holds no complete manifest; pass a run directory "
                "that breedscope wrote (or a folder from `breedscope split`)."
            )
    damaged = (
        f"{rows_file} is damaged or was edited by hand (%s); restore it from the "
        "run's owner, or make a new split with `breedscope split` or a new run."
    )
    try:
        header = json.loads(header_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{header_file} is not the JSON breedscope writes ({exc}); restore it from the "
            "run's owner, or make a new split."
        ) from exc
    stated = header.get("csv_sha256") if isinstance(header, dict) else None
    if stated != sha256_file(rows_file):
        raise DataError(damaged % f"its SHA-256 is not the one {header_file.name} states")
    try:
        with open(rows_file, newline="", encoding="utf-8") as handle:
            rows = [
                Row(**{**r, "width": int(r["width"]), "height": int(r["height"])})
                for r in csv.DictReader(handle)
            ]
    except (ValueError, TypeError, KeyError) as exc:
        raise DataError(damaged % f"a row does not fit its columns: {exc}") from exc
    for row in rows:
        if (problem := relative_path_problem(row.path)) is not None or row.split not in SPLITS:
            raise DataError(damaged % f"the row of '{row.path}' {problem or 'names no split'}")
    return Manifest(rows, header)


def select_classes(records: list[ImageRecord], classes: list[str] | None) -> list[ImageRecord]:
    if classes is None:
        return records
    available = sorted({r.label for r in records})
    missing = [c for c in classes if c not in available]
    if missing:
        raise ConfigError(
            f"dataset.classes: {', '.join(repr(m) for m in missing)} not in this dataset; "
            f"available: {', '.join(available)}."
        )
    wanted = set(classes)
    return [r for r in records if r.label in wanted]


def _rng(seed: int, *salt: str) -> random.Random:
    # random.Random seeded with a string is stable across Python versions and platforms.
    return random.Random(":".join([str(seed), *salt]))


def cap_per_class(records: list[ImageRecord], cap: int, seed: int) -> list[ImageRecord]:
    """Keep at most ``cap`` images per class, chosen reproducibly at random."""
    by_class: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_class[record.label].append(record)
    kept: list[ImageRecord] = []
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda r: r.path)
        _rng(seed, "cap", label).shuffle(members)
        kept.extend(members[:cap])
    return sorted(kept, key=lambda r: r.path)


def group_label(members: list[ImageRecord]) -> str:
    counts = Counter(r.label for r in members)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0][0]


def assign_splits(records: list[ImageRecord], ratios: dict[str, float], seed: int) -> dict[str, str]:
    """Map each path to a split: whole groups go to the split furthest below its target share.

    Per class, groups are shuffled reproducibly and placed largest first, which keeps every
    class close to the requested ratios while never dividing a group.
    """
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        groups[record.group or record.path].append(record)
    by_class: dict[str, list[str]] = defaultdict(list)
    for group_id in sorted(groups):
        by_class[group_label(groups[group_id])].append(group_id)

    active = [name for name in SPLITS if ratios.get(name, 0) > 0]
    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        group_ids = by_class[label]
        _rng(seed, "split", label).shuffle(group_ids)
        group_ids.sort(key=lambda g: -len(groups[g]))  # stable: ties keep the shuffled order
        total = sum(len(groups[g]) for g in group_ids)
        filled = Counter[str]()
        for group_id in group_ids:
            deficits = {s: ratios[s] * total - filled[s] for s in active}
            chosen = max(active, key=lambda s: (deficits[s] / ratios[s], deficits[s]))
            filled[chosen] += len(groups[group_id])
            for record in groups[group_id]:
                assignment[record.path] = chosen
    return assignment


def source_splits(records: list[ImageRecord]) -> dict[str, str]:
    missing = [r.path for r in records if r.source_split not in SPLITS]
    if missing:
        raise ConfigError(
            f"split.use_source_split: {len(missing)} images have no source split (e.g. {missing[0]}); "
            "this dataset was not published with train/val/test folders."
        )
    return {r.path: r.source_split for r in records}


def undersample_train(rows: list[Row], seed: int) -> list[Row]:
    """Drop training rows so every class has as many as the smallest one; val/test untouched."""
    train_counts = Counter(r.label for r in rows if r.split == "train")
    floor = min(train_counts.values())
    kept_train: list[Row] = []
    for label in sorted(train_counts):
        members = sorted((r for r in rows if r.split == "train" and r.label == label), key=lambda r: r.path)
        _rng(seed, "undersample", label).shuffle(members)
        kept_train.extend(members[:floor])
    return sorted([*kept_train, *(r for r in rows if r.split != "train")], key=lambda r: r.path)


def build(
    records: list[ImageRecord],
    split: SplitConfig,
    balance: BalanceConfig,
    classes: list[str] | None = None,
    dataset_info: dict | None = None,
) -> Manifest:
    """Select, balance and split ``records`` into a :class:`Manifest`."""
    warnings: list[str] = []
    selected = select_classes(sorted(records, key=lambda r: r.path), classes)
    found = Counter(r.label for r in selected)
    if balance.policy == "cap":
        assert balance.cap is not None
        selected = cap_per_class(selected, balance.cap, split.seed)

    ratios = split.ratios()
    needed = sum(1 for value in ratios.values() if value > 0)
    sizes = Counter(r.label for r in selected)
    too_small = sorted(label for label, n in sizes.items() if n < needed and not split.use_source_split)
    for label in too_small:
        warnings.append(f"class '{label}' has {sizes[label]} image(s), too few for {needed} splits; left out")
    selected = [r for r in selected if r.label not in too_small]
    if len({r.label for r in selected}) < 2:
        raise ConfigError(
            "Fewer than two classes are left to classify after selection; check dataset.classes."
        )

    if not split.grouped:  # per-image split, only for reproducing studies that did it
        selected = [replace(r, group="") for r in selected]
    if split.use_source_split:
        assignment = source_splits(selected)
    else:
        assignment = assign_splits(selected, ratios, split.seed)
    rows = [replace(Row.of(r, assignment[r.path]), group=r.group or r.path) for r in selected]
    if balance.policy == "undersample":
        rows = undersample_train(rows, split.seed)

    manifest = Manifest(rows)
    for split_name, counts in manifest.counts().items():
        absent = [label for label in manifest.classes if counts.get(label, 0) == 0 and ratios[split_name] > 0]
        if absent and not (split_name == "val" and split.use_source_split is False and ratios["val"] == 0):
            warnings.append(f"the {split_name} split has no images of {', '.join(absent)}")
    info = dataset_info or {}
    manifest.header = {
        "schema_version": SCHEMA_VERSION,
        "dataset": {
            "name": info.get("name"),
            "plugin": info.get("plugin"),
            "source_sha256": info.get("source", {}).get("sha256"),
            "source": info.get("source", {}).get("kind"),
            # Which data, exactly: the Kaggle handle with its version, and the stored images' digest.
            "handle": info.get("source", {}).get("handle"),
            "content_sha256": info.get("source", {}).get("content_sha256"),
        },
        "split": split.model_dump(),
        "balance": {
            "policy": balance.policy,
            "cap": balance.cap,
            "found_per_class": dict(sorted(found.items())),
        },
        "seed": split.seed,
        "classes": manifest.classes,
        "counts": manifest.counts(),
        "warnings": warnings,
    }
    return manifest
