"""The feature cache: computed once per image and view, whoever asks first; stored in a few
shards with an index; written under other library versions, not reused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from breedscope.core.errors import DataError
from breedscope.data.manifest import Row
from breedscope.features import cache as features
from breedscope.features.cache import FeatureCache, read_views


class CountingForward:
    """Stands in for a backbone: the image's mean pixel as its vector; counts the images it is
    asked to embed, is slow enough that two callers overlap, and can be stopped after N batches."""

    def __init__(self, interrupt_after: int | None = None) -> None:
        self.images = 0
        self.batches = 0
        self.interrupt_after = interrupt_after
        self.lock = threading.Lock()

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        with self.lock:
            if self.interrupt_after is not None and self.batches == self.interrupt_after:
                raise KeyboardInterrupt
            self.images += len(pixels)
            self.batches += 1
        time.sleep(0.02)
        return pixels.mean(axis=(1, 2)).astype(np.float32)


def _rows(count: int) -> list[Row]:
    return [Row(f"{i}.png", "a", "train", f"{i}", f"{i:064x}", "0" * 16, 8, 8, "") for i in range(count)]


def load(row: Row) -> np.ndarray:
    return np.full((8, 8, 3), int(row.path.split(".")[0]), np.float32)  # the image number


class ShiftByView:
    """Stands in for an augmenter: view v of an image is the image plus 1000 v."""

    is_identity = False
    seed = 0
    preset = type("Preset", (), {"name": "shift"})()

    def __call__(self, image: np.ndarray, sha256: str, view: int) -> np.ndarray:
        return image + 1000 * view


@pytest.mark.parametrize("views", [[0], [2, 0, 1]])
def test_two_callers_needing_the_same_features_compute_them_once(tmp_path: Path, views: list[int]) -> None:
    # The second caller asks for the views in another order, and gets each one as the first did.
    rows = _rows(40)
    forward = CountingForward()
    augmenter = ShiftByView() if len(views) > 1 else None
    results: dict[int, list] = {}

    def ask(order: list[int]) -> None:
        cache = FeatureCache(tmp_path / "features", forward, 8)
        for view, stored in zip(order, cache.features_of_views(rows, load, augmenter, order), strict=True):
            results.setdefault(view, []).append(stored.read()[:, 0].tolist())

    threads = [threading.Thread(target=ask, args=(order,), daemon=True) for order in (views, views[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert forward.images == 40 * len(views)  # not twice that: the second waited and reused them
    assert results == {view: [[i + 1000 * view for i in range(40)]] * 2 for view in views}


def test_features_live_in_a_few_shards_and_read_back_in_any_order(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(features, "SHARD_VECTORS", 64)
    rows = _rows(300)
    cache = FeatureCache(tmp_path / "features", CountingForward(), 8)
    stored = cache.features(rows, load)
    shards = sorted((tmp_path / "features" / "clean").glob("shard-*.npy"))
    assert 300 // 64 <= len(shards) <= 300 // 64 + 1  # a few files, not one per image
    wanted = np.array([299, 0, 150, 64, 63, 5, 5])
    assert stored.read(wanted)[:, 0].tolist() == wanted.tolist()
    # A later manifest with other rows, some new: only the new ones are computed.
    forward = CountingForward()
    later = FeatureCache(tmp_path / "features", forward, 8).features(_rows(310)[::-1], load)
    assert forward.images == 10 and later.read()[:, 0].tolist() == list(range(309, -1, -1))
    # Images seen through different views, gathered in one batch.
    second = FeatureCache(tmp_path / "features", CountingForward(), 8).features(rows, load, view=1)
    views = np.array([0, 1, 0, 1])
    assert read_views([stored, second], np.array([3, 4, 5, 6]), views)[:, 0].tolist() == [3, 4, 5, 6]


def test_an_interrupted_extraction_keeps_what_it_computed(tmp_path: Path) -> None:
    rows = _rows(200)  # 7 batches of 32
    with pytest.raises(KeyboardInterrupt):
        FeatureCache(tmp_path / "features", CountingForward(interrupt_after=3), 8).features(rows, load)
    forward = CountingForward()
    resumed = FeatureCache(tmp_path / "features", forward, 8).features(rows, load)
    assert forward.images == 200 - 3 * 32  # the three finished batches were kept, not redone
    assert resumed.read()[:, 0].tolist() == list(range(200))


def test_an_image_is_decoded_once_for_all_the_views_it_lacks(tmp_path: Path) -> None:
    # Decoding a large X-ray costs more than the backbone's forward pass: four augmented views
    # must not decode it four times.
    rows, decoded = _rows(70), []

    def counting_load(row: Row) -> np.ndarray:
        decoded.append(row.path)
        return load(row)

    cache = FeatureCache(tmp_path / "features", CountingForward(), 8)
    cache.features(rows[:50], load, ShiftByView(), view=1)  # one view of most images already stored
    forward = CountingForward()
    sets = FeatureCache(tmp_path / "features", forward, 8).features_of_views(
        rows, counting_load, ShiftByView(), [0, 1, 2]
    )

    assert len(decoded) == 70 and forward.images == 70 * 3 - 50  # once per image; only what lacked
    for view, stored in enumerate(sets):
        assert stored.read()[:, 0].tolist() == [i + 1000 * view for i in range(70)]
    # The same vectors as computing one view at a time.
    alone = FeatureCache(tmp_path / "alone", CountingForward(), 8)
    for view, stored in enumerate(sets):
        assert alone.features(rows, load, ShiftByView(), view=view).read().tolist() == stored.read().tolist()


def test_an_interrupted_extraction_of_several_views_keeps_each_views_finished_batches(tmp_path: Path) -> None:
    rows = _rows(100)  # 4 batches of 32 images, each through 2 views
    stopping = FeatureCache(tmp_path, CountingForward(interrupt_after=5), 8)
    with pytest.raises(KeyboardInterrupt):
        stopping.features_of_views(rows, load, ShiftByView(), [0, 1])
    forward = CountingForward()
    resumed = FeatureCache(tmp_path, forward, 8).features_of_views(rows, load, ShiftByView(), [0, 1])
    assert forward.images == 200 - 5 * 32  # view 0 and 1 of batches 1-2, view 0 of batch 3: kept
    assert [s.read()[:, 0].tolist() for s in resumed] == [list(range(100)), [i + 1000 for i in range(100)]]


def _resident_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads resident memory from /proc")
def test_an_epoch_over_the_cache_keeps_only_its_batches_in_memory(tmp_path: Path) -> None:
    # 80 MB of features read batch by batch, in a random order, as the head's epochs do beyond
    # train.feature_memory_mb: what the process holds must not grow towards the 80 MB (a
    # memory-mapped cache maps every page it touches, and an epoch touches them all).
    store = features.ShardStore(tmp_path)
    rng = np.random.default_rng(0)
    for shard in range(4):
        vectors = rng.standard_normal((4096, 1280), dtype=np.float32)
        vectors[:, 0] = np.arange(4096) + shard * 4096  # each vector says which it is
        store.add([f"{shard * 4096 + i}" for i in range(4096)], 0, vectors)
    names = [str(i) for i in rng.permutation(4 * 4096)]
    where = store.locate(names, 0)
    stored = features.FeatureSet(store, [where[n][0] for n in names], np.array([where[n][1] for n in names]))
    expected = np.array([float(n) for n in names])
    before = _resident_mb()
    order = rng.permutation(len(stored))
    for start in range(0, len(order), 256):
        batch = order[start : start + 256]
        assert stored.read(batch)[:, 0].tolist() == expected[batch].tolist()
    assert _resident_mb() - before < 20


def test_a_damaged_shard_is_one_sentence_naming_what_to_delete(tmp_path: Path) -> None:
    store = features.ShardStore(tmp_path / "clean")
    store.add(["a", "b"], 0, np.ones((2, 8), np.float32))
    shard = next((tmp_path / "clean").glob("shard-*.npy"))
    shard.write_bytes(shard.read_bytes()[:-10])  # cut short, as by a full disk elsewhere
    with pytest.raises(DataError, match=r"is damaged .*; delete .*clean and run again"):
        store.read(shard.name, np.array([1]))


@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_vectors_whose_shard_is_gone_or_damaged_are_computed_again(tmp_path: Path, damage: str) -> None:
    # A deleted shard used to fail the run (FileNotFoundError) and mark it failed.
    rows = _rows(10)
    FeatureCache(tmp_path / "features", CountingForward(), 8).features(rows, load)
    [shard] = (tmp_path / "features" / "clean").glob("shard-*.npy")
    if damage == "deleted":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[:-10])
    forward = CountingForward()
    again = FeatureCache(tmp_path / "features", forward, 8).features(rows, load)
    assert forward.images == 10
    assert again.read()[:, 0].tolist() == list(range(10))


def test_an_index_sqlite_cannot_read_is_started_anew(tmp_path: Path) -> None:
    rows = _rows(6)
    FeatureCache(tmp_path / "features", CountingForward(), 8).features(rows, load)
    (tmp_path / "features" / "clean" / features.INDEX).write_bytes(b"not a database " * 100)
    forward = CountingForward()
    again = FeatureCache(tmp_path / "features", forward, 8).features(rows, load)
    assert forward.images == 6 and again.read()[:, 0].tolist() == list(range(6))
    assert len(list((tmp_path / "features" / "clean").glob("shard-*.npy"))) == 1  # the old one is gone


def test_a_shard_the_index_could_not_name_is_not_left_behind(tmp_path: Path, monkeypatch) -> None:
    # A full disk at the SQLite commit used to leave the shard written just before it.
    import sqlite3

    store = features.ShardStore(tmp_path / "clean")
    store.add(["a"], 0, np.ones((1, 8), np.float32))

    class FullDisk:
        def __init__(self, connection: sqlite3.Connection) -> None:
            self.connection = connection

        def executemany(self, *args: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.connection.rollback()

        def close(self) -> None:
            self.connection.close()

    real = store._connect
    monkeypatch.setattr(store, "_connect", lambda: FullDisk(real()))
    with pytest.raises(sqlite3.OperationalError):
        store.add(["b"], 0, np.ones((1, 8), np.float32))
    assert len(list((tmp_path / "clean").glob("shard-*.npy"))) == 1
    monkeypatch.undo()
    assert set(store.locate(["a", "b"], 0)) == {"a"}


def _installed_as(tmp_path: Path, package: str, version: str, monkeypatch) -> None:
    """Make ``package`` look installed at ``version``, as after an upgrade (a dist-info first on
    the path, found before the real one)."""
    folder = tmp_path / f"{package}-{version}"
    info = folder / f"{package.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    monkeypatch.syspath_prepend(str(folder))


@pytest.mark.parametrize(
    ("package", "backbone", "views", "decoded"),
    [
        ("tensorflow", True, False, False),  # builds and converts the backbone
        ("keras", True, False, False),
        ("ai-edge-litert", True, False, False),  # runs the converted backbone
        ("pillow", True, False, True),  # decodes and resizes every image
        ("albumentations", False, True, False),  # draws the augmented views
        ("opencv-python-headless", False, True, False),  # albumentations' image operations
    ],
)
def test_caches_written_under_other_library_versions_are_not_reused(
    tmp_path: Path, monkeypatch, package: str, backbone: bool, views: bool, decoded: bool
) -> None:
    # A cache can outlive an upgrade (a notebook's BREEDSCOPE_HOME on a mounted drive). What
    # another version computed is not what this installation computes, so a run must not mix it
    # into its features; and an upgrade that cannot change a cache keeps it.
    import albumentations as A

    from breedscope.config.settings import ModelConfig
    from breedscope.data.images import decoded_images_name
    from breedscope.features.augment import Augmenter, AugmentPreset

    augmenter = Augmenter(AugmentPreset("flip", "a flip", lambda: [A.HorizontalFlip()]), seed=0)

    def keys() -> tuple[str, str, str]:
        return (
            features.extractor_key("mobilenet_v2", ModelConfig(), 0),
            features.view_key(augmenter),
            decoded_images_name(224),
        )

    before = keys()
    assert keys() == before  # the same installation, the same keys
    _installed_as(tmp_path, package, "0.0.1", monkeypatch)
    after = keys()
    assert [a != b for a, b in zip(after, before, strict=True)] == [backbone, views, decoded]
