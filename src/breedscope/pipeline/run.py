"""One run, start to finish: dataset, manifest, training, evaluation, reports.

Data flows one way: a fetched dataset becomes a manifest, the manifest feeds the trainer, the
trainer's predictions become the evaluation, and reporters render only the stored evaluation.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.config.settings import RunConfig
from breedscope.core import devices
from breedscope.core.atomic import atomic_path
from breedscope.core.errors import BreedscopeError, ConfigError, DataError, Interrupted
from breedscope.core.progress import console
from breedscope.data import fetch, store
from breedscope.data import manifest as manifest_module
from breedscope.data.exclusion import read_exclusion
from breedscope.evaluation.metrics import Evaluation, evaluate
from breedscope.features.augment import Augmenter
from breedscope.model.classifier import save_model
from breedscope.pipeline import crossval, decision, samples
from breedscope.pipeline.render import render
from breedscope.plugins import Registry
from breedscope.report.build import early_stopping_note
from breedscope.runs import environment as runs
from breedscope.runs import rundir, tracking
from breedscope.runs.rundir import RunDir, check_runs_dir
from breedscope.training import distribute

if TYPE_CHECKING:
    from breedscope.config.presets import Preset
    from breedscope.features.augment import AugmentPreset
    from breedscope.features.loading import ImageLoader
    from breedscope.model.backbone import BackboneSpec
    from breedscope.report.reporter import ReporterSpec
    from breedscope.runs.tracking import TrackerSpec
    from breedscope.training.job import Job, Prepared
    from breedscope.training.trainer import TrainResult


def ensure_dataset(name: str, registry: Registry) -> store.StoredDataset:
    """The fetched dataset ``name``, fetching it first when its plugin can do that on its own."""
    spec = registry.dataset(name)
    stored = store.load(spec.name if spec else name)
    if stored is not None:
        return stored
    if spec is None:
        raise DataError(f"No dataset '{name}' is fetched or provided by a plugin; see `breedscope datasets`.")
    if spec.needs_source:
        raise DataError(
            f"'{name}' is the generic folder plugin: first run `breedscope fetch folder --from PATH "
            "--name NAME`, then `breedscope run --dataset NAME`."
        )
    console.print(f"Dataset '{spec.name}' is not fetched yet; fetching it now.")
    return fetch.fetch(spec).dataset


@dataclass(frozen=True)
class RunPlugins:
    """The plugins one run uses, looked up once: each stage receives the one it needs."""

    backbone: BackboneSpec
    augmentation: AugmentPreset
    reporters: list[ReporterSpec]
    presets: dict[str, Preset]
    trackers: list[TrackerSpec]


def resolve_plugins(config: RunConfig, registry: Registry) -> RunPlugins:
    """Fail on a misspelt backbone, augmentation or reporter before any work is done."""
    return RunPlugins(
        backbone=registry.pick("backbones", config.model.backbone),
        augmentation=registry.pick("augmentations", config.augment.preset),
        reporters=[registry.pick("reporters", name) for name in config.report.formats],
        presets=registry.presets,
        trackers=[_usable(registry.pick("trackers", name)) for name in config.track],
    )


def _usable(spec: TrackerSpec) -> TrackerSpec:
    spec.check()  # its library is installed: said before any work
    return spec


@dataclass(frozen=True)
class RunContext:
    """One run as its stages see it: the settings, the plugins it uses, its run directory, the
    dataset and the manifest it splits, and what training was prepared with."""

    config: RunConfig
    plugins: RunPlugins
    run: RunDir
    dataset: store.StoredDataset
    manifest: manifest_module.Manifest
    prepared: Prepared

    def job(self) -> Job:
        """What the trainer (or cross-validation) receives."""
        from breedscope.training.job import Job

        return Job(
            self.config,
            self.manifest,
            self.dataset.image_root,
            self.run,
            self.plugins.augmentation,
            self.prepared,
        )

    def loader(self) -> ImageLoader:
        from breedscope.features.loading import ImageLoader

        return ImageLoader(self.dataset.image_root, self.config.model.image_size)

    def augmenter(self) -> Augmenter:
        return Augmenter(self.plugins.augmentation, self.config.train.seed)


def reused_or_new_manifest(config: RunConfig, dataset: store.StoredDataset) -> manifest_module.Manifest:
    if config.manifest is None:
        records = dataset.records()
        exclusion = None
        if config.dataset.exclude is not None:
            exclusion = read_exclusion(config.dataset.exclude, records, dataset.name)
            records = exclusion.kept(records)
        built = manifest_module.build(
            records, config.split, config.balance, config.dataset.classes, dataset.info
        )
        if exclusion is not None:
            built.header["excluded"] = exclusion.header()
        return built
    if config.dataset.exclude is not None:
        raise ConfigError(
            "--exclude leaves images out of a new split, and --manifest reuses a split as it is; "
            "use one of them."
        )
    reused = rundir.read_manifest(config.manifest)
    if reused.header.get("dataset", {}).get("name") != dataset.name:
        raise BreedscopeError(
            f"manifest: {config.manifest} splits dataset '{reused.header['dataset']['name']}', "
            f"not '{dataset.name}'."
        )
    return reused


@dataclass
class RunOutcome:
    run_dir: Path
    evaluation: Evaluation
    reports: list[Path]
    chief: bool = True  # False on the other workers of a cluster: their run_dir was scratch, now gone


def store_model(result: TrainResult, target: Path) -> None:
    """Copy the trainer's saved model when it has one (a fifth of a second faster than saving a
    MobileNetV2 again), otherwise save it."""
    if result.model_file is None:
        save_model(result.model, target)
        return
    with atomic_path(target) as tmp:
        shutil.copyfile(result.model_file, tmp)


# TensorFlow and Keras keep one random state, one op-determinism switch and one graph per
# process: two runs at once in one process draw from each other's seeds (two notebook threads
# gave other accuracies every time). One run at a time, the second refused in one sentence.
_ONE_RUN_AT_A_TIME = threading.Lock()


@contextmanager
def _only_run_in_this_process() -> Iterator[None]:
    if not _ONE_RUN_AT_A_TIME.acquire(blocking=False):
        raise BreedscopeError(
            "Another run is in progress in this process (another thread or notebook cell); TensorFlow "
            "keeps one random state per process, so two runs at once would not be reproducible: run "
            "them one after the other, or in separate processes (`breedscope run` in two terminals)."
        )
    try:
        yield
    finally:
        _ONE_RUN_AT_A_TIME.release()


def run(
    config: RunConfig, registry: Registry, run_dir: Path | None = None, *, new_dir: Path | None = None
) -> RunOutcome:
    """One run (:func:`_run_one`), refused while another run is in progress in this process."""
    with _only_run_in_this_process():
        return _run_one(config, registry, run_dir, new_dir=new_dir)


def _run_one(
    config: RunConfig, registry: Registry, run_dir: Path | None = None, *, new_dir: Path | None = None
) -> RunOutcome:
    """Execute a run in a new directory, or resume the one given (``run_dir``).

    The new directory is ``RUNS_DIR/DATASET/NAME`` unless ``new_dir`` names it (it must not exist:
    a reproduction places its runs inside its own directory). Everything that can be refused
    (plugin names, the runs folder, the backbone's weights) is checked before a run directory is
    created; one process at a time writes a run directory. Of a cluster's workers only the chief
    writes one: the others train in step with it in a scratch directory, deleted at the end.
    """
    from breedscope.training.feature_data import features_ahead
    from breedscope.training.job import prepare

    chosen = resolve_plugins(config, registry)
    if run_dir is not None and config.train.strategy == "multiworker":
        raise ConfigError(
            f"{run_dir} was trained by several workers and only the chief kept checkpoints, so it "
            "cannot be resumed; start the run again on every machine."
        )
    if run_dir is None:
        check_runs_dir(config.runs_dir if new_dir is None else new_dir.parent)
    dataset = ensure_dataset(config.dataset.name, registry)

    def prepared_for(manifest: manifest_module.Manifest) -> Prepared:
        # Features first: a frozen backbone already converted for LiteRT needs no TensorFlow,
        # which loads meanwhile.
        cache = features_ahead(
            config, manifest, dataset.image_root, chosen.backbone.name, chosen.augmentation
        )
        return prepare(config, chosen.backbone, cache)

    if run_dir is not None:
        directory = RunDir(run_dir)
        with directory.writing():
            manifest = directory.manifest()
            decision.check(config, manifest)
            directory.checkpoints().state()  # a state from elsewhere is refused before the status changes
            return _run_locked(
                RunContext(config, chosen, directory, dataset, manifest, prepared_for(manifest))
            )
    manifest = planned_manifest(config, dataset)
    decision.check(config, manifest)
    prepared = prepared_for(manifest)
    if not distribute.is_chief(prepared.strategy):
        console.print("This worker trains in step with the chief; its files are scratch, deleted at the end.")
        with tempfile.TemporaryDirectory(prefix="breedscope-worker-") as scratch:
            outcome = _run_new(config, chosen, dataset, manifest, prepared, Path(scratch) / "run")
        return dataclasses.replace(outcome, chief=False)
    return _run_new(config, chosen, dataset, manifest, prepared, new_dir)


def planned_manifest(config: RunConfig, dataset: store.StoredDataset) -> manifest_module.Manifest:
    """The manifest a new run splits its images by (cross-validation: the pool its folds split)."""
    manifest = reused_or_new_manifest(config, dataset)
    if config.cv.folds:  # every image is tested, fold by fold: the whole manifest is the pool
        manifest = crossval.as_pool(manifest, config.cv.folds)
    return manifest


def _run_new(
    config: RunConfig,
    chosen: RunPlugins,
    dataset: store.StoredDataset,
    manifest: manifest_module.Manifest,
    prepared: Prepared,
    new_dir: Path | None,
) -> RunOutcome:
    """A new run: its inputs (manifest, configuration) are written first."""
    if new_dir is None:
        directory = RunDir.create(config.runs_dir, dataset.name, config.name)
    else:
        new_dir.mkdir(parents=True)
        directory = RunDir(new_dir)
    with directory.writing():
        directory.write_manifest(manifest)
        directory.write_config(config)
        return _run_locked(RunContext(config, chosen, directory, dataset, manifest, prepared))


def _cross_validated(context: RunContext) -> Evaluation:
    """K-fold cross-validation in place of one split: the pooled evaluation, written as the run's."""
    directory, manifest = context.run, context.manifest
    evaluation, rows, probabilities = crossval.cross_validate(context.job())
    if context.config.decision.operating_point is not None:
        point = decision.choose_within_folds(context.job(), rows, probabilities)
        evaluation = evaluation.with_extra(operating_point=point.to_json())
    rundir.write_predictions(directory.predictions_file, rows, manifest.classes, probabilities)
    directory.write_evaluation(evaluation)
    loader, augmenter = context.loader(), context.augmenter()
    if not augmenter.is_identity:
        samples.augmented_samples(manifest.rows[:4], loader, augmenter, directory.path)
    by_path = {row.path: row for row in manifest.rows}
    samples.confident_errors(evaluation.most_confident_errors, by_path, loader, directory.path)
    return evaluation


def _trained(context: RunContext) -> Evaluation:
    """One split: train, store the model and the test predictions, evaluate, draw the figures."""
    from breedscope.training.trainer import train

    config, directory, manifest = context.config, context.run, context.manifest
    result = train(context.job())
    store_model(result, directory.path / rundir.MODEL)
    test_rows = manifest.split("test")
    classes = manifest.classes
    y_true = np.array([classes.index(r.label) for r in test_rows])
    rundir.write_predictions(directory.predictions_file, test_rows, classes, result.test_probabilities)
    groups = [r.group for r in test_rows] if config.split.grouped else None
    measured = evaluate(
        y_true,
        result.test_probabilities,
        classes,
        paths=[r.path for r in test_rows],
        groups=groups,
        seed=config.train.seed,
    )
    training = {
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stopped_early": result.stopped_early,
        "feature_cache": result.feature_cache,
        "feature_runtime": result.feature_runtime,
        "strategy": config.train.strategy,
        "replicas": result.replicas,
        "devices": devices.described(devices.gpus()),
    }
    sections: dict = {"training": training}
    if config.decision.operating_point is not None:
        sections["operating_point"] = decision.choose(context.job(), result, groups).to_json()
    evaluation = measured.with_extra(**sections)
    directory.write_evaluation(evaluation)
    samples.draw_all(
        result.model,
        manifest,
        evaluation,
        context.loader(),
        context.augmenter(),
        directory.path,
        result.feature_maps,
    )
    return evaluation


def run_warnings(config: RunConfig, manifest: manifest_module.Manifest) -> list[str]:
    """What a run warns of before it trains: the manifest's warnings, a patience no validation
    split can use (only when someone asked for one: presets without validation images set none,
    and cross-validation says what it does in its summary instead), and cross-validation's cost."""
    val_counts = manifest.counts()["val"]
    stopping = None if config.cv.folds else early_stopping_note(config.train.patience, val_counts)
    notes = [*manifest.header.get("warnings", []), stopping, crossval.cost_note(config)]
    return [note for note in notes if note]


def _run_locked(context: RunContext) -> RunOutcome:
    config, directory, manifest = context.config, context.run, context.manifest
    run_dir = directory.path
    for warning in run_warnings(config, manifest):
        console.print(f"[yellow]warning:[/] {warning}")
    if config.cv.folds:
        console.print(crossval.summary(config))
    directory.write_environment(runs.environment(config.train.seed, manifest.sha256()))
    directory.set_status("running")
    console.print(f"Run directory: [bold]{run_dir}[/]")

    with tracking.tracked(context.plugins.trackers, tracked_run(context)) as trackers:
        try:
            evaluation = _cross_validated(context) if config.cv.folds else _trained(context)
            reports = render(run_dir, context.plugins.reporters, context.plugins.presets)
        except KeyboardInterrupt:
            directory.set_status("interrupted")
            trackers.call("failed", "interrupted")
            raise Interrupted(
                f"{run_dir} keeps its manifest and the checkpoints of every finished epoch.", "run", run_dir
            ) from None
        except BaseException as exc:  # the directory must not look finished
            directory.set_status("failed", error=str(exc) or type(exc).__name__)
            trackers.call("failed", "failed")
            raise
        directory.set_status("succeeded", accuracy=evaluation.accuracy)
        trackers.call("finished", run_dir)
    return RunOutcome(run_dir, evaluation, reports)


def tracked_run(context: RunContext) -> tracking.TrackedRun:
    """What the run's trackers are told at its start: its settings and what identifies its data."""
    dataset = context.manifest.header.get("dataset", {})
    tags = {
        "breedscope.dataset": context.dataset.name,
        "breedscope.source": dataset.get("handle") or dataset.get("source") or "",
        "breedscope.manifest_sha256": context.manifest.sha256(),
        "breedscope.preset": context.config.preset or "",
    }
    params = tracking.flat(context.config.model_dump(mode="json"))
    return tracking.TrackedRun(
        f"{context.dataset.name}/{context.run.path.name}", context.run.path, params, tags
    )
