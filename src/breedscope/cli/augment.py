"""Looking at augmentation presets: augment preview."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from breedscope.cli.app import app
from breedscope.cli.help import App
from breedscope.core.progress import console

augment_app = App(help="Look at augmentation presets.", no_args_is_help=True)
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
