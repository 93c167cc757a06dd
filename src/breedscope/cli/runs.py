"""Commands on runs: run, report, compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from breedscope.cli.app import app, out, parse_ratios
from breedscope.core import tables
from breedscope.core.progress import console


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
    exclude: Annotated[
        Path | None,
        typer.Option(help="Leave out the images a CSV's path column lists (an audit's issues.csv)."),
    ] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    feature_cache: Annotated[bool | None, typer.Option("--feature-cache/--no-feature-cache")] = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            help="Backbone runtime for cached features: auto (LiteRT when the run repays converting), "
            "litert or keras."
        ),
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
    operating_point: Annotated[
        str | None,
        typer.Option(
            help="sensitivity=0.95, specificity=0.90 or youden: a threshold chosen on validation data."
        ),
    ] = None,
    positive: Annotated[
        str | None, typer.Option(help="The class a screening calls positive (binary: the second).")
    ] = None,
    track: Annotated[
        str | None, typer.Option(help="Experiment trackers, e.g. mlflow (MLFLOW_TRACKING_URI says where).")
    ] = None,
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
            split=parse_ratios(split_ratios),
            balance=balance,
            cap=cap,
            classes=classes.split(",") if classes else None,
            exclude=exclude,
            formats=report_format.split(",") if report_format else None,
            name=name,
            runs_dir=runs_dir,
            manifest=manifest,
            cv=cv,
            repeats=repeats,
            operating_point=operating_point,
            positive=positive,
            track=track,
        )
    if finished is None:
        console.print("Trained in step with the chief of the cluster; the chief writes the run directory.")
        return
    console.print(finished.metrics.summary())
    if finished.metrics.operating_point is not None:
        console.print(finished.metrics.operating_point.sentence())
    for caveat in finished.metrics.caveats():  # the support rule, as the report and notebook say it
        console.print(f"[yellow]note:[/] {escape(caveat)}")
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
        from breedscope.core.atomic import write_text

        write_text(output, comparison.markdown())
        console.print(f"Written: {output}")
