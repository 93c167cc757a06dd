"""Duplicates: exact copies grouped, near-duplicates grouped, conflicting labels excluded."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from breedscope.data.spec import SourceImage
from breedscope.data.validate import (
    ImageRecord,
    _Clusters,
    inspect,
    inspect_all,
    near_duplicate_links,
    resolve,
    shared_runs,
)
from tests.helpers import noise_image, shape_image, shared_archive


def _candidates(root: Path) -> list[SourceImage]:
    return [SourceImage(p.relative_to(root).as_posix(), p.parent.name) for p in sorted(root.rglob("*.png"))]


def test_duplicates_are_grouped_and_conflicts_excluded(tmp_path: Path) -> None:
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
    noise_image(1, 64).save(tmp_path / "cat/a.png")
    shutil.copy(tmp_path / "cat/a.png", tmp_path / "cat/a_copy.png")  # same label: grouped
    noise_image(2, 64).save(tmp_path / "cat/b.png")
    shutil.copy(tmp_path / "cat/b.png", tmp_path / "dog/b_again.png")  # other label: conflict
    noise_image(3, 64).save(tmp_path / "dog/c.png")
    records = inspect_all(tmp_path, _candidates(tmp_path), workers=1)
    result = resolve(records)

    kept = {r.path: r for r in result.kept}
    assert set(kept) == {"cat/a.png", "cat/a_copy.png", "dog/c.png"}
    assert kept["cat/a.png"].group == kept["cat/a_copy.png"].group
    assert kept["dog/c.png"].group != kept["cat/a.png"].group
    assert {r.path for r in result.excluded} == {"cat/b.png", "dog/b_again.png"}
    assert all(r.reason == "duplicate with a conflicting label" for r in result.excluded)
    assert result.label_conflicts == [["cat/b.png (cat)", "dog/b_again.png (dog)"]]


def test_inspecting_all_gives_each_candidates_own_record(tmp_path: Path) -> None:
    # inspect_all keeps measurements as columns while workers decode; every record read back
    # must be exactly what inspecting that candidate alone gives, rejected ones included.
    (tmp_path / "a").mkdir()
    noise_image(1, 64).save(tmp_path / "a/noise.png")
    noise_image(2, 64, mode="L").save(tmp_path / "a/grey.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "a/black.png")  # a perceptual hash of zeros
    noise_image(3, 16).save(tmp_path / "a/tiny.png")  # hashed, then rejected for its size
    (tmp_path / "a/text.png").write_text("not an image")
    (tmp_path / "a/cut.png").write_bytes((tmp_path / "a/noise.png").read_bytes()[:200])
    candidates = [
        SourceImage(c.path, c.label, group="g" if i % 2 else "", source_split="train")
        for i, c in enumerate(_candidates(tmp_path) * 30)
    ]
    records = inspect_all(tmp_path, candidates, workers=2)

    assert list(records) == [inspect(tmp_path, c) for c in candidates]
    by_path = {r.path: r for r in records}
    assert by_path["a/tiny.png"].reason.startswith("smaller than")
    assert by_path["a/tiny.png"].sha256 and not by_path["a/tiny.png"].phash
    assert by_path["a/text.png"].reason and by_path["a/cut.png"].reason
    assert by_path["a/black.png"].phash == "0" * 16 and not by_path["a/black.png"].reason


def test_resized_copy_is_a_near_duplicate(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    image = shape_image(0, seed=7, size=128)
    image.save(tmp_path / "x/original.png")
    image.resize((100, 100)).save(tmp_path / "x/smaller.png")
    shape_image(1, seed=8, size=128).save(tmp_path / "x/other.png")
    result = resolve(inspect_all(tmp_path, _candidates(tmp_path), workers=1))
    assert result.near_duplicate_groups == [["x/original.png", "x/smaller.png"]]
    groups = {r.path: r.group for r in result.kept}
    assert groups["x/original.png"] == groups["x/smaller.png"] != groups["x/other.png"]


def _components(size: int, pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components of two or more members, by plain graph search."""
    neighbours: dict[int, set[int]] = {i: set() for i in range(size)}
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, found = set(), []
    for start in range(size):
        if start in seen:
            continue
        stack, component = [start], []
        seen.add(start)
        while stack:
            node = stack.pop()
            component.append(node)
            stack += [n for n in neighbours[node] if n not in seen]
            seen.update(neighbours[node])
        if len(component) > 1:
            found.append(sorted(component))
    return sorted(found)


def test_near_duplicate_search_matches_brute_force() -> None:
    import random

    rng = random.Random(0)
    base = [rng.getrandbits(64) for _ in range(60)]
    # Close neighbours (a few bits flipped), chains of them, and exact copies.
    near = [b ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for b in base[:20]]
    chained = [
        n ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64)) for n in near[:8]
    ]
    values = base + near + chained + base[30:35]
    pairs = [
        (i, j)
        for i in range(len(values))
        for j in range(i + 1, len(values))
        if (values[i] ^ values[j]).bit_count() <= 4
    ]
    clusters = _Clusters(len(values))
    near_duplicate_links(np.array(values, dtype=np.uint64), 4, clusters)

    found = sorted(sorted(int(i) for i in members) for members in shared_runs(clusters.roots()))
    assert found == _components(len(values), pairs)
    assert len(found) >= 25


def test_layout_groups_are_kept_and_named(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    for i in range(3):
        noise_image(10 + i, 64).save(tmp_path / f"p/{i}.png")
    candidates = [SourceImage(f"p/{i}.png", "p", group="patient:7" if i < 2 else "") for i in range(3)]
    result = resolve(inspect_all(tmp_path, candidates, workers=2))
    groups = {r.path: r.group for r in result.kept}
    assert groups["p/0.png"] == groups["p/1.png"] == "patient:7"
    assert groups["p/2.png"] == "p/2.png"


def test_many_copies_link_once_per_image_not_once_per_pair() -> None:
    # 40 copies of one picture: 780 pairs, but 39 links tie them into one group.
    records = [
        ImageRecord(f"{i:03d}", "a", "", "", sha256=str(i), phash="f0f0f0f0f0f0f0f0") for i in range(40)
    ]
    result = resolve(records)
    assert len(result.near_duplicate_groups) == 1 and len(result.near_duplicate_groups[0]) == 40
    assert len({r.group for r in result.kept}) == 1


def _children(pid: int) -> set[int]:
    found = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat_file.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
def test_validation_workers_die_with_a_killed_fetch() -> None:
    archive = shared_archive("chest-xray-pneumonia.zip")
    process = subprocess.Popen(
        [sys.executable, "-m", "breedscope.cli", "fetch", "chest_xray", "--from", str(archive)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < deadline and process.poll() is None:
        workers = _children(process.pid)
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(workers) >= 2, "the fetch never started its validation workers"
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)  # leave the machine as it was, whatever the outcome
    assert survivors == []
