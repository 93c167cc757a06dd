"""Which runtime runs the frozen backbone fastest here: LiteRT (XNNPACK, what breedscope uses),
OpenVINO and ONNX Runtime, each on the same converted MobileNetV2 (224 px, pooled features),
against Keras, with how far each one's features are from Keras'.

OpenVINO reads the TFLite file itself; ONNX Runtime runs it converted by tf2onnx. Both run in
fp32 on every core (OpenVINO is told so: on CPUs with bf16 it would otherwise compute in bf16).
Bare forward passes on tensors in memory, batches of 8 (32 for Keras: each its best), median
of ``--repeats``. The two extra runtimes are not breedscope dependencies:

    pip install openvino onnxruntime tf2onnx onnx
    python benchmarks/runtimes.py [--images 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import imagenet_extractor, save, table

BATCH = 8


def images_per_second(
    run: Callable[[np.ndarray], np.ndarray], tensors: np.ndarray, repeats: int, batch: int = BATCH
) -> float:
    run(tensors[:batch])  # compile, allocate, warm up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for offset in range(0, len(tensors), batch):
            run(tensors[offset : offset + batch])
        rates.append(len(tensors) / (time.perf_counter() - start))
    return statistics.median(rates)


def openvino_run(model_file: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(model_file))
    model.reshape([BATCH, 224, 224, 3])
    compiled = core.compile_model(
        model,
        "CPU",
        {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()
    return lambda batch: request.infer([batch])[compiled.output(0)].copy()


def onnxruntime_run(model_file: Path, work: Path, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort
    import tf2onnx

    target = work / "backbone.onnx"
    tf2onnx.convert.from_tflite(str(model_file), opset=17, output_path=str(target))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    extractor = imagenet_extractor()

    from breedscope.features import runtime

    work = Path(tempfile.mkdtemp(prefix="bench_runtimes_"))
    keras = runtime.keras_forward(extractor)
    litert = runtime.converted(extractor, work, 224)
    threads = runtime.cpu_threads()
    tensors = runtime.check_images(224)  # smooth images, so that features are image-like
    tensors = np.concatenate([tensors] * (args.images // len(tensors)))
    tensors += np.random.default_rng(0).uniform(-8, 8, tensors.shape).astype(np.float32)
    reference = keras(tensors[:BATCH])

    candidates: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "keras (predict_on_batch)": lambda batch: keras(batch),
        "litert (XNNPACK)": lambda batch: litert(batch),
    }
    for name, make in (
        ("openvino (CPU, f32)", lambda: openvino_run(runtime.BACKBONE.model_file(work), threads)),
        ("onnxruntime (CPU)", lambda: onnxruntime_run(runtime.BACKBONE.model_file(work), work, threads)),
    ):
        try:
            candidates[name] = make()
        except ImportError as exc:
            print(f"{name}: not installed ({exc.name}); pip install openvino onnxruntime tf2onnx onnx")

    rows, results = [], {}
    for name, run in candidates.items():
        # Keras' compiled step is traced for batches of 32, its best size; the others take 8.
        batch = runtime.KERAS_BATCH if name.startswith("keras") else BATCH
        rate = images_per_second(run, tensors, args.repeats, batch)
        difference = float(np.abs(run(tensors[:BATCH]) - reference).max())
        results[name] = {"images_per_s": rate, "max_abs_difference_from_keras": difference}
        rows.append([name, f"{rate:.0f}", f"{difference:.1e}"])
    print(table(rows, [f"runtime ({threads} threads)", "img/s", "max |diff| vs Keras"]))
    print(f"mean |feature|: {float(np.abs(reference).mean()):.2f}")
    print(f"written: {save('runtimes', {'images': len(tensors), 'threads': threads, 'runtimes': results})}")


if __name__ == "__main__":
    main()
