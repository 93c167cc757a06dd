"""Real data and real weights: PBC blood cells with ImageNet MobileNetV2, trained once per session.

What the issues promise a user: `breedscope run --dataset pbc --epochs 5` reaches 0.85 test
accuracy; the model predicts files and exports to TFLite with the same answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import cli, made_once, require_weights, shared_archive

pytestmark = [pytest.mark.slow, pytest.mark.whole_run]


def _environment(folder: Path) -> dict:
    return {"BREEDSCOPE_HOME": str(folder / "home")}


def _train_pbc(folder: Path, archive: Path) -> None:
    env = _environment(folder)
    fetched = cli("fetch", "folder", "--from", str(archive), "--name", "pbc", env=env)
    assert fetched.returncode == 0, fetched.stderr
    result = cli("run", "--dataset", "pbc", "--epochs", "5", "--runs-dir", str(folder / "runs"), env=env)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def pbc_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The PBC run, trained once per session by whichever worker asks first. Tests leave it as it is."""
    archive = shared_archive("pbc-wbc.zip")
    require_weights()
    folder = made_once(tmp_path_factory, "pbc-run", lambda into: _train_pbc(into, archive))
    (run_dir,) = list((folder / "runs" / "pbc").iterdir())
    return run_dir, _environment(folder)


def test_pbc_reaches_85_percent(pbc_run: tuple[Path, dict]) -> None:
    run_dir, _ = pbc_run
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["n_test"] >= 100
    assert evaluation["accuracy"] >= 0.85, evaluation["accuracy"]
    assert (run_dir / "figures" / "gradcam.png").is_file()
    assert (run_dir / "figures" / "augmented_samples.png").is_file()


def test_predict_reports_bad_files_and_still_predicts_the_rest(
    pbc_run: tuple[Path, dict], tmp_path: Path
) -> None:
    run_dir, env = pbc_run
    rows = [line.split(",") for line in (run_dir / "predictions.csv").read_text().splitlines()[1:4]]
    image_root = Path(env["BREEDSCOPE_HOME"]) / "datasets" / "pbc" / "raw"
    images = [str(image_root / row[0]) for row in rows]
    (tmp_path / "fake.jpg").write_text("not an image")
    result = cli(
        "predict",
        str(run_dir),
        *images,
        str(tmp_path / "fake.jpg"),
        str(tmp_path / "gone.png"),
        "--json",
        env=env,
    )
    assert result.returncode == 2
    answers = json.loads(result.stdout)
    assert [a.get("error") for a in answers[3:]] == ["not an image", "file not found"]
    assert [a["top"][0]["class"] for a in answers[:3]] == [row[2] for row in rows]  # as in predictions.csv


def _test_split(run_dir: Path, env: dict) -> tuple[np.ndarray, np.ndarray]:
    from breedscope.data.images import load_rgb

    rows = [line.split(",") for line in (run_dir / "predictions.csv").read_text().splitlines()[1:]]
    image_root = Path(env["BREEDSCOPE_HOME"]) / "datasets" / "pbc" / "raw"
    classes = json.loads((run_dir / "manifest.json").read_text())["classes"]
    images = np.stack([load_rgb(image_root / r[0], 224) for r in rows]).astype(np.float32)
    keras_probabilities = np.array([[float(v) for v in r[3:]] for r in rows])
    labels = np.array([classes.index(r[1]) for r in rows])
    return images, np.stack([keras_probabilities.argmax(1), labels])


def test_tflite_exports_agree_with_the_keras_model(pbc_run: tuple[Path, dict], tmp_path: Path) -> None:
    from breedscope.export.convert import tflite_predict

    run_dir, env = pbc_run
    images, (keras_predicted, labels) = _test_split(run_dir, env)
    keras_accuracy = float(np.mean(keras_predicted == labels))

    assert (
        cli("export", str(run_dir), "--format", "tflite", "--output", str(tmp_path), env=env).returncode == 0
    )
    float_predicted = tflite_predict(tmp_path / "model.tflite", images).argmax(1)
    assert np.mean(float_predicted == keras_predicted) >= 0.99

    result = cli(
        "export", str(run_dir), "--format", "tflite", "--quantize", "int8", "--output", str(tmp_path), env=env
    )
    assert result.returncode == 0, result.stderr  # the export's own check passed
    # int8 (with float for the layers it hurts most) agrees with Keras on at least 95% of the test
    # images and loses at most 1.5 points: recomputed here from the files. 2026-12-06, AMD machine:
    # full int8 agreed on 96.5%; with 12 of 68 layers in float, 97.4% and +2.6 points.
    int8_predicted = tflite_predict(tmp_path / "model_int8.tflite", images).argmax(1)
    assert np.mean(int8_predicted == keras_predicted) >= 0.95
    int8_accuracy = float(np.mean(int8_predicted == labels))
    assert int8_accuracy >= keras_accuracy - 0.015 - 1e-9, (int8_accuracy, keras_accuracy)


def test_keras_and_savedmodel_exports(pbc_run: tuple[Path, dict], tmp_path: Path) -> None:
    run_dir, env = pbc_run
    for fmt, produced in (("keras", "model.keras"), ("savedmodel", "savedmodel/saved_model.pb")):
        result = cli("export", str(run_dir), "--format", fmt, "--output", str(tmp_path), env=env)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / produced).is_file()


def test_predict_over_a_folder_writes_one_csv_row_per_image(
    pbc_run: tuple[Path, dict], tmp_path: Path
) -> None:
    import csv

    run_dir, env = pbc_run
    folder = Path(env["BREEDSCOPE_HOME"]) / "datasets" / "pbc" / "raw"
    images = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".DS_Store")
    out = tmp_path / "out.csv"

    result = cli("predict", str(run_dir), str(folder), "--csv", str(out), env=env)

    assert result.returncode == 0, result.stderr
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == [str(p) for p in images]  # one row per image, in order
    assert all(row["error"] == "" and row["class_1"] and float(row["probability_1"]) > 0 for row in rows)
    # The run's own test predictions agree with these for the same files.
    by_path = {row["path"]: row["class_1"] for row in rows}
    for line in (run_dir / "predictions.csv").read_text().splitlines()[1:]:
        path, _, predicted = line.split(",")[:3]
        assert by_path[str(folder / path)] == predicted
    assert f"{len(images)} images: the first 500 and every failure are shown; all are in the CSV" in " ".join(
        result.stdout.split()
    )


def test_the_litert_fast_path_and_keras_give_the_same_test_predictions(
    pbc_run: tuple[Path, dict], tmp_path: Path
) -> None:
    import csv

    from breedscope.features import runtime

    run_dir, env = pbc_run
    if not runtime.litert_available():
        pytest.skip("ai-edge-litert is not installed on this platform; every run uses Keras")
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    training = evaluation["training"]
    assert training["feature_runtime"]["runtime"] == "litert"  # what `auto` chose for PBC
    check = training["feature_runtime"]["check"]
    assert check["images"] == runtime.CHECK_IMAGES and check["max_abs_difference"] <= runtime.TOLERANCE

    # The same manifest and settings, once on the fast path and once forced onto Keras. The
    # study's preset (no augmentation) keeps Keras to one pass over the 750 images.
    args = ["run", "--dataset", "pbc", "--preset", "bccd", "--epochs", "5", "--manifest", str(run_dir)]
    directories = {}
    for name in ("auto", "keras"):
        result = cli(
            *args, "--runtime", name, "--format", "markdown", "--runs-dir", str(tmp_path / name), env=env
        )
        assert result.returncode == 0, result.stderr
        (directories[name],) = list((tmp_path / name / "pbc").iterdir())
    records = [
        json.loads((directories[name] / "evaluation.json").read_text())["training"]["feature_runtime"]
        for name in ("auto", "keras")
    ]
    assert [record["runtime"] for record in records] == ["litert", "keras"]

    def probabilities(directory: Path) -> tuple[list[str], np.ndarray]:
        with open(directory / "predictions.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        columns = [c for c in rows[0] if c.startswith("p_")]
        return [r["path"] for r in rows], np.array([[float(r[c]) for c in columns] for r in rows])

    (paths, fast), (same_paths, slow) = (
        probabilities(directories["auto"]),
        probabilities(directories["keras"]),
    )
    assert paths == same_paths and len(paths) == evaluation["n_test"]
    differ = fast.argmax(1) != slow.argmax(1)
    top2 = np.sort(slow, axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) <= 1e-3
    assert not (differ & ~near_tie).any(), f"{int(differ.sum())} predictions differ"
    assert np.abs(fast - slow).max() < 0.01
