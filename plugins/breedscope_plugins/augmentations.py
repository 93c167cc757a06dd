"""Augmentation presets with domain sense. All geometric changes keep the whole subject in view.

albumentations (and OpenCV behind it: a fifth of a second) is imported when a preset is built,
so runs without augmentation never load it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from breedscope import AugmentPreset, hookimpl

if TYPE_CHECKING:
    import albumentations as A


def _studies() -> list[A.BasicTransform]:
    """The studies' Keras ImageDataGenerator recipe: rotation, shift, horizontal flip, scale."""
    import albumentations as A

    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(
            rotate=(-20, 20),
            translate_percent=(-0.1, 0.1),
            scale=(0.9, 1.1),
            border_mode=0,
            p=1.0,
        ),
    ]


def _light() -> list[A.BasicTransform]:
    import albumentations as A

    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-10, 10), translate_percent=(-0.05, 0.05), scale=(0.95, 1.05), p=0.7),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
    ]


def _xray() -> list[A.BasicTransform]:
    """No left-right flip: the heart sits on the left, and a mirrored chest is not a chest."""
    import albumentations as A

    return [
        A.Affine(rotate=(-7, 7), translate_percent=(-0.05, 0.05), scale=(0.95, 1.08), p=0.8),
        A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.7),
    ]


def _cells() -> list[A.BasicTransform]:
    """Cells have no up or left: free rotation and both flips; stain varies, so jitter colour."""
    import albumentations as A

    return [
        A.HorizontalFlip(p=0.5),
        A.VerticalFlip(p=0.5),
        A.Rotate(limit=180, border_mode=1, p=1.0),
        A.ColorJitter(brightness=0.15, contrast=0.15, saturation=0.15, hue=0.03, p=0.8),
    ]


def _ultrasound() -> list[A.BasicTransform]:
    import albumentations as A

    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(rotate=(-10, 10), scale=(0.9, 1.1), p=0.7),
        A.GaussNoise(std_range=(0.01, 0.04), p=0.3),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.15, p=0.5),
    ]


@hookimpl
def breedscope_augmentations() -> list[AugmentPreset]:
    return [
        AugmentPreset("none", "no augmentation", list),
        AugmentPreset("light", "small flips, shifts, rotations and brightness changes", _light),
        AugmentPreset("studies", "the studies' rotation 20, shift 0.1, flip, scale 0.1", _studies),
        AugmentPreset("xray", "chest X-rays: small rotation/shift/zoom, contrast; no flip", _xray),
        AugmentPreset("cells", "blood cells: free rotation, both flips, colour jitter", _cells),
        AugmentPreset("ultrasound", "ultrasound: flip, small rotation and zoom, speckle noise", _ultrasound),
    ]
