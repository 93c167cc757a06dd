"""Where a run's time goes: the CLI in this process, with a timer around each pipeline stage.

    python benchmarks/stages.py run --dataset pbc --preset bccd --format markdown

Arguments are the CLI's own. Prints each stage's start and duration (seconds since this
script started; stages of 50 ms or more) and when the CLI returned; run it under `time` to see
the interpreter's shutdown as well. Use a fresh BREEDSCOPE_HOME to time a cold feature cache.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import sys
import time

START = time.perf_counter()

# (module, attribute path) of each stage, in pipeline order.
STAGES = [
    ("breedscope.training.job", "prepare"),  # TensorFlow's start, the backbone built with its weights
    ("breedscope.pipeline.run", "ensure_dataset"),
    (
        "breedscope.training.feature_data",
        "features_ahead",
    ),  # features before TensorFlow, which loads meanwhile
    ("breedscope.runs.environment", "environment"),
    ("breedscope.training.trainer", "train"),
    ("breedscope.features.runtime", "choose"),  # converts the backbone for LiteRT the first time
    # each split's features, all views at once
    ("breedscope.features.cache", "FeatureCache.features_of_views"),
    ("breedscope.training.trainer", "_Trainer.fit"),
    ("breedscope.pipeline.run", "store_model"),
    ("breedscope.pipeline.run", "evaluate"),
    ("breedscope.pipeline.samples", "draw_all"),
    ("breedscope.pipeline.run", "render"),
]
timings: list[tuple[str, float, float]] = []


def timed(module_name: str, path: str) -> None:
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    function = getattr(owner, name, None)
    if function is None:  # an older commit under test, without this stage
        return

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            timings.append((path, began - START, time.perf_counter() - began))

    setattr(owner, name, wrapper)


def report() -> None:
    for name, began, took in sorted(timings, key=lambda t: t[1]):
        if took >= 0.05:
            print(f"{began:7.2f} s  +{took:6.2f} s  {name}", file=sys.stderr)
    print(f"{time.perf_counter() - START:7.2f} s  main returned", file=sys.stderr)


def main() -> None:
    import breedscope.pipeline.run  # noqa: F401  (the stages' modules, imported before timing)

    print(f"{time.perf_counter() - START:7.2f} s  imports done", file=sys.stderr)
    for module_name, path in STAGES:
        timed(module_name, path)
    from breedscope.cli import main as cli_main

    sys.argv = ["breedscope", *sys.argv[1:]]
    atexit.register(report)
    cli_main()


if __name__ == "__main__":
    main()
