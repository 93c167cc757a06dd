"""breedscope against the notebook way the studies trained, on the same images and split.

The notebook way: Keras `image_dataset_from_directory` over train/test folders, the same frozen
ImageNet MobileNetV2 with `preprocess_input`, the same head, optimiser, epochs, batch and image
size, `model.fit` through the backbone every epoch. breedscope: `breedscope run` with the study
preset, early stopping off so both train the same number of epochs. Reports the wall-time ratio
and both test accuracies, as medians of ``--repeats`` pairs. Targets: breedscope at least 10x
faster on PBC and 8x on chest X-rays at 15 epochs, accuracy within 1 point.

Every breedscope run starts with an empty feature cache. The backbone converted for LiteRT (3 s,
once per machine, like Keras' download of the ImageNet weights, which neither side pays here) is
made before the first pair and kept; the first run's time with it is reported too.

    python benchmarks/vs_notebook.py [--datasets pbc,chest_xray] [--epochs 15] [--repeats 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml
from common import RESULTS, SHARED, breedscope, environment, keras_home, require, save, table

# dataset: (plugin, shared archive, study preset)
SOURCES = {
    "pbc": ("folder", "pbc-wbc.zip", "bccd"),
    "chest_xray": ("chest_xray", "chest-xray-pneumonia.zip", "chest_xray"),
}


def notebook(
    run_dir: Path, image_root: Path, head: list[int], epochs: int, lr: float, dropout: float
) -> tuple[float, float]:
    """Train the notebook way on the run's own manifest; returns (seconds, test accuracy)."""
    import keras

    start = time.perf_counter()
    folders = Path(tempfile.mkdtemp(prefix="bench_notebook_"))
    with open(run_dir / "manifest.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            split = "train" if row["split"] in ("train", "val") else "test"
            link = folders / split / row["label"] / row["path"].replace("/", "__")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(image_root / row["path"])
    options = {"image_size": (224, 224), "batch_size": 32, "label_mode": "categorical", "seed": 42}
    train = keras.utils.image_dataset_from_directory(folders / "train", shuffle=True, **options)
    test = keras.utils.image_dataset_from_directory(folders / "test", shuffle=False, **options)
    base = keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False, weights="imagenet")
    base.trainable = False
    inputs = keras.Input((224, 224, 3))
    x = keras.applications.mobilenet_v2.preprocess_input(inputs)
    x = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    for width in head:
        x = keras.layers.Dense(width, activation="relu")(x)
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(len(train.class_names), activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(lr), "categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(test, verbose=0)
    return time.perf_counter() - start, float(accuracy)


def clear_features(home: Path) -> None:
    """Empty the feature cache, keeping the converted backbones (``backbone.*`` files)."""
    for extractor in (home / "features").glob("*"):
        for entry in extractor.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="pbc,chest_xray")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    keras_dir = keras_home()
    results, rows = {}, []
    for name in args.datasets.split(","):
        plugin, archive, preset = SOURCES[name]
        home = Path(tempfile.mkdtemp(prefix="bench_home_"))
        env = environment(BREEDSCOPE_HOME=str(home), KERAS_HOME=str(keras_dir))
        fetch = ["fetch", plugin, "--from", str(require(SHARED / "datasets" / archive))]
        breedscope(*fetch, *(["--name", name] if plugin == "folder" else []), env=env)
        warm_up = ["run", "--dataset", name, "--preset", preset, "--epochs", "1", "--format", "markdown"]
        first = breedscope(*warm_up, "--runs-dir", tempfile.mkdtemp(prefix="bench_runs_"), env=env)
        print(f"{name}: first run, converting the backbone, 1 epoch: {first:.1f} s", flush=True)
        pairs = []
        for repeat in range(args.repeats):
            clear_features(home)
            runs = Path(tempfile.mkdtemp(prefix="bench_runs_"))
            ours = breedscope(
                "run",
                "--dataset",
                name,
                "--preset",
                preset,
                "--epochs",
                str(args.epochs),
                "--patience",
                "100000",
                "--format",
                "markdown",
                "--runs-dir",
                str(runs),
                env=env,
            )
            run_dir = next((runs / name).iterdir())
            ours_accuracy = json.loads((run_dir / "evaluation.json").read_text())["accuracy"]
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            os.environ["KERAS_HOME"] = str(keras_dir)
            image_root = home / "datasets" / name / "raw"
            theirs, theirs_accuracy = notebook(
                run_dir,
                image_root,
                config["model"]["head"],
                args.epochs,
                config["train"]["learning_rate"],
                float(config["model"]["dropout"]),
            )
            pairs.append(
                {"breedscope": ours, "notebook": theirs, "ours_acc": ours_accuracy, "acc": theirs_accuracy}
            )
            print(name, repeat + 1, pairs[-1], flush=True)
        ours_s = statistics.median(p["breedscope"] for p in pairs)
        theirs_s = statistics.median(p["notebook"] for p in pairs)
        results[name] = {
            "pairs": pairs,
            "breedscope_median_s": ours_s,
            "notebook_median_s": theirs_s,
            "first_run_with_conversion_s": first,
        }
        results[name]["speedup"] = theirs_s / ours_s
        results[name]["date"] = date.today().isoformat()
        rows.append(
            [
                name,
                f"{ours_s:.1f}",
                f"{theirs_s:.0f}",
                f"{theirs_s / ours_s:.1f}x",
                ", ".join(f"{p['notebook'] / p['breedscope']:.1f}" for p in pairs),
                ", ".join(f"{p['ours_acc']:.4f}" for p in pairs),
                ", ".join(f"{p['acc']:.4f}" for p in pairs),
            ]
        )
    header = [
        "dataset",
        "breedscope s",
        "notebook s",
        "speed-up",
        "each pair",
        "breedscope acc",
        "notebook acc",
    ]
    print(table(rows, header))
    # Datasets not run this time keep their last results (each with its date).
    earlier = RESULTS / "vs_notebook.json"
    kept = json.loads(earlier.read_text())["results"] if earlier.is_file() else {}
    print(f"written: {save('vs_notebook', {'epochs': args.epochs, 'results': {**kept, **results}})}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
