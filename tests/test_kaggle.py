"""Fetching from Kaggle with the real, unpatched kagglehub, pointed at a stand-in server on
127.0.0.1 by its own setting (KAGGLE_API_ENVIRONMENT=TEST), and a faked Kaggle notebook mount."""

from __future__ import annotations

import io
import json
import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DATASETS, cli, cli_process, shape_image
from tests.kaggle_server import PORT, Behaviour, StandIn

SLUG = "brikwerk/bccd-white-blood-cell"
CLASSES = ("basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil")


def small_bccd_archive(per_class: int = 4, notes_bytes: int = 0) -> bytes:
    """The Kaggle BCCD layout (bccd_wbc/<class>/*.jpg) with a README beside the classes (padded
    with ``notes_bytes`` of noise, for an archive larger than a few chunks of a download)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bccd_wbc/README.md", "white blood cells" + os.urandom(notes_bytes).hex())
        for index, label in enumerate(CLASSES):
            for number in range(per_class):
                image = io.BytesIO()
                shape_image(index % 3, seed=index * 100 + number, size=40).save(image, format="JPEG")
                archive.writestr(f"bccd_wbc/{label}/{label}_{number}.jpg", image.getvalue())
    return buffer.getvalue()


@pytest.fixture
def kaggle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Behaviour]:
    """The stand-in on kagglesdk's fixed test port, one test at a time across pytest-xdist's
    workers (two stand-ins cannot share the port)."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    with FileLock(str(root / f"kaggle-port-{PORT}.lock")):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", PORT)) == 0:
                pytest.skip(f"port {PORT} (kagglehub's test endpoint) is taken on this machine")
        with StandIn() as behaviour:
            yield behaviour


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user with no Kaggle credentials anywhere, kagglehub's cache in tmp_path, no notebook mount."""
    (tmp_path / "user").mkdir()
    return {
        "KAGGLE_API_ENVIRONMENT": "TEST",
        "HOME": str(tmp_path / "user"),
        "KAGGLE_CONFIG_DIR": str(tmp_path / "user" / ".kaggle"),
        "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub"),
        "BREEDSCOPE_KAGGLE_INPUT": str(tmp_path / "no-notebook"),
        "KAGGLE_API_TOKEN": "",
        "KAGGLE_USERNAME": "",
        "KAGGLE_KEY": "",
        "NO_PROXY": "*",
    }


def _said(result) -> str:
    return " ".join((result.stdout + result.stderr).split())


def _one_sentence(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return _said(result)


def _info(home: Path, name: str = "bccd") -> dict:
    return json.loads((home / "datasets" / name / "dataset.json").read_text())


def test_a_public_dataset_downloads_without_credentials_at_the_pinned_version(
    kaggle: Behaviour, env: dict, home: Path
) -> None:
    archive = DATASETS / "bccd-white-blood-cell.zip"
    if not archive.is_file():
        pytest.skip(
            f"real data {archive} is absent (it sits in ../shared/datasets beside the repository in CI)"
        )
    kaggle.add(SLUG, 1, archive.read_bytes())
    kaggle.add(SLUG, 3, small_bccd_archive(), current=True)  # a newer version exists; 1 is pinned

    result = cli("fetch", "bccd", env=env)

    assert result.returncode == 0, _said(result)
    assert "Stored bccd: 351 images" in _said(result)
    info = _info(home)
    assert info["source"]["handle"] == f"{SLUG}/versions/1" and info["source"]["version"] == 1
    assert len(info["source"]["content_sha256"]) == 64
    assert all("Authorization" not in r.headers for r in kaggle.requests)  # no credentials were sent
    assert not any(r.path.endswith("GetDataset") for r in kaggle.requests)  # pinned: no lookup
    assert "Downloading" not in result.stdout  # the client's lines go to stderr


def test_latest_and_version_choose_other_versions_and_force_downloads_again(
    kaggle: Behaviour, env: dict, home: Path
) -> None:
    kaggle.add(SLUG, 1, small_bccd_archive(3), current=False)
    kaggle.add(SLUG, 2, small_bccd_archive(4), current=True)

    assert cli("fetch", "bccd", "--latest", env=env).returncode == 0
    assert _info(home)["source"]["version"] == 2 and _info(home)["images"] == 20
    assert any(r.path.endswith("GetDataset") for r in kaggle.requests)

    again = cli("fetch", "bccd", "--version", "1", "--force", env=env)
    assert again.returncode == 0, _said(again)
    assert _info(home)["source"]["version"] == 1 and _info(home)["images"] == 15
    downloads = len(kaggle.downloads())
    assert cli("fetch", "bccd", "--version", "1", "--force", env=env).returncode == 0
    assert len(kaggle.downloads()) == downloads + 1  # --force really downloads again


def test_a_dropped_connection_is_tried_again(kaggle: Behaviour, env: dict, home: Path) -> None:
    kaggle.add(SLUG, 1, small_bccd_archive(6, notes_bytes=300_000))
    kaggle.cut_next_download = True  # half the archive, then the connection closes
    result = cli("fetch", "bccd", env=env)
    assert result.returncode == 0, _said(result)
    assert "Kaggle: ChunkedEncodingError; trying again" in _said(result)
    assert len(kaggle.downloads()) == 2 and _info(home)["images"] == 30
    assert kaggle.downloads()[1].headers.get("Range", "").startswith("bytes=")  # only the rest


def test_a_partial_download_resumes_where_it_stopped(
    kaggle: Behaviour, env: dict, home: Path, tmp_path: Path
) -> None:
    # What an interrupted fetch (another process) leaves: the first half of the archive.
    data = small_bccd_archive(6)
    kaggle.add(SLUG, 1, data)
    partial = home / "downloads" / "kaggle" / "brikwerk" / "bccd-white-blood-cell" / "1" / "archive.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[: len(data) // 2])

    result = cli("fetch", "bccd", env=env)

    assert result.returncode == 0, _said(result)
    ranges = [r.headers.get("Range") for r in kaggle.downloads()]
    assert f"bytes={len(data) // 2}-" in ranges  # only the rest was asked for
    assert _info(home)["images"] == 30  # and the joined file passed the MD5 check and opened


def test_a_corrupted_download_is_refused_and_nothing_is_stored(
    kaggle: Behaviour, env: dict, home: Path
) -> None:
    kaggle.add(SLUG, 1, small_bccd_archive())
    kaggle.wrong_checksum = True
    text = _one_sentence(cli("fetch", "bccd", env=env))
    assert "did not match the checksum Kaggle sent" in text
    assert not (home / "datasets" / "bccd").exists()


@pytest.mark.parametrize(
    "status,expected",
    [
        (403, "sign in and accept the dataset's rules at https://www.kaggle.com/datasets/" + SLUG),
        (404, "Kaggle has no version 1 of '" + SLUG + "' (HTTP 404): fetch --latest"),
    ],
)
def test_refusals_are_one_sentence_with_the_way_out(
    status: int, expected: str, kaggle: Behaviour, env: dict, home: Path
) -> None:
    if status == 403:
        kaggle.add(SLUG, 1, small_bccd_archive())
        kaggle.failures.extend([403])
    text = _one_sentence(cli("fetch", "bccd", env=env))
    assert expected in text
    assert "--from" in text and not (home / "datasets" / "bccd").exists()


def test_a_private_dataset_without_credentials_names_the_places_looked(kaggle: Behaviour, env: dict) -> None:
    kaggle.add(SLUG, 1, small_bccd_archive())
    kaggle.private = True
    text = _one_sentence(cli("fetch", "bccd", env=env))
    assert "needs credentials for '" + SLUG + "' and none were found" in text
    assert "KAGGLE_API_TOKEN, ~/.kaggle/access_token" in text and "Colab secrets" in text
    assert "https://www.kaggle.com/datasets/" + SLUG + " and pass the archive with --from" in text


def test_a_token_is_sent_and_a_refused_token_is_one_sentence(
    kaggle: Behaviour, env: dict, home: Path
) -> None:
    kaggle.add(SLUG, 1, small_bccd_archive())
    kaggle.failures.extend([401])
    text = _one_sentence(cli("fetch", "bccd", env={**env, "KAGGLE_API_TOKEN": "my-token"}))
    assert "did not accept the credentials found" in text
    assert kaggle.requests[-1].headers["Authorization"] == "Bearer my-token"


def test_credentials_where_kaggles_cli_keeps_them_are_used(
    kaggle: Behaviour, env: dict, tmp_path: Path
) -> None:
    import base64
    from datetime import UTC, datetime, timedelta

    kaggle.add(SLUG, 1, small_bccd_archive())
    kaggle.private = True
    home_dir = Path(env["HOME"])
    without_config_dir = {k: v for k, v in env.items() if k != "KAGGLE_CONFIG_DIR"}

    # ~/.config/kaggle/kaggle.json: the CLI's fallback folder, which kagglehub does not read.
    (home_dir / ".config" / "kaggle").mkdir(parents=True)
    (home_dir / ".config" / "kaggle" / "kaggle.json").write_text('{"username": "ada", "key": "k3y"}')
    result = cli_process("fetch", "bccd", env=without_config_dir)
    assert result.returncode == 0, _said(result)
    expected = "Basic " + base64.b64encode(b"ada:k3y").decode()
    assert kaggle.requests[-1].headers["Authorization"] == expected
    (home_dir / ".config" / "kaggle" / "kaggle.json").unlink()

    # ~/.kaggle/credentials.json, as `kaggle auth login` writes it (an unexpired access token).
    (home_dir / ".kaggle").mkdir()
    later = (datetime.now(UTC) + timedelta(hours=6)).isoformat()
    (home_dir / ".kaggle" / "credentials.json").write_text(
        json.dumps({"refresh_token": "r", "access_token": "oauth-token", "access_token_expiration": later})
    )
    result = cli_process("fetch", "bccd", "--force", env=without_config_dir)
    assert result.returncode == 0, _said(result)
    assert kaggle.requests[-1].headers["Authorization"] == "Bearer oauth-token"


def test_busy_and_failing_servers_are_retried(kaggle: Behaviour, env: dict, home: Path) -> None:
    kaggle.add(SLUG, 1, small_bccd_archive())
    kaggle.failures.extend([429, 500])
    result = cli("fetch", "bccd", env=env)
    assert result.returncode == 0, _said(result)
    assert "Kaggle: HTTP 429; trying again" in _said(result) and "Kaggle: HTTP 500; trying again" in _said(
        result
    )
    assert _info(home)["images"] == 20


def test_a_server_that_keeps_failing_ends_in_one_sentence(kaggle: Behaviour, env: dict) -> None:
    kaggle.add(SLUG, 1, small_bccd_archive())
    kaggle.failures.extend([503] * 10)
    text = _one_sentence(cli("fetch", "bccd", env=env))
    assert "Downloading '" + SLUG + "' from Kaggle failed (HTTP 503); check the network" in text
    assert len(kaggle.requests) == 5  # the first try and four more, then it stops


def test_in_a_kaggle_notebook_the_mounted_copy_is_used_and_nothing_is_downloaded(
    env: dict, tmp_path: Path, home: Path
) -> None:
    # No server at all: a download attempt would fail. The mount is /kaggle/input/<name>.
    mount = tmp_path / "input" / "bccd-white-blood-cell"
    with zipfile.ZipFile(io.BytesIO(small_bccd_archive())) as archive:
        archive.extractall(mount)
    result = cli("fetch", "bccd", env={**env, "BREEDSCOPE_KAGGLE_INPUT": str(tmp_path / "input")})
    assert result.returncode == 0, _said(result)
    assert "mounted in this Kaggle notebook" in _said(result)
    info = _info(home)
    assert info["source"]["mounted"] is True and info["image_root"] == str(mount)
    assert not (tmp_path / "kagglehub").exists()


def test_a_class_folder_tree_with_one_class_or_wrapper_folders_is_refused(tmp_path: Path, home: Path) -> None:
    one = tmp_path / "one" / "wrapper" / "only_class"
    one.mkdir(parents=True)
    for number in range(4):
        shape_image(0, seed=number, size=40).save(one / f"{number}.png")
    text = _one_sentence(cli("fetch", "folder", "--from", str(tmp_path / "one")))
    assert "found 4 file(s) directly in wrapper/only_class and no class folders" in text

    normal_only = tmp_path / "chest" / "chest_xray" / "train" / "NORMAL"
    normal_only.mkdir(parents=True)
    for number in range(4):
        shape_image(0, seed=number, size=40).save(normal_only / f"IM-000{number}-0001.jpeg", format="JPEG")
    text = _one_sentence(cli("fetch", "chest_xray", "--from", str(tmp_path / "chest")))
    assert "The 'chest_xray' reader found only the class 'NORMAL'" in text
    assert not (home / "datasets" / "chest_xray").exists()

    for split in ("train", "test"):
        folder = tmp_path / "splits" / "pets" / split
        folder.mkdir(parents=True)
        for number in range(3):
            shape_image(1, seed=number, size=40).save(folder / f"{number}.png")
    text = _one_sentence(cli("fetch", "folder", "--from", str(tmp_path / "splits")))
    assert "found folders named like wrappers, not classes (test, train)" in text
    assert not (home / "datasets" / "splits").exists()


def test_class_folders_are_found_below_wrappers_with_stray_files(tmp_path: Path, home: Path) -> None:
    # Kaggle layouts change between versions: deeper wrappers, any case, a README beside them.
    archive = tmp_path / "bccd.zip"
    with zipfile.ZipFile(archive, "w") as out, zipfile.ZipFile(io.BytesIO(small_bccd_archive())) as original:
        out.writestr("LICENSE.txt", "MIT")
        for info in original.infolist():
            name = info.filename.replace("bccd_wbc/", "Kaggle Export/BCCD v3/").replace(
                "basophil", "Basophil"
            )
            out.writestr(name, original.read(info))
    result = cli("fetch", "bccd", "--from", str(archive))
    assert result.returncode == 0, _said(result)
    assert _info(home)["images"] == 20
    labels = {
        line.split(",")[1]
        for line in (home / "datasets" / "bccd" / "images.csv").read_text().splitlines()[1:]
    }
    assert labels == set(CLASSES)


def test_cat_breeds_fetch_validates_only_the_chosen_classes(tmp_path: Path, home: Path) -> None:
    archive = DATASETS / "cat-breeds-dataset.zip"
    if not archive.is_file():
        pytest.skip(
            f"real data {archive} is absent (it sits in ../shared/datasets beside the repository in CI)"
        )
    result = cli("fetch", "cat_breeds", "--from", str(archive), "--classes", "Maine Coon,Persian")
    assert result.returncode == 0, _said(result)
    info = _info(home, "cat_breeds")
    assert info["classes"] == ["Maine Coon", "Persian"] and info["images"] == 94 + 91
    validation = json.loads((home / "datasets" / "cat_breeds" / "validation.json").read_text())
    assert validation["skipped_by_layout"]["not among the chosen classes"] == 721 - 94 - 91

    by_preset = cli("fetch", "cat_breeds", "--from", str(archive), "--preset", "cats", "--force")
    assert by_preset.returncode == 0, _said(by_preset)
    assert len(_info(home, "cat_breeds")["classes"]) == 5
    text = _one_sentence(
        cli("fetch", "cat_breeds", "--from", str(archive), "--classes", "Main Coon", "--force")
    )
    assert "has no class 'Main Coon'; its classes are American Curl" in text


def _in_this_process(env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_a_decompression_bomb_from_kaggle_is_refused_as_from_a_file(
    kaggle: Behaviour, env: dict, home: Path, tmp_path: Path
) -> None:
    # kagglehub's own extraction turned a 1.25 MB zip into a 1 GiB zeros.jpg in its cache.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for label in CLASSES:
            archive.writestr(f"bccd_wbc/{label}/0.jpg", b"\xff\xd8 not really")
        with archive.open("bccd_wbc/basophil/zeros.jpg", "w") as zeros:
            for _ in range(256):
                zeros.write(bytes(2**20))  # 256 MiB of zeros, about 250 KB compressed
    kaggle.add(SLUG, 1, buffer.getvalue())
    text = _one_sentence(cli("fetch", "bccd", env=env))
    assert "which only a decompression bomb does; refusing to extract it" in text
    assert not (home / "datasets" / "bccd").exists()
    unpacked = [p for p in home.rglob("*") if p.is_file() and p.stat().st_size > 10 * 2**20]
    assert unpacked == []  # nothing was unpacked, and the archive was not kept to try again


def test_a_body_that_never_ends_is_cut_at_the_ceiling(
    kaggle: Behaviour, env: dict, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It used to be read for a minute, to 4 GB, and then reported as "kept" while nothing was.
    from breedscope.core.errors import DataError
    from breedscope.data import kaggle as kaggle_module
    from breedscope.data import transfer

    _in_this_process(env, monkeypatch)
    monkeypatch.setattr(transfer, "UNANNOUNCED_CEILING_BYTES", 4 * 2**20)
    kaggle.add(SLUG, 1, small_bccd_archive())
    kaggle.endless = True
    with pytest.raises(DataError, match=r"sent more than 4.2 MB, the most a dataset download may be"):
        kaggle_module.download(SLUG, 1, say=lambda text: None)
    assert not [p for p in home.rglob("*") if p.is_file()]  # nothing half-written is kept
    assert len(kaggle.downloads()) == 1  # and it was not tried again
