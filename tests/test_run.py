"""Whole runs: every stage on small images; determinism; a killed run resumed; real data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from breedscope.config import layering
from breedscope.runs.rundir import RunDir
from tests.helpers import (
    TINY,
    as_in_a_terminal,
    cli,
    cli_in_a_terminal,
    cli_process,
    pip_install_apart,
    write_tree,
)

pytestmark = pytest.mark.whole_run

# Without a validation split there is no early stopping and no best-epoch restore.
TINY_NO_VAL = [a if a != "0.6,0.2,0.2" else "0.7,0,0.3" for a in TINY]


@pytest.fixture
def tree_dataset(make_tree, tmp_path: Path) -> str:
    root = make_tree(classes=3, per_class=14, size=40)
    result = cli("fetch", "folder", "--from", str(root), "--name", "shapes")
    assert result.returncode == 0, result.stderr
    return "shapes"


def history_epochs(run_dir: Path) -> list[int]:
    """The epoch column of a run's history.csv."""
    return [int(float(line.split(",")[0])) for line in (run_dir / "history.csv").read_text().splitlines()[1:]]


def tensorboard_steps(run_dir: Path, split: str, tag: str) -> list[int]:
    """The steps (epochs from 0) at which a run's TensorBoard logs hold ``tag``."""
    import tensorflow as tf

    steps = []
    for file in sorted((run_dir / "tensorboard" / split).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(file)):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return sorted(steps)


def run_dir_of(runs: Path) -> Path:
    (found,) = [p for p in (runs / "shapes").iterdir()]
    return found


def test_run_produces_every_artefact_and_the_pdf_holds_the_metrics(tree_dataset: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = cli("run", "--dataset", tree_dataset, *TINY, "--epochs", "3", "--runs-dir", str(runs))
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(runs)
    for name in (
        "config.yaml",
        "manifest.csv",
        "manifest.json",
        "environment.json",
        "model.keras",
        "history.csv",
        "evaluation.json",
        "predictions.csv",
        "report.md",
        "report.pdf",
        "figures/confusion_matrix.png",
        "figures/training_curves.png",
        "figures/reliability.png",
    ):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "status.json").read_text())["state"] == "succeeded"
    environment = json.loads((run_dir / "environment.json").read_text())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert environment["manifest_sha256"] == manifest["csv_sha256"]
    # Every package that computes a run's numbers is recorded (installed or not, as LiteRT on an
    # Intel Mac): the backbone, its LiteRT runtime, the decoder, the augmentations and their OpenCV.
    recorded = environment["versions"]
    backbone = {"tensorflow", "keras", "ai-edge-litert"}
    pixels = {"pillow", "albumentations", "opencv-python-headless"}
    assert backbone | pixels <= set(recorded), (backbone | pixels) - set(recorded)
    assert recorded["tensorflow"] == version("tensorflow")
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert evaluation["n_test"] == sum(manifest["counts"]["test"].values())
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 3
    # 42 images at 32 px: converting the backbone for LiteRT would cost more than it saves.
    assert evaluation["training"]["feature_runtime"]["runtime"] == "keras"
    assert "Converting the backbone" not in result.stderr
    for split in ("train", "validation"):
        assert tensorboard_steps(run_dir, split, "epoch_loss") == [0, 1, 2], split
        assert tensorboard_steps(run_dir, split, "epoch_accuracy") == [0, 1, 2], split

    markdown = (run_dir / "report.md").read_text()
    pdf_text = " ".join(page.extract_text() for page in PdfReader(run_dir / "report.pdf").pages)
    accuracy = f"{evaluation['accuracy']:.3f}"
    for text in (markdown, pdf_text):
        for heading in (
            "Summary",
            "Metrics on the test split",
            "Confusion matrix",
            "Training curves",
            "Configuration",
            "Environment",
        ):
            assert heading in text
        assert f"accuracy {accuracy}" in " ".join(text.replace("|", " ").split())
        assert manifest["csv_sha256"] in "".join(text.split())
        # At 32 px MobileNetV2's last map is 1x1: no Grad-CAM picture, and one sentence why.
        assert "Grad-CAM is left out: at 32 px the backbone's last feature map is 1x1" in " ".join(
            text.split()
        )
    assert not (run_dir / "figures" / "gradcam.png").exists()
    rerendered = cli("report", str(run_dir), "--format", "markdown")
    assert rerendered.returncode == 0, rerendered.stderr
    assert (run_dir / "report.md").read_text() == markdown


def test_same_seed_same_metrics(tree_dataset: str, tmp_path: Path) -> None:
    outputs = []
    for attempt in ("a", "b"):
        runs = tmp_path / attempt
        result = cli(
            "run", "--dataset", tree_dataset, *TINY, "--epochs", "2", "--seed", "5", "--runs-dir", str(runs)
        )
        assert result.returncode == 0, result.stderr
        run_dir = run_dir_of(runs)
        outputs.append(((run_dir / "predictions.csv").read_text(), (run_dir / "manifest.csv").read_text()))
    assert outputs[0] == outputs[1]


def _interrupt_after_two_epochs(
    args: list[str], runs: Path, signal_number: int, epochs: int, attempts: int = 3
) -> tuple[Path, str, int]:
    """Start a run, send ``signal_number`` once it has finished two of its ``epochs`` (and not
    all of them); return its directory, what it printed on stderr and its exit code.

    The run is paused (SIGSTOP) while its state is read, so the signal is known to land during
    training. On a busy machine this test can look only after the last epoch (a tiny epoch
    takes a fifth of a second); that attempt is dropped and the run started again."""
    for attempt in range(attempts):
        directory = runs / f"attempt-{attempt}"
        process = subprocess.Popen(
            [sys.executable, "-m", "breedscope.cli", *args, "--runs-dir", str(directory)],
            preexec_fn=as_in_a_terminal,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        deadline = time.monotonic() + 300
        state_file, done = None, 0
        while time.monotonic() < deadline and process.poll() is None:
            candidates = list(directory.glob("shapes/*/checkpoints/state.json"))
            if candidates and json.loads(candidates[0].read_text())["next_epoch"] >= 2:
                process.send_signal(signal.SIGSTOP)
                state_file = candidates[0]
                done = json.loads(state_file.read_text())["next_epoch"]  # frozen: where it is
                break
            time.sleep(0.05)
        if state_file is None:  # it ended before this test looked: finished, or failed
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            continue
        process.send_signal(signal_number)
        process.send_signal(signal.SIGCONT)
        _, err = process.communicate(timeout=120)
        if done < epochs:
            return state_file.parents[1], err, process.returncode
    raise AssertionError(f"every run had finished training before it was signalled ({attempts} attempts)")


def test_interrupted_runs_resume_to_exactly_the_uninterrupted_result(
    tree_dataset: str, tmp_path: Path
) -> None:
    # Images through the whole model (no feature cache), a validation split with early stopping,
    # dropout in the head: every kind of state a resumed run must restore.
    args = [
        "run",
        "--dataset",
        tree_dataset,
        *TINY,
        "--no-feature-cache",
        "--epochs",
        "10",
        "--patience",
        "4",
    ]
    assert cli(*args, "--runs-dir", str(tmp_path / "whole")).returncode == 0
    whole = run_dir_of(tmp_path / "whole")

    # Ctrl-C: exit 130, a sentence naming what was kept and the command that continues.
    epochs = len(history_epochs(whole))  # early stopping ends every run of these settings here
    run_dir, err, code = _interrupt_after_two_epochs(args, tmp_path / "ctrl_c", signal.SIGINT, epochs)
    assert code == 130, err
    text = " ".join(err.split())
    assert "Traceback" not in err
    assert f"Continue with: breedscope run --resume {run_dir}" in text
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    # SIGTERM (a scheduler, `timeout`) and SIGHUP (a closed SSH session) stop it as Ctrl-C does,
    # with the shell's code for each signal.
    stopped: dict[int, Path] = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        stopped[signum], err, code = _interrupt_after_two_epochs(args, tmp_path / signum.name, signum, epochs)
        assert code == 128 + signum, err
        assert "Traceback" not in err
        assert f"Continue with: breedscope run --resume {stopped[signum]}" in " ".join(err.split())
        assert json.loads((stopped[signum] / "status.json").read_text())["state"] == "interrupted"
    # kill -9: nothing runs on the way out.
    killed_dir, _, code = _interrupt_after_two_epochs(args, tmp_path / "killed", signal.SIGKILL, epochs)
    assert code == -signal.SIGKILL
    assert json.loads((killed_dir / "status.json").read_text())["state"] == "running"  # never claims success
    assert not (killed_dir / "evaluation.json").exists()

    for resumed_dir in (run_dir, stopped[signal.SIGTERM], killed_dir):
        resumed = cli("run", "--resume", str(resumed_dir))
        assert resumed.returncode == 0, resumed.stderr
        assert json.loads((resumed_dir / "status.json").read_text())["state"] == "succeeded"
        for name in ("history.csv", "predictions.csv"):
            assert (resumed_dir / name).read_text() == (whole / name).read_text(), (resumed_dir, name)
    # The killed process's curves survive beside the resumed one's (an epoch may be logged twice).
    assert set(tensorboard_steps(killed_dir, "train", "epoch_loss")) == set(range(epochs))


def test_a_run_directory_in_use_is_not_resumed_twice(finished_run: Path) -> None:
    from filelock import FileLock

    from breedscope.runs.rundir import LOCK as LOCK_FILE

    run_dir = finished_run
    before = (run_dir / "predictions.csv").read_text()
    with FileLock(run_dir / LOCK_FILE):  # as another breedscope process writing it would hold it
        refused = cli("run", "--resume", str(run_dir))
    assert refused.returncode == 2, refused.stderr
    assert "is being written by another breedscope process" in " ".join(refused.stderr.split())
    assert (run_dir / "predictions.csv").read_text() == before


def test_fine_tuning_trains_only_the_top_of_the_backbone(tree_dataset: str, tmp_path: Path) -> None:
    import keras
    import numpy as np

    runs = tmp_path / "runs"
    # No validation split: the last fine-tuning epoch is kept, not the best one (which may be the head's).
    result = cli(
        "run",
        "--dataset",
        tree_dataset,
        *TINY_NO_VAL,
        "--epochs",
        "2",
        "--fine-tune-layers",
        "5",
        "--fine-tune-epochs",
        "2",
        "--fine-tune-lr",
        "0.01",
        "--runs-dir",
        str(runs),
    )
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(runs)
    assert "Fine-tuning the top" in result.stderr
    assert history_epochs(run_dir) == [1, 2, 3, 4]

    before = keras.models.load_model(run_dir / "checkpoints" / "after_head.keras")
    after = keras.models.load_model(run_dir / "model.keras")
    backbone_before, backbone_after = before.layers[2], after.layers[2]
    weighted = [i for i, layer in enumerate(backbone_before.layers) if layer.weights]
    changed = [
        i
        for i in weighted
        if not all(
            np.array_equal(a, b)
            for a, b in zip(
                backbone_before.layers[i].get_weights(), backbone_after.layers[i].get_weights(), strict=True
            )
        )
    ]
    assert changed, "fine-tuning changed no backbone layer"
    assert min(changed) >= weighted[-5], "a layer below the unfrozen top changed"


def test_mirrored_strategy_across_two_logical_cpus(tree_dataset: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = cli_process(
        "run",
        "--dataset",
        tree_dataset,
        *TINY,
        "--epochs",
        "2",
        "--strategy",
        "mirrored",
        "--no-feature-cache",
        "--runs-dir",
        str(runs),
        env={"BREEDSCOPE_LOGICAL_CPUS": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "Training on 2 replicas (MirroredStrategy)" in result.stderr
    evaluation = json.loads((run_dir_of(runs) / "evaluation.json").read_text())
    assert evaluation["training"]["replicas"] == 2


def test_mixed_precision_without_a_gpu_is_refused_in_one_sentence(tree_dataset: str, tmp_path: Path) -> None:
    result = cli("run", "--dataset", tree_dataset, *TINY, "--mixed-precision", "--runs-dir", str(tmp_path))
    assert result.returncode == 2
    assert "mixed_precision speeds up GPUs only" in " ".join(result.stderr.split())


def test_backbones_on_one_manifest_and_the_comparison_table(tree_dataset: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = [
        "--weights",
        "none",
        "--image-size",
        "32",
        "--augment",
        "none",
        "--split",
        "0.6,0.2,0.2",
        "--epochs",
        "1",
    ]
    first = cli(
        "run",
        "--dataset",
        tree_dataset,
        *base,
        "--alpha",
        "0.35",
        "--name",
        "mobilenet",
        "--runs-dir",
        str(runs),
    )
    assert first.returncode == 0, first.stderr
    reference = runs / "shapes" / "mobilenet"
    for backbone in ("resnet50", "densenet121", "alexnet"):
        result = cli(
            "run",
            "--dataset",
            tree_dataset,
            *base,
            "--backbone",
            backbone,
            "--name",
            backbone,
            "--manifest",
            str(reference),
            "--runs-dir",
            str(runs),
        )
        assert result.returncode == 0, (backbone, result.stderr)
        assert (runs / "shapes" / backbone / "manifest.csv").read_bytes() == (
            reference / "manifest.csv"
        ).read_bytes()
    table = tmp_path / "compare.md"
    compared = cli(
        "compare",
        *[str(runs / "shapes" / n) for n in ("mobilenet", "resnet50", "densenet121", "alexnet")],
        "--output",
        str(table),
    )
    assert compared.returncode == 0, compared.stderr
    text = table.read_text()
    for backbone in ("mobilenet_v2", "resnet50", "densenet121", "alexnet"):
        assert f"| {backbone} |" in text
    assert "different manifests" not in text
    from breedscope.report.compare import HEADER

    column = HEADER.index("manifest") + 1  # the cells after the leading "|"
    assert len({line.split("|")[column] for line in text.splitlines() if line.startswith("| shapes/")}) == 1


def test_alexnet_has_no_imagenet_weights_and_says_so(tree_dataset: str, tmp_path: Path) -> None:
    result = cli(
        "run",
        "--dataset",
        tree_dataset,
        *TINY,
        "--backbone",
        "alexnet",
        "--weights",
        "imagenet",
        "--runs-dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert "Keras has no ImageNet weights for alexnet" in " ".join(result.stderr.split())


def test_features_read_from_disk_train_the_same_model_as_features_in_memory(
    tree_dataset: str, tmp_path: Path
) -> None:
    streaming = tmp_path / "stream.toml"
    streaming.write_text("[train]\nfeature_memory_mb = 0\n")  # no budget: every batch reads its files
    predictions = []
    for name, extra in (("memory", []), ("disk", ["--config", str(streaming)])):
        runs = tmp_path / name
        result = cli(
            "run", "--dataset", tree_dataset, *TINY_NO_VAL, "--epochs", "2", "--runs-dir", str(runs), *extra
        )
        assert result.returncode == 0, result.stderr
        predictions.append((run_dir_of(runs) / "predictions.csv").read_text())
    assert predictions[0] == predictions[1]


def test_features_computed_while_tensorflow_loads_train_the_same_model(
    tree_dataset: str, tmp_path: Path, home: Path
) -> None:
    # The first run converts the backbone for LiteRT and computes its features in training; a
    # later one, with the cache emptied, computes them before it needs TensorFlow, which loads
    # meanwhile in another thread. The same features (two augmented views, validation, test)
    # must train the same model.
    from breedscope.features import runtime

    if not runtime.litert_available():
        pytest.skip("ai-edge-litert is not installed: every feature comes from Keras")
    outputs = []
    for name in ("converting", "ahead"):
        runs = tmp_path / name
        # Asked for: on its own, a run this small would not convert (it would not pay).
        args = ["run", "--dataset", tree_dataset, *TINY, "--epochs", "2", "--runtime", "litert"]
        result = cli(*args, "--runs-dir", str(runs))
        assert result.returncode == 0, result.stderr
        run_dir = run_dir_of(runs)
        runtime_used = json.loads((run_dir / "evaluation.json").read_text())["training"]["feature_runtime"]
        assert runtime_used["runtime"] == "litert"
        converted = "Converting the backbone" in result.stderr
        shards = list(home.glob("features/*/litert/*/shard-*.npy"))
        assert len(shards) == 4  # two training views, validation, test
        # Computed ahead, every feature is there before the run directory is made.
        made = (run_dir / "manifest.csv").stat().st_mtime_ns
        ahead = all(shard.stat().st_mtime_ns < made for shard in shards)
        outputs.append((converted, ahead, (run_dir / "predictions.csv").read_text()))
        for views in {shard.parent for shard in shards}:
            shutil.rmtree(views)  # the converted backbone stays
    assert [(converted, ahead) for converted, ahead, _ in outputs] == [(True, False), (False, True)]
    assert outputs[0][2] == outputs[1][2]


def test_a_finished_run_refuses_bad_paths_in_one_sentence(finished_run: Path, tmp_path: Path) -> None:
    run_dir = finished_run
    (tmp_path / "a_file").write_text("not a folder")

    exported = cli("export", str(run_dir), "--format", "keras", "--output", str(tmp_path / "a_file"))
    assert exported.returncode == 2 and "is a file; pass a folder" in " ".join(exported.stderr.split())
    # A folder is predicted file by file (a text file is "not an image"); an empty one is a sentence.
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("words")
    predicted = cli("predict", str(run_dir), str(tmp_path / "texts"), "--json")
    assert predicted.returncode == 2, predicted.stderr
    assert json.loads(predicted.stdout) == [
        {"path": str(tmp_path / "texts" / "a.txt"), "error": "not an image"}
    ]
    (tmp_path / "empty").mkdir()
    empty = cli("predict", str(run_dir), str(tmp_path / "empty"))
    assert empty.returncode == 2 and "No image files were found in" in " ".join(empty.stderr.split())

    # None of that needs the model, and neither does a Keras export (a copy of the file): each
    # answers at once, without starting TensorFlow (several seconds).
    code = f"""
import sys
import breedscope as bs
run = bs.open_run({str(run_dir)!r})
try:
    run.export("keras", output={str(tmp_path / "a_file")!r})
except bs.BreedscopeError as exc:
    print("refused:", exc)
print([p.error for p in run.predict({str(tmp_path / "texts")!r})])
print(run.export("keras", output={str(tmp_path / "copy")!r}).path.name)
print("tensorflow" in sys.modules)
"""
    answered = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.splitlines()[1:] == ["['not an image']", "model.keras", "False"]
    assert "is a file; pass a folder" in answered.stdout.splitlines()[0]
    assert (tmp_path / "copy" / "model.keras").read_bytes() == (run_dir / "model.keras").read_bytes()
    assert (tmp_path / "copy" / "labels.txt").read_text().split() == json.loads(
        (run_dir / "manifest.json").read_text()
    )["classes"]

    # In a terminal an export shows its progress, and a refusal comes before any of it.
    exit_code, written = cli_in_a_terminal(
        "export", str(run_dir), "--format", "keras", "--output", str(tmp_path / "a_file")
    )
    assert exit_code == 2 and "is a file; pass a folder" in written and "Exporting" not in written, written
    exit_code, written = cli_in_a_terminal(
        "export", str(run_dir), "--format", "keras", "--output", str(tmp_path / "tty")
    )
    assert exit_code == 0 and "Exporting (keras)" in written, written

    (run_dir / "manifest.json").unlink()
    for command in (("predict", str(run_dir), str(tmp_path / "a_file")), ("export", str(run_dir))):
        broken = cli(*command)
        assert broken.returncode == 2 and "Traceback" not in broken.stderr
        assert "has no manifest.json" in " ".join(broken.stderr.split())


def test_int8_export_is_measured_against_keras_and_recorded(finished_run: Path) -> None:
    import numpy as np

    from breedscope.export import convert as export
    from breedscope.inference import predict as inference

    run_dir = finished_run
    result = cli("export", str(run_dir), "--format", "tflite", "--quantize", "int8")
    record = json.loads((run_dir / "export" / "model_int8.tflite.check.json").read_text())
    said = " ".join(result.stderr.split())
    assert f"the two agree on {record['agreement']:.1%} of images" in said
    # The check, recomputed from its figures; a failed one is an error (the file is kept).
    passes = record["agreement"] >= 0.95 and record["accuracy_drop"] <= 0.015 + 1e-9
    assert record["acceptable"] == passes
    assert result.returncode == (0 if passes else 2), result.stderr
    assert ("fails its check" in said) == (not passes)
    # How it was made: full int8, or float for the layers int8 hurt most, chosen on training images.
    assert record["int8"]["float_layers"] in (0, 4, 8, 12, 16, 24)
    assert record["int8"]["holdout_images"] > 0 and "int8: " in said

    # The record, recomputed here from the files: the exported model against the test labels.
    run = inference.load_run(run_dir)
    predictions = (run_dir / "predictions.csv").read_text().splitlines()[1:]
    images = export.run_images(run, RunDir(run_dir).manifest().split("test"), "test")
    labels = np.array([run.classes.index(line.split(",")[1]) for line in predictions])
    lite = export.tflite_predict(run_dir / "export" / "model_int8.tflite", images).argmax(1)
    assert record["images"] == len(labels)
    assert record["exported_accuracy"] == pytest.approx(float(np.mean(lite == labels)))


@pytest.mark.skipif(
    os.geteuid() != 0 if hasattr(os, "geteuid") else True, reason="mounts a tiny tmpfs (root)"
)
def test_a_disk_that_fills_during_training_ends_failed_not_running(tree_dataset: str, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        result = cli(
            "run", "--dataset", tree_dataset, *TINY, "--epochs", "3", "--runs-dir", str(small / "runs")
        )
        status = json.loads((run_dir_of(small / "runs") / "status.json").read_text())
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
    assert "Error: No space left on device" in " ".join(result.stderr.split())
    assert status["state"] == "failed"


def test_every_export_has_its_labels_and_is_measured_against_keras(
    finished_run: Path, tmp_path: Path
) -> None:
    import numpy as np

    from breedscope.export import convert as export
    from breedscope.inference import predict as inference

    run_dir = finished_run
    classes = RunDir(run_dir).manifest().classes
    produced = {}
    for fmt, quantize in (("tflite", "fp16"), ("tflite", "dynamic"), ("onnx", None), ("keras", None)):
        flags = ["--quantize", quantize] if quantize else []
        result = cli("export", str(run_dir), "--format", fmt, *flags, "--output", str(tmp_path / fmt))
        assert result.returncode == 0, result.stderr
        said = " ".join(result.stderr.split())
        assert (tmp_path / fmt / "labels.txt").read_text().splitlines() == classes
        path = Path(said.split("Exported: ")[1].split(" (class names")[0])
        produced[(fmt, quantize)] = path
        if fmt != "keras":
            record = json.loads(path.with_name(path.name + ".check.json").read_text())
            assert f"the two agree on {record['agreement']:.1%} of images" in said
            assert record["format"] == fmt and record["quantize"] == quantize
    assert produced[("tflite", "fp16")].name == "model_fp16.tflite"
    assert produced[("tflite", "dynamic")].stat().st_size < produced[("tflite", "fp16")].stat().st_size

    # ONNX against Keras, computed here: probabilities within 1e-4 on every test image.
    run = inference.load_run(run_dir)
    images = export.run_images(run, RunDir(run_dir).manifest().split("test"), "test")
    keras_p = np.asarray(run.model.predict_on_batch(images))
    onnx_p = export.onnx_predict(produced[("onnx", None)], images)
    assert np.abs(onnx_p - keras_p).max() < 1e-4
    assert (onnx_p.argmax(1) == keras_p.argmax(1)).all()

    # Apps call a TFLite export by its signature (LiteRT's get_signature_runner): it has one,
    # named as Keras' own conversion names it, and it answers as the Keras model does.
    Interpreter = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="LiteRT has no wheel here"
    ).Interpreter
    interpreter = Interpreter(model_path=str(produced[("tflite", "fp16")]))
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["rgb_0_255"], "outputs": ["output_0"]}
    }
    runner = interpreter.get_signature_runner("serving_default")
    fp16_p = np.concatenate([runner(rgb_0_255=image[None])["output_0"] for image in images])
    assert np.abs(fp16_p - keras_p).max() < 1e-2


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


READ_METADATA = """
import json, sys, zipfile
from tensorflow_lite_support.metadata import metadata_schema_py_generated as meta_fb
from tensorflow_lite_support.metadata import schema_py_generated as model_fb

data = open(sys.argv[1], "rb").read()
model = model_fb.Model.GetRootAsModel(data, 0)
entries = {
    model.Metadata(i).Name().decode(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())
}
buffer = model.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
assert meta_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
meta = meta_fb.ModelMetadataT.InitFromObj(meta_fb.ModelMetadata.GetRootAsModelMetadata(buffer, 0))
tensors = meta.subgraphMetadata[0]
image, output = tensors.inputTensorMetadata[0], tensors.outputTensorMetadata[0]
labels_file = output.associatedFiles[0]
print(json.dumps({
    "name": meta.name.decode(),
    "color_space": image.content.contentProperties.colorSpace,
    "mean": image.processUnits[0].options.mean.tolist(),
    "std": image.processUnits[0].options.std.tolist(),
    "labels_file": labels_file.name.decode(),
    "labels_type": labels_file.type,
    "labels": zipfile.ZipFile(sys.argv[1]).read(labels_file.name.decode()).decode().split("\\n")[:-1],
}))
"""


def test_tflite_exports_carry_metadata_a_reader_finds_the_labels_in(
    finished_run: Path, tmp_path: Path
) -> None:
    # The reader: TFLite Support's generated schema code (Google's parser of the format MediaPipe
    # and the Task Library read), installed on its own since it cannot share TensorFlow's
    # environment. Its full MetadataDisplayer needs libusb from the system, which CI lacks.
    reader = tmp_path / "reader"
    installed = pip_install_apart(reader, "tflite-support==0.4.4")
    if installed.returncode != 0:
        pytest.skip(f"tflite-support (the metadata reader) could not be installed: {installed.stderr[-200:]}")
    run_dir = finished_run
    assert cli("export", str(run_dir), "--format", "tflite", "--quantize", "dynamic").returncode == 0

    read = subprocess.run(
        [sys.executable, "-c", READ_METADATA, str(run_dir / "export" / "model_dynamic.tflite")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(reader)},
    )
    assert read.returncode == 0, read.stderr
    found = json.loads(read.stdout)
    assert found["labels"] == RunDir(run_dir).manifest().classes
    assert (found["labels_file"], found["labels_type"]) == ("labels.txt", 2)  # TENSOR_AXIS_LABELS
    assert (found["color_space"], found["mean"], found["std"]) == (1, [0.0], [1.0])  # RGB, pixels as they are
    assert found["name"] == "breedscope shapes classifier"


def test_a_model_is_evaluated_on_another_fetched_dataset(finished_run: Path, tmp_path: Path) -> None:
    import csv

    from tests.helpers import shape_image

    run_dir = finished_run
    # Another "hospital": the same shapes under other class names, one class the model never saw.
    for number, (label, name) in enumerate(((0, "square"), (1, "bar"), (2, "column"), (0, "unknown_thing"))):
        folder = tmp_path / "elsewhere" / name
        folder.mkdir(parents=True)
        for index in range(8):
            shape_image(label, seed=5000 + 100 * number + index, size=40).save(folder / f"{name}_{index}.png")
    assert cli("fetch", "folder", "--from", str(tmp_path / "elsewhere")).returncode == 0

    result = cli(
        "evaluate",
        str(run_dir),
        "--dataset",
        "elsewhere",
        "--map",
        "square=class_0,bar=class_1,column=class_2",
    )

    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    out = run_dir / "external" / "elsewhere"
    stored = json.loads((out / "evaluation.json").read_text())
    assert stored["n_test"] == 24 and stored["external"]["left_out"] == {"unknown_thing": 8}
    assert "Left out, as classes the model does not know: unknown_thing (8)." in said
    low, high = stored["intervals"]["accuracy"]
    assert f"accuracy {stored['accuracy']:.4f} (95% CI {low:.3f}–{high:.3f})" in said
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # The stored accuracy is the share of rows whose prediction is their (mapped) label.
    assert stored["accuracy"] == pytest.approx(sum(r["label"] == r["predicted"] for r in rows) / len(rows))
    assert {r["label"] for r in rows} == {"class_0", "class_1", "class_2"}
    assert (out / "report.pdf").is_file() and "External validation" in (out / "report.md").read_text()

    unknown = cli("evaluate", str(run_dir), "--dataset", "elsewhere", "--map", "square=circle")
    assert unknown.returncode == 2 and "--map names circle, which the model does not know" in " ".join(
        unknown.stderr.split()
    )


def test_cross_validation_tests_every_image_once_per_repeat_and_keeps_groups_whole(
    tree_dataset: str, tmp_path: Path
) -> None:
    import csv
    from collections import defaultdict

    runs = tmp_path / "runs"
    args = ["run", "--dataset", tree_dataset, *TINY, "--epochs", "2", "--cv", "3", "--repeats", "2"]
    result = cli(*args, "--runs-dir", str(runs))
    assert result.returncode == 0, result.stderr
    run_dir = run_dir_of(runs)
    images = RunDir(run_dir).manifest().rows
    with open(run_dir / "folds.csv", newline="") as handle:
        folds = list(csv.DictReader(handle))
    assert [row["path"] for row in folds] == [row.path for row in images]
    for repeat in ("repeat_1", "repeat_2"):
        fold_of_group = defaultdict(set)
        for row in folds:
            fold_of_group[row["group"]].add(row[repeat])
        assert all(len(f) == 1 for f in fold_of_group.values())  # a group never straddles folds
        for label in {row["label"] for row in folds}:  # stratified: every fold tests every class
            assert {row[repeat] for row in folds if row["label"] == label} == {"1", "2", "3"}

    with open(run_dir / "predictions.csv", newline="") as handle:
        predictions = list(csv.DictReader(handle))
    assert len(predictions) == 2 * len(images)
    for half in (predictions[: len(images)], predictions[len(images) :]):
        assert sorted(p["path"] for p in half) == sorted(row.path for row in images)  # each once
    stored = json.loads((run_dir / "evaluation.json").read_text())
    assert stored["n_test"] == 2 * len(images) and len(stored["cv"]["per_fold"]) == 6
    assert stored["accuracy"] == pytest.approx(
        sum(p["label"] == p["predicted"] for p in predictions) / len(predictions)
    )
    assert [sum(f["n_test"] for f in stored["cv"]["per_fold"] if f["repeat"] == r) for r in (1, 2)] == [
        len(images)
    ] * 2
    report = (run_dir / "report.md").read_text()
    assert "## Cross-validation" in report and "Grouped, stratified 3-fold cross-validation" in report
    assert f"| total | {len(images)} |" in report  # the summary counts every image of the pool
    assert not (run_dir / "model.keras").exists()
    refused = cli("predict", str(run_dir), str(tmp_path))
    assert refused.returncode == 2 and "is a cross-validation run" in " ".join(refused.stderr.split())


def test_a_killed_cross_validation_resumes_to_the_uninterrupted_result(
    tree_dataset: str, tmp_path: Path
) -> None:
    args = ["run", "--dataset", tree_dataset, *TINY, "--epochs", "2", "--cv", "3", "--repeats", "2"]
    assert cli(*args, "--runs-dir", str(tmp_path / "whole")).returncode == 0
    whole = run_dir_of(tmp_path / "whole")

    runs = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "breedscope.cli", *args, "--runs-dir", str(runs)],
        preexec_fn=as_in_a_terminal,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(runs.glob("shapes/*/folds/*/evaluation.json"))) >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = run_dir_of(runs)
    assert json.loads((killed / "status.json").read_text())["state"] == "running", "finished before the kill"

    resumed = cli("run", "--resume", str(killed))
    assert resumed.returncode == 0, resumed.stderr
    for name in ("predictions.csv", "evaluation.json", "folds.csv"):
        assert (killed / name).read_text() == (whole / name).read_text(), name


def free_ports(count: int) -> list[int]:
    """Ports no one listens on now (bound, then released, by this process)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@contextmanager
def workers_on_loopback(
    args: list[str], runs: list[Path], envs: list[dict]
) -> Iterator[list[subprocess.Popen]]:
    """``breedscope run ARGS --strategy multiworker`` once per worker of a cluster on free 127.0.0.1
    ports (worker ``i`` writes to ``runs[i]``, with ``envs[i]`` added to its environment); every
    worker is killed on the way out."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(runs))]}
    workers: list[subprocess.Popen] = []
    try:
        for index, (runs_dir, extra) in enumerate(zip(runs, envs, strict=True)):
            config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            command = [sys.executable, "-m", "breedscope.cli", "run", *args, "--strategy", "multiworker"]
            env = {**os.environ, "COLUMNS": "200", "TF_CONFIG": json.dumps(config), **extra}
            command += ["--runs-dir", str(runs_dir)]
            workers.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True))
        yield workers
    finally:
        for worker in workers:
            worker.kill()


def test_two_workers_on_loopback_train_what_one_machine_trains(tree_dataset: str, tmp_path: Path) -> None:
    # Keras' model.fit cannot drive several workers (keras-team/keras#20585); the custom loop
    # does. Two workers sharing one cache train the head, then fine-tune, in step: the chief's
    # run must equal a one-machine run of the same settings (dropout off: its masks are drawn
    # per replica), and the other worker must leave no files behind.
    (tmp_path / "no-dropout.yaml").write_text("model: {dropout: 0}\n")
    settings = [*TINY, "--config", str(tmp_path / "no-dropout.yaml"), "--epochs", "3"]
    # Large steps, so that a wrong gradient would show in the losses; fine-tuning trains on images.
    settings += ["--lr", "0.1", "--fine-tune-epochs", "1", "--fine-tune-layers", "5"]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runs = [tmp_path / "runs-0", tmp_path / "runs-1"]
    with workers_on_loopback(
        ["--dataset", tree_dataset, *settings], runs, [{"TMPDIR": str(scratch)}] * 2
    ) as workers:
        said = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], said
    assert "Trained in step with the chief" in said[1]
    assert not (tmp_path / "runs-1").exists() and not any(scratch.iterdir())
    chief = run_dir_of(tmp_path / "runs-0")
    training = json.loads((chief / "evaluation.json").read_text())["training"]
    assert training["strategy"] == "multiworker" and training["replicas"] == 2

    one_dir = tmp_path / "one"
    alone = cli("run", "--dataset", tree_dataset, *settings, "--strategy", "one", "--runs-dir", str(one_dir))
    assert alone.returncode == 0, alone.stderr
    one = run_dir_of(one_dir)
    for name in ("history.csv", "predictions.csv"):
        ours, theirs = (np.genfromtxt(d / name, delimiter=",", skip_header=1) for d in (chief, one))
        numbers = ~np.isnan(theirs)  # the path and label columns
        np.testing.assert_allclose(ours[numbers], theirs[numbers], rtol=1e-5, atol=1e-6, err_msg=name)


def test_ctrl_c_while_waiting_for_the_other_workers_exits_130_naming_them(
    tree_dataset: str, tmp_path: Path
) -> None:
    # TensorFlow's own wait for the cluster ignores Ctrl-C; breedscope waits first, in Python.
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    runs = tmp_path / "runs"
    flags = ["--strategy", "multiworker", "--runs-dir", str(runs)]
    said = tmp_path / "stderr.txt"
    with said.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "breedscope.cli", "run", "--dataset", tree_dataset, *TINY, *flags],
            preexec_fn=as_in_a_terminal,
            stderr=stderr,
            env={**os.environ, "TF_CONFIG": json.dumps(config), "BREEDSCOPE_CLUSTER_NOTICE_SECONDS": "1"},
        )
        try:
            deadline = time.monotonic() + 120
            while "Still waiting" not in said.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)
        finally:
            process.kill()
    err = said.read_text()
    assert process.returncode == 130, err
    assert f"Still waiting for {cluster['worker'][1]}" in err and not runs.exists()


def test_a_worker_lost_mid_training_stops_the_others_in_one_sentence(
    tree_dataset: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    args = ["--dataset", tree_dataset, *TINY, "--epochs", "100000", "--patience", "100000"]
    # The killed worker's scratch cannot be cleaned up: it goes in this test's folder.
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp_path)}
    with workers_on_loopback(args, [runs, tmp_path / "other"], [env, env]) as workers:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and workers[0].poll() is None:
            states = list(runs.glob("shapes/*/checkpoints/state.json"))
            if states and json.loads(states[0].read_text())["next_epoch"] >= 2:
                break
            time.sleep(0.05)
        workers[1].kill()
        _, said = workers[0].communicate(timeout=120)
    assert workers[0].returncode == 2, said
    assert "A worker of the cluster stopped or cannot be reached" in " ".join(said.split())
    assert json.loads((run_dir_of(runs) / "status.json").read_text())["state"] == "failed"


def test_a_multiworker_run_is_not_resumed_and_a_reproduction_is_not_distributed(tmp_path: Path) -> None:
    # Only the chief keeps checkpoints, so the other workers could not resume in step; and a
    # reproduction runs its members one after another on one machine. Both say so up front.
    from breedscope import plugins
    from breedscope.core.errors import ConfigError
    from breedscope.pipeline import reproduction
    from breedscope.pipeline import run as pipeline

    registry = plugins.registry()
    config = layering.resolve_config(registry, dataset="demo", strategy="multiworker")
    with pytest.raises(ConfigError, match="cannot be resumed; start the run again on every machine"):
        pipeline.run(config, registry, run_dir=tmp_path / "killed")
    with pytest.raises(ConfigError, match="drop --strategy multiworker"):
        reproduction.start(registry, "bccd", strategy="multiworker", runs_dir=str(tmp_path / "runs"))
    assert not any(tmp_path.iterdir())


def test_workers_with_different_datasets_are_refused_in_one_sentence(
    tree_dataset: str, make_tree, tmp_path: Path
) -> None:
    # Each machine builds its manifest from its own copy of the dataset; copies that differ
    # would train every worker on different images, silently.
    other_home = tmp_path / "other-home"
    smaller = make_tree(classes=3, per_class=12, size=40, root=tmp_path / "smaller")
    env = {"BREEDSCOPE_HOME": str(other_home)}
    assert cli("fetch", "folder", "--from", str(smaller), "--name", tree_dataset, env=env).returncode == 0
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    runs = [tmp_path / "runs-0", tmp_path / "runs-1"]
    homes = [os.environ["BREEDSCOPE_HOME"], str(other_home)]
    envs = [{"BREEDSCOPE_HOME": home, "TMPDIR": str(scratch)} for home in homes]
    with workers_on_loopback(["--dataset", tree_dataset, *TINY], runs, envs) as workers:
        said = [worker.communicate(timeout=300)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [2, 2], said
    assert all("their manifests differ" in " ".join(text.split()) for text in said)
    assert not any(scratch.iterdir()), "a refused worker left its scratch directory"
    assert json.loads((run_dir_of(tmp_path / "runs-0") / "status.json").read_text())["state"] == "failed"


@pytest.mark.parametrize("preset", ["bccd", "cats", "breast"])
def test_a_presets_own_split_without_validation_raises_no_patience_warning(preset: str) -> None:
    # "train.patience is 5, but the split has no validation images" used to open every run of
    # these presets, whose own split has no validation images.
    from breedscope import plugins
    from breedscope.data import manifest as manifest_module
    from breedscope.pipeline import crossval
    from breedscope.pipeline import run as pipeline

    registry = plugins.registry()
    chosen = layering.resolve_config(registry, preset)
    no_val = manifest_module.Manifest(
        [manifest_module.Row("a.png", "a", "train", "a", "0", "0", 1, 1, "")], {"warnings": []}
    )
    assert chosen.train.patience is None
    assert pipeline.run_warnings(chosen, no_val) == []
    asked = layering.resolve_config(registry, preset, patience=5)  # asked for: then it is said
    assert any("train.patience is 5" in w for w in pipeline.run_warnings(asked, no_val))
    cross_validated = layering.resolve_config(registry, preset, patience=5, cv=5)
    assert pipeline.run_warnings(cross_validated, no_val) == []
    assert "no validation split, so no early stopping" in crossval.summary(cross_validated)


def test_cross_validation_leaves_out_a_class_smaller_than_its_folds_with_a_sentence(
    make_tree, tmp_path: Path
) -> None:
    # `run --cv 5` with a 3-image class used to fail after making its run directory.
    from tests.helpers import cli_here

    tree = make_tree(classes=2, per_class=10, size=40)
    tiny = write_tree(tmp_path / "tiny", classes=3, per_class=3, size=40) / "class_2"
    shutil.copytree(tiny, tree / "class_2")
    assert cli_here("fetch", "folder", "--from", str(tree), "--name", "uneven").returncode == 0
    runs = tmp_path / "runs"
    result = cli_here(
        "run", "--dataset", "uneven", *TINY, "--epochs", "1", "--cv", "5", "--runs-dir", str(runs)
    )
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert "class 'class_2' has 3 group(s) of images, too few to test in each of 5 folds; left out" in said
    assert "(--cv 3 would keep it)" in said and "Cross-validation: 5 grouped, stratified folds" in said
    evaluation = json.loads((runs / "uneven" / "run" / "evaluation.json").read_text())
    assert evaluation["classes"] == ["class_0", "class_1"] and evaluation["n_test"] == 20
    assert sorted(p.name for p in (runs / "uneven").iterdir()) == ["run"]  # no failed run beside it

    too_few = cli_here("run", "--dataset", "uneven", *TINY, "--cv", "11", "--runs-dir", str(runs))
    assert too_few.returncode == 2
    assert "--cv 11 leaves fewer than two classes" in " ".join(too_few.stderr.split())
    assert sorted(p.name for p in (runs / "uneven").iterdir()) == ["run"]


def test_a_failed_run_says_why_before_it_advises_resuming(finished_run: Path) -> None:
    (finished_run / "evaluation.json").unlink()
    RunDir(finished_run).set_status("failed", error="No space left on device")
    text = " ".join(cli("report", str(finished_run)).stderr.split())
    assert "the run failed (No space left on device). Once that is fixed outside the run" in text
    assert f"continue it with: breedscope run --resume {finished_run}" in text


def test_external_figures_average_over_the_classes_present_beside_the_runs_own(
    finished_run: Path, tmp_path: Path
) -> None:
    # With 2 of the classes present, macro recall used to count the absent one as 0 (0.200 where
    # balanced accuracy said 0.500), under the heading "Metrics on the test split".
    import csv

    from sklearn import metrics

    from tests.helpers import cli_here, shape_image

    for label in (0, 1):
        folder = tmp_path / "partial" / f"class_{label}"
        folder.mkdir(parents=True)
        for index in range(6):
            shape_image(label, seed=7000 + 10 * label + index, size=40).save(folder / f"{index}.png")
    assert cli_here("fetch", "folder", "--from", str(tmp_path / "partial")).returncode == 0
    result = cli_here("evaluate", str(finished_run), "--dataset", "partial")
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())  # the terminal says what the report says of small classes
    assert "note: Per-class figures are not meaningful for classes with fewer than 10 test images" in said

    out = finished_run / "external" / "partial"
    stored = json.loads((out / "evaluation.json").read_text())
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    truth, predicted = [r["label"] for r in rows], [r["predicted"] for r in rows]
    present = ["class_0", "class_1"]
    assert stored["absent_classes"] == ["class_2"]
    assert stored["macro"]["recall"] == pytest.approx(
        metrics.recall_score(truth, predicted, labels=present, average="macro", zero_division=0)
    )
    assert stored["macro"]["f1-score"] == pytest.approx(
        metrics.f1_score(truth, predicted, labels=present, average="macro", zero_division=0)
    )
    assert stored["macro"]["recall"] == pytest.approx(stored["balanced_accuracy"])
    report = (out / "report.md").read_text()
    assert (
        "## Metrics on the external dataset partial" in report and "Metrics on the test split" not in report
    )
    assert (
        "No test image is of class_2: macro figures and balanced accuracy average over the 2 classes"
        in report
    )
    internal = json.loads((finished_run / "evaluation.json").read_text())
    low, high = internal["intervals"]["accuracy"]
    assert (
        f"| accuracy | {internal['accuracy']:.3f} ({low:.3f} – {high:.3f}) | {stored['accuracy']:.3f} ("
        in report
    )
