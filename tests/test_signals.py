"""SIGTERM and SIGHUP stop a command as Ctrl-C does (core/signals.py), in its own process only."""

from __future__ import annotations

import os
import signal

import pytest

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


def test_a_ctrl_c_whose_keyboard_interrupt_was_swallowed_still_stops_the_next_safe_point() -> None:
    # A KeyboardInterrupt raised inside a destructor is only reported by Python, and the run went
    # on to its end with exit 0 (seen once in the interrupted-run test): the signal is remembered.
    with signals.as_interrupts():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        except KeyboardInterrupt:
            pass  # swallowed, as a destructor's exception is
        with pytest.raises(signals.Terminated) as stopped:
            signals.stop_if_signalled()
        assert stopped.value.signum == signal.SIGINT and signals.exit_code() == 130
    signals.stop_if_signalled()  # after the command: nothing to stop
