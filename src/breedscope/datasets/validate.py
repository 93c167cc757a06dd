"""Validation: decode every candidate fully, hash it, and decide what is kept and why not.

Runs on every core (decoding is the slow part) and streams results, so memory stays flat
whatever the number of images.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import imagehash

from breedscope.datasets.spec import SourceImage
from breedscope.hashing import sha256_file
from breedscope.images import UnreadableImage, displayed_size, open_image, to_rgb
from breedscope.progress import progress_bar

DEFAULT_MIN_SIDE = 32
# Perceptual hashes this close (of 64 bits) are treated as the same picture.
NEAR_DUPLICATE_BITS = 4
CHUNK = 64  # images per task sent to a worker process
# The perceptual hash looks at 32 x 32 pixels, so a large JPEG is decoded at a reduced scale
# (never below twice this side): every byte is still decoded, truncation still fails, and a
# 2,400 px X-ray takes a fraction of the time.
HASH_DECODE_SIDE = 128


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """A candidate after decoding: either measured (``reason`` empty) or rejected with a reason."""

    path: str
    label: str
    group: str
    source_split: str
    sha256: str = ""
    phash: str = ""
    width: int = 0
    height: int = 0
    mode: str = ""
    reason: str = ""


def inspect(root: Path, candidate: SourceImage, min_side: int = DEFAULT_MIN_SIDE) -> ImageRecord:
    """Decode one candidate and measure it. Never raises for bad image data."""
    base = {
        "path": candidate.path,
        "label": candidate.label,
        "group": candidate.group,
        "source_split": candidate.source_split,
    }
    path = root / candidate.path
    try:
        digest = sha256_file(path)
        image = open_image(path, reduce_for=HASH_DECODE_SIDE)
        width, height = displayed_size(path)
        if min(width, height) < min_side:
            return ImageRecord(**base, sha256=digest, reason=f"smaller than {min_side} px")
        phash = str(imagehash.phash(to_rgb(image)))
    except UnreadableImage as exc:
        return ImageRecord(**base, reason=exc.reason)
    except OSError as exc:  # unreadable from disk (permissions, vanished file)
        return ImageRecord(**base, reason=f"cannot read file ({exc.strerror or exc})")
    return ImageRecord(**base, sha256=digest, phash=phash, width=width, height=height, mode=image.mode)


def _inspect_chunk(args: tuple[Path, list[SourceImage], int]) -> list[ImageRecord]:
    root, chunk, min_side = args
    return [inspect(root, candidate, min_side) for candidate in chunk]


def _exit_with_parent(parent: int) -> None:
    """Worker start-up. Ctrl-C is the parent's to handle (it reaches the whole process group),
    and a worker whose parent died (``kill -9``) exits instead of decoding on for nobody."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Processes that never outlive the breedscope process that started them."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_exit_with_parent, initargs=(os.getpid(),))


def _results_in_order(root: Path, chunks: Iterator[list[SourceImage]], min_side: int, workers: int):
    """Inspect chunks on ``workers`` processes, yielding results in order, with only a few
    chunks in flight so that memory does not grow with the number of images."""
    if workers == 1:
        for chunk in chunks:
            yield _inspect_chunk((root, chunk, min_side))
        return
    pool = worker_pool(workers)
    try:
        in_flight: deque[Future[list[ImageRecord]]] = deque()
        for chunk in chunks:
            in_flight.append(pool.submit(_inspect_chunk, (root, chunk, min_side)))
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        # After Ctrl-C or an error, queued chunks are dropped rather than decoded first.
        pool.shutdown(wait=True, cancel_futures=True)


def inspect_all(
    root: Path,
    candidates: list[SourceImage],
    min_side: int = DEFAULT_MIN_SIDE,
    workers: int | None = None,
) -> list[ImageRecord]:
    """Inspect every candidate on ``workers`` processes (default: every core), in input order."""
    workers = min(workers or os.cpu_count() or 1, max(1, len(candidates) // CHUNK))
    chunks = (candidates[i : i + CHUNK] for i in range(0, len(candidates), CHUNK))
    records: list[ImageRecord] = []
    with progress_bar("Validating images", total=len(candidates)) as advance:
        for batch in _results_in_order(root, chunks, min_side, workers):
            records.extend(batch)
            advance(len(batch))
    return records


@dataclass
class Validation:
    """The outcome: kept records with their final groups, rejected ones, and duplicate findings."""

    kept: list[ImageRecord]
    excluded: list[ImageRecord]
    exact_duplicate_sets: list[list[str]]
    near_duplicate_groups: list[list[str]]
    label_conflicts: list[list[str]]

    def counts_by_class(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for record in self.kept:
            table[record.label]["kept"] += 1
            table[record.label]["found"] += 1
        for record in self.excluded:
            table[record.label]["found"] += 1
            table[record.label][record.reason] += 1
        return {label: dict(counts) for label, counts in sorted(table.items())}

    def to_json(self) -> dict:
        return {
            "kept": len(self.kept),
            "excluded": [asdict(r) for r in self.excluded],
            "by_class": self.counts_by_class(),
            "exact_duplicate_sets": self.exact_duplicate_sets,
            "near_duplicate_groups": self.near_duplicate_groups,
            "label_conflicts": self.label_conflicts,
        }


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {item: item for item in items}

    def find(self, item: str) -> str:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def same(self, a: str, b: str) -> bool:
        return self.find(a) == self.find(b)

    def groups(self) -> list[list[str]]:
        """Every set of two or more members, sorted."""
        members: dict[str, list[str]] = defaultdict(list)
        for item in self.parent:
            members[self.find(item)].append(item)
        return sorted(sorted(group) for group in members.values() if len(group) > 1)

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            # The smaller name becomes the root, so group ids do not depend on visiting order.
            low, high = sorted((root_a, root_b))
            self.parent[high] = low


def near_duplicate_links(
    records: list[ImageRecord], max_bits: int, linked: Callable[[str, str], bool] = lambda a, b: False
) -> Iterator[tuple[str, str]]:
    """Pairs whose perceptual hashes differ in at most ``max_bits`` of 64 bits, lazily.

    Pigeonhole: two hashes within ``max_bits`` agree exactly on at least one of
    ``max_bits + 1`` slices, so only images sharing a slice are compared (not all pairs).
    Pairs for which ``linked(a, b)`` is already true are skipped, so a dataset of many copies
    (Kaggle's augmented BCCD) costs one link per image, not one per pair of copies.
    """
    slices = max_bits + 1
    width = 64 // slices
    values = {r.path: int(r.phash, 16) for r in records}
    buckets: dict[tuple[int, int], list[str]] = defaultdict(list)
    for path, value in values.items():
        for index in range(slices):
            buckets[(index, (value >> (index * width)) & ((1 << width) - 1))].append(path)
    for members in buckets.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if not linked(a, b) and (values[a] ^ values[b]).bit_count() <= max_bits:
                    yield (a, b) if a < b else (b, a)


def resolve(records: list[ImageRecord], near_bits: int = NEAR_DUPLICATE_BITS) -> Validation:
    """Group duplicates, drop conflicting-label duplicates and tie every cluster to one group.

    The final ``group`` of a record merges the layout's group (a patient) with its exact and
    near-duplicate clusters, so the split never separates any of them.
    """
    measured = [r for r in records if not r.reason]
    excluded = [r for r in records if r.reason]

    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in measured:
        by_hash[record.sha256].append(record)
    exact_sets = [sorted(r.path for r in rs) for rs in by_hash.values() if len(rs) > 1]

    conflicts: list[list[str]] = []
    conflicted: set[str] = set()
    for members in by_hash.values():
        if len({r.label for r in members}) > 1:
            paths = sorted(f"{r.path} ({r.label})" for r in members)
            conflicts.append(paths)
            conflicted.update(r.path for r in members)
    kept = [r for r in measured if r.path not in conflicted]
    excluded += [
        replace(r, reason="duplicate with a conflicting label") for r in measured if r.path in conflicted
    ]

    union = _UnionFind(r.path for r in kept)
    for members in by_hash.values():
        for other in members[1:]:
            if other.path in union.parent and members[0].path in union.parent:
                union.union(members[0].path, other.path)
    near = _UnionFind(r.path for r in kept)  # near-duplicate links alone, for the report
    for a, b in near_duplicate_links(kept, near_bits, linked=near.same):
        near.union(a, b)
        union.union(a, b)
    by_layout_group: dict[str, str] = {}
    for record in kept:
        if record.group:
            first = by_layout_group.setdefault(record.group, record.path)
            union.union(first, record.path)

    # Name each cluster after its layout group (a patient) when it has one, else its first path.
    names: dict[str, str] = {}
    for record in sorted(kept, key=lambda r: (not r.group, r.group, r.path)):
        names.setdefault(union.find(record.path), record.group or record.path)
    regrouped = [replace(r, group=names[union.find(r.path)]) for r in kept]
    return Validation(
        kept=sorted(regrouped, key=lambda r: r.path),
        excluded=sorted(excluded, key=lambda r: r.path),
        exact_duplicate_sets=sorted(exact_sets),
        near_duplicate_groups=near.groups(),
        label_conflicts=sorted(conflicts),
    )
