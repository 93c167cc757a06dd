"""A run directory is input: shared, copied and resumed by others. Whatever its files say,
breedscope reads only inside it (images: inside the dataset), deletes only the checkpoints it
wrote, trusts a manifest only under its own hash and a model only with one output per class."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import cli_here, shape_image


def refused(result) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Unexpected error" not in result.stderr, result.stderr
    return " ".join(result.stderr.split())


def _fine_tuning(run_dir: Path) -> None:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["train"].update(fine_tune_layers=2, fine_tune_epochs=1)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))


def _state(run_dir: Path, **changes: object) -> None:
    file = run_dir / "checkpoints" / "state.json"
    state = json.loads(file.read_text())
    state.update(changes)
    file.write_text(json.dumps(state))


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A user's file outside the run directory, which no resume may read or delete."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes\n")
    return folder


@pytest.mark.parametrize("phase", ["fine_tune", "head"])
def test_a_state_naming_a_file_outside_the_run_is_refused_and_the_file_kept(
    finished_run: Path, elsewhere: Path, phase: str
) -> None:
    # Before, a fine-tuning phase loaded it and, at the next epoch, deleted it (exit 0).
    _fine_tuning(finished_run)
    for named in (str(elsewhere / "notes.txt"), "../../elsewhere/notes.txt", "../model.keras"):
        _state(finished_run, phase=phase, next_epoch=2, head_epochs=2, checkpoint=named)
        text = refused(cli_here("run", "--resume", str(finished_run)))
        assert f"names '{named}', which is no checkpoint breedscope writes" in text
    assert (elsewhere / "notes.txt").read_text() == "my notes\n"
    assert (finished_run / "model.keras").is_file()
    assert json.loads((finished_run / "status.json").read_text())["state"] == "succeeded"  # untouched


def test_a_checkpoint_that_is_a_link_out_of_the_run_is_refused(finished_run: Path, elsewhere: Path) -> None:
    checkpoint = json.loads((finished_run / "checkpoints" / "state.json").read_text())["checkpoint"]
    target = elsewhere / "model.keras"
    shutil.copy(finished_run / "checkpoints" / checkpoint, target)
    (finished_run / "checkpoints" / checkpoint).unlink()
    (finished_run / "checkpoints" / checkpoint).symlink_to(target)
    _fine_tuning(finished_run)
    _state(finished_run, phase="fine_tune")
    text = refused(cli_here("run", "--resume", str(finished_run)))
    assert "is a link, not a checkpoint breedscope wrote" in text
    assert target.is_file()


def test_a_checkpoints_folder_that_leads_elsewhere_is_refused(finished_run: Path, elsewhere: Path) -> None:
    shutil.move(finished_run / "checkpoints", elsewhere / "checkpoints")
    (finished_run / "checkpoints").symlink_to(elsewhere / "checkpoints")
    text = refused(cli_here("run", "--resume", str(finished_run)))
    assert "leads outside its run directory" in text
    assert sorted(p.name for p in (elsewhere / "checkpoints").iterdir())  # nothing deleted there


def test_an_unreadable_state_is_one_sentence(finished_run: Path) -> None:
    (finished_run / "checkpoints" / "state.json").write_text('{"phase": "head", "next_epoch": "many"')
    text = refused(cli_here("run", "--resume", str(finished_run)))
    assert "state.json cannot be used: it is not the JSON breedscope writes" in text


def _rewrite_manifest(run_dir: Path, change, rehash: bool) -> None:
    with open(run_dir / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    change(rows)
    with open(run_dir / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    if rehash:  # as someone who knew the format would
        header = json.loads((run_dir / "manifest.json").read_text())
        header["csv_sha256"] = hashlib.sha256((run_dir / "manifest.csv").read_bytes()).hexdigest()
        (run_dir / "manifest.json").write_text(json.dumps(header))


def test_a_manifest_row_outside_the_dataset_is_refused(finished_run: Path, elsewhere: Path) -> None:
    # Before, a resumed run read that file and cached its features under another image's hash.
    shape_image(0, seed=5, size=40).save(elsewhere / "private.png")

    def point_outside(rows: list[dict]) -> None:
        rows[0]["path"] = str(elsewhere / "private.png")

    _rewrite_manifest(finished_run, point_outside, rehash=True)
    text = refused(cli_here("run", "--resume", str(finished_run)))
    assert f"the row of '{elsewhere / 'private.png'}' has an absolute path" in text


def test_a_manifest_that_does_not_match_its_hash_is_refused(finished_run: Path) -> None:
    def relabel(rows: list[dict]) -> None:
        rows[0]["label"] = rows[-1]["label"] if rows[0]["label"] != rows[-1]["label"] else rows[1]["label"]

    _rewrite_manifest(finished_run, relabel, rehash=False)
    for command in ("run", "--resume", str(finished_run)), ("predict", str(finished_run), str(finished_run)):
        text = refused(cli_here(*command))
        assert "its SHA-256 is not the one manifest.json states" in text


def test_a_model_that_predicts_another_number_of_classes_is_refused(finished_run: Path) -> None:
    # Before, a 2-output model in this 3-class run predicted under the wrong class names.
    import keras

    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))).save(
        finished_run / "model.keras"
    )
    image = finished_run.parent / "image.png"
    shape_image(0, seed=3, size=40).save(image)
    text = refused(cli_here("predict", str(finished_run), str(image)))
    assert "model.keras predicts 2 classes, but its run has 3" in text


def test_a_model_that_would_run_code_or_load_files_is_refused(finished_run: Path, tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, 0, 0, :])(inputs))
    lambda_model.save(finished_run / "model.keras")
    image = tmp_path / "image.png"
    shape_image(0, seed=3, size=40).save(image)
    text = refused(cli_here("predict", str(finished_run), str(image)))
    assert "is not a model breedscope can load" in text and "Lambda" in text


@pytest.mark.parametrize(
    ("name", "command"),
    [("evaluation.json", "compare"), ("manifest.json", "compare"), ("environment.json", "report")],
)
def test_a_damaged_run_file_is_one_sentence(finished_run: Path, name: str, command: str) -> None:
    (finished_run / name).write_text('{"accuracy": ')
    text = refused(cli_here(command, str(finished_run)))
    assert f"{name} is damaged or was edited by hand (not JSON" in text
