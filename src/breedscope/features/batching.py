"""Cutting a number of items into batches: used by feature extraction, training and prediction."""

from __future__ import annotations


def batch_slices(count: int, size: int, replicas: int = 1, drop_remainder: bool = False) -> list[slice]:
    """Batches of ``size`` over ``count`` items, safe for ``replicas`` devices.

    TensorFlow's CPU kernels fail on a batch that leaves a replica empty or splits unevenly in
    training, so with several replicas a training batch is cut to a multiple of ``replicas``
    (``drop_remainder``: the few left out differ every epoch, as the order is reshuffled), and
    an evaluation batch too small for every replica joins the one before it.
    """
    if drop_remainder and replicas > 1:
        bounds = []
        for start in range(0, count, size):
            end = start + (min(size, count - start) // replicas) * replicas
            if end > start:
                bounds.append(slice(start, end))
        return bounds
    starts = list(range(0, count, size))
    if len(starts) > 1 and count - starts[-1] < replicas:
        starts.pop()
    return [slice(start, end) for start, end in zip(starts, [*starts[1:], count], strict=True)]
