"""Image decoding, by content and never by file extension, into 8-bit RGB.

Pillow decides the format from the bytes, so a WEBP or PNG saved as ``.jpg`` decodes, and a
``.DS_Store`` saved as ``.jpg`` does not. Every other module reads pixels through here.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from breedscope.core.versions import DECODER, package_versions

# Anything above this many pixels is treated as a decompression bomb, not an image to train on.
# Checked in open_image from the header, not by setting Pillow's process-wide MAX_IMAGE_PIXELS,
# which would change it for the whole session that imported breedscope.
MAX_PIXELS = 64_000_000

# Part of the decoded-image and feature cache keys: bump it when decoding at a given size
# changes the pixels, so that caches written by an earlier decoder are not mixed in.
DECODER_VERSION = 2


def decoder_identity() -> str:
    """What decides the decoded pixels: this module's recipe and the Pillow that runs it (whose
    JPEG decoder and resampling may change between versions). Part of every cache key that
    holds pixels or what was computed from them."""
    return f"decoder{DECODER_VERSION}-pillow{package_versions(DECODER)['pillow']}"


def decoded_images_name(size: int) -> str:
    """The folder under ``$BREEDSCOPE_HOME/images`` of the images decoded at ``size`` px."""
    return f"{size}px-{decoder_identity()}"


class UnreadableImage(Exception):
    """The file is not an image this tool can use; ``reason`` is a short, stable category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def open_image(path: Path, reduce_for: int | None = None) -> Image.Image:
    """Open and fully decode ``path``; raise :class:`UnreadableImage` with the reason otherwise.

    With ``reduce_for``, a JPEG much larger than that size is decoded at 1/2, 1/4 or 1/8 scale
    (DCT scaling: four times faster for a 2,400 px X-ray), never below twice the size, so that
    the resize to it still filters properly.
    """
    if path.is_dir():
        raise UnreadableImage("a folder, not an image file")
    if path.stat().st_size == 0:
        raise UnreadableImage("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            if image.width * image.height > MAX_PIXELS:
                raise UnreadableImage("decompression bomb", f"{image.width}x{image.height}")
            if reduce_for is not None:
                image.draft(None, (2 * reduce_for, 2 * reduce_for))
            image.load()  # decode every pixel now: truncated files fail here, not in training
    except UnreadableImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage("decompression bomb", str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        raise UnreadableImage("not an image") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage("truncated or corrupt", str(exc)) from exc
    return image


def displayed_size(path: Path) -> tuple[int, int]:
    """Width and height as the image is shown, after its EXIF orientation; reads the header only."""
    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)  # quarter turns


def to_rgb(image: Image.Image) -> Image.Image:
    """Normalise any mode (16-bit, palette, CMYK, grayscale, alpha) to 8-bit RGB.

    ``image`` may be changed in place (its EXIF turn applied): pass one just opened. An 8-bit
    RGB image without a turn is returned as it is: each copy of a decoded photo costs about as
    much as decoding it (fresh pages), and extraction decodes on the cores the backbone needs.
    """
    ImageOps.exif_transpose(image, in_place=True)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Scale the real range to 8 bits instead of clipping everything above 255 to white.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(scaled.astype(np.uint8))
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image.convert("RGBA"))
        image = background
    return image if image.mode == "RGB" else image.convert("RGB")


def load_rgb(path: Path, size: int | None = None) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` uint8 array, resized (bilinear) to ``size`` if given."""
    image = to_rgb(open_image(path, reduce_for=size))
    if size is not None and image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)
