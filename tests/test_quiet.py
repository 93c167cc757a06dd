"""TensorFlow's own output (core/quiet.py): kept out of a terminal and a Python session."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap


def test_while_tensorflow_loads_behind_python_output_is_shown_and_native_output_is_not() -> None:
    # A frozen run computes its features while TensorFlow loads in another thread: TensorFlow's
    # start-up lines (and what Python prints as it loads) must stay silenced without silencing
    # the progress bars and messages printed meanwhile, and the terminal is whole again
    # afterwards, after an error too.
    code = textwrap.dedent(
        """
        import os, sys, warnings
        from breedscope.core import quiet

        importing = quiet._import_tensorflow
        def import_as_a_library_might():  # what Python prints in the loading thread is dropped
            print("python stderr of the loader", file=sys.stderr)
            warnings.warn("a library's warning at import")
            importing()
        quiet._import_tensorflow = import_as_a_library_might
        # Warnings are shown whatever stands in for sys.stderr (a progress bar's proxy in a
        # notebook draws without writing to it): the loader's are dropped before that.
        shown = []
        warnings.showwarning = lambda message, *rest, **kwargs: shown.append(str(message))
        try:
            with quiet.tensorflow_loading_behind():
                print("python stdout while loading", flush=True)
                print("python stderr while loading", file=sys.stderr, flush=True)
                warnings.warn("a warning of this thread")
                os.write(2, b"native stderr while loading\\n")
                raise ValueError("stopped")
        except ValueError:
            os.write(2, b"native stderr afterwards\\n")
        print("tensorflow" in sys.modules, shown)
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user's shell
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["python stdout while loading", "True ['a warning of this thread']"]
    assert result.stderr.splitlines() == ["python stderr while loading", "native stderr afterwards"]


def test_tensorflows_own_log_lines_stay_out_of_a_python_session() -> None:
    # A notebook user has no TF_CPP_MIN_LOG_LEVEL set: once breedscope has loaded TensorFlow,
    # its C++ lines ("I0000 ... generator_dataset_op.cc] Memory patch applied", printed when a
    # run trains on images) must not reach the notebook.
    code = (
        "from breedscope.core import quiet; quiet.load_tensorflow(); import tensorflow as tf; "
        "data = tf.data.Dataset.from_generator(lambda: iter([1.0, 2.0]), output_signature="
        "tf.TensorSpec((), tf.float32)); print(sum(float(x) for x in data))"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.stdout.strip() == "3.0", result.stderr
    assert not re.search(r"^[IWE]\d{4} \d\d:\d\d:", result.stderr, re.MULTILINE), result.stderr
