"""The report's pictures, drawn from the stored evaluation and history: charts with matplotlib,
image grids with Pillow."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from breedscope.evaluation.metrics import Evaluation

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL.ImageFont import FreeTypeFont

DPI = 150
MIN_TILE = 160  # pixels of an image grid's tile: room for a caption of two class names


# Figures are made with matplotlib's object API (``Figure``), never pyplot: no backend is chosen,
# no window can open, and a notebook's inline plotting is left as the user set it. matplotlib is
# imported where a figure is drawn, not with this module: a run imports it (0.3 s) while it
# computes features, with TensorFlow, whose Keras imports it too.


def _save(figure: Figure, path: Path, tight: bool = True, dpi: float = DPI) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        figure.tight_layout()
    # Fast deflate: twice as quick as Pillow's default level for a fifth more bytes.
    figure.savefig(path, dpi=dpi, pil_kwargs={"compress_level": 1})
    return path


def _subplots(*grid: int, figsize: tuple[float, float]):
    """A new figure and its axes, like ``pyplot.subplots`` but outside pyplot's state."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid)


# Past this many classes a confusion matrix is a heat map: per-cell numbers would be unreadable
# (the report's "most confused pairs" table gives them), and the figure stops growing, so that
# its memory and the report's do not grow with the square of the classes.
ANNOTATED_CLASSES = 20
LABELLED_CLASSES = 60  # beyond this, tick labels would overlap: the classes are numbered instead
MAX_SIDE_INCHES = 14.0


def confusion_matrix(evaluation: Evaluation, path: Path) -> Path:
    classes = evaluation.classes
    counts = np.array(evaluation.confusion_matrix)
    normalised = np.array(evaluation.confusion_matrix_normalised)
    n = len(classes)
    side = min(MAX_SIDE_INCHES, max(4.5, 0.6 * n + 2.5))
    figure, axis = _subplots(figsize=(side, side * 0.85))
    image = axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    if n <= ANNOTATED_CLASSES:
        font = 9 if n <= 6 else 7
        for i in range(n):
            for j in range(n):
                colour = "white" if normalised[i, j] > 0.6 else "black"
                axis.text(
                    j,
                    i,
                    f"{counts[i, j]}\n{normalised[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=font,
                    color=colour,
                )
    if n <= LABELLED_CLASSES:
        short = [c if len(c) <= 14 else c[:13] + "…" for c in classes]
        size = 10 if n <= ANNOTATED_CLASSES else 6
        axis.set_xticks(
            range(n), short, rotation=45 if n <= ANNOTATED_CLASSES else 90, ha="right", fontsize=size
        )
        axis.set_yticks(range(n), short, fontsize=size)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
    else:
        axis.set_xlabel(f"predicted (class number, 0–{n - 1}, in the per-class table's order by name)")
        axis.set_ylabel("true (class number)")
    return _save(figure, path)


def training_curves(history: list[dict], path: Path) -> Path:
    from matplotlib import ticker

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, acc_axis) = _subplots(1, 2, figsize=(9, 3.4))
    for axis, metric, title in ((loss_axis, "loss", "loss"), (acc_axis, "accuracy", "accuracy")):
        axis.plot(epochs, [row[metric] for row in history], marker="o", ms=3, label="train")
        if history and f"val_{metric}" in history[0]:
            axis.plot(epochs, [row[f"val_{metric}"] for row in history], marker="o", ms=3, label="validation")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    return _save(figure, path)


def reliability(evaluation: Evaluation, path: Path) -> Path:
    bins = evaluation.calibration_bins
    figure, axis = _subplots(figsize=(4.5, 4))
    centres = [(b.low + b.high) / 2 for b in bins]
    axis.bar(centres, [b.accuracy for b in bins], width=0.09, alpha=0.7, label="accuracy in bin")
    axis.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    axis.plot(centres, [b.confidence for b in bins], "o", color="tab:red", ms=4, label="mean confidence")
    axis.set_xlabel("confidence of the predicted class")
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.set_title(f"ECE {evaluation.ece:.3f}")
    axis.legend(fontsize=8, loc="upper left")
    return _save(figure, path)


def roc(evaluation: Evaluation, path: Path) -> Path:
    curve = evaluation.roc_curve
    figure, axis = _subplots(figsize=(4.5, 4))
    axis.plot(list(curve.fpr), list(curve.tpr), lw=2, label=f"AUC {evaluation.roc_auc:.3f}")
    axis.plot([0, 1], [0, 1], "k--", lw=1)
    axis.set_xlabel("false positive rate (1 - specificity)")
    axis.set_ylabel("true positive rate (sensitivity)")
    axis.set_title(f"positive class: {evaluation.positive_class}")
    axis.legend(loc="lower right")
    return _save(figure, path)


def operating_point(evaluation: Evaluation, path: Path) -> Path:
    """The positive class's ROC curve on the test split, with the operating point chosen on other
    data and the 95% intervals of its sensitivity and specificity as a cross."""
    point = evaluation.operating_point
    assert point is not None
    curve = (
        evaluation.roc_curve if evaluation.roc_curve is not None else evaluation.roc_curves[point.positive]
    )
    auc = evaluation.roc_auc if evaluation.roc_curve is not None else curve.auc
    figure, axis = _subplots(figsize=(4.6, 4.2))
    axis.plot(list(curve.fpr), list(curve.tpr), lw=2, label=f"test ROC, AUC {auc:.3f}")
    axis.plot([0, 1], [0, 1], "k--", lw=1)
    x, y = 1 - point.specificity.value, point.sensitivity.value
    xerr = [[x - (1 - point.specificity.high)], [(1 - point.specificity.low) - x]]
    yerr = [[y - point.sensitivity.low], [point.sensitivity.high - y]]
    axis.errorbar(
        [x],
        [y],
        xerr=xerr,
        yerr=yerr,
        fmt="o",
        color="crimson",
        capsize=4,
        label=(
            f"fold thresholds, median {point.threshold:.3f}"
            if point.fold_thresholds
            else f"threshold {point.threshold:.3f}"
        )
        + f" ({point.target})",
    )
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title(f"{point.positive} against the rest")
    axis.legend(loc="lower right", fontsize=8)
    return _save(figure, path)


LEGEND_CLASSES = 12


def roc_labels(evaluation: Evaluation) -> dict[str, str]:
    """Each one-vs-rest curve's legend: the class and its AUC, and for a class the support rule
    finds too small, how many test images the curve rests on."""
    few = evaluation.small_classes()
    labels = {}
    for name, curve in evaluation.roc_curves.items():
        short = name if len(name) <= 16 else name[:15] + "…"
        count = f"; {few[name]} image{'s' * (few[name] != 1)}: too few" if name in few else ""
        labels[name] = f"{short} ({curve.auc:.3f}{count})"
    return labels


def roc_one_vs_rest(evaluation: Evaluation, path: Path) -> Path:
    figure, axis = _subplots(figsize=(5.2, 4.4))
    few = evaluation.small_classes()
    for name, label in roc_labels(evaluation).items():
        curve = evaluation.roc_curves[name]
        fpr, tpr = list(curve.fpr), list(curve.tpr)
        if name in few:  # the support rule: drawn faint and dotted, its count in the legend
            axis.plot(fpr, tpr, lw=1, ls=":", alpha=0.5, color="grey", label=label)
        else:
            axis.plot(fpr, tpr, lw=1.5, label=label)
    axis.plot([0, 1], [0, 1], "k--", lw=1)
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(f"one-vs-rest ROC, macro AUC {evaluation.roc_auc:.3f}")
    if len(evaluation.roc_curves) <= LEGEND_CLASSES:  # beyond, a legend would cover the curves
        axis.legend(loc="lower right", fontsize=7)
    return _save(figure, path)


def image_grid(images: list[np.ndarray], captions: list[str], path: Path, columns: int = 4) -> Path:
    """Captioned tiles as one picture, composed with Pillow at the tiles' own resolution (small
    tiles enlarged pixel for pixel) in matplotlib's font: nothing to lay out or resample, a third
    of the time matplotlib takes to draw the same mosaic."""
    from PIL import Image, ImageDraw

    rows = max(1, int(np.ceil(len(images) / columns)))
    side = max(max(image.shape[:2]) for image in images)
    scale = -(-MIN_TILE // side)  # whole pixels: a 32 px input shows as the 32 px it is
    tile = side * scale
    band, gap = int(tile * 0.22), max(2, tile // 40)  # caption band above each tile, white gap
    cell_height, cell_width = band + tile + gap, tile + gap
    mosaic = np.full((rows * cell_height, columns * cell_width, 3), 255, dtype=np.uint8)
    # Each tile's top-left corner, below its caption band.
    corners = [((i // columns) * cell_height + band, (i % columns) * cell_width) for i in range(len(images))]
    for image, (top, left) in zip(images, corners, strict=True):
        pixels = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
        pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
        height, width = pixels.shape[:2]
        y, x = top + (tile - height) // 2, left + (tile - width) // 2
        mosaic[y : y + height, x : x + width] = pixels
    picture = Image.fromarray(mosaic)
    draw = ImageDraw.Draw(picture)
    captions = captions[: len(images)]
    font = _caption_font(captions, width=tile * 0.95, height=band * 0.36)
    for caption, (top, left) in zip(captions, corners, strict=False):
        middle = (left + tile / 2, top - band / 2)
        draw.text(middle, caption, fill="black", font=font, anchor="mm", align="center")
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, compress_level=1)  # fast deflate, as for the other figures
    return path


def _caption_font(captions: list[str], width: float, height: float) -> FreeTypeFont:
    """matplotlib's default sans-serif face (the other figures' text) at one size for every
    caption: the largest at which each fits in ``width`` and is at most ``height`` pixels."""
    from PIL import ImageFont

    # Pillow's own layout: libraqm, when Pillow finds it, fails where FriBiDi is missing.
    face, basic = _sans_serif_file(), ImageFont.Layout.BASIC
    size = max(8, int(height))
    font = ImageFont.truetype(face, size, layout_engine=basic)
    longest = max((font.getlength(line) for caption in captions for line in caption.splitlines()), default=0)
    if longest <= width:
        return font
    return ImageFont.truetype(face, max(8, int(size * width / longest)), layout_engine=basic)


@functools.cache
def _sans_serif_file() -> str:
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))


def intervals(
    labels: list[str],
    values: list[float],
    bounds: list[tuple[float, float]],
    reported: float | None,
    path: Path,
) -> Path:
    """Each protocol's accuracy with its 95% interval, one row each, and the paper's figure as a
    dashed line: whether the paper's figure lies inside each interval is seen at a glance."""
    figure, axis = _subplots(figsize=(7.0, 0.55 * len(labels) + 1.3))
    ys = np.arange(len(labels))[::-1]
    low = np.array([v - b[0] for v, b in zip(values, bounds, strict=True)])
    high = np.array([b[1] - v for v, b in zip(values, bounds, strict=True)])
    axis.errorbar(values, ys, xerr=[low, high], fmt="o", color="#1f4e79", capsize=4)
    if reported is not None:
        axis.axvline(reported, color="#b03a2e", linestyle="--", label=f"paper: {reported:.3f}")
        axis.legend(loc="lower left", fontsize=8, frameon=False)
    axis.set_yticks(ys, labels, fontsize=8)
    axis.set_xlabel("test accuracy, 95% interval")
    axis.grid(axis="x", alpha=0.3)
    return _save(figure, path)
