"""The feature cache against training through the frozen backbone every epoch.

Runs `breedscope run --dataset pbc --preset bccd` (15 epochs, frozen ImageNet MobileNetV2) on the
shared PBC images, each time from a cold cache: once as it is, once with `--no-feature-cache`,
alternating, ``--repeat`` times (a shared machine's speed drifts by several per cent between
minutes). Prints every wall time, the medians, their ratio and the test accuracies.

    python benchmarks/feature_cache.py [--epochs 15] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from common import environment, keras_home, pbc_run, save, table


def run(cache: bool, epochs: int, keras: Path) -> tuple[float, float]:
    home = Path(tempfile.mkdtemp(prefix="bench_home_"))
    runs = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    env = environment(BREEDSCOPE_HOME=str(home), KERAS_HOME=str(keras))
    flags = [] if cache else ["--no-feature-cache"]
    seconds = pbc_run(env, runs, "--epochs", str(epochs), *flags)
    evaluation = json.loads(next(runs.glob("pbc/*/evaluation.json")).read_text())
    return seconds, evaluation["accuracy"]


def fmt(values: list[float], spec: str) -> str:
    return " ".join(format(v, spec) for v in values)


def summary(results: list[tuple[float, float]]) -> dict:
    """Median wall time, every wall time, and the accuracies seen (one, when runs agree)."""
    return {
        "seconds": statistics.median(s for s, _ in results),
        "runs": [s for s, _ in results],
        "accuracy": sorted({a for _, a in results}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keras = keras_home()
    cached, plain = [], []
    for _ in range(args.repeat):
        cached.append(run(True, args.epochs, keras))
        plain.append(run(False, args.epochs, keras))
    cached, plain = summary(cached), summary(plain)
    ratio = plain["seconds"] / cached["seconds"]
    rows = [
        [label, f"{r['seconds']:.1f}", fmt(r["runs"], ".1f"), fmt(r["accuracy"], ".4f")]
        for label, r in (("feature cache", cached), ("--no-feature-cache", plain))
    ]
    print(table(rows, ["run (pbc, preset bccd)", "median s", "each run s", "test accuracy"]))
    difference = abs(cached["accuracy"][0] - plain["accuracy"][0]) * 100
    pairs = [p / c for p, c in zip(plain["runs"], cached["runs"], strict=True)]
    print(
        f"\nspeed-up with the cache: {ratio:.1f}x (medians; target: at least 5x; run by run "
        f"{fmt(pairs, '.1f')}); accuracy difference {difference:.1f} points"
    )
    results = {"epochs": args.epochs, "cached": cached, "no_cache": plain, "speedup": ratio, "pairs": pairs}
    path = save("feature_cache", results)
    print(f"written: {path}")


if __name__ == "__main__":
    main()
