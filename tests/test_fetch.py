"""Fetching: every shared archive gives the README's counts; Kaggle is replaced at its download call."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from breedscope.config.settings import BalanceConfig, SplitConfig
from breedscope.core.errors import DataError
from breedscope.data import manifest, store
from breedscope.data.fetch import fetch
from breedscope.data.spec import LINK_OUTSIDE, LINK_TO_FOLDER
from breedscope.plugins import registry
from tests.helpers import cli, noise_image, shared_archive


def spec(name: str):
    return registry().dataset(name)


@pytest.mark.parametrize(
    "plugin,archive,found,kept",
    [
        ("chest_xray", "chest-xray-pneumonia.zip", 2394, 2394),
        ("breast", "breast-ultrasound-images-dataset.zip", 464, 462),
        ("cat_breeds", "cat-breeds-dataset.zip", 721, 721),
        ("bccd", "bccd-white-blood-cell.zip", 351, 351),
        ("folder", "pbc-wbc.zip", 750, 750),
    ],
)
def test_shared_archive_counts(plugin: str, archive: str, found: int, kept: int) -> None:
    result = fetch(spec(plugin), name=plugin if plugin != "folder" else "pbc", source=shared_archive(archive))
    assert len(result.scan.images) == found
    assert len(result.validation.kept) == kept
    assert len(result.dataset.records()) == kept


def test_chest_quirks_and_patients_never_straddle_splits() -> None:
    result = fetch(spec("chest_xray"), source=shared_archive("chest-xray-pneumonia.zip"))
    assert result.scan.skipped["nested duplicate copy"] == 2394
    assert result.scan.skipped["system file (.DS_Store, __MACOSX, ._*)"] > 2000
    records = result.dataset.records()
    assert {r.source_split for r in records} == {"train", "val", "test"}
    assert sum(r.source_split == "val" for r in records) == 16
    built = manifest.build(records, SplitConfig(train=0.75, val=0.15, test=0.10), BalanceConfig())
    splits_of_patient: dict[str, set[str]] = defaultdict(set)
    path_patient = {r.path: r.group for r in records}
    for row in built.rows:
        assert row.group == path_patient[row.path]
        splits_of_patient[row.group].add(row.split)
    assert all(len(s) == 1 for s in splits_of_patient.values())
    assert any(g.startswith("patient:person") for g in splits_of_patient)


def test_breast_skips_masks_and_reports_the_label_conflict() -> None:
    result = fetch(spec("breast"), source=shared_archive("breast-ultrasound-images-dataset.zip"))
    assert result.scan.skipped["segmentation mask"] == 939 - 464
    assert len(result.validation.label_conflicts) == 1
    conflict = " ".join(result.validation.label_conflicts[0])
    assert "benign (433).png" in conflict and "malignant (145).png" in conflict


def test_breast_finds_class_folders_at_any_depth_and_case(tmp_path: Path) -> None:
    for split, label in [("Train", "Benign"), ("Train", "GANAS"), ("test", "Normal"), ("test", "benign")]:
        folder = tmp_path / "kanker" / split / label
        folder.mkdir(parents=True)
        for i in range(3):
            noise_image(hash((split, label, i)) % 1000, 40).save(folder / f"{i}.jpg")
        noise_image(1, 40, "L").save(folder / "0_mask.png")
    result = fetch(spec("mammography"), name="kanker", source=tmp_path)
    labels = {(r.label, r.source_split) for r in result.dataset.records()}
    assert labels == {("benign", "train"), ("malignant", "train"), ("normal", "test"), ("benign", "test")}
    assert result.scan.skipped["segmentation mask"] == 4


def test_bccd_tiny_class_is_reported_not_crashed_on() -> None:
    records = fetch(spec("bccd"), source=shared_archive("bccd-white-blood-cell.zip")).dataset.records()
    three_splits = manifest.build(records, SplitConfig(), BalanceConfig())
    assert three_splits.counts()["test"]["basophil"] == 1  # 3 basophils: one per split
    two_basophils = [r for r in records if r.label != "basophil"] + [
        r for r in records if r.label == "basophil"
    ][:2]
    built = manifest.build(two_basophils, SplitConfig(), BalanceConfig())
    assert "basophil" not in built.classes
    assert built.header["warnings"] == ["class 'basophil' has 2 image(s), too few for 3 splits; left out"]


def test_refetch_does_no_work_unless_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    archive = shared_archive("bccd-white-blood-cell.zip")
    fetch(spec("bccd"), source=archive)
    calls = []
    monkeypatch.setattr("breedscope.data.fetch.inspect_all", lambda *a, **k: calls.append(1) or [])
    assert fetch(spec("bccd"), source=archive).reused
    assert calls == []


# Downloads from Kaggle, with the real client against a stand-in server: tests/test_kaggle.py


def test_folder_with_no_images_says_what_was_expected(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="No images were found"):
        fetch(spec("folder"), name="nothing", source=tmp_path / "empty")


def test_validation_report_lists_excluded_files(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(3):
            noise_image(ord(label) * 10 + i, 40).save(tmp_path / label / f"{i}.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "b" / "zero.png").touch()
    result = fetch(spec("folder"), name="mixed", source=tmp_path)
    report = json.loads((result.dataset.directory / "validation.json").read_text())
    reasons = {e["path"]: e["reason"] for e in report["excluded"]}
    assert reasons == {"a/broken.jpg": "truncated or corrupt", "b/zero.png": "empty file"}
    assert report["by_class"]["a"] == {"found": 4, "kept": 3, "truncated or corrupt": 1}


# --- What a fetch must never do: delete what is not its own, store half a dataset -----------


def _one_sentence(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def _tree_zip(make_tree, tmp_path: Path, name: str = "shapes") -> Path:
    make_tree(classes=2, per_class=6, root=tmp_path / name)
    return Path(shutil.make_archive(str(tmp_path / name), "zip", root_dir=tmp_path, base_dir=name))


@pytest.mark.parametrize("bad", ["ABSOLUTE", ".", "..", "../downloads"])
def test_a_path_given_as_dataset_name_is_refused_and_nothing_is_deleted(
    bad: str, make_tree, tmp_path: Path, home: Path
) -> None:
    tree = make_tree(classes=2, per_class=6)
    assert cli("fetch", "folder", "--from", str(tree), "--name", "kept").returncode == 0
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    (home / "downloads").mkdir()
    (home / "downloads" / "big.zip").write_text("a download")
    name = str(precious) if bad == "ABSOLUTE" else bad

    text = _one_sentence(cli("fetch", "folder", "--from", str(tree), "--name", name))

    assert f"The dataset name '{name}'" in text
    assert (precious / "thesis.txt").read_text() == "years of work"
    assert (home / "downloads" / "big.zip").is_file()
    assert store.load("kept") is not None and len(store.load("kept").records()) == 12


def test_a_folder_that_is_not_a_breedscope_dataset_is_never_replaced(make_tree, home: Path) -> None:
    mine = home / "datasets" / "pets"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    text = _one_sentence(cli("fetch", "folder", "--from", str(make_tree()), "--name", "pets"))
    assert "is not a dataset breedscope stored" in text
    assert (mine / "notes.txt").read_text() == "mine"


def test_a_source_inside_the_dataset_it_would_replace_is_refused(
    make_tree, tmp_path: Path, home: Path
) -> None:
    assert (
        cli("fetch", "folder", "--from", str(_tree_zip(make_tree, tmp_path)), "--name", "t").returncode == 0
    )
    inside = home / "datasets" / "t" / "raw"
    text = _one_sentence(cli("fetch", "folder", "--force", "--from", str(inside), "--name", "t"))
    assert "lies inside the stored dataset 't'" in text
    stored = store.load("t")
    assert stored is not None
    assert all((stored.image_root / r.path).is_file() for r in stored.records())
    assert len(stored.records()) == 12


def test_a_slug_that_climbs_out_is_refused_before_anything_is_written(tmp_path: Path, home: Path) -> None:
    escape = tmp_path / "escape"
    slug = os.path.relpath(escape, home / "downloads" / "owner")
    env = {"KAGGLE_CONFIG_DIR": str(tmp_path / "none"), "KAGGLE_API_TOKEN": "", "KAGGLE_USERNAME": ""}
    text = _one_sentence(cli("fetch", "bccd", "--slug", slug, env=env))
    assert "is not of the form owner/dataset" in text
    assert not list(tmp_path.glob("escape*"))
    assert not (home / "downloads").exists()


def test_two_fetches_of_one_dataset_at_once_store_it_whole(tmp_path: Path) -> None:
    archive = shared_archive("chest-xray-pneumonia.zip")
    command = [
        sys.executable,
        "-m",
        "breedscope.cli",
        "fetch",
        "chest_xray",
        "--force",
        "--from",
        str(archive),
    ]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert any("waiting for it to finish" in err for _, err in outputs)
    stored = store.load("chest_xray")
    records = stored.records()
    assert len(records) == 2394
    assert all((stored.image_root / r.path).is_file() for r in records)


def test_without_a_name_the_folder_plugin_uses_the_source_name(make_tree, tmp_path: Path) -> None:
    assert cli("fetch", "folder", "--from", str(make_tree(root=tmp_path / "my-photos"))).returncode == 0
    assert cli("fetch", "folder", "--from", str(_tree_zip(make_tree, tmp_path, "pets"))).returncode == 0
    assert store.load("my-photos") is not None and store.load("pets") is not None
    assert store.load("folder") is None
    (tmp_path / "two words").mkdir()
    text = _one_sentence(cli("fetch", "folder", "--from", str(tmp_path / "two words")))
    assert "give one with --name NAME" in text


def test_errors_name_the_archive_not_the_deleted_staging_folder(tmp_path: Path) -> None:
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "readme.txt").write_text("no classes here")
    archive = shutil.make_archive(str(tmp_path / "loose"), "zip", root_dir=tmp_path / "loose")
    text = _one_sentence(cli("fetch", "folder", "--from", archive, "--name", "loose"))
    assert "loose.zip" in text and ".staging" not in text


def test_a_lone_class_folder_is_told_what_was_found(make_tree) -> None:
    tree = make_tree(classes=2, per_class=6)
    text = _one_sentence(cli("fetch", "folder", "--from", str(tree / "class_0"), "--name", "one"))
    assert "class_0: found 6 file(s) directly in the top level and no class folders" in text
    assert "one folder per class" in text


def test_links_inside_the_source_are_read_and_links_out_of_it_are_named(tmp_path: Path) -> None:
    # A tree of symlinked images used to say "found no files inside the folders".
    source = tmp_path / "linked"
    for label in ("a", "b"):
        (source / label).mkdir(parents=True)
        for index in range(4):
            noise_image(ord(label) * 10 + index).save(source / f"{label}{index}.png")  # beside the classes
            (source / label / f"{label}{index}.png").symlink_to(Path("..") / f"{label}{index}.png")
    outside = tmp_path / "private.png"
    noise_image(99).save(outside)
    (source / "a" / "private.png").symlink_to(outside)
    (source / "b" / "loop").symlink_to(source)

    result = fetch(spec("folder"), name="linked", source=source)
    assert sorted(record.path for record in result.dataset.records()) == [
        *(f"a/a{i}.png" for i in range(4)),
        *(f"b/b{i}.png" for i in range(4)),
    ]
    assert result.scan.skipped[LINK_OUTSIDE] == 1
    assert result.scan.skipped[LINK_TO_FOLDER] == 1


def test_a_tree_of_links_out_of_the_source_says_so(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / "real" / label).mkdir(parents=True)
        (tmp_path / "linked" / label).mkdir(parents=True)
        for index in range(3):
            noise_image(ord(label) + index).save(tmp_path / "real" / label / f"{index}.png")
            (tmp_path / "linked" / label / f"{index}.png").symlink_to(
                tmp_path / "real" / label / f"{index}.png"
            )
    with pytest.raises(DataError, match=r"skipped: 6 link leading outside the source \(copy the files in"):
        fetch(spec("folder"), name="linked", source=tmp_path / "linked")


@pytest.mark.parametrize("name", ["pipe", "pipe.zip"])
def test_a_named_pipe_as_the_source_is_refused_at_once(tmp_path: Path, name: str) -> None:
    # It used to wait for a writer that never came: the fetch hung for ever.
    os.mkfifo(tmp_path / name)
    with pytest.raises(DataError, match=rf"{name} is neither a folder nor a regular file"):
        fetch(spec("folder"), name="piped", source=tmp_path / name)


def test_a_class_whose_every_file_is_unreadable_leaves_no_one_class_dataset(tmp_path: Path) -> None:
    # "Stored onecls: 8 images" used to end a fetch whose second class was all HEIC named .jpg.
    for index in range(8):
        (tmp_path / "src" / "cats").mkdir(parents=True, exist_ok=True)
        noise_image(index).save(tmp_path / "src" / "cats" / f"{index}.png")
    (tmp_path / "src" / "dogs").mkdir()
    for index in range(5):
        (tmp_path / "src" / "dogs" / f"{index}.jpg").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    with pytest.raises(DataError, match=r"Only the class 'cats' has usable images .* every file of 'dogs'"):
        fetch(spec("folder"), name="onecls", source=tmp_path / "src")
    assert store.load("onecls") is None


def test_a_class_name_no_label_file_can_keep_is_refused(tmp_path: Path) -> None:
    # A folder named "bad\nclass" gave a labels.txt of four lines for three outputs.
    for label in ("bad\nclass", "good", "other"):
        (tmp_path / "src" / label).mkdir(parents=True)
        for index in range(3):
            noise_image(index + len(label)).save(tmp_path / "src" / label / f"{index}.png")
    with pytest.raises(DataError, match=r"holds a control character \(U\+000A\) .*rename that folder"):
        fetch(spec("folder"), name="badnames", source=tmp_path / "src")


def test_classes_that_differ_only_in_case_or_unicode_form_are_named(tmp_path: Path) -> None:
    import unicodedata

    names = [unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"), "Cat", "cat"]
    for number, label in enumerate(names):
        (tmp_path / "src" / label).mkdir(parents=True)
        for index in range(3):
            noise_image(number * 10 + index).save(tmp_path / "src" / label / f"{index}.png")
    result = fetch(spec("folder"), name="confusable", source=tmp_path / "src")
    notes = " ".join(result.scan.notes)
    assert "the classes 'Cat' and 'cat' differ only in case or Unicode form" in notes
    assert "'caf\\xe9' and 'cafe\\u0301' differ only in case or Unicode form" in notes
    assert len({r.label for r in result.dataset.records()}) == 4  # kept apart, as found


def test_two_archive_entries_with_one_name_are_refused(tmp_path: Path) -> None:
    import warnings
    import zipfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it is asked to write
        with zipfile.ZipFile(tmp_path / "twice.zip", "w") as archive:
            archive.writestr("a/1.png", b"one")
            archive.writestr("a/1.png", b"two")
            archive.writestr("b/1.png", b"three")
    with pytest.raises(DataError, match=r"Archive entry 'a/1.png' appears twice"):
        fetch(spec("folder"), name="twice", source=tmp_path / "twice.zip")


def test_the_terminal_and_the_notebook_say_what_validation_found_in_the_same_words(make_tree) -> None:
    tree = make_tree(classes=2, per_class=12, size=40)
    (tree / "readme.txt").write_text("about these images")  # outside the class folders
    shutil.copy(sorted((tree / "class_0").iterdir())[0], tree / "class_1" / "twin.png")  # two labels

    result = cli("fetch", "folder", "--from", str(tree), "--name", "twins")

    assert result.returncode == 0, result.stderr
    said = store.load("twins").validation_summary()  # what the notebook's display shows
    assert said == [
        "1 file(s) skipped by the layout: outside the class folders.",
        "1 set(s) of identical files, kept on one side of every split.",
        "Label conflict, excluded: class_0/img_000.png (class_0) = class_1/twin.png (class_1).",
    ]
    printed = " ".join(result.stderr.split())
    assert all(" ".join(sentence.split()) in printed for sentence in said)
    again = cli("validate", "twins")
    assert again.returncode == 0 and said[-1] in " ".join(again.stderr.split())
