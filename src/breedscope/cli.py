"""The ``breedscope`` command line (typer). Every user error ends in one sentence and exit code 2."""

from __future__ import annotations

import errno
import gc
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from breedscope import __version__, quiet, tables
from breedscope.errors import BreedscopeError, Interrupted
from breedscope.progress import console, progress_bar

app = typer.Typer(
    name="breedscope",
    help="Small-data image classification studies, reproduced with one reliable command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
_state = {"debug": False}
out = Console(soft_wrap=True)  # results on stdout; progress, warnings and errors go to stderr


def _version(value: bool) -> None:
    if value:
        print(f"breedscope {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug
    if debug:  # TensorFlow's and TFLite's own lines, which are silenced otherwise (breedscope.quiet)
        os.environ[quiet.DEBUG_ENV] = "1"


def _registry():
    from breedscope import api

    return api.plugins()


def _print_validation(validation) -> None:
    by_class = validation.counts_by_class()
    reasons = sorted({k for counts in by_class.values() for k in counts} - {"found", "kept"})
    numbers = ["found", "kept", *reasons]
    rows = [[label, *(str(counts.get(c, 0)) for c in numbers)] for label, counts in by_class.items()]
    tables.show(out, "Validation", ["class", *numbers], rows, right=numbers)
    if validation.exact_duplicate_sets:
        console.print(
            f"{len(validation.exact_duplicate_sets)} set(s) of identical files, "
            "kept on one side of every split."
        )
    if validation.near_duplicate_groups:
        console.print(
            f"{len(validation.near_duplicate_groups)} group(s) of near-duplicates, "
            "kept on one side of every split."
        )
    for conflict in validation.label_conflicts:
        console.print(f"[yellow]label conflict, excluded:[/] {' = '.join(conflict)}")


@app.command()
def fetch(
    name: Annotated[str, typer.Argument(help="Dataset plugin: see `breedscope datasets`.")],
    source: Annotated[
        Path | None, typer.Option("--from", help="An archive or folder you already have.")
    ] = None,
    as_name: Annotated[
        str | None,
        typer.Option("--name", help="Store it under this name (default: the plugin or source name)."),
    ] = None,
    slug: Annotated[str | None, typer.Option(help="Kaggle slug to download instead of the plugin's.")] = None,
    version: Annotated[
        int | None,
        typer.Option("--version", help="Kaggle dataset version (default: the plugin's pinned one)."),
    ] = None,
    latest: Annotated[bool, typer.Option(help="Download Kaggle's current version.")] = False,
    classes: Annotated[
        str | None, typer.Option(help="Keep only these classes (comma-separated); only they are checked.")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Keep only the classes this study preset uses.")] = None,
    force: Annotated[bool, typer.Option(help="Download and validate again even if already done.")] = False,
    min_side: Annotated[int, typer.Option(help="Exclude images smaller than this (px).")] = 32,
) -> None:
    """Download (or take `--from`) a dataset, validate every image, and store it.

    Examples: `breedscope fetch bccd` ·
    `breedscope fetch chest_xray --from ~/Downloads/archive.zip` ·
    `breedscope fetch folder --from ./my_photos --name pets`
    """
    from breedscope import api

    result = api.fetch_dataset(
        name,
        source,
        name=as_name,
        slug=slug,
        version=version,
        latest=latest,
        classes=[c.strip() for c in classes.split(",")] if classes else None,
        preset=preset,
        force=force,
        min_side=min_side,
    )
    if result.reused:
        console.print(
            f"'{result.dataset.name}' is already fetched ({result.dataset.info['images']} images); "
            "use --force to fetch it again."
        )
        return
    for note in result.scan.notes if result.scan else []:
        console.print(f"note: {note}")
    for reason, count in sorted(result.scan.skipped.items()) if result.scan else []:
        console.print(f"skipped {count} file(s): {reason}")
    _print_validation(result.validation)
    console.print(
        f"Stored [bold]{result.dataset.name}[/]: {len(result.validation.kept)} images in "
        f"{result.dataset.directory}"
    )


@app.command()
def validate(name: Annotated[str, typer.Argument(help="A fetched dataset.")]) -> None:
    """Decode and check every image of a fetched dataset again.

    Example: `breedscope validate bccd`
    """
    from breedscope import api

    _print_validation(api.validate(name))


def _parse_ratios(text: str | None) -> dict | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise BreedscopeError(
            f"--split takes train,val,test fractions like 0.7,0.15,0.15, not '{text}'."
        ) from None
    if len(values) == 2:
        values = [values[0], 0.0, values[1]]
    if len(values) != 3:
        raise BreedscopeError(f"--split takes two or three fractions (train,val,test), not '{text}'.")
    return dict(zip(("train", "val", "test"), values, strict=True))


@app.command()
def split(
    name: Annotated[str, typer.Argument(help="A fetched dataset.")],
    ratios: Annotated[
        str | None, typer.Option("--split", help="train,val,test fractions, e.g. 0.8,0.1,0.1")
    ] = None,
    seed: Annotated[int, typer.Option(help="Split seed.")] = 42,
    balance: Annotated[str, typer.Option(help="none, cap, undersample, oversample, class_weights")] = "none",
    cap: Annotated[int | None, typer.Option(help="Images per class for --balance cap.")] = None,
    source_split: Annotated[bool, typer.Option("--source-split", help="Keep the publisher's split.")] = False,
    output: Annotated[Path | None, typer.Option(help="Folder for manifest.csv and manifest.json.")] = None,
) -> None:
    """Write a stratified, grouped split manifest for a fetched dataset.

    Example: `breedscope split chest_xray --split 0.75,0.15,0.10 --seed 1`
    """
    from breedscope import api

    manifest, path = api.split(
        name,
        split=_parse_ratios(ratios),
        seed=seed,
        balance=balance,
        cap=cap,
        source_split=source_split,
        output=output,
    )
    counts, splits = manifest.counts(), ["train", "val", "test"]
    rows = [[label, *(str(counts[s].get(label, 0)) for s in splits)] for label in manifest.classes]
    tables.show(out, f"Manifest {path}", ["class", *splits], rows, right=splits)
    for warning in manifest.header["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"sha256 {manifest.sha256()}")


def _flag_layer(**flags) -> dict:
    """Turn run flags into a config layer; flags left unset (None) do not override anything."""
    layer: dict = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        section, _, key = dotted.partition("__")
        if key:
            layer.setdefault(section, {})[key] = value
        else:
            layer[section] = value
    return layer


@app.command()
def run(
    dataset: Annotated[str | None, typer.Option(help="Dataset name (plugin or fetched).")] = None,
    preset: Annotated[
        str | None, typer.Option(help="Study preset: cats, breast, bccd, chest_xray, generic, or a plugin's.")
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="TOML or YAML config file.")] = None,
    faithful: Annotated[bool, typer.Option(help="Reproduce the study's own (unsound) choices.")] = False,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
    image_size: Annotated[int | None, typer.Option()] = None,
    alpha: Annotated[float | None, typer.Option(help="MobileNetV2 width multiplier.")] = None,
    weights: Annotated[str | None, typer.Option(help="imagenet, none, or a weights file.")] = None,
    backbone: Annotated[str | None, typer.Option()] = None,
    augment: Annotated[str | None, typer.Option(help="Augmentation preset.")] = None,
    views: Annotated[int | None, typer.Option(help="Cached augmented views per training image.")] = None,
    split_ratios: Annotated[
        str | None, typer.Option("--split", help="train,val,test, e.g. 0.8,0.1,0.1")
    ] = None,
    balance: Annotated[
        str | None, typer.Option(help="none, cap, undersample, oversample, class_weights")
    ] = None,
    cap: Annotated[int | None, typer.Option(help="Images per class for --balance cap.")] = None,
    classes: Annotated[str | None, typer.Option(help="Comma-separated classes to use.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    feature_cache: Annotated[bool | None, typer.Option("--feature-cache/--no-feature-cache")] = None,
    runtime: Annotated[
        str | None, typer.Option(help="Backbone runtime for cached features: auto, litert or keras.")
    ] = None,
    patience: Annotated[int | None, typer.Option(help="Early-stopping patience in epochs.")] = None,
    fine_tune_layers: Annotated[
        int | None, typer.Option(help="Backbone layers to unfreeze after the head.")
    ] = None,
    fine_tune_epochs: Annotated[int | None, typer.Option(help="Epochs of fine-tuning.")] = None,
    fine_tune_lr: Annotated[float | None, typer.Option(help="Fine-tuning learning rate.")] = None,
    strategy: Annotated[str | None, typer.Option(help="auto, one, mirrored or multiworker.")] = None,
    mixed_precision: Annotated[bool | None, typer.Option("--mixed-precision/--no-mixed-precision")] = None,
    report_format: Annotated[
        str | None, typer.Option("--format", help="Reporters, e.g. markdown,pdf")
    ] = None,
    manifest: Annotated[
        Path | None, typer.Option(help="Reuse the split of a run directory (or a manifest folder).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Run name: RUNS_DIR / DATASET / NAME (NAME-2... if taken).")
    ] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Where run directories go.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Resume a killed run from its directory.")] = None,
    cv: Annotated[
        int | None,
        typer.Option("--cv", help="Grouped, stratified K-fold cross-validation: test every image."),
    ] = None,
    repeats: Annotated[int | None, typer.Option(help="Repeat the cross-validation with other folds.")] = None,
) -> None:
    """Train and evaluate on a dataset, and write the report: everything lands in one run directory.

    Examples: `breedscope run --dataset demo` ·
    `breedscope run --dataset bccd --preset bccd --epochs 5` ·
    `breedscope run --config study.toml --seed 7` ·
    `breedscope run --resume runs/bccd/run`
    """
    from breedscope import api

    if resume is not None:
        finished = api.run(resume=resume)
    else:
        finished = api.run(
            dataset,
            preset=preset,
            config=config_file,
            faithful=faithful,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            feature_cache=feature_cache,
            runtime=runtime,
            patience=patience,
            fine_tune_layers=fine_tune_layers,
            fine_tune_epochs=fine_tune_epochs,
            fine_tune_lr=fine_tune_lr,
            strategy=strategy,
            mixed_precision=mixed_precision,
            image_size=image_size,
            alpha=alpha,
            weights=weights,
            backbone=backbone,
            augment=augment,
            views=views,
            split=_parse_ratios(split_ratios),
            balance=balance,
            cap=cap,
            classes=classes.split(",") if classes else None,
            formats=report_format.split(",") if report_format else None,
            name=name,
            runs_dir=runs_dir,
            manifest=manifest,
            cv=cv,
            repeats=repeats,
        )
    if finished is None:
        console.print("Trained in step with the chief of the cluster; the chief writes the run directory.")
        return
    console.print(finished.metrics.summary())
    for path in finished.reports():
        console.print(f"Report: {path}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    report_format: Annotated[
        str, typer.Option("--format", help="Reporters, e.g. markdown,pdf")
    ] = "markdown,pdf",
) -> None:
    """Render a run's report again from its stored evaluation (no retraining).

    Example: `breedscope report runs/demo/run --format pdf`
    """
    from breedscope import api

    for path in api.open_run(run_dir).render_reports(report_format.split(",")):
        console.print(f"Report: {path}")


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Finished run directories.")],
    output: Annotated[Path | None, typer.Option(help="Also write the table as Markdown here.")] = None,
) -> None:
    """Compare finished runs in one table (for example two backbones on one manifest).

    Example: `breedscope compare runs/breast/mobilenet runs/breast/resnet50 --output compare.md`
    """
    from breedscope import api

    comparison = api.compare(run_dirs)
    table, notes = comparison.table, comparison.notes
    tables.show(out, "Runs", table.header, table.rows, may_turn=True)
    for note in notes:
        console.print(f"note: {note}")
    if output is not None:
        from breedscope.atomic import write_text

        write_text(output, comparison.markdown())
        console.print(f"Written: {output}")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    images: Annotated[
        list[str], typer.Argument(help="Image files, folders (searched recursively) or glob patterns.")
    ],
    top: Annotated[int, typer.Option(help="How many classes to show per image.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Also write one row per image to this CSV file.")
    ] = None,
) -> None:
    """Predict the classes of images with a trained run's model.

    Examples: `breedscope predict runs/bccd/run cell1.jpg cell2.png` ·
    `breedscope predict runs/bccd/run new_cells/ --csv predictions.csv` ·
    `breedscope predict runs/bccd/run "scans/**/*.png" --json`
    """
    from breedscope import api, inference
    from breedscope.predictions import PredictionWriter

    run = api.open_run(run_dir)
    paths = inference.image_paths(images)
    if not paths:
        raise BreedscopeError(f"No image files were found in {', '.join(images)}.")
    title = f"Predictions ({run_dir})"
    with (
        PredictionWriter(top, csv_file, as_json, out, title=title) as writer,
        progress_bar("Predicting", total=len(paths)) as advance,
    ):
        for prediction in run.iter_predictions(paths, top=top):
            writer.add(prediction)
            advance(1)
    if csv_file is not None:
        console.print(f"Written: {csv_file} ({writer.count} rows)")
    if writer.failed:
        raise BreedscopeError(
            f"{writer.failed} of {writer.count} file(s) could not be read as images; see their errors above"
            + (f" and in {csv_file}." if csv_file else ".")
        )


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    fmt: Annotated[str, typer.Option("--format", help="keras, savedmodel, tflite or onnx")] = "keras",
    quantize: Annotated[
        str | None,
        typer.Option(
            help="tflite only: fp16, dynamic (int8 weights) or int8 (calibrated on training images)"
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="Folder to write to (default RUN_DIR/export).")] = None,
) -> None:
    """Export a trained model for deployment, with `labels.txt` beside it; a TFLite or ONNX file is
    measured against the Keras model on the run's test split.

    Examples: `breedscope export runs/bccd/run --format tflite --quantize int8` ·
    `breedscope export runs/bccd/run --format onnx`
    """
    from breedscope import api
    from breedscope import export as export_module

    exported = api.open_run(run_dir).export(fmt, quantize, output)
    path, check = exported.path, exported.check
    console.print(f"Exported: {path} (class names, in output order, in {path.parent / 'labels.txt'})")
    if check is not None:
        console.print(
            f"On the run's {check.images} test images: Keras accuracy {check.keras_accuracy:.4f}, "
            f"exported {check.exported_accuracy:.4f}; the two agree on {check.agreement:.1%} of images "
            f"(recorded in {path.name}.check.json)."
        )
        if not check.acceptable:
            console.print(
                f"[bold yellow]warning:[/] the exported model is {100 * check.accuracy_drop:.1f} points "
                "less accurate than the Keras model (more than "
                f"{100 * export_module.MAX_ACCURACY_DROP:.0f}); "
                "ship a float export (no --quantize) or the Keras model instead."
            )


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
    dataset: Annotated[str, typer.Option(help="Another fetched dataset with (some of) the same classes.")],
    class_map: Annotated[
        str | None,
        typer.Option("--map", help="Their classes to the model's: normal=NORMAL,pneumonia=PNEUMONIA"),
    ] = None,
    report_format: Annotated[
        str, typer.Option("--format", help="Reporters, e.g. markdown,pdf")
    ] = "markdown,pdf",
) -> None:
    """External validation: the trained model on someone else's images, with intervals and a report.

    Example: `breedscope evaluate runs/chest_xray/run --dataset other_hospital --map normal=NORMAL`
    """
    from breedscope import api, external

    result = api.open_run(run_dir).evaluate_on(
        dataset, external.parse_mapping(class_map), report_format.split(",")
    )
    if result.left_out:
        listed = ", ".join(f"{label} ({count})" for label, count in result.left_out.items())
        console.print(f"Left out, as classes the model does not know: {listed}.")
    console.print(f"On '{result.dataset}': {result.evaluation.summary()}")
    for path in result.reports:
        console.print(f"Report: {path}")


@app.command()
def reproduce(
    study: Annotated[
        str | None, typer.Argument(help="A study preset: chest_xray, bccd, cats, breast...")
    ] = None,
    all_studies: Annotated[
        bool, typer.Option("--all", help="Every study whose dataset is fetched, and one table.")
    ] = False,
    dataset: Annotated[str | None, typer.Option(help="Another fetched dataset than the preset's.")] = None,
    cv: Annotated[int, typer.Option("--cv", help="Folds of the cross-validated runs.")] = 5,
    repeats: Annotated[int, typer.Option(help="Repeats of the cross-validation.")] = 1,
    config_file: Annotated[Path | None, typer.Option("--config", help="Settings for every run.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    runs_dir: Annotated[Path | None, typer.Option(help="Where run directories go.")] = None,
    report_format: Annotated[
        str | None, typer.Option("--format", help="Reporters, e.g. markdown,pdf")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Finish an interrupted reproduction.")] = None,
) -> None:
    """Reproduce a study and correct it, on features extracted once: the study's own protocol, the
    sound one, grouped cross-validation, and the measured effect of each difference, on one page.

    Examples: `breedscope reproduce chest_xray` · `breedscope reproduce bccd --dataset pbc` ·
    `breedscope reproduce --all` · `breedscope reproduce --resume runs/chest_xray/reproduce-chest_xray`
    """
    from breedscope import api
    from breedscope.report.reproduction import figures_table, overview_table, points

    options = dict(
        cv=cv,
        repeats=repeats,
        config=config_file,
        seed=seed,
        runs_dir=runs_dir,
        formats=report_format.split(",") if report_format else None,
    )
    if all_studies:
        if study or resume or dataset:
            raise BreedscopeError("--all reproduces every fetched study as its preset has it; name no study.")
        from breedscope import reproduction

        done, skipped, overview = reproduction.start_all(api.plugins(), **options)
        for sentence in skipped:
            console.print(f"Skipped {sentence}.")
        if overview is None:
            raise BreedscopeError(
                "No study's dataset is fetched; fetch one first, e.g. `breedscope fetch chest_xray`."
            )
        table = overview_table([api.Reproduction(path).results for path in done])
        tables.show(out, "Studies reproduced", table.header, table.rows, may_turn=True)
        console.print(f"Table: {overview}")
        return
    if resume is not None:
        finished = api.reproduce(resume=resume)
    else:
        finished = api.reproduce(study, dataset=dataset, **options)
    table = figures_table(finished.results, with_protocol=False)
    tables.show(out, "Reproduction", table.header, table.rows, may_turn=True)
    for effect in finished.effects:
        low, high = effect["interval"]
        console.print(
            f"Effect of {effect['difference']}: {points(effect['effect'])} points of accuracy "
            f"(95% CI {points(low)} to {points(high)}) on {effect['images']} images."
        )
    for path in sorted(finished.path.glob("report.*")):
        console.print(f"Report: {path}")


augment_app = typer.Typer(help="Look at augmentation presets.", no_args_is_help=True)
app.add_typer(augment_app, name="augment")


@augment_app.command("preview")
def augment_preview(
    dataset: Annotated[str, typer.Option(help="A fetched dataset (or one its plugin can fetch).")],
    preset: Annotated[
        str | None, typer.Option(help="Augmentation preset (default: the dataset's study preset's).")
    ] = None,
    count: Annotated[int, typer.Option(help="How many training images.")] = 6,
    views: Annotated[int, typer.Option(help="Augmented views per image.")] = 4,
    image_size: Annotated[int, typer.Option(help="Side of each tile in pixels.")] = 224,
    seed: Annotated[int, typer.Option()] = 42,
    output: Annotated[
        Path | None,
        typer.Option(help="PNG file to write (default: RUNS_DIR/DATASET/augment_preview-PRESET.png)."),
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories (and previews) go.")] = Path("runs"),
) -> None:
    """Write a grid of augmented samples: each row an image, then its augmented views.

    Example: `breedscope augment preview --dataset chest_xray --preset xray`
    """
    from breedscope import api

    preview = api.augment_preview(
        dataset,
        preset=preset,
        count=count,
        views=views,
        image_size=image_size,
        seed=seed,
        output=output,
        runs_dir=runs_dir,
    )
    console.print(
        f"Preset '{preview.preset}' on {preview.images} images of '{preview.dataset}': {preview.path}"
    )


@app.command()
def datasets() -> None:
    """List dataset plugins and fetched datasets.

    Example: `breedscope datasets`
    """
    from breedscope.datasets import store

    loaded = _registry()

    def kaggle(spec) -> str:
        pinned = f" (version {spec.kaggle_version})" if spec.kaggle and spec.kaggle_version else ""
        return ", ".join(spec.kaggle) + pinned

    plugin_rows = [
        [name, ", ".join(spec.aliases), kaggle(spec), spec.default_preset or "", spec.description]
        for name, spec in sorted(loaded.datasets.items())
    ]
    tables.show(out, "Dataset plugins", ["name", "aliases", "Kaggle", "preset", "description"], plugin_rows)
    fetched = []
    for name in store.stored_names():
        stored = store.load(name)
        source = stored.info["source"]
        fetched.append(
            [
                name,
                stored.plugin,
                str(stored.info["images"]),
                source.get("handle") or source["location"] or "",
            ]
        )
    header = ["name", "plugin", "images", "source"]
    tables.show(out, f"Fetched (in {store.paths.datasets_dir()})", header, fetched, right=["images"])


def _grouped(provides: tuple[str, ...]) -> str:
    """``("reporter:md", "reporter:pdf")`` → ``"reporter: md, pdf"``."""
    kinds: dict[str, list[str]] = {}
    for item in provides:
        kind, _, name = item.partition(":")
        kinds.setdefault(kind, []).append(name)
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())


@app.command()
def plugins() -> None:
    """List every plugin with the distribution and version it came from.

    Example: `breedscope plugins`
    """
    loaded = _registry()
    rows = [
        [info.name, info.module, info.distribution, info.version, _grouped(info.provides)]
        for info in loaded.plugins
    ]
    header = ["plugin", "module", "distribution", "version", "provides"]
    tables.show(out, "Plugins (entry-point group 'breedscope')", header, rows)


def main() -> None:
    """Entry point: run the app, turning errors into one sentence and an exit code."""
    try:
        _run_app()
    finally:
        # Everything is written and closed by now. Without this, interpreter shutdown walks the
        # million objects TensorFlow leaves behind, which takes about a second of every command.
        gc.freeze()


def _run_app() -> None:
    # TensorFlow's C++ log below errors; its start-up lines are silenced by breedscope.quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # albumentations asks PyPI for its latest version at import: a network call and a warning
    # offline, on every command. The CLI's user did not ask for it.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.TyperException as exc:  # a usage error: unknown option, missing argument
        show = getattr(exc, "show", None)
        show() if show else console.print(f"Error: {exc.format_message()}")
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except Interrupted as exc:  # a Ctrl-C a command turned into what was kept and how to go on
        console.print(str(exc))
        sys.exit(exc.exit_code)
    except BreedscopeError as exc:
        if _state["debug"]:
            raise
        console.print(f"[bold red]Error:[/] {exc}")
        code = exc.exit_code
    except OSError as exc:
        if _state["debug"] or exc.errno not in (errno.ENOSPC, errno.EACCES, errno.EROFS):
            raise
        where = f" at {exc.filename}" if exc.filename else ""
        advice = {
            errno.ENOSPC: "free some space (or set BREEDSCOPE_HOME / --runs-dir to a larger disk) and run "
            "again; finished downloads, manifests and checkpoints are kept, and --resume continues a run",
            errno.EACCES: "check the permissions, or choose another folder",
            errno.EROFS: "choose a writable folder (BREEDSCOPE_HOME, --runs-dir)",
        }[exc.errno]
        console.print(f"[bold red]Error:[/] {os.strerror(exc.errno)}{where}: {advice}.")
        code = 2
    except Exception as exc:
        if _state["debug"]:
            raise
        console.print(
            f"[bold red]Unexpected error:[/] {type(exc).__name__}: {exc}. "
            "Run again with --debug for the traceback, and please report it."
        )
        code = 1
    if code == 130:  # a Ctrl-C no command caught (typer returns it as 130)
        console.print("Interrupted; finished work (downloads, manifests, checkpoints) is kept.")
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
