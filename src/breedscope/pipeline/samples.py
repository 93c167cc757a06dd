"""Pictures of the data a run saw: augmented training samples, the most confident errors and
Grad-CAM maps. Drawn once at the end of a run (they need the images and the model) and stored
in ``figures/``, so a report can be rendered again later without either."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.core.atomic import write_text
from breedscope.data.manifest import Manifest, Row
from breedscope.evaluation.metrics import ConfidentError, Evaluation
from breedscope.features.augment import Augmenter
from breedscope.report import figures
from breedscope.runs import rundir

if TYPE_CHECKING:
    import keras

    from breedscope.features.loading import ImageLoader

AUGMENTED = rundir.AUGMENTED_FIGURE
ERRORS = rundir.ERRORS_FIGURE
GRADCAM = rundir.GRADCAM_FIGURE


def _short(text: str, length: int = 18) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def augmented_samples(
    rows: list[Row], load: ImageLoader, augmenter: Augmenter, target: Path, views: int = 3
) -> Path:
    """A grid: each row one image, then ``views`` augmented versions. ``target`` is a run
    directory (the figure goes to its ``figures/``) or a ``.png`` path."""
    target = target if target.suffix == ".png" else target / AUGMENTED
    images, captions = [], []
    for row in rows:
        image = load(row)
        images.append(image)
        captions.append(f"{_short(row.label)}: original")
        for view in range(views):
            images.append(augmenter(image, row.sha256, view))
            captions.append(f"view {view + 1}")
    return figures.image_grid(images, captions, target, columns=views + 1)


def confident_errors(
    errors: Sequence[ConfidentError], by_path: dict[str, Row], load: ImageLoader, run_dir: Path
):
    if not errors:
        return None
    images = [load(by_path[e.path]) for e in errors[:8]]
    captions = [
        f"true {_short(e.true, 14)}\npred {_short(e.predicted, 14)} {e.confidence:.2f}" for e in errors[:8]
    ]
    return figures.image_grid(images, captions, run_dir / ERRORS, columns=4)


def gradcam_grid(
    model: keras.Model,
    manifest: Manifest,
    load: ImageLoader,
    run_dir: Path,
    per_class: int = 2,
    feature_maps: Callable[[np.ndarray], np.ndarray] | None = None,
):
    from breedscope.evaluation.explain import MIN_MAP_SIDE, gradcam, map_side, overlay

    side = map_side(model)
    if side < MIN_MAP_SIDE:
        size = int(model.input_shape[1])
        write_text(
            run_dir / rundir.GRADCAM_NOTE,
            f"Grad-CAM is left out: at {size} px the backbone's last feature map is {side}x{side}, too "
            f"coarse to show where the model looked (it needs at least {MIN_MAP_SIDE}x{MIN_MAP_SIDE}; "
            "about 128 px for MobileNetV2).\n",
        )
        return None
    classes = manifest.classes
    test = manifest.split("test")
    rows = [r for c in classes for r in [r for r in test if r.label == c][:per_class]]
    if not rows:
        return None
    images = np.stack([load(r) for r in rows]).astype(np.float32)
    heat, probabilities = gradcam(model, images, feature_maps)
    predicted = probabilities.argmax(axis=1)
    tiles = [overlay(image, h) for image, h in zip(images, heat, strict=True)]
    captions = [
        f"{_short(r.label, 14)} → {_short(classes[p], 14)}" for r, p in zip(rows, predicted, strict=True)
    ]
    return figures.image_grid(tiles, captions, run_dir / GRADCAM, columns=min(6, max(2, 2 * per_class)))


def draw_all(
    model,
    manifest: Manifest,
    evaluation: Evaluation,
    load,
    augmenter: Augmenter,
    run_dir: Path,
    feature_maps: Callable[[np.ndarray], np.ndarray] | None = None,
) -> None:
    train = manifest.split("train")
    if not augmenter.is_identity and train:
        augmented_samples(train[:4], load, augmenter, run_dir)
    by_path = {row.path: row for row in manifest.rows}
    confident_errors(evaluation.most_confident_errors, by_path, load, run_dir)
    gradcam_grid(model, manifest, load, run_dir, feature_maps=feature_maps)
