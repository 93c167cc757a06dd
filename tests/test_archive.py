"""Extraction refuses every archive entry that could write outside its target."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from breedscope.core.errors import DataError
from breedscope.data.archive import extract


def _zip(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def test_plain_zip_extracts(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "ok.zip", {"data/a/1.txt": b"one", "data/b/2.txt": b"two"})
    extract(archive, tmp_path / "out")
    assert (tmp_path / "out/data/a/1.txt").read_bytes() == b"one"


@pytest.mark.parametrize("name", ["../evil.txt", "data/../../evil.txt", "/etc/evil.txt"])
def test_zip_entries_escaping_the_target_are_refused(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "bad.zip", {"data/ok.txt": b"fine", name: b"evil"})
    with pytest.raises(DataError, match="refusing") as caught:
        extract(archive, tmp_path / "out")
    assert name in str(caught.value)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "data" / "ok.txt").exists()  # checked before anything is written


def test_zip_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "link.zip", {"data/ok.txt": b"fine"}, {"data/passwd": "../../../etc/passwd"})
    with pytest.raises(DataError, match="link pointing outside"):
        extract(archive, tmp_path / "out")


def test_zip_symlink_inside_is_not_created(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "link.zip", {"data/ok.txt": b"fine"}, {"data/alias.txt": "ok.txt"})
    extract(archive, tmp_path / "out")
    assert (tmp_path / "out/data/ok.txt").is_file()
    assert not (tmp_path / "out/data/alias.txt").exists()


def test_tar_symlink_pointing_outside_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        data = b"fine"
        info = tarfile.TarInfo("data/ok.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("data/escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(DataError, match="data/escape"):
        extract(path, tmp_path / "out")


def test_tar_extracts(tmp_path: Path) -> None:
    source = tmp_path / "src" / "cls"
    source.mkdir(parents=True)
    (source / "a.txt").write_text("a")
    path = tmp_path / "ok.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(tmp_path / "src", arcname="src")
    extract(path, tmp_path / "out")
    assert (tmp_path / "out/src/cls/a.txt").read_text() == "a"


def test_absurd_uncompressed_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", bytes(50_000_000))
    with pytest.raises(DataError, match="decompression bomb"):
        extract(path, tmp_path / "out")


def test_damaged_archive_says_so(tmp_path: Path) -> None:
    good = _zip(tmp_path / "good.zip", {"a/1.txt": b"x" * 1000})
    damaged = tmp_path / "damaged.zip"
    data = good.read_bytes()
    damaged.write_bytes(data[:40] + bytes(40) + data[80:])
    with pytest.raises(DataError, match=r"damaged|neither"):
        extract(damaged, tmp_path / "out")


def test_a_huge_link_entry_is_refused_before_it_is_read(tmp_path: Path) -> None:
    # 50 MB of one byte compresses to ~50 KB; reading the "link target" whole would need 50 MB.
    import tracemalloc

    archive = _zip(tmp_path / "ok.zip", {"data/a/1.txt": b"one"})
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as handle:
        info = zipfile.ZipInfo("data/a/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        handle.writestr(info, b"a" * 50_000_000)
    assert archive.stat().st_size < 1_000_000
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"link of 50\.0 MB"):
            extract(archive, tmp_path / "out")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_a_name_longer_than_a_file_system_takes_is_one_sentence(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "long.zip", {f"data/a/{'x' * 300}.png": b"img"})
    with pytest.raises(DataError, match="304 bytes, longer than the 255"):
        extract(archive, tmp_path / "out")


def test_a_file_and_a_folder_of_one_name_are_one_sentence(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "clash.zip", {"data/a": b"file", "data/a/1.png": b"img"})
    with pytest.raises(DataError, match=r"'data/a' and 'data/a/1\.png' use one name for a file and a folder"):
        extract(archive, tmp_path / "out")


def test_a_truncated_zip_is_called_damaged(tmp_path: Path) -> None:
    whole = _zip(tmp_path / "whole.zip", {f"data/a/{i}.bin": bytes(range(256)) * 40 for i in range(20)})
    cut = tmp_path / "cut.zip"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match="damaged or truncated"):
        extract(cut, tmp_path / "out")


def test_sizes_in_messages_are_readable_at_any_scale() -> None:
    from breedscope.data.archive import human_size

    assert [human_size(n) for n in (0, 999, 1536, 2_400_000, 7.5e9)] == [
        "0 bytes",
        "999 bytes",
        "1.5 KB",
        "2.4 MB",
        "7.5 GB",
    ]


@pytest.mark.parametrize(
    "name",
    [
        "a/" + ("x" * 200 + "/") * 25 + "1.png",  # 5,000 characters: past PATH_MAX once extracted
        "a/" + "d/" * 3000 + "1.png",  # 3,000 levels deep
    ],
    ids=["long", "deep"],
)
def test_an_entry_past_any_datasets_layout_is_refused_before_extraction(tmp_path: Path, name: str) -> None:
    # Both used to reach the file system: "File name too long" and a RecursionError.
    archive = _zip(tmp_path / "odd.zip", {name: b"x", "b/1.png": b"y"})
    with pytest.raises(DataError, match=r"past any dataset's layout .*refusing to extract it"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
