"""Choosing by device (core/devices.py): a visible GPU runs the backbone with Keras, a CPU-only
machine is known without TensorFlow, and a run records what it trained on. There is no GPU
where breedscope is built: the device list is faked here, and nothing was measured on a GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from breedscope.config import settings
from breedscope.core import devices, quiet
from breedscope.data.manifest import Manifest, Row
from breedscope.training.feature_data import Splits, runtime_setting
from tests.helpers import TINY, cli

FAKE_GPU = ["/physical_device:GPU:0"]


def _large_split() -> Splits:
    def row(i: int) -> Row:
        split = "train" if i < 8000 else "test"
        return Row(f"c{i % 2}/{i}.png", f"c{i % 2}", split, str(i), "0" * 64, "0" * 16, 224, 224, "")

    return Splits.of(Manifest([row(i) for i in range(9000)]))


def test_auto_runs_the_backbone_with_keras_where_a_gpu_is_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    config = settings.RunConfig()  # train.feature_runtime: auto
    splits = _large_split()  # large enough that LiteRT repays its conversion on a CPU
    monkeypatch.setattr(devices, "gpus", lambda: [])
    assert runtime_setting(config, splits, views=1) == "auto"  # LiteRT, where it agrees with Keras
    monkeypatch.setattr(devices, "gpus", lambda: FAKE_GPU)
    assert runtime_setting(config, splits, views=1) == "keras"


def test_a_machine_without_a_gpu_driver_is_answered_without_tensorflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_tensorflow() -> None:
        raise AssertionError("TensorFlow was imported to learn that there is no GPU")

    monkeypatch.setattr(quiet, "load_tensorflow", no_tensorflow)
    monkeypatch.setattr(devices, "_DRIVER_FILES", (Path("/nonexistent/nvidiactl"),))
    assert devices.gpus() == []
    monkeypatch.setattr(devices, "_DRIVER_FILES", (Path("/"),))  # a driver, but GPUs hidden on purpose
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert devices.gpus() == []


def test_a_run_records_the_devices_it_trained_on(
    tree_dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "gpus", lambda: FAKE_GPU)
    runs = tmp_path / "runs"
    assert (
        cli("run", "--dataset", tree_dataset, *TINY, "--epochs", "1", "--runs-dir", str(runs)).returncode == 0
    )
    run = runs / tree_dataset / "run"
    training = json.loads((run / "evaluation.json").read_text())["training"]
    assert training["devices"] == "GPU:0" and training["feature_runtime"]["runtime"] == "keras"
    assert json.loads((run / "environment.json").read_text())["gpus"] == FAKE_GPU
