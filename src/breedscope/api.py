"""The Python API, for notebooks and scripts; the ``breedscope`` command is a thin layer over it.

    import breedscope as bs

    ds = bs.fetch("breast", source="busi.zip")
    run = bs.run(dataset="breast", preset="breast", epochs=20)
    run.metrics.accuracy, run.metrics.interval("accuracy")
    run.predict(["scan.png"])
    bs.compare([run, bs.open_run("runs/breast/run-2")])

Nothing here changes the state of the session that imports it: the heavy libraries (TensorFlow,
matplotlib) are imported inside the calls that need them.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from breedscope.config import presets
from breedscope.core.errors import BreedscopeError, ConfigError
from breedscope.data.store import StoredDataset
from breedscope.evaluation.metrics import Evaluation
from breedscope.report.document import Table, markdown_literal, markdown_text
from breedscope.runs.rundir import CONFUSION_FIGURE, RunDir, check_runs_dir, read_json, write_manifest

if TYPE_CHECKING:
    from breedscope.config.settings import RunConfig
    from breedscope.data.fetch import FetchResult
    from breedscope.data.manifest import Manifest
    from breedscope.data.validate import Validation
    from breedscope.export.convert import ExportCheck
    from breedscope.inference.predict import Prediction, TrainedRun
    from breedscope.pipeline.external import ExternalEvaluation
    from breedscope.plugins import Registry

Dataset = StoredDataset  # the public name of a fetched dataset


def plugins() -> Registry:
    """The installed plugins, loaded once per process (a plugin that fails is one warning)."""
    from breedscope.plugins import registry

    return registry()


def fetch_dataset(
    dataset: str,
    source: str | Path | None = None,
    *,
    name: str | None = None,
    slug: str | None = None,
    version: int | None = None,
    latest: bool = False,
    classes: Sequence[str] | None = None,
    preset: str | None = None,
    force: bool = False,
    min_side: int = 32,
) -> FetchResult:
    """:func:`fetch`, with what the fetch found (validation counts, duplicates) for the CLI to show."""
    from breedscope.data.fetch import fetch as fetch_with

    registry = plugins()
    spec = registry.require_dataset_plugin(dataset)
    if preset is not None:
        if classes:
            raise BreedscopeError("Choose the classes with classes= (--classes) or with a preset, not both.")
        chosen = presets.get(preset, registry.presets)
        classes = chosen.config.get("dataset", {}).get("classes")
        if not classes:
            raise BreedscopeError(f"Preset '{preset}' names no classes; pass them with --classes.")
    return fetch_with(
        spec,
        name,
        Path(source) if source is not None else None,
        slug,
        force,
        min_side,
        version=version,
        latest=latest,
        classes=classes,
    )


def fetch(
    dataset: str,
    source: str | Path | None = None,
    *,
    name: str | None = None,
    slug: str | None = None,
    version: int | None = None,
    latest: bool = False,
    classes: Sequence[str] | None = None,
    preset: str | None = None,
    force: bool = False,
    min_side: int = 32,
) -> Dataset:
    """Download ``dataset`` (or take ``source``, an archive or folder you have), check every image
    and store it; a dataset fetched before is returned at once unless ``force``.

    ``dataset`` is a dataset plugin (``"bccd"``, ``"breast"``, ``"folder"`` for any
    ``class/image`` tree); ``name`` stores it under another name (the folder plugin's default is
    the source's name). From Kaggle, the plugin's pinned version is downloaded, or ``version``,
    or with ``latest=True`` the current one; in a Kaggle notebook the mounted copy is used.
    ``classes`` (or the classes of ``preset``) keeps only those classes, and only their images
    are checked.
    """
    return fetch_dataset(
        dataset,
        source,
        name=name,
        slug=slug,
        version=version,
        latest=latest,
        classes=classes,
        preset=preset,
        force=force,
        min_side=min_side,
    ).dataset


def load_dataset(name: str) -> Dataset:
    """A dataset fetched earlier, or a sentence saying how to fetch it."""
    from breedscope.data import store

    dataset = store.load(name)
    if dataset is None:
        raise BreedscopeError(f"'{name}' is not fetched; run `breedscope fetch {name}` first.")
    return dataset


def validate(name: str) -> Validation:
    """Decode and check every image of a fetched dataset again."""
    from breedscope.data.fetch import revalidate

    dataset = load_dataset(name)
    return revalidate(plugins().require_dataset_plugin(dataset.plugin), dataset)[1]


def split(
    name: str,
    *,
    split: dict[str, float] | None = None,
    seed: int = 42,
    balance: str = "none",
    cap: int | None = None,
    source_split: bool = False,
    output: str | Path | None = None,
) -> tuple[Manifest, Path]:
    """Write a stratified, grouped split manifest of a fetched dataset; return it and its CSV's path
    (by default in ``BREEDSCOPE_HOME/manifests/NAME/``, one folder per split setting, apart from
    the dataset's files, which ``fetch --force`` replaces)."""
    from breedscope.config import settings as config_module
    from breedscope.core import paths
    from breedscope.core.hashing import short_hash
    from breedscope.data import manifest as manifest_module

    if output is not None:
        paths.check_outside_datasets(Path(output), "--output")
    dataset = load_dataset(name)
    config = config_module.build(
        [
            {
                "dataset": {"name": name},
                "split": {**(split or {}), "seed": seed, "use_source_split": source_split},
                "balance": {"policy": balance, "cap": cap},
            }
        ]
    )
    manifest = manifest_module.build(dataset.records(), config.split, config.balance, None, dataset.info)
    key = short_hash(config.split.model_dump_json() + config.balance.model_dump_json())
    target = Path(output) if output else paths.manifests_dir() / dataset.name / key
    return manifest, write_manifest(target, manifest)


@dataclass(frozen=True)
class AugmentPreview:
    path: Path
    preset: str
    dataset: str
    images: int


def augment_preview(
    dataset: str,
    *,
    preset: str | None = None,
    count: int = 6,
    views: int = 4,
    image_size: int = 224,
    seed: int = 42,
    output: str | Path | None = None,
    runs_dir: str | Path = "runs",
) -> AugmentPreview:
    """A grid of ``count`` training images, each followed by ``views`` augmented versions, with
    ``preset`` (default: the augmentation of the dataset's study preset), written to ``output`` or
    beside the dataset's runs, ``RUNS_DIR/DATASET/augment_preview-PRESET.png``."""
    from breedscope.data.manifest import Row
    from breedscope.features.augment import Augmenter
    from breedscope.features.loading import ImageLoader
    from breedscope.pipeline import run as pipeline
    from breedscope.pipeline import samples

    _check_preview(count, views, image_size, seed)
    if output is None:
        check_runs_dir(Path(runs_dir))
    registry = plugins()
    stored = pipeline.ensure_dataset(dataset, registry)
    if preset is None:
        owner = registry.dataset_plugin(stored.name)
        study = registry.presets.get(owner.default_preset) if owner and owner.default_preset else None
        preset = (study.config.get("augment", {}).get("preset") if study else None) or "light"
    augmenter = Augmenter(registry.pick("augmentations", preset), seed)
    by_label: dict[str, list] = {}
    for record in stored.records():
        by_label.setdefault(record.label, []).append(record)
    chosen = [group[i] for i in range(count) for group in by_label.values() if i < len(group)][:count]
    rows = [Row.of(record) for record in chosen]
    target = (
        Path(output) if output is not None else Path(runs_dir) / stored.name / f"augment_preview-{preset}.png"
    )
    path = samples.augmented_samples(
        rows, ImageLoader(stored.image_root, image_size), augmenter, target, views
    )
    return AugmentPreview(path, preset, stored.name, len(rows))


def _check_preview(count: int, views: int, image_size: int, seed: int) -> None:
    """The preview's numbers, in the ranges a run takes (one sentence for the first outside)."""
    limits = {
        "count": (count, 1, 64),
        "views": (views, 1, 64),
        "image-size": (image_size, 32, 1024),
        "seed": (seed, 0, 2**32 - 1),
    }
    for name, (value, low, high) in limits.items():
        if not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"--{name} must be a whole number from {low} to {high}, not {value!r}.")


def configure(
    dataset: str | None = None,
    *,
    preset: str | None = None,
    config: str | Path | dict | None = None,
    faithful: bool = False,
    **settings: object,
) -> RunConfig:
    """The configuration :func:`run` would use, without running: defaults < the dataset's or the
    named preset < ``faithful`` < ``config`` (a TOML/YAML file or a mapping) < ``settings``."""
    from breedscope.config.layering import resolve_config

    return resolve_config(plugins(), preset, config, faithful, dataset=dataset, **settings)


def run(
    dataset: str | None = None,
    *,
    preset: str | None = None,
    config: str | Path | dict | None = None,
    faithful: bool = False,
    resume: str | Path | None = None,
    **settings: object,
) -> Run | None:
    """Train and evaluate, write the reports, and return the finished :class:`Run`.

    Settings are the ``breedscope run`` flags as keywords: ``epochs=20``, ``seed=7``,
    ``lr=1e-3``, ``weights="none"``, ``image_size=160``, ``classes=["a", "b"]``,
    ``split={"train": 0.8, "val": 0.1, "test": 0.1}``, ``runs_dir="runs"`` and the rest of
    :data:`breedscope.config.layering.SETTINGS`. ``resume`` continues an interrupted run directory.

    With ``strategy="multiworker"``, every machine of the cluster calls this; only the chief's
    call writes and returns the run, the other workers' return ``None``.
    """
    from breedscope.pipeline import run as pipeline

    registry = plugins()
    if resume is not None:
        if dataset or preset or config or faithful or settings:
            raise BreedscopeError("resume continues a run with its own settings; pass nothing else with it.")
        outcome = pipeline.run(RunDir(resume).config(), registry, run_dir=Path(resume))
    else:
        chosen = configure(dataset, preset=preset, config=config, faithful=faithful, **settings)
        outcome = pipeline.run(chosen, registry)
    return Run(outcome.run_dir) if outcome.chief else None


def audit(
    dataset: str | None = None,
    *,
    preset: str | None = None,
    cv: int = 5,
    config: str | Path | dict | None = None,
    **settings: object,
) -> Audit:
    """Audit a dataset's labels before training on them: out-of-fold predictions of a probe on
    the frozen backbone's features (``cv`` grouped folds), ranked by cleanlab. Writes
    ``RUNS_DIR/DATASET/audit/`` (``issues.csv``, ``audit.md``, ``audit.pdf``) and returns it as an
    :class:`Audit`; ``run(..., exclude=audit.issues_file)`` then trains without those images.
    Settings are :func:`run`'s (``backbone``, ``image_size``, ``seed``, ``runs_dir``, ``formats``...)."""
    from breedscope.evaluation.label_audit import require_cleanlab
    from breedscope.pipeline import audit as pipeline

    require_cleanlab()  # an absent extra is said before anything else
    chosen = configure(dataset, preset=preset, config=config, cv=cv, **settings)  # cv checked there
    return Audit(pipeline.audit(chosen, plugins(), folds=chosen.cv.folds).folder)


class Audit:
    """A label audit's folder (``RUNS_DIR/DATASET/audit``): the suspect images and the page.

    ``audit.issues`` lists them most suspect first (path, given and suggested label, score,
    kind: ``label``, ``duplicate`` or ``outlier``); in a notebook it shows the summary, the
    thumbnails of the most suspect images and the first rows of the table."""

    def __init__(self, path: str | Path) -> None:
        from breedscope.pipeline import audit as pipeline

        self.path = Path(path)
        self.issues_file = self.path / pipeline.ISSUES
        self.summary: dict = read_json(self.path / pipeline.SUMMARY)
        self.issues = pipeline.read_issues(self.issues_file)

    def __repr__(self) -> str:
        return f"Audit({str(self.path)!r})"

    def reports(self) -> list[Path]:
        """The audit's pages, one per reporter it was rendered with (``audit.md``, ``audit.pdf``)."""
        return sorted(p for p in self.path.glob("audit.*") if p.suffix != ".json")

    def table(self, top: int = 20) -> Table:
        from breedscope.pipeline import audit as pipeline

        return Table(list(pipeline.COLUMNS), [s.cells() for s in self.issues[:top]])

    def headline(self) -> str:
        """The audit in one sentence."""
        kinds = self.summary["by_kind"]
        return (
            f"{self.summary['suspects']} of {self.summary['images']} images suspect "
            f"({kinds['label']} label, {kinds['duplicate']} duplicate, {kinds['outlier']} outlier); "
            f"probe out-of-fold accuracy {self.summary['probe_accuracy']:.1%}."
        )

    def _repr_markdown_(self) -> str:
        from breedscope.pipeline import audit as pipeline

        title = f"**Label audit {markdown_literal(self.path)}**: {markdown_literal(self.headline())}"
        figure = self.path / pipeline.THUMBNAILS
        picture = [f"![most suspect images](<{figure.as_posix()}>)", ""] if figure.is_file() else []
        return "\n".join([title, "", *picture, *self.table().markdown_lines()])

    def _repr_html_(self) -> str:
        from breedscope.pipeline import audit as pipeline

        image = _inline_png(self.path / pipeline.THUMBNAILS, "most suspect images", 640)
        table = self.table()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
        )
        return (
            f"<div><p><b>Label audit <code>{html.escape(str(self.path))}</code></b>: "
            f"{html.escape(self.headline())}</p>{image}<table><tr>{head}</tr>{cells}</table></div>"
        )


def _inline_png(figure: Path, alt: str, max_width: int) -> str:
    """A figure as an ``<img>`` a notebook shows without the file beside it ("" if it is absent)."""
    if not figure.is_file():
        return ""
    data = base64.b64encode(figure.read_bytes()).decode()
    return f'<img alt="{alt}" style="max-width:{max_width}px" src="data:image/png;base64,{data}">'


def open_run(path: str | Path) -> Run:
    """A run directory written earlier, as a :class:`Run`."""
    directory = RunDir(path)
    directory.require_run()
    return Run(directory.path)


@dataclass(frozen=True)
class Comparison:
    """Runs side by side: one row per run, with intervals; notes say what makes rows unequal."""

    table: Table
    notes: list[str]

    def markdown(self) -> str:
        notes = [markdown_text(note) for note in self.notes]
        return "\n".join(["# Run comparison", "", *self.table.markdown_lines(), "", *notes]) + "\n"

    def _repr_markdown_(self) -> str:
        notes = (f"*{markdown_text(note)}*" for note in self.notes)
        return "\n".join([*self.table.markdown_lines(), "", *notes])


def compare(runs: Iterable[Run | str | Path]) -> Comparison:
    """One table across finished runs (for example two backbones on one manifest)."""
    from breedscope.report.compare import comparison_table

    table, notes = comparison_table([r.path if isinstance(r, Run) else Path(r) for r in runs])
    return Comparison(table, notes)


def reproduce(
    study: str | None = None,
    *,
    cv: int = 5,
    repeats: int = 1,
    config: str | Path | dict | None = None,
    resume: str | Path | None = None,
    **settings: object,
) -> Reproduction:
    """Reproduce a study and correct it: its own protocol, the sound one, grouped cross-validation
    and the measured effect of each difference, on features extracted once; return the finished
    :class:`Reproduction`. ``settings`` (``dataset="pbc"``, ``seed=7``, ``epochs=5``...) apply
    to every run; ``resume`` finishes an interrupted reproduction directory."""
    from breedscope.pipeline import reproduction

    if resume is not None:
        if study or config or settings:
            raise BreedscopeError(
                "resume finishes a reproduction with its own settings; pass nothing else with it."
            )
        return Reproduction(reproduction.resume(plugins(), resume))
    if study is None:
        raise BreedscopeError("Name the study to reproduce, e.g. reproduce('chest_xray').")
    return Reproduction(
        reproduction.start(plugins(), study, cv=cv, repeats=repeats, config=config, **settings)
    )


def reproduce_all(**options: object) -> list[Reproduction]:
    """:func:`reproduce` every study whose dataset is fetched (the others are skipped, and said);
    the overview table is written to ``RUNS_DIR/reproductions.md``."""
    from breedscope.pipeline import reproduction

    done, _, _ = reproduction.start_all(plugins(), **options)
    return [Reproduction(path) for path in done]


class Reproduction:
    """A finished ``breedscope reproduce`` directory: its runs, figures and measured effects."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Reproduction({str(self.path)!r})"

    @cached_property
    def results(self) -> dict:
        """Every figure the page shows (``results.json``)."""

        from breedscope.pipeline.reproduction import RESULTS

        file = self.path / RESULTS
        if not file.is_file():
            raise BreedscopeError(
                f"{self.path} has no {RESULTS}; finish it with `breedscope reproduce --resume {self.path}`."
            )
        return read_json(file)

    @property
    def runs(self) -> dict[str, Run]:
        """The runs by role: ``faithful``, ``sound``, ``cv``, ``cv-faithful``..."""
        return {row["key"]: Run(self.path / row["key"]) for row in self.results["runs"]}

    @property
    def effects(self) -> list[dict]:
        """Each protocol difference's paired effect on accuracy, with its 95% interval."""
        return self.results["effects"]

    def report_path(self, fmt: str = "pdf") -> Path:
        return RunDir(self.path).report(fmt)

    def _repr_markdown_(self) -> str:
        from breedscope.report.reproduction import effects_section, figures_table

        lines = [
            f"**{markdown_literal(self.results['title'])}** ({markdown_literal(self.path)})",
            "",
            *figures_table(self.results).markdown_lines(),
        ]
        for block in effects_section(self.results).blocks:
            lines += ["", *(block.markdown_lines() if isinstance(block, Table) else [block.markdown()])]
        return "\n".join(lines)


@dataclass(frozen=True)
class Export:
    """An exported model file and, for TFLite, how it agrees with the Keras model on the test split."""

    path: Path
    check: ExportCheck | None


class Run:
    """A run directory and what it holds: settings, metrics, history, reports and the model.

    In a notebook a run shows itself as a summary: accuracy with its interval, the per-class
    figures with their support, and the confusion matrix.
    """

    def __init__(self, path: str | Path) -> None:
        self.directory = RunDir(path)

    @property
    def path(self) -> Path:
        return self.directory.path

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def status(self) -> str:
        """``running``, ``succeeded``, ``failed`` or ``interrupted``."""
        return self.directory.status()["state"]

    @cached_property
    def config(self) -> RunConfig:
        return self.directory.config()

    @cached_property
    def metrics(self) -> Evaluation:
        """The test evaluation: ``accuracy``, ``macro_f1``, ``per_class``, ``interval("accuracy")``..."""
        return self.directory.evaluation()

    @property
    def history(self) -> list[dict[str, float]]:
        """One record per epoch (``pandas.DataFrame(run.history)`` makes it a table)."""
        return self.directory.history()

    def report_path(self, fmt: str = "pdf") -> Path:
        """The report in one format: ``"pdf"`` or ``"markdown"`` (or a plugin's format)."""
        return self.directory.report(fmt)

    def reports(self) -> list[Path]:
        """The report files of the run's configured formats that exist."""
        suffixes = [{"markdown": "md"}.get(fmt, fmt) for fmt in self.config.report.formats]
        return [self.path / f"report.{s}" for s in suffixes if (self.path / f"report.{s}").is_file()]

    def render_reports(self, formats: Sequence[str] = ("markdown", "pdf")) -> list[Path]:
        """Render the reports again from the stored evaluation (no retraining)."""
        from breedscope.pipeline.render import render_reports

        self.directory.evaluation()  # a sentence if the run never finished
        return render_reports(self.path, list(formats), plugins())

    @cached_property
    def _trained(self) -> TrainedRun:
        from breedscope.inference import predict as inference

        return inference.load_run(self.path)

    def predict(
        self, images: str | Path | Iterable[str | Path], top: int = 3, runtime: str = "auto"
    ) -> list[Prediction]:
        """The ``top`` classes of each image: files, folders (all their files, recursively) and
        glob patterns; an unreadable file gets an ``error``, the rest still run. ``runtime``:
        ``"auto"`` (LiteRT, the model converted once and checked against Keras), ``"litert"``
        or ``"keras"``. A progress bar shows in a terminal and a notebook."""
        from breedscope.core.progress import progress_bar
        from breedscope.inference import predict as inference

        paths = inference.image_paths(images)
        predictions = inference.iter_predictions(self._trained, paths, top=top, runtime=runtime)
        done: list[Prediction] = []
        with progress_bar("Predicting", total=len(paths)) as advance:
            for prediction in predictions:
                done.append(prediction)
                advance(1)
        return done

    def iter_predictions(
        self, images: str | Path | Iterable[str | Path], top: int = 3, runtime: str = "auto"
    ) -> Iterator[Prediction]:
        """:meth:`predict`, one image at a time as batches finish (for folders of any size)."""
        from breedscope.inference import predict as inference

        paths = inference.image_paths(images)
        return inference.iter_predictions(self._trained, paths, top=top, runtime=runtime)

    def export(
        self,
        fmt: str = "tflite",
        quantize: str | None = None,
        output: str | Path | None = None,
        *,
        accept_loss: bool = False,
    ) -> Export:
        """Write the model as ``keras``, ``savedmodel``, ``tflite`` (``quantize="fp16"``,
        ``"dynamic"`` or ``"int8"``) or ``onnx`` into ``output`` (default ``RUN_DIR/export``),
        with ``labels.txt`` beside it; a TFLite or ONNX file is measured against Keras. One
        that fails that check raises ``ExportCheckFailed`` (a ``BreedscopeError``; the file is
        kept, ``.check`` holds the figures) unless ``accept_loss=True``."""
        from breedscope.export import convert as export

        target = Path(output) if output is not None else self.directory.export_dir
        path, check = export.export_checked(self._trained, fmt, target, quantize, accept_loss=accept_loss)
        return Export(path, check)

    def evaluate_on(
        self,
        dataset: str,
        class_map: dict[str, str] | None = None,
        formats: Sequence[str] = ("markdown", "pdf"),
    ) -> ExternalEvaluation:
        """External validation: the model on every image of another fetched ``dataset`` whose class
        it knows (``class_map`` renames theirs to ours, ``{"normal": "NORMAL"}``), with intervals and a
        report in ``RUN_DIR/external/DATASET/``."""
        from breedscope.pipeline import external

        trained = self._trained  # the run's own faults first: it is the first thing named
        other = external.require_dataset(dataset)
        reporters = [plugins().pick("reporters", name) for name in formats]
        seed = self.config.train.seed
        return external.evaluate_on(trained, other, dict(class_map or {}), reporters, seed)

    # --- how a run shows itself in a notebook ----------------------------------------------

    def _per_class_rows(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (
                name,
                f"{m.precision:.3f}",
                f"{m.recall:.3f}",
                f"{m.f1:.3f}",
                self.metrics.support_cell(name),
            )
            for name, m in self.metrics.per_class.items()
        ]

    def _repr_markdown_(self) -> str:
        run = f"**Run {markdown_literal(self.path)}**"
        if self.status != "succeeded":
            return f"{run}: {markdown_literal(self.status)}."
        header = ["class", "precision", "recall", "F1", "test images"]
        table = Table(header, [list(map(str, row)) for row in self._per_class_rows()])
        return "\n".join(
            [
                f"{run}: {markdown_literal(self.metrics.summary())}",
                "",
                *(
                    [markdown_literal(point.sentence()), ""]
                    if (point := self.metrics.operating_point)
                    else []
                ),
                *table.markdown_lines(),
                "",
                *(f"*{markdown_text(caveat)}*\n" for caveat in self.metrics.caveats()),
                f"![confusion matrix](<{(self.path / CONFUSION_FIGURE).as_posix()}>)",
            ]
        )

    def _repr_html_(self) -> str:
        if self.status != "succeeded":
            return (
                f"<p><b>Run <code>{html.escape(str(self.path))}</code></b>: {html.escape(self.status)}.</p>"
            )
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
            for row in self._per_class_rows()
        )
        caveats = "".join(f"<p><i>{html.escape(c)}</i></p>" for c in self.metrics.caveats())
        if self.metrics.operating_point is not None:
            caveats = f"<p>{html.escape(self.metrics.operating_point.sentence())}</p>" + caveats
        image = _inline_png(self.path / CONFUSION_FIGURE, "confusion matrix", 420)
        return (
            f"<div><p><b>Run <code>{html.escape(str(self.path))}</code></b>: "
            f"{html.escape(self.metrics.summary())}</p>"
            "<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>test images</th></tr>"
            f"{cells}</table>{caveats}{image}</div>"
        )
