"""Predicting with a finished run (inference/): files, folders and globs, non-images per file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import cli


@pytest.mark.whole_run
def test_predict_takes_folders_and_globs_and_reports_non_images_per_file(
    finished_run: Path, make_tree, tmp_path: Path
) -> None:
    import csv

    tree = make_tree(classes=2, per_class=3, root=tmp_path / "new")
    (tree / "class_0" / "notes.txt").write_text("not an image")
    (tree / ".DS_Store").write_text("litter")
    os.mkfifo(tree / "pipe.png")  # named on its own: reading it would wait for ever
    out = tmp_path / "out.csv"

    result = cli(
        "predict",
        str(finished_run),
        str(tree / "class_0"),
        str(tree / "class_1" / "*.png"),
        str(tree / "pipe.png"),
        "--csv",
        str(out),
        timeout=120,
    )

    assert result.returncode == 2  # two files could not be read
    with open(out, newline="") as handle:
        rows = {Path(row["path"]).relative_to(tree).as_posix(): row for row in csv.DictReader(handle)}
    assert len(rows) == 8 and rows["class_0/notes.txt"]["error"] == "not an image"
    assert rows["pipe.png"]["error"] == "not a regular file (a pipe, socket or device)"
    assert rows["class_0/notes.txt"]["class_1"] == ""  # every row has every column
    unreadable = ("class_0/notes.txt", "pipe.png")
    assert all(row["class_1"] for name, row in rows.items() if name not in unreadable)
    assert "2 of 8 file(s) could not be read as images" in " ".join(result.stderr.split())


def _require_litert() -> None:
    from breedscope.features.runtime import litert_available

    if not litert_available():
        pytest.skip("ai-edge-litert is not installed on this platform; prediction runs in Keras")


def _dataset_images() -> list[Path]:
    from breedscope.api import load_dataset

    return sorted(load_dataset("shapes").image_root.rglob("*.png"))


def _probabilities(predictions) -> dict[str, dict[str, float]]:
    return {p.path: dict(p.top) for p in predictions}


@pytest.mark.whole_run
def test_litert_predictions_agree_with_keras_and_need_no_tensorflow_once_converted(
    finished_run: Path, home: Path
) -> None:
    import json
    import subprocess
    import sys

    import breedscope as bs
    from breedscope.features.runtime import TOLERANCE

    _require_litert()
    images = _dataset_images()
    run = bs.open_run(finished_run)
    keras = _probabilities(run.predict(images, top=3, runtime="keras"))
    litert = _probabilities(run.predict(images, top=3, runtime="auto"))
    assert len(litert) == len(images) == 42
    for path, expected in keras.items():
        assert litert[path].keys() == expected.keys()  # the same classes, in the same order
        assert max(abs(litert[path][c] - expected[c]) for c in expected) <= TOLERANCE
    assert len(list((home / "converted").glob("*/model.tflite"))) == 1

    # Another process, as a later `breedscope predict` is: the kept conversion, no TensorFlow.
    script = (
        "import json, sys, breedscope as bs\n"
        f"p = bs.open_run({str(finished_run)!r}).predict({[str(i) for i in images]!r}, top=3)\n"
        "print(json.dumps([[x.path, x.top] for x in p])); print('tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    listed, tensorflow_loaded = done.stdout.splitlines()[-2:]
    assert tensorflow_loaded == "False"
    again = {path: {c: p for c, p in top} for path, top in json.loads(listed)}
    assert again == litert  # the same file, the same figures, bit for bit


@pytest.mark.whole_run
@pytest.mark.parametrize("runtime", ["litert", "keras"])
def test_an_images_probabilities_do_not_depend_on_what_it_is_predicted_with(
    finished_run: Path, home: Path, runtime: str
) -> None:
    import breedscope as bs

    if runtime == "litert":
        _require_litert()
    images = _dataset_images()
    run = bs.open_run(finished_run)
    among_all = _probabilities(run.predict(images, top=3, runtime=runtime))
    for alone in (images[0], images[-1]):
        assert _probabilities(run.predict(alone, top=3, runtime=runtime)) == {
            str(alone): among_all[str(alone)]
        }


def test_an_unknown_runtime_is_one_sentence_before_any_file_is_written(
    finished_run: Path, home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    image = _dataset_images()[0]
    result = cli("predict", str(finished_run), str(image), "--runtime", "fast", "--csv", str(out))
    assert result.returncode == 2
    assert "runtime must be one of auto, litert, keras, not 'fast'." in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()


@pytest.mark.whole_run
def test_the_predictions_table_at_80_columns_keeps_every_path_token_whole(
    finished_run: Path, tmp_path: Path
) -> None:
    from breedscope.core.tables import pieces

    folder = tmp_path / "new-cells-from-the-second-clinic-2026" / "batch-07"
    folder.mkdir(parents=True)
    (folder / "corrupt-scan.jpg").write_text("not an image")
    shutil.copy(_dataset_images()[0], folder / "scan[1].png")  # brackets are not markup
    result = cli("predict", str(finished_run), str(folder), env={"COLUMNS": "80"})
    assert result.returncode == 2  # one file could not be read
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len([line for line in lines if line.startswith("│")]) > 2  # the paths had to wrap
    for path in (folder / "corrupt-scan.jpg", folder / "scan[1].png"):
        for piece in pieces(str(path)):
            assert piece.strip() in result.stdout, piece
    assert "not an image" in result.stdout


def test_a_replaced_model_or_an_upgrade_gets_a_conversion_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A conversion is never answered for a model file or a TensorFlow other than its own.
    from breedscope.core import versions
    from breedscope.inference.runtime import conversion_dir

    model = tmp_path / "model.keras"
    model.write_bytes(b"the first model")
    first = conversion_dir(model)
    model.write_bytes(b"a retrained model")
    assert conversion_dir(model) != first
    model.write_bytes(b"the first model")
    assert conversion_dir(model) == first
    monkeypatch.setattr(versions, "package_versions", lambda packages: {"tensorflow": "99.0"})
    assert conversion_dir(model) != first
