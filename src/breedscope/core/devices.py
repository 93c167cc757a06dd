"""The GPUs TensorFlow would use, asked cheaply first: on a machine without a GPU driver the
answer is known without importing TensorFlow (seconds a CPU-only run need not spend)."""

from __future__ import annotations

import os
from pathlib import Path

# Where an NVIDIA driver shows itself on Linux (CUDA is what TensorFlow's GPU build uses).
_DRIVER_FILES = (Path("/dev/nvidiactl"), Path("/proc/driver/nvidia"))


def _driver_present() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):  # GPUs hidden on purpose
        return False
    return any(path.exists() for path in _DRIVER_FILES)


def gpus() -> list[str]:
    """The GPUs TensorFlow sees (``/physical_device:GPU:0``, ...); empty on a CPU-only machine."""
    if not _driver_present():
        return []
    from breedscope.core import quiet

    quiet.load_tensorflow()
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def described(found: list[str]) -> str:
    """``CPU`` or ``GPU:0, GPU:1``: the devices a run records."""
    return ", ".join(name.removeprefix("/physical_device:") for name in found) if found else "CPU"
