"""Experiment tracking (runs/tracking.py) and the MLflow tracker, read back from a real MLflow
store (an SQLite file) with MlflowClient; an unreachable store costs a warning, not the run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from breedscope.core.errors import ConfigError
from breedscope.runs.tracking import TrackerSpec
from tests.helpers import TINY, cli

pytestmark = pytest.mark.whole_run
mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed")


def _store(tmp_path: Path) -> tuple[dict[str, str], object, str]:
    """An SQLite MLflow store with the experiment breedscope logs to, its artifacts in tmp_path."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("breedscope", artifact_location=(tmp_path / "artifacts").as_uri())
    return {"MLFLOW_TRACKING_URI": uri}, client, experiment


def test_a_tracked_run_is_in_the_mlflow_store_with_its_settings_curves_figures_and_files(
    tree_dataset: str, tmp_path: Path
) -> None:
    env, client, experiment = _store(tmp_path)
    runs = tmp_path / "runs"
    result = cli(
        "run",
        "--dataset",
        tree_dataset,
        *TINY,
        "--epochs",
        "3",
        "--track",
        "mlflow",
        "--runs-dir",
        str(runs),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    run_dir = runs / tree_dataset / "run"
    (logged,) = client.search_runs([experiment])
    assert logged.info.status == "FINISHED" and logged.info.run_name == f"{tree_dataset}/run"
    assert logged.data.params["train.epochs"] == "3" and logged.data.params["model.image_size"] == "32"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert logged.data.tags["breedscope.manifest_sha256"] == manifest["csv_sha256"]
    assert logged.data.tags["breedscope.dataset"] == tree_dataset
    history = [line.split(",") for line in (run_dir / "history.csv").read_text().splitlines()]
    epochs = len(history) - 1
    loss = client.get_metric_history(logged.info.run_id, "loss")
    assert [m.step for m in loss] == list(range(1, epochs + 1))
    column = history[0].index("loss")
    assert [m.value for m in loss] == pytest.approx([float(row[column]) for row in history[1:]])
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert logged.data.metrics["test_accuracy"] == pytest.approx(evaluation["accuracy"])
    low, high = evaluation["intervals"]["accuracy"]
    assert (
        logged.data.metrics["test_accuracy_low"],
        logged.data.metrics["test_accuracy_high"],
    ) == pytest.approx((low, high))
    artifacts = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert {"report.md", "report.pdf", "evaluation.json", "manifest.csv"} <= artifacts


def test_under_cross_validation_each_fold_is_a_nested_run(tree_dataset: str, tmp_path: Path) -> None:
    env, client, experiment = _store(tmp_path)
    result = cli(
        "run",
        "--dataset",
        tree_dataset,
        *TINY,
        "--epochs",
        "1",
        "--cv",
        "2",
        "--track",
        "mlflow",
        "--runs-dir",
        str(tmp_path / "runs"),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    logged = client.search_runs([experiment])
    (parent,) = [r for r in logged if "mlflow.parentRunId" not in r.data.tags]
    folds = [r for r in logged if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["breedscope.fold"] for r in folds) == ["repeat1-fold1", "repeat1-fold2"]
    assert all(client.get_metric_history(r.info.run_id, "loss") for r in folds)
    assert all(r.info.status == "FINISHED" for r in logged)


def test_an_unreachable_tracking_store_is_one_warning_and_the_run_is_kept(
    tree_dataset: str, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    }
    runs = tmp_path / "runs"
    result = cli(
        "run",
        "--dataset",
        tree_dataset,
        *TINY,
        "--epochs",
        "1",
        "--track",
        "mlflow",
        "--runs-dir",
        str(runs),
        env=env,
    )
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stderr.split())
    assert "tracking with mlflow failed" in text and "the run goes on and is kept" in text
    assert "Traceback" not in result.stderr
    assert json.loads((runs / tree_dataset / "run" / "status.json").read_text())["state"] == "succeeded"


def test_a_tracker_whose_library_is_missing_is_named_before_the_run() -> None:
    spec = TrackerSpec("lost", "needs a module", start=lambda run: None, requires=("no_such_module_x",))
    with pytest.raises(ConfigError, match="--track lost needs no_such_module_x, which is not installed"):
        spec.check()


def test_an_unknown_tracker_is_one_sentence(tree_dataset: str, tmp_path: Path) -> None:
    result = cli("run", "--dataset", tree_dataset, *TINY, "--track", "mlflw", "--runs-dir", str(tmp_path))
    assert result.returncode == 2 and "Did you mean 'mlflow'?" in " ".join(result.stderr.split())
