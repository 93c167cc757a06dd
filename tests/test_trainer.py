"""The trainer (training/trainer.py): balanced class weights."""

from __future__ import annotations

import numpy as np
import pytest

from breedscope.training import trainer as train


def test_class_weights_are_balanced() -> None:
    weights = train.class_weights(np.array([0] * 30 + [1] * 10), 3)
    assert weights[0] == pytest.approx(40 / (2 * 30))
    assert weights[1] == pytest.approx(40 / (2 * 10))
    assert weights[2] == 1.0  # absent from training: neutral
