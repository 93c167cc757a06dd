"""TFLite model metadata for an image classifier, in the format MediaPipe Tasks and the TFLite
Task Library read: the ``TFLITE_METADATA`` buffer (schema ``metadata_schema.fbs``, file
identifier ``M001``) with the input's colour space and normalisation and the output's labels,
and ``labels.txt`` packed into the model file as an associated file.

The libraries that write this (``tflite-support``, ``mediapipe``) cannot be installed beside
TensorFlow 2.16+ (tflite-support pins protobuf below 4) or pull in a second OpenCV, so the few
tables an image classifier needs are built here with ``flatbuffers``, which TensorFlow already
depends on; the field slots follow ``metadata_schema.fbs``. The model itself is edited with
TensorFlow's own ``flatbuffer_utils``. The test suite reads the result back with TFLite
Support's reader.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import flatbuffers
import numpy as np

METADATA_NAME = "TFLITE_METADATA"  # the name readers look the buffer up by
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # ImageProperties, NormalizationOptions, tensor associated files
# Enum and union values from metadata_schema.fbs.
COLOR_SPACE_RGB = 1
CONTENT_FEATURE_PROPERTIES = 1
CONTENT_IMAGE_PROPERTIES = 2
PROCESS_UNIT_NORMALIZATION = 1
FILE_TENSOR_AXIS_LABELS = 2


class _Tables:
    """Small helpers over ``flatbuffers.Builder`` for the tables of the metadata schema."""

    def __init__(self) -> None:
        self.builder = flatbuffers.Builder(1024)

    def string(self, text: str) -> int:
        return self.builder.CreateString(text)

    def floats(self, values: list[float]) -> int:
        self.builder.StartVector(4, len(values), 4)
        for value in reversed(values):
            self.builder.PrependFloat32(value)
        return self.builder.EndVector()

    def tables(self, offsets: list[int]) -> int:
        self.builder.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            self.builder.PrependUOffsetTRelative(offset)
        return self.builder.EndVector()

    def table(self, slots: int, offsets: dict[int, int], bytes_: dict[int, int] | None = None) -> int:
        """A table with ``slots`` fields: offsets (strings, vectors, tables) and byte-sized values."""
        self.builder.StartObject(slots)
        for slot, value in (bytes_ or {}).items():
            self.builder.PrependUint8Slot(slot, value, 0)
        for slot, offset in offsets.items():
            self.builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
        return self.builder.EndObject()

    def stats(self, low: float, high: float) -> int:  # Stats: max (0), min (1)
        return self.table(2, {0: self.floats([high]), 1: self.floats([low])})


def classifier_metadata(
    name: str, description: str, version: str, image_size: int, labels_file: str
) -> bytes:
    """The metadata flatbuffer of an image classifier that takes RGB pixels in [0, 255] and
    gives one probability per class, in the order of ``labels_file``."""
    t = _Tables()
    # Input: an RGB image; the model normalises itself, so readers pass pixels as they are.
    image_properties = t.table(2, {}, {0: COLOR_SPACE_RGB})  # ImageProperties: color_space (0)
    input_content = t.table(3, {1: image_properties}, {0: CONTENT_IMAGE_PROPERTIES})
    normalisation = t.table(2, {0: t.floats([0.0]), 1: t.floats([1.0])})  # mean (0), std (1)
    unit = t.table(2, {1: normalisation}, {0: PROCESS_UNIT_NORMALIZATION})
    input_tensor = t.table(
        7,  # TensorMetadata: name 0, description 1, content 3, process_units 4, stats 5
        {
            0: t.string("image"),
            1: t.string(f"RGB image, {image_size}x{image_size} pixels, values in [0, 255]."),
            3: input_content,
            4: t.tables([unit]),
            5: t.stats(0.0, 255.0),
        },
    )
    # Output: one probability per class, labelled by the associated labels file.
    file_name, file_description = t.string(labels_file), t.string("Class names, in the order of the output.")
    t.builder.StartObject(5)  # AssociatedFile: name 0, description 1, type 2 (a signed byte)
    t.builder.PrependInt8Slot(2, FILE_TENSOR_AXIS_LABELS, 0)
    t.builder.PrependUOffsetTRelativeSlot(1, file_description, 0)
    t.builder.PrependUOffsetTRelativeSlot(0, file_name, 0)
    labels = t.builder.EndObject()
    feature_properties = t.table(0, {})
    output_content = t.table(3, {1: feature_properties}, {0: CONTENT_FEATURE_PROPERTIES})
    output_tensor = t.table(
        7,  # TensorMetadata: name 0, description 1, content 3, stats 5, associated_files 6
        {
            0: t.string("probability"),
            1: t.string("Probability of each class (softmax)."),
            3: output_content,
            5: t.stats(0.0, 1.0),
            6: t.tables([labels]),
        },
    )
    subgraph = t.table(10, {2: t.tables([input_tensor]), 3: t.tables([output_tensor])})
    model = t.table(
        8,  # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, min_parser_version 7
        {
            0: t.string(name),
            1: t.string(description),
            2: t.string(version),
            3: t.tables([subgraph]),
            7: t.string(MIN_PARSER_VERSION),
        },
    )
    t.builder.Finish(model, file_identifier=FILE_IDENTIFIER)
    return bytes(t.builder.Output())


def attach(model_file: Path, metadata: bytes, files: dict[str, str]) -> None:
    """Put ``metadata`` into the TFLite model as its ``TFLITE_METADATA`` buffer and pack
    ``files`` (name → text) into the model file as its associated files (a zip appended to the
    flatbuffer, which TFLite ignores and metadata readers open)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_file.read_bytes()))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME] + [entry]
    model_file.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    with zipfile.ZipFile(model_file, "a") as packed:
        for name, text in files.items():
            # Dated at zip's epoch, not now: one model exported twice is one file (one checksum).
            entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o600 << 16  # the permissions writestr(name) would give it
            packed.writestr(entry, text)
