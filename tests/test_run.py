"""Whole runs: every stage on small images; determinism; a killed run resumed; real data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from pypdf import PdfReader

from breedscope.config import layering
from breedscope.runs.rundir import RunDir
from tests.helpers import (
    TINY,
    TINY_NO_VAL,
    as_in_a_terminal,
    cli,
    cli_in_a_terminal,
    history_epochs,
    made_once,
    run_dir_of,
    tensorboard_steps,
    write_tree,
)

pytestmark = pytest.mark.whole_run


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


# Images through the whole model (no feature cache), a validation split with early stopping,
# dropout in the head: every kind of state a resumed run must restore.
INTERRUPTIBLE = [
    "run",
    "--dataset",
    "shapes",
    *TINY,
    "--no-feature-cache",
    "--epochs",
    "10",
    "--patience",
    "4",
]


def _train_uninterrupted(folder: Path) -> None:
    env = {"BREEDSCOPE_HOME": str(folder / "home")}
    tree = write_tree(folder / "tree", classes=3, per_class=14, size=40)  # tree_dataset's images
    assert cli("fetch", "folder", "--from", str(tree), "--name", "shapes", env=env).returncode == 0
    assert cli(*INTERRUPTIBLE, "--runs-dir", str(folder / "runs"), env=env).returncode == 0


@pytest.fixture
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run every interrupted one must resume to: trained once per session, never signalled."""
    return run_dir_of(made_once(tmp_path_factory, "uninterrupted-run", _train_uninterrupted) / "runs")


# One test per signal (rather than one test for all four), so that xdist's workers share them.
@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name
)
def test_an_interrupted_run_resumes_to_exactly_the_uninterrupted_result(
    signum: signal.Signals, tree_dataset: str, uninterrupted: Path, tmp_path: Path
) -> None:
    epochs = len(history_epochs(uninterrupted))  # early stopping ends every run of these settings here
    run_dir, err, code = _interrupt_after_two_epochs(INTERRUPTIBLE, tmp_path / signum.name, signum, epochs)
    state = json.loads((run_dir / "status.json").read_text())["state"]
    if signum == signal.SIGKILL:
        # kill -9: nothing runs on the way out.
        assert code == -signal.SIGKILL
        assert state == "running"  # never claims success
        assert not (run_dir / "evaluation.json").exists()
    else:
        # Ctrl-C exits 130; SIGTERM (a scheduler, `timeout`) and SIGHUP (a closed SSH session)
        # stop it as Ctrl-C does, with the shell's code for each signal: a sentence naming what
        # was kept and the command that continues.
        assert code == (130 if signum == signal.SIGINT else 128 + signum), err
        assert "Traceback" not in err
        assert f"Continue with: breedscope run --resume {run_dir}" in " ".join(err.split())
        assert state == "interrupted"

    resumed = cli("run", "--resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "status.json").read_text())["state"] == "succeeded"
    for name in ("history.csv", "predictions.csv"):
        assert (run_dir / name).read_text() == (uninterrupted / name).read_text(), name
    if signum == signal.SIGKILL:
        # The killed process's curves survive beside the resumed one's (an epoch may be logged twice).
        assert set(tensorboard_steps(run_dir, "train", "epoch_loss")) == set(range(epochs))


def test_fine_tuning_trains_only_the_top_of_the_backbone(tree_dataset: str, tmp_path: Path) -> None:
    import keras

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


def test_a_failed_run_says_why_before_it_advises_resuming(finished_run: Path) -> None:
    (finished_run / "evaluation.json").unlink()
    RunDir(finished_run).set_status("failed", error="No space left on device")
    text = " ".join(cli("report", str(finished_run)).stderr.split())
    assert "the run failed (No space left on device). Once that is fixed outside the run" in text
    assert f"continue it with: breedscope run --resume {finished_run}" in text
