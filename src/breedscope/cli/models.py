"""Commands on a run's model: predict, export, evaluate on another dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from breedscope.cli.app import app, out
from breedscope.core.errors import BreedscopeError
from breedscope.core.progress import console, progress_bar


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
    runtime: Annotated[
        str,
        typer.Option(
            help="auto (LiteRT, converted once per model and checked against Keras; Keras where it "
            "is not installed or disagrees), litert or keras."
        ),
    ] = "auto",
) -> None:
    """Predict the classes of images with a trained run's model.

    Examples: `breedscope predict runs/bccd/run cell1.jpg cell2.png` ·
    `breedscope predict runs/bccd/run new_cells/ --csv predictions.csv` ·
    `breedscope predict runs/bccd/run "scans/**/*.png" --json`
    """
    from breedscope import api
    from breedscope.inference import predict as inference
    from breedscope.inference.table import PredictionWriter

    run = api.open_run(run_dir)
    paths = inference.image_paths(images)
    if not paths:
        raise BreedscopeError(f"No image files were found in {', '.join(images)}.")
    title = f"Predictions ({run_dir})"
    predictions = run.iter_predictions(paths, top=top, runtime=runtime)  # a bad --top is refused here
    with (
        PredictionWriter(
            top, csv_file, as_json, out, title, decides=run.metrics.operating_point is not None
        ) as writer,
        progress_bar("Predicting", total=len(paths)) as advance,
    ):
        for prediction in predictions:
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
    accept_loss: Annotated[
        bool, typer.Option("--accept-loss", help="Exit 0 even when the export fails its check against Keras.")
    ] = False,
) -> None:
    """Export a trained model for deployment, with `labels.txt` beside it; a TFLite or ONNX file is
    measured against the Keras model on the run's test split.

    Examples: `breedscope export runs/bccd/run --format tflite --quantize int8` ·
    `breedscope export runs/bccd/run --format onnx`
    """
    from breedscope import api
    from breedscope.export import convert as export_module

    try:
        exported = api.open_run(run_dir).export(fmt, quantize, output, accept_loss=accept_loss)
        path, check = exported.path, exported.check
    except export_module.ExportCheckFailed as failed:
        _say_exported(failed.path, failed.check)
        raise
    _say_exported(path, check)
    if check is not None and not check.acceptable:
        console.print(f"[bold yellow]warning:[/] accepted with --accept-loss: {escape(check.failure())}.")


def _say_exported(path: Path, check) -> None:
    from breedscope.export.convert import INT8_CHOICE_SUFFIX

    console.print(f"Exported: {path} (class names, in output order, in {path.parent / 'labels.txt'})")
    choice = path.with_name(path.name + INT8_CHOICE_SUFFIX)
    if choice.is_file():
        from breedscope.export.quantize import Int8Model

        made = Int8Model(b"", **json.loads(choice.read_text(encoding="utf-8")))
        console.print(f"{made.describe()}.")
    if check is not None:
        console.print(
            f"On the run's {check.images} test images: Keras accuracy {check.keras_accuracy:.4f}, "
            f"exported {check.exported_accuracy:.4f}; the two agree on {check.agreement:.1%} of images "
            f"(recorded in {path.name}.check.json)."
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
    from breedscope import api
    from breedscope.pipeline import external

    result = api.open_run(run_dir).evaluate_on(
        dataset, external.parse_mapping(class_map), report_format.split(",")
    )
    if result.left_out:
        listed = ", ".join(f"{label} ({count})" for label, count in result.left_out.items())
        console.print(f"Left out, as classes the model does not know: {listed}.")
    console.print(f"On '{result.dataset}': {result.evaluation.summary()}")
    for caveat in result.evaluation.caveats():
        console.print(f"[yellow]note:[/] {escape(caveat)}")
    for path in result.reports:
        console.print(f"Report: {path}")
