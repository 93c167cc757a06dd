"""Choosing a ``tf.distribute`` strategy and the precision policy for a run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from typing import TYPE_CHECKING

from breedscope.core.errors import BreedscopeError, ConfigError
from breedscope.core.progress import console

if TYPE_CHECKING:
    import tensorflow as tf

# Split the CPU into this many logical devices (set before TensorFlow starts). It lets the
# mirrored strategy be exercised on a machine without GPUs, as the test suite does.
LOGICAL_CPUS_VARIABLE = "BREEDSCOPE_LOGICAL_CPUS"
# How often a worker waiting for the others says so (tests shorten it).
CLUSTER_NOTICE_VARIABLE = "BREEDSCOPE_CLUSTER_NOTICE_SECONDS"


def configure_devices() -> None:
    import tensorflow as tf

    count = int(os.environ.get(LOGICAL_CPUS_VARIABLE, "0") or 0)
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        # RuntimeError: devices were initialised earlier in this process; keep what exists.
        with contextlib.suppress(RuntimeError):
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )


def strategy(name: str) -> tf.distribute.Strategy:
    """``one``: the default device; ``mirrored``: every GPU (else every logical CPU);
    ``multiworker``: the machines ``TF_CONFIG`` lists; ``auto``: mirrored when there are several
    GPUs."""
    import tensorflow as tf

    if name == "multiworker":  # first: collectives are set up when TensorFlow's context starts
        return _multiworker()
    configure_devices()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one"
    if name == "one":
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


def cluster_task() -> tuple[dict[str, list[str]], str, int]:
    """The cluster and this process's task, from ``TF_CONFIG`` (what TensorFlow itself reads)."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "null")
        cluster, task = config["cluster"], config["task"]
        task_type, index = task["type"], task["index"]
        addresses = [address for kind in ("chief", "worker") for address in cluster.get(kind, [])]
        ports = [_address(address)[1] for address in addresses]
        sound = task_type in ("chief", "worker") and 0 <= index < len(cluster[task_type]) and all(ports)
    except (ValueError, TypeError, KeyError, AttributeError):
        sound = False
    if not sound:
        raise ConfigError(
            "train.strategy multiworker needs TF_CONFIG set on every machine to the cluster and this "
            'machine\'s task, e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}; see docs/configuration.md.'
        )
    return cluster, task_type, index


def _multiworker() -> tf.distribute.Strategy:
    import tensorflow as tf

    cluster, task_type, index = cluster_task()
    wait_for_peers(cluster, f"{task_type}:{index}")
    # TensorFlow now connects the workers in C++ holding the GIL, where Ctrl-C cannot reach
    # Python; the peers are known to be up, so this is brief, and Ctrl-C ends the process.
    previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    finally:
        signal.signal(signal.SIGINT, previous)


def _address(task: str) -> tuple[str, int]:
    host, _, port = task.rpartition(":")
    return host.strip("[]"), int(port)


def wait_for_peers(cluster: dict[str, list[str]], me: str) -> None:
    """Listen on this task's address until every other task of ``cluster`` listens on its own.

    A rendezvous in Python, before TensorFlow's (which blocks Ctrl-C): it names the machines
    still missing and can be interrupted. ``me`` is ``"TYPE:INDEX"``.
    """
    tasks = {
        f"{kind}:{i}": address
        for kind in ("chief", "worker")  # the tasks that train; an evaluator or a ps does not join
        for i, address in enumerate(cluster.get(kind, []))
    }
    others = {name: _address(address) for name, address in tasks.items() if name != me}
    console.print(f"Joining a cluster of {len(tasks)} tasks as {me}; waiting for the others.")
    with socket.create_server(("", _address(tasks[me])[1]), reuse_port=False) as listener:
        listener.listen()
        every = float(os.environ.get(CLUSTER_NOTICE_VARIABLE) or 30)
        started = last_notice = time.monotonic()
        while others:
            for name, address in list(others.items()):
                with contextlib.suppress(OSError), socket.create_connection(address, timeout=1):
                    del others[name]
            if others and time.monotonic() - last_notice >= every:
                last_notice = time.monotonic()
                missing = ", ".join(tasks[name] for name in others)
                console.print(f"Still waiting for {missing} ({last_notice - started:.0f} s); Ctrl-C stops.")
            time.sleep(0.2 if others else 0)


def same_on_every_worker(strategy: tf.distribute.Strategy, digest: str) -> bool:
    """Whether every replica holds the same hex ``digest`` (its first 160 bits), by one sum.

    Each replica adds 20-bit pieces ``v`` and their squares: n * sum(v^2) == sum(v)^2 only when
    all are equal, and both sums are exact in float64 (a sum of reductions is all a strategy
    offers)."""
    import numpy as np
    import tensorflow as tf

    pieces = np.array([int(digest[i : i + 5], 16) for i in range(0, 40, 5)], dtype=np.float64)
    values = tf.constant(np.concatenate([pieces, pieces**2]))

    @tf.function
    def summed() -> tf.Tensor:  # in a graph: an eager cross-worker reduction fails (keras#20585)
        return strategy.reduce("SUM", strategy.run(lambda: tf.identity(values)), axis=None)

    total = summed().numpy()
    sums, squares = total[: len(pieces)], total[len(pieces) :]
    return bool(np.all(strategy.num_replicas_in_sync * squares == sums * sums))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run (``chief``, or worker 0 of a cluster without one)."""
    return strategy.extended.should_checkpoint


def needs_custom_loop(strategy: tf.distribute.Strategy) -> bool:
    """``model.fit`` fails under several workers (keras-team/keras#20585); they train with
    :class:`breedscope.training.custom_loop.CustomLoop`."""
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def set_precision(mixed: bool) -> None:
    import keras
    import tensorflow as tf

    if mixed and not tf.config.list_physical_devices("GPU"):
        raise BreedscopeError(
            "train.mixed_precision speeds up GPUs only; this machine has none, so leave it off."
        )
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
