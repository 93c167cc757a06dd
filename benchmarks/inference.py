"""Inference speed: the Keras model against its TFLite exports (float and int8).

Trains a short PBC run (frozen ImageNet MobileNetV2, 224 px), exports it, and measures the
single-image latency (median of 50 calls) and the batch throughput (batches of 32) of each.

    python benchmarks/inference.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from common import breedscope, environment, keras_home, pbc_run, save, table


def latency_and_throughput(predict_one, predict_batch, images) -> tuple[float, float]:
    for _ in range(3):
        predict_one(images[:1])
    latencies = []
    for i in range(50):
        start = time.perf_counter()
        predict_one(images[i % len(images)][None])
        latencies.append(time.perf_counter() - start)
    predict_batch(images[:32])
    start = time.perf_counter()
    batches = len(images) // 32
    for b in range(batches):
        predict_batch(images[b * 32 : (b + 1) * 32])
    throughput = batches * 32 / (time.perf_counter() - start)
    return statistics.median(latencies) * 1000, throughput


def main() -> None:
    keras = keras_home()
    home = Path(tempfile.mkdtemp(prefix="bench_home_"))
    runs = Path(tempfile.mkdtemp(prefix="bench_runs_"))
    env = environment(BREEDSCOPE_HOME=str(home), KERAS_HOME=str(keras))
    pbc_run(env, runs, "--epochs", "3")
    run_dir = next((runs / "pbc").iterdir())
    export_dir = run_dir / "export"
    breedscope("export", str(run_dir), "--format", "tflite", env=env)
    breedscope("export", str(run_dir), "--format", "tflite", "--quantize", "int8", env=env)

    os.environ.update(BREEDSCOPE_HOME=str(home), KERAS_HOME=str(keras), TF_CPP_MIN_LOG_LEVEL="2")
    import numpy as np
    import tensorflow as tf

    from breedscope.export import convert as export
    from breedscope.inference import predict as inference

    run = inference.load_run(run_dir)
    images = export.representative_images(run, count=192)

    def keras_call(x):
        return run.model.predict_on_batch(x)  # compiled graph: Keras at its fastest

    def tflite(path: Path):
        interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=os.cpu_count())
        index_in = interpreter.get_input_details()[0]["index"]
        index_out = interpreter.get_output_details()[0]["index"]

        def call(x):
            if interpreter.get_input_details()[0]["shape"][0] != len(x):
                interpreter.resize_tensor_input(index_in, [len(x), *x.shape[1:]])
                interpreter.allocate_tensors()
            interpreter.set_tensor(index_in, x.astype(np.float32))
            interpreter.invoke()
            return interpreter.get_tensor(index_out)

        interpreter.allocate_tensors()
        return call

    results = {}
    for name, call in (
        ("keras", keras_call),
        ("tflite float", tflite(export_dir / "model.tflite")),
        ("tflite int8", tflite(export_dir / "model_int8.tflite")),
    ):
        latency, throughput = latency_and_throughput(call, call, images)
        results[name] = {"latency_ms": latency, "images_per_s": throughput}
    sizes = {
        "keras": (run_dir / "model.keras").stat().st_size,
        "tflite float": (export_dir / "model.tflite").stat().st_size,
        "tflite int8": (export_dir / "model_int8.tflite").stat().st_size,
    }
    rows = [
        [name, f"{r['latency_ms']:.1f}", f"{r['images_per_s']:.1f}", f"{sizes[name] / 1e6:.1f}"]
        for name, r in results.items()
    ]
    print(table(rows, ["model", "1-image latency (ms)", "batch-32 images/s", "file (MB)"]))
    base = results["keras"]
    for name in ("tflite float", "tflite int8"):
        print(
            f"{name}: latency x{base['latency_ms'] / results[name]['latency_ms']:.2f} faster, "
            f"throughput x{results[name]['images_per_s'] / base['images_per_s']:.2f}"
        )
    print(f"written: {save('inference', {'results': results, 'bytes': sizes})}")


if __name__ == "__main__":
    main()
