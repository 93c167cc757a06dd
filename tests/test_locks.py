"""One run per run directory at a time (core/locks.py): from another process and from the same one."""

from __future__ import annotations

from pathlib import Path

import pytest

import breedscope as bs
from breedscope.pipeline import run as pipeline
from tests.helpers import cli

pytestmark = pytest.mark.whole_run


def test_a_run_directory_in_use_is_not_resumed_twice(finished_run: Path) -> None:
    from filelock import FileLock

    from breedscope.runs.rundir import LOCK as LOCK_FILE

    run_dir = finished_run
    before = (run_dir / "predictions.csv").read_text()
    with FileLock(run_dir / LOCK_FILE):  # as another breedscope process writing it would hold it
        refused = cli("run", "--resume", str(run_dir))
    assert refused.returncode == 2, refused.stderr
    assert "is being written by another breedscope process" in " ".join(refused.stderr.split())
    assert (run_dir / "predictions.csv").read_text() == before


def test_a_second_run_at_once_in_one_process_is_refused_in_one_sentence(finished_run: Path) -> None:
    # Two bs.run calls in two threads used to give other accuracies every time.
    import threading

    started, release, refused = threading.Event(), threading.Event(), []

    def first_run() -> None:  # holds the process's one run, as a run in progress does
        with pipeline._only_run_in_this_process():
            started.set()
            release.wait(60)

    holder = threading.Thread(target=first_run, daemon=True)
    holder.start()
    assert started.wait(60)
    try:
        with pytest.raises(bs.BreedscopeError, match="Another run is in progress in this process") as caught:
            bs.run(dataset="shapes", epochs=1, runs_dir=finished_run.parents[1])
        refused.append(str(caught.value))
    finally:
        release.set()
        holder.join(60)
    assert "run them one after the other, or in separate processes" in refused[0]
    assert sorted(p.name for p in (finished_run.parent).iterdir()) == ["run"]  # no run directory made
