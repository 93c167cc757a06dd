"""Batches for replicas (features/batching.py)."""

from __future__ import annotations

import itertools

import pytest

from breedscope.features import batching


@pytest.mark.parametrize(
    "count,size,replicas,drop,expected",
    [
        (25, 8, 1, False, [8, 8, 8, 1]),
        (25, 8, 2, False, [8, 8, 9]),  # a batch of 1 cannot feed two replicas: merged
        (25, 8, 2, True, [8, 8, 8]),  # training: cut to a multiple of the replicas
        (27, 8, 2, True, [8, 8, 8, 2]),
    ],
)
def test_batch_slices(count: int, size: int, replicas: int, drop: bool, expected: list[int]) -> None:
    slices = batching.batch_slices(count, size, replicas, drop_remainder=drop)
    assert [s.stop - s.start for s in slices] == expected
    assert slices[0].start == 0 and all(a.stop == b.start for a, b in itertools.pairwise(slices))
