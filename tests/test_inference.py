"""Using a trained model: what export feeds the int8 converter."""

from __future__ import annotations

from collections import Counter

from breedscope.export import calibration_rows
from breedscope.manifest import Row


def _rows(per_class: dict[str, int]) -> list[Row]:
    # Sorted by class, as a manifest's split is: the first rows are all one class.
    return [
        Row(f"{label}/{i}.png", label, "train", f"{label}/{i}.png", f"{label}{i}", "0" * 16, 64, 64, "")
        for label, count in per_class.items()
        for i in range(count)
    ]


def test_int8_calibration_draws_every_class_in_turn() -> None:
    rows = _rows({"basophil": 50, "eosinophil": 50, "lymphocyte": 50})

    picked = calibration_rows(rows, 30)

    assert Counter(r.label for r in picked) == {"basophil": 10, "eosinophil": 10, "lymphocyte": 10}
    assert len({r.path for r in picked}) == 30
    assert calibration_rows(rows, 30) == picked  # seeded: the same export calibrates the same way


def test_int8_calibration_takes_all_of_a_small_class_and_fills_up_from_the_others() -> None:
    picked = calibration_rows(_rows({"rare": 3, "common": 100}), 20)
    assert Counter(r.label for r in picked) == {"rare": 3, "common": 17}
