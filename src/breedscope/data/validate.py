"""Validation: decode every candidate fully, hash it, and decide what is kept and why not.

Runs on every core (decoding is the slow part) and streams results, so memory stays flat
whatever the number of images.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import imagehash
import numpy as np

from breedscope.core import signals
from breedscope.core.hashing import sha256_file
from breedscope.core.progress import progress_bar
from breedscope.data.images import UnreadableImage, displayed_size, open_image, to_rgb
from breedscope.data.spec import SourceImage

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


# What a worker sends back for each candidate: sha256, phash, width, height, mode, reason.
Measurements = tuple[str, str, int, int, str, str]


def _inspect_chunk(args: tuple[Path, list[SourceImage], int]) -> list[Measurements]:
    # Only the measurements go back: the parent holds each candidate's path and label already,
    # and a record built there shares those strings instead of holding unpickled copies.
    root, chunk, min_side = args
    return [
        (r.sha256, r.phash, r.width, r.height, r.mode, r.reason)
        for r in (inspect(root, candidate, min_side) for candidate in chunk)
    ]


def _exit_with_parent(parent: int) -> None:
    """Worker start-up. Ctrl-C is the parent's to handle (it reaches the whole process group),
    and a worker whose parent died (``kill -9``) exits instead of decoding on for nobody.

    The objects inherited from the parent are frozen out of this worker's garbage collector,
    which would otherwise write to every page holding them and so copy the parent's memory
    (the scan of every file) into each worker."""
    gc.freeze()
    signals.ignore_in_worker()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Processes that never outlive the breedscope process that started them."""
    return ProcessPoolExecutor(max_workers=workers, initializer=_exit_with_parent, initargs=(os.getpid(),))


@contextmanager
def inspection_workers(workers: int | None = None) -> Iterator[ProcessPoolExecutor | None]:
    """The processes :func:`inspect_all` decodes on, started now (``None`` on one core).

    A forked worker shares its parent's memory until either side writes to a page. Started
    before the scan lists every file, the workers share start-up memory only, instead of each
    coming to hold its own copy of the list (a third of the data stage's growth at 50,000
    images)."""
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        yield None
        return
    # This process's collector would write to every page of what the workers were forked
    # with, each time it runs, copying it all for them: the objects there now are left out of
    # it until the workers are gone (unless the caller froze objects already: then theirs).
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    pool = worker_pool(workers)
    try:
        pool.submit(os.getpid).result()  # forked workers all start with the first task
        yield pool
    finally:
        # After Ctrl-C or an error, queued chunks are dropped rather than decoded first.
        pool.shutdown(wait=True, cancel_futures=True)
        if freeze:
            gc.unfreeze()


def _results_in_order(
    root: Path, chunks: Iterator[list[SourceImage]], min_side: int, pool: ProcessPoolExecutor | None
) -> Iterator[tuple[list[SourceImage], list[Measurements]]]:
    """Inspect chunks on ``pool`` (or here), yielding each chunk with its results in order, with
    only a few chunks in flight so that memory does not grow with the number of images."""
    if pool is None:
        for chunk in chunks:
            yield chunk, _inspect_chunk((root, chunk, min_side))
        return
    in_flight: deque[tuple[list[SourceImage], Future[list[Measurements]]]] = deque()
    try:
        for chunk in chunks:
            in_flight.append((chunk, pool.submit(_inspect_chunk, (root, chunk, min_side))))
            if len(in_flight) >= 2 * (os.cpu_count() or 1):
                done, future = in_flight.popleft()
                yield done, future.result()
        while in_flight:
            done, future = in_flight.popleft()
            yield done, future.result()
    finally:
        for _, future in in_flight:
            future.cancel()


class Inspection(Sequence[ImageRecord]):
    """Every candidate with its measurements, held as columns while the workers decode.

    A record object with its hashes as text costs about 300 bytes; a row here costs under 60 (the
    digest as 32 bytes, the perceptual hash as one integer, sizes and codes for mode and
    reason), and the candidate's strings are shared. Records are built when read, which
    :func:`resolve` does after the workers have exited.
    """

    def __init__(self, candidates: list[SourceImage]) -> None:
        count = len(candidates)
        self.candidates = candidates
        self._digest = np.zeros((count, 32), dtype=np.uint8)
        self._hashed = np.zeros(count, dtype=bool)  # a digest exists (even for a rejected image)
        self._phash = np.zeros(count, dtype=np.uint64)
        self._size = np.zeros((count, 2), dtype=np.int32)
        self._mode = np.zeros(count, dtype=np.int32)  # codes into ``_texts``
        self._reason = np.zeros(count, dtype=np.int32)
        self._texts: list[str] = [""]
        self._codes: dict[str, int] = {"": 0}

    def _code(self, text: str) -> int:
        if text not in self._codes:
            self._codes[text] = len(self._texts)
            self._texts.append(text)
        return self._codes[text]

    def fill(self, start: int, measured: list[Measurements]) -> None:
        """Store the measurements of the candidates from ``start`` on."""
        for row, (sha256, phash, width, height, mode, reason) in enumerate(measured, start):
            if sha256:
                self._digest[row] = np.frombuffer(bytes.fromhex(sha256), dtype=np.uint8)
                self._hashed[row] = True
            self._phash[row] = int(phash, 16) if phash else 0
            self._size[row] = width, height
            self._mode[row] = self._code(mode)
            self._reason[row] = self._code(reason)

    def __len__(self) -> int:
        return len(self.candidates)

    def __getitem__(self, row: int) -> ImageRecord:  # type: ignore[override]
        candidate = self.candidates[row]
        reason = self._texts[self._reason[row]]
        return ImageRecord(
            candidate.path,
            candidate.label,
            candidate.group,
            candidate.source_split,
            sha256=self._digest[row].tobytes().hex() if self._hashed[row] else "",
            phash="" if reason else f"{int(self._phash[row]):016x}",
            width=int(self._size[row, 0]),
            height=int(self._size[row, 1]),
            mode=self._texts[self._mode[row]],
            reason=reason,
        )


def inspect_all(
    root: Path,
    candidates: list[SourceImage],
    min_side: int = DEFAULT_MIN_SIDE,
    workers: int | None = None,
    pool: ProcessPoolExecutor | None = None,
) -> Inspection:
    """Inspect every candidate, in input order: on ``pool`` if given (see
    :func:`inspection_workers`), otherwise on ``workers`` new processes (default: every core)."""
    total = len(candidates)
    chunks = (candidates[i : i + CHUNK] for i in range(0, total, CHUNK))
    inspection = Inspection(candidates)
    start = 0
    with ExitStack() as stack, progress_bar("Validating images", total=total) as advance:
        if pool is None and total >= 2 * CHUNK:  # fewer: decoding here is quicker
            count = min(workers or os.cpu_count() or 1, total // CHUNK)
            pool = stack.enter_context(inspection_workers(count))
        for chunk, measured in _results_in_order(root, chunks, min_side, pool):
            inspection.fill(start, measured)
            start += len(chunk)
            advance(len(chunk))
    return inspection


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


def findings(found: Mapping[str, Any]) -> list[str]:
    """What a fetch and its validation found, in sentences, from their stored form
    (``validation.json``, or :meth:`Validation.to_json`): the layout's notes and the files it
    skipped, duplicates kept together, label conflicts excluded. The CLI prints these under its
    table and a notebook shows them under the dataset's: the same words in both."""
    one_side = "kept on one side of every split."
    lines = [f"Note: {note}" for note in found.get("notes", [])]
    lines += [
        f"{n} file(s) skipped by the layout: {why}."
        for why, n in sorted(found.get("skipped_by_layout", {}).items())
    ]
    if found.get("exact_duplicate_sets"):
        lines.append(f"{len(found['exact_duplicate_sets'])} set(s) of identical files, {one_side}")
    if found.get("near_duplicate_groups"):
        lines.append(f"{len(found['near_duplicate_groups'])} group(s) of near-duplicates, {one_side}")
    lines += [f"Label conflict, excluded: {' = '.join(pair)}." for pair in found.get("label_conflicts", [])]
    return lines


class _Clusters:
    """Union-find over record indices (a flat integer array: no object per image)."""

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, item: int) -> int:
        parent = self.parent
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = int(parent[item])
        return item

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b)] = min(root_a, root_b)

    def roots(self) -> np.ndarray:
        size = len(self.parent)
        return np.fromiter((self.find(i) for i in range(size)), dtype=np.int64, count=size)


def shared_runs(keys: np.ndarray) -> Iterator[np.ndarray]:
    """The indices of each value of ``keys`` held by two or more entries, in ascending order."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    for start, end in zip(starts, ends, strict=True):
        if end - start > 1:
            yield order[start:end]


def near_duplicate_links(phashes: np.ndarray, max_bits: int, clusters: _Clusters) -> None:
    """Link in ``clusters`` every two images whose 64-bit perceptual hashes differ in at most
    ``max_bits`` bits.

    Equal hashes (copies: Kaggle's augmented BCCD has dozens of each cell) are linked once per
    image, and only one of them is compared further. Pigeonhole: two hashes within
    ``max_bits`` agree exactly on at least one of ``max_bits + 1`` slices, so only hashes
    sharing a slice are compared, not all pairs.
    """
    distinct, first, which = np.unique(phashes, return_index=True, return_inverse=True)
    for image in np.flatnonzero(first[which] != np.arange(len(phashes))):
        clusters.union(int(first[which[image]]), int(image))
    slices = max_bits + 1
    width = 64 // slices
    mask = np.uint64((1 << width) - 1)
    for index in range(slices):
        keys = (distinct >> np.uint64(index * width)) & mask
        for members in shared_runs(keys):
            for position, a in enumerate(members[:-1]):
                others = members[position + 1 :]
                close = others[np.bitwise_count(distinct[others] ^ distinct[a]) <= max_bits]
                for b in close:
                    clusters.union(int(first[a]), int(first[b]))


def _hex_column(values: Iterable[str], count: int) -> np.ndarray:
    """64-bit hex strings as an array, converted one at a time (a list of Python ints first
    would cost five times the array)."""
    return np.fromiter((int(value, 16) for value in values), dtype=np.uint64, count=count)


def resolve(records: Sequence[ImageRecord], near_bits: int = NEAR_DUPLICATE_BITS) -> Validation:
    """Group duplicates, drop conflicting-label duplicates and tie every cluster to one group.

    The final ``group`` of a record merges the layout's group (a patient) with its exact and
    near-duplicate clusters, so the split never separates any of them. Clusters are kept as
    integer arrays and records are regrouped one by one, so that at 100,000 images the data
    stage holds little more than the records themselves.
    """
    measured = [r for r in records if not r.reason]
    excluded = [r for r in records if r.reason]
    del records  # a caller's temporary list is freed here: each record is then held once

    # Exact copies: equal SHA-256 (grouped by its first 64 bits, then checked in full).
    prefixes = _hex_column((r.sha256[:16] for r in measured), len(measured))
    copies: list[list[int]] = []
    for run in shared_runs(prefixes):
        by_digest: dict[str, list[int]] = defaultdict(list)
        for i in run:
            by_digest[measured[i].sha256].append(int(i))
        copies += [members for members in by_digest.values() if len(members) > 1]
    exact_sets = sorted(sorted(measured[i].path for i in members) for members in copies)
    conflicting = [members for members in copies if len({measured[i].label for i in members}) > 1]
    conflicts = sorted(sorted(f"{measured[i].path} ({measured[i].label})" for i in m) for m in conflicting)
    dropped = np.zeros(len(measured), dtype=bool)
    for members in conflicting:
        dropped[members] = True
    reason = "duplicate with a conflicting label"
    excluded += [replace(measured[i], reason=reason) for i in np.flatnonzero(dropped)]
    kept = [record for record, drop in zip(measured, dropped, strict=True) if not drop]
    position = np.cumsum(~dropped) - 1  # where each measured record sits in ``kept``
    del measured, prefixes

    clusters = _Clusters(len(kept))
    for members in copies:
        if not dropped[members[0]]:  # a set of copies is dropped whole or not at all
            for other in members[1:]:
                clusters.union(int(position[members[0]]), int(position[other]))
    near = _Clusters(len(kept))  # near-duplicate links alone, for the report
    near_duplicate_links(_hex_column((r.phash for r in kept), len(kept)), near_bits, near)
    near_groups = list(shared_runs(near.roots()))
    for members in near_groups:
        for other in members[1:]:
            clusters.union(int(members[0]), int(other))
    near_paths = sorted(sorted(kept[i].path for i in members) for members in near_groups)
    first_of_group: dict[str, int] = {}
    for index, record in enumerate(kept):
        if record.group:
            clusters.union(first_of_group.setdefault(record.group, index), index)
    del first_of_group

    # Name each cluster after its layout group (a patient) when it has one, else its first path.
    roots = clusters.roots()
    names = {}
    for members in shared_runs(roots):
        first = min(members, key=lambda i: (not kept[i].group, kept[i].group, kept[i].path))
        names[int(roots[first])] = kept[first].group or kept[first].path
    for index, root in enumerate(roots):
        record = kept[index]
        name = names.get(int(root)) or record.group or record.path
        if record.group != name:
            kept[index] = replace(record, group=name)  # the old record is freed at once
    kept.sort(key=lambda r: r.path)
    excluded.sort(key=lambda r: r.path)
    return Validation(
        kept=kept,
        excluded=excluded,
        exact_duplicate_sets=exact_sets,
        near_duplicate_groups=near_paths,
        label_conflicts=conflicts,
    )
