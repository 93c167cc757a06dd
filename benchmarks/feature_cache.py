"""The feature cache against training through the frozen backbone every epoch.

Runs `breedscope run --dataset pbc --preset bccd` (15 epochs, frozen ImageNet MobileNetV2) twice
on the shared PBC images, each from a cold cache: once as it is, once with
`--no-feature-cache`. Prints both wall times, their ratio and both test accuracies.

    python benchmarks/feature_cache.py [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    keras = keras_home()
    cached_s, cached_acc = run(True, args.epochs, keras)
    plain_s, plain_acc = run(False, args.epochs, keras)
    ratio = plain_s / cached_s
    print(
        table(
            [
                ["feature cache", f"{cached_s:.1f}", f"{cached_acc:.4f}"],
                ["--no-feature-cache", f"{plain_s:.1f}", f"{plain_acc:.4f}"],
            ],
            ["run (pbc, preset bccd)", "seconds", "test accuracy"],
        )
    )
    print(
        f"\nspeed-up with the cache: {ratio:.1f}x (target: at least 5x); "
        f"accuracy difference {abs(cached_acc - plain_acc) * 100:.1f} points"
    )
    path = save(
        "feature_cache",
        {
            "epochs": args.epochs,
            "cached": {"seconds": cached_s, "accuracy": cached_acc},
            "no_cache": {"seconds": plain_s, "accuracy": plain_acc},
            "speedup": ratio,
        },
    )
    print(f"written: {path}")


if __name__ == "__main__":
    main()
