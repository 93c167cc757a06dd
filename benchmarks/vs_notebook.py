"""breedscope against the notebook way the studies trained, on the same images and split.

The notebook way: Keras `image_dataset_from_directory` over train/test folders, the same frozen
ImageNet MobileNetV2 with `preprocess_input`, the same head, optimiser, epochs, batch and image
size, `model.fit` through the backbone every epoch. breedscope: `breedscope run` with the study
preset, early stopping off so both train the same number of epochs. Reports the wall-time ratio
and both test accuracies. Target: breedscope at least 5x faster at 15 or more epochs, accuracy
within 1 point.

    python benchmarks/vs_notebook.py [--datasets pbc,chest_xray] [--epochs 15]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import yaml
from common import SHARED, breedscope, environment, keras_home, require, save, table

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", default="pbc,chest_xray")
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    keras_dir = keras_home()
    results, rows = {}, []
    for name in args.datasets.split(","):
        plugin, archive, preset = SOURCES[name]
        home = Path(tempfile.mkdtemp(prefix="bench_home_"))
        runs = Path(tempfile.mkdtemp(prefix="bench_runs_"))
        env = environment(BREEDSCOPE_HOME=str(home), KERAS_HOME=str(keras_dir))
        fetch = ["fetch", plugin, "--from", str(require(SHARED / "datasets" / archive))]
        breedscope(*fetch, *(["--name", name] if plugin == "folder" else []), env=env)
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
        results[name] = {
            "breedscope": {"seconds": ours, "accuracy": ours_accuracy},
            "notebook": {"seconds": theirs, "accuracy": theirs_accuracy},
            "speedup": theirs / ours,
        }
        rows.append(
            [
                name,
                f"{ours:.0f}",
                f"{theirs:.0f}",
                f"{theirs / ours:.1f}x",
                f"{ours_accuracy:.4f}",
                f"{theirs_accuracy:.4f}",
            ]
        )
        print(rows[-1], flush=True)
    print(
        table(rows, ["dataset", "breedscope s", "notebook s", "speed-up", "breedscope acc", "notebook acc"])
    )
    print(f"written: {save('vs_notebook', {'epochs': args.epochs, 'results': results})}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
