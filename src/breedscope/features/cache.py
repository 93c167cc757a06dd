"""The feature cache: a frozen backbone's pooled output, computed once per image and view.

With the base frozen, an image's features never change between epochs, so the head trains
on these vectors instead of pushing every image through the backbone every epoch. Features are
keyed by what determines them (backbone, weights, size, preprocessing and the runtime that ran
it; augmentation preset, seed and view number; the image's content hash), so any later run on
the same images reuses them, whatever its manifest.

They are stored in a few large shard files (``.npy`` arrays of up to :data:`SHARD_VECTORS`
vectors, of which only the rows needed are read) with an SQLite index from (image hash, view)
to (shard, row): at Kaggle's 126,000 cat photos and five views that is about 150 files, not
630,000. A shard is written whole (atomically) before the index names it, in one transaction,
so a killed run leaves at worst an unnamed shard, never an index entry without its vector.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.core import locks, versions
from breedscope.core.atomic import atomic_path
from breedscope.core.errors import DataError
from breedscope.core.hashing import sha256_file, short_hash
from breedscope.core.progress import progress_bar
from breedscope.data.images import decoder_identity
from breedscope.data.manifest import Row
from breedscope.features.batching import batch_slices
from breedscope.model.backbone import weights_argument

if TYPE_CHECKING:
    from breedscope.config.settings import ModelConfig
    from breedscope.features.augment import Augmenter

ImageLoader = Callable[[Row], np.ndarray]
Forward = Callable[[np.ndarray], np.ndarray]  # RGB [0, 255] images in, feature vectors out

SHARD_VECTORS = 4096  # vectors per shard: 20 MB for MobileNetV2's 1,280; a kill loses at most one
INDEX = "index.sqlite"
SHARD_NAME = re.compile(r"shard-[0-9a-f]{16}\.npy")  # the only files an index may name
DECODE_BATCH = 32  # images decoded together, and sent through the backbone together in each view
# Decoded 8-bit images waiting for the backbone at most (13 batches of 32 at 224 px).
DECODE_AHEAD_BYTES = 64 * 2**20
QUERY_CHUNK = 500  # SQLite's parameter limit is 999 in old builds


def weights_identity(weights: str) -> str:
    """What identifies a weights setting: a file by its content, ``none`` by nothing (seeded)."""
    argument = weights_argument(weights)
    if argument in (None, "imagenet"):
        return weights
    return "file-" + sha256_file(Path(argument))[:16]


def extractor_key(backbone: str, model: ModelConfig, seed: int) -> str:
    parts = {
        "backbone": backbone,
        "weights": weights_identity(model.weights),
        "alpha": model.alpha,
        "size": model.image_size,
        "pixels": model.pixel_range,
        "decoder": decoder_identity(),
        "versions": versions.package_versions(versions.BACKBONE),
        # Random weights differ per seed; ImageNet and file weights do not.
        "seed": seed if model.weights == "none" else None,
    }
    return short_hash(json.dumps(parts, sort_keys=True), 16)


def view_key(augmenter: Augmenter | None) -> str:
    if augmenter is None or augmenter.is_identity:
        return "clean"
    drawn_by = json.dumps(versions.package_versions(versions.AUGMENTATION), sort_keys=True)
    return f"{augmenter.preset.name}-{short_hash(f'{augmenter.seed} {drawn_by}', 8)}"


class ShardStore:
    """One folder of shards and their index."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._layouts: dict[str, tuple[int, int]] = {}

    def _connect(self) -> sqlite3.Connection:
        self.directory.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.directory / INDEX, timeout=60)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS vectors "
            "(image TEXT, view INTEGER, shard TEXT, row INTEGER, PRIMARY KEY (image, view))"
        )
        return connection

    def locate(self, images: Sequence[str], view: int) -> dict[str, tuple[str, int]]:
        """Where each image's vector of ``view`` lies, for those stored in a sound shard.

        A cache is rebuilt, never fatal: an index SQLite cannot read is started anew (its
        shards with it), and vectors whose shard is gone or damaged are forgotten, so that they
        are computed again."""
        if not (self.directory / INDEX).is_file():
            return {}
        try:
            found = self._query(images, view)
        except sqlite3.DatabaseError:  # not a database, or a damaged one
            self._start_anew()
            return {}
        lost = {shard for shard, _ in found.values() if not self._sound(shard)}
        if lost:
            with closing(self._connect()) as connection, connection:
                connection.executemany("DELETE FROM vectors WHERE shard = ?", [(s,) for s in sorted(lost)])
            found = {image: place for image, place in found.items() if place[0] not in lost}
        return found

    def _query(self, images: Sequence[str], view: int) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        unique = sorted(set(images))
        with closing(self._connect()) as connection:
            for start in range(0, len(unique), QUERY_CHUNK):
                chunk = unique[start : start + QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT image, shard, row FROM vectors WHERE view = ? AND image IN ({marks})"
                for image, shard, row in connection.execute(query, [view, *chunk]):
                    found[image] = (shard, row)
        return found

    def _sound(self, shard: str) -> bool:
        """Whether ``shard`` is a file of float32 vectors as long as its header says."""
        if shard in self._layouts:
            return True
        path = self.directory / shard
        if not SHARD_NAME.fullmatch(shard) or path.is_symlink() or not path.is_file():
            return False
        try:
            start, dim, count = self._read_header(shard)
        except (ValueError, OSError, DataError):
            path.unlink(missing_ok=True)
            return False
        if path.stat().st_size != start + count * dim * 4:
            path.unlink(missing_ok=True)
            return False
        self._layouts[shard] = (start, dim)
        return True

    def _start_anew(self) -> None:
        """Drop an unreadable index and the shards only it named."""
        (self.directory / INDEX).unlink(missing_ok=True)
        for shard in self.directory.glob("shard-*.npy"):
            shard.unlink(missing_ok=True)
        self._layouts.clear()

    def add(self, images: Sequence[str], view: int, vectors: np.ndarray) -> None:
        """Write one shard, then name its vectors in the index (one transaction). A shard the
        index could not name (a full disk at the commit) is removed, not left behind."""
        shard = f"shard-{secrets.token_hex(8)}.npy"
        with atomic_path(self.directory / shard) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(vectors, dtype=np.float32))
        try:
            with closing(self._connect()) as connection, connection:
                connection.executemany(
                    "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                    [(image, view, shard, row) for row, image in enumerate(images)],
                )
        except BaseException:
            (self.directory / shard).unlink(missing_ok=True)
            raise

    def _read_header(self, shard: str) -> tuple[int, int, int]:
        """Where a shard's vectors start in its file, their length and how many there are."""
        with open(self.directory / shard, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(handle)
            if dtype != np.float32 or len(shape) != 2 or fortran:
                raise self._damaged(shard)
            return handle.tell(), shape[1], shape[0]

    def _layout(self, shard: str) -> tuple[int, int]:
        """Where a shard's vectors start in its file, and their length."""
        if shard not in self._layouts:
            start, dim, _ = self._read_header(shard)
            self._layouts[shard] = (start, dim)
        return self._layouts[shard]

    def _damaged(self, shard: str) -> DataError:
        return DataError(
            f"The feature cache file {self.directory / shard} is damaged (not the vectors its index "
            f"names); delete {self.directory} and run again: its features are computed anew."
        )

    def read(self, shard: str, rows: np.ndarray) -> np.ndarray:
        """The vectors at ``rows`` of one shard, read from its file: not memory-mapped, because
        every mapped page a run touches counts in its memory, and over an epoch that is the
        whole cache (360 MB at 70,000 images) whatever ``train.feature_memory_mb`` says."""
        start, dim = self._layout(shard)
        out = np.empty((len(rows), dim), np.float32)
        order = np.argsort(rows, kind="stable")
        ordered = np.asarray(rows)[order]
        runs = np.split(np.arange(len(rows)), np.flatnonzero(np.diff(ordered) != 1) + 1)
        with open(self.directory / shard, "rb") as handle:
            for run in runs:  # consecutive rows in one read
                if not len(run):
                    continue
                block = np.empty((len(run), dim), np.float32)
                handle.seek(start + int(ordered[run[0]]) * dim * 4)
                if handle.readinto(memoryview(block).cast("B")) != block.nbytes:
                    raise self._damaged(shard)
                out[order[run]] = block
        return out


@dataclass
class FeatureSet:
    """The vectors of a list of images (one view), read from their shards on demand."""

    store: ShardStore
    shards: list[str]  # the shard of each image
    rows: np.ndarray  # its row in that shard

    def __len__(self) -> int:
        return len(self.shards)

    def read(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """The vectors of ``indices`` (all by default), gathered shard by shard."""
        chosen = np.arange(len(self)) if indices is None else np.asarray(indices, dtype=int)
        shards = np.asarray(self.shards, dtype=object)[chosen]
        out: np.ndarray | None = None
        for shard in dict.fromkeys(shards.tolist()):
            mask = shards == shard
            vectors = self.store.read(shard, self.rows[chosen[mask]])
            if out is None:
                out = np.empty((len(chosen), vectors.shape[1]), np.float32)
            out[mask] = vectors
        return out if out is not None else np.empty((0, 0), np.float32)


def read_views(sets: Sequence[FeatureSet], indices: np.ndarray, views: np.ndarray) -> np.ndarray:
    """Image ``indices[k]`` seen through view ``views[k]``, for each k."""
    parts = {int(v): sets[int(v)].read(indices[views == v]) for v in np.unique(views)}
    dim = next(iter(parts.values())).shape[1]
    out = np.empty((len(indices), dim), np.float32)
    for v, part in parts.items():
        out[views == v] = part
    return out


class FeatureCache:
    def __init__(self, directory: Path, forward: Forward, image_size: int) -> None:
        self.directory = directory
        self.forward = forward
        self.image_size = image_size

    def features(
        self,
        rows: Sequence[Row],
        load: ImageLoader,
        augmenter: Augmenter | None = None,
        view: int = 0,
        label: str = "Extracting features",
    ) -> FeatureSet:
        """The features of ``rows`` through one view, computing only those not stored yet."""
        return self.features_of_views(rows, load, augmenter, [view], label)[0]

    def features_of_views(
        self,
        rows: Sequence[Row],
        load: ImageLoader,
        augmenter: Augmenter | None,
        views: Sequence[int],
        label: str = "Extracting features",
    ) -> list[FeatureSet]:
        """The features of ``rows`` through each of ``views``, computing only those not stored
        yet; an image is decoded once for all the views it lacks (decoding a large X-ray costs
        more than the backbone's forward pass)."""
        store = ShardStore(self.directory / view_key(augmenter))
        hashes = [row.sha256 for row in rows]
        unique = set(hashes)
        found = {view: store.locate(hashes, view) for view in views}
        if any(len(found[view]) < len(unique) for view in views):
            # Two runs needing the same features: one computes them, the other waits and reuses them.
            waiting = "Another breedscope run is computing these features; waiting to reuse them."
            with ExitStack() as held:
                for view in sorted(views):  # one order: two runs never each hold a lock the other needs
                    held.enter_context(locks.waiting(store.directory / f".view-{view}.lock", waiting))
                found = {view: store.locate(hashes, view) for view in views}
                lacking = {view: unique - found[view].keys() for view in views}
                lacking = {view: missing for view, missing in lacking.items() if missing}
                todo = {row.sha256: row for row in rows if any(row.sha256 in m for m in lacking.values())}
                if todo:
                    self._compute(list(todo.values()), lacking, store, load, augmenter, label)
                    found = {view: store.locate(hashes, view) for view in views}
        return [
            FeatureSet(
                store, [found[view][h][0] for h in hashes], np.array([found[view][h][1] for h in hashes], int)
            )
            for view in views
        ]

    def _compute(
        self,
        rows: Sequence[Row],
        lacking: dict[int, set[str]],
        store: ShardStore,
        load: ImageLoader,
        augmenter: Augmenter | None,
        label: str,
    ) -> None:
        """Each row's vectors of the views that lack it (``lacking``: view → image hashes)."""
        row_batches = [rows[s] for s in batch_slices(len(rows), DECODE_BATCH)]
        # One task per batch of rows and view, run in order by one decoding thread: a batch's
        # images are decoded by its first task and kept until the next batch's, so memory holds
        # one batch of decoded images beside the views waiting for the backbone, however many.
        tasks = [
            (index, view, [row for row in batch if row.sha256 in lacking[view]])
            for index, batch in enumerate(row_batches)
            for view in sorted(lacking)
        ]
        tasks = [(index, view, wanted) for index, view, wanted in tasks if wanted]
        decoded: dict[int, dict[str, np.ndarray]] = {}

        def prepare(index: int, view: int, wanted: list[Row]) -> np.ndarray:
            if index not in decoded:
                decoded.clear()
                decoded[index] = {row.sha256: load(row) for row in row_batches[index]}
            images = decoded[index]
            if augmenter is None:
                return np.stack([images[row.sha256] for row in wanted])
            # A copy for each view: an augmentation that wrote into its input would change the next.
            return np.stack([augmenter(images[row.sha256].copy(), row.sha256, view) for row in wanted])

        size = self.image_size
        ahead = max(2, DECODE_AHEAD_BYTES // (DECODE_BATCH * size * size * 3))
        done: dict[int, list[str]] = {view: [] for view in lacking}
        vectors: dict[int, list[np.ndarray]] = {view: [] for view in lacking}

        def flush(view: int) -> None:
            if done[view]:
                store.add(done[view], view, np.concatenate(vectors[view]))
                done[view].clear()
                vectors[view].clear()

        # Decoding (Pillow releases the GIL) runs ahead of the forward passes in another thread,
        # so the backbone never waits for an image.
        total = sum(len(wanted) for _, _, wanted in tasks)
        with ThreadPoolExecutor(max_workers=1) as pool, progress_bar(label, total) as advance:
            pending = deque(pool.submit(prepare, *task) for task in tasks[:ahead])
            try:
                for position, (_, view, wanted) in enumerate(tasks):
                    pixels = pending.popleft().result()
                    if position + ahead < len(tasks):
                        pending.append(pool.submit(prepare, *tasks[position + ahead]))
                    vectors[view].append(np.asarray(self.forward(pixels), dtype=np.float32))
                    done[view].extend(row.sha256 for row in wanted)
                    if len(done[view]) >= SHARD_VECTORS:
                        flush(view)
                    advance(len(wanted))
                for view in lacking:
                    flush(view)
            except KeyboardInterrupt:
                for view in lacking:
                    flush(view)  # what was computed is kept: a resumed run starts after it
                raise
            finally:
                for future in pending:
                    future.cancel()  # after an error, decode nothing more
