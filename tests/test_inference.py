"""Using a trained model: what export feeds the int8 converter, and what it writes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from breedscope.data.manifest import Row
from breedscope.export.convert import calibration_rows


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


def test_the_same_model_exported_at_another_time_is_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user checks an export by its checksum: the labels packed into a TFLite file must not
    # carry the time of the export (zip entries do, unless told otherwise).
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    from breedscope.export import tflite_metadata

    model = schema.ModelT()
    model.version, model.subgraphs, model.buffers = 3, [], [schema.BufferT()]
    empty_model = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    files = []
    for index, clock in enumerate((time.time(), time.time() + 3600)):  # an hour apart
        monkeypatch.setattr(time, "time", lambda clock=clock: clock)
        model_file = tmp_path / f"model_{index}.tflite"
        model_file.write_bytes(empty_model)
        tflite_metadata.attach(model_file, b"metadata", {"labels.txt": "basophil\neosinophil\n"})
        files.append(model_file.read_bytes())
    assert files[0] == files[1]
