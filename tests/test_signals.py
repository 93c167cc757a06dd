"""SIGTERM and SIGHUP stop a command as Ctrl-C does (core/signals.py), in its own process only."""

from __future__ import annotations

import os
import signal

from breedscope.core import signals


def test_a_forked_worker_is_ended_by_sigterm_as_without_breedscope() -> None:
    # cleanlab's multiprocessing pool stops its forked workers with SIGTERM; with the command's
    # handler inherited, each worker printed a Terminated traceback instead of ending quietly.
    with signals.as_interrupts():
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the worker: waits until its pool stops it
            os.close(read)
            os.write(write, b"ready")
            try:
                signal.pause()
            finally:
                os._exit(3)  # reached only if the signal was turned into an exception
        os.close(write)
        assert os.read(read, 5) == b"ready"
        os.kill(child, signal.SIGTERM)
        _, status = os.waitpid(child, 0)
        os.close(read)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    assert signals.exit_code() == 130  # the parent's command was not stopped by it
