"""The ``mlflow`` tracker (``--track mlflow``; ``pip install "breedscope[mlflow]"``).

One MLflow run per breedscope run, in the experiment ``MLFLOW_EXPERIMENT_NAME`` (default
``breedscope``) of the store ``MLFLOW_TRACKING_URI`` names, as MLflow's own tools read them:
the settings as params; loss and accuracy per epoch as metric history (under ``--cv`` each
fold is a nested run); the test metrics and their interval bounds; the report,
``evaluation.json`` and the manifest as artifacts; tags with the dataset, its source and the
manifest's SHA-256. Through ``MlflowClient`` only: nothing changes MLflow's active run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from breedscope import TrackedRun, TrackerSpec, hookimpl

EXPERIMENT = "breedscope"
ARTIFACTS = ("report.md", "report.pdf", "evaluation.json", "manifest.csv", "manifest.json", "croissant.json")
PARAM_LIMIT = 500  # MLflow's value limit is larger; a long list setting is cut, not refused


class MlflowTracker:
    def __init__(self, run: TrackedRun) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", EXPERIMENT)
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (
            experiment.experiment_id if experiment is not None else self.client.create_experiment(name)
        )
        self.run_id = self.client.create_run(self.experiment_id, run_name=run.name, tags=run.tags).info.run_id
        params = [Param(key, value[:PARAM_LIMIT]) for key, value in sorted(run.params.items())]
        for start in range(0, len(params), 100):  # MLflow takes 100 params per batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])
        self.folds: dict[str, str] = {}  # fold label -> its nested run

    def _run_of(self, fold: str | None) -> str:
        if fold is None:
            return self.run_id
        if fold not in self.folds:
            tags = {"mlflow.parentRunId": self.run_id, "breedscope.fold": fold}
            nested = self.client.create_run(self.experiment_id, run_name=fold, tags=tags)
            self.folds[fold] = nested.info.run_id
        return self.folds[fold]

    def epoch(self, metrics: dict[str, float], step: int, fold: str | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step) for key, value in sorted(metrics.items())]
        self.client.log_batch(self._run_of(fold), metrics=batch)

    def finished(self, run_dir: Path) -> None:
        from mlflow.entities import Metric

        from breedscope import Evaluation

        evaluation = Evaluation.read(run_dir / "evaluation.json")
        figures = {
            "test_accuracy": evaluation.accuracy,
            "test_macro_f1": evaluation.macro_f1,
            "test_balanced_accuracy": evaluation.balanced_accuracy,
            "test_log_loss": evaluation.log_loss,
            "test_ece": evaluation.ece,
        }
        for name, (low, high) in evaluation.intervals.items():
            figures[f"test_{name}_low"], figures[f"test_{name}_high"] = low, high
        if evaluation.roc_auc is not None:
            figures["test_roc_auc"] = evaluation.roc_auc
        point = evaluation.operating_point
        if point is not None:
            figures["threshold"] = point.threshold
            for name in ("sensitivity", "specificity", "ppv", "npv"):
                estimate = point.estimate(name)
                figures |= {f"test_{name}": estimate.value, f"test_{name}_low": estimate.low}
                figures[f"test_{name}_high"] = estimate.high
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, 0) for key, value in sorted(figures.items())]
        self.client.log_batch(self.run_id, metrics=metrics)
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self._end("FINISHED")

    def failed(self, status: str) -> None:
        self._end("KILLED" if status == "interrupted" else "FAILED")

    def _end(self, state: str) -> None:
        for nested in self.folds.values():
            self.client.set_terminated(nested, state)
        self.client.set_terminated(self.run_id, state)


@hookimpl
def breedscope_trackers() -> list[TrackerSpec]:
    return [
        TrackerSpec(
            name="mlflow",
            description="MLflow: params, metric history, test metrics, report, manifest",
            start=MlflowTracker,
            requires=("mlflow",),
            install='pip install "breedscope[mlflow]"',
        )
    ]
