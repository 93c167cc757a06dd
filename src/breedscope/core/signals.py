"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

A scheduler's ``timeout``, ``kill`` and a closed SSH session send SIGTERM or SIGHUP, whose
default action ends the process on the spot: no status written, temporary files left behind.
Raised as :class:`Terminated`, a :class:`KeyboardInterrupt`, each goes through every ``except
KeyboardInterrupt`` that already keeps finished work and removes temporary files, and the
command exits with the shell's code for the signal (143, 129) instead of Ctrl-C's 130.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP)
# Ctrl-C too goes through this module's handler (still a KeyboardInterrupt, exit 130): then a
# KeyboardInterrupt that something swallowed (raised inside a destructor, whose exceptions Python
# only reports) is still known, and the next safe point stops (:func:`stop_if_signalled`).
CAUGHT = (signal.SIGINT, *HANDLED)
_received: list[int] = []  # the signal that ended this process's command, once it has arrived
_owner: list[int] = [0]  # the process whose command the handlers stop (not its forked children)


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (Ctrl-C, SIGTERM, SIGHUP): a KeyboardInterrupt, kept by every
    ``except KeyboardInterrupt`` that keeps finished work."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _owner[0]:
        # A library's forked worker (multiprocessing.Pool in cleanlab, scikit-learn) inherits the
        # handler; its pool stops it with SIGTERM, which must end it as it would without us.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _received:  # a second signal while finished work is being kept: let that finish
        return
    _received.append(signum)
    if signum == signal.SIGHUP:
        _detach_from_hung_up_terminal()
    raise Terminated(signum)


def _detach_from_hung_up_terminal() -> None:
    """After a hang-up, writing to the terminal fails (EIO), and a progress bar closing or the
    closing sentence would turn the orderly stop into an error: what went to the terminal goes
    nowhere now. Output sent to a file or a pipe is left alone."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            if os.isatty(fd):
                os.dup2(devnull, fd)
    finally:
        os.close(devnull)


@contextmanager
def as_interrupts() -> Iterator[None]:
    """For the length of a command: SIGTERM and SIGHUP raise :class:`Terminated`.

    Only the main thread can install handlers; elsewhere (a command called from a worker thread)
    the signals keep their usual action."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    _owner[0] = os.getpid()
    previous = {signum: signal.signal(signum, _raise) for signum in CAUGHT}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _owner[0] = 0  # no command is stopped by what arrives from now on


def stop_if_signalled() -> None:
    """At a safe point of long work (an epoch saved): stop if a signal arrived whose exception
    never reached the command (a KeyboardInterrupt raised inside a destructor is only reported)."""
    if _received and _owner[0] == os.getpid() and threading.current_thread() is threading.main_thread():
        raise Terminated(_received[0])


def exit_code(default: int = 130) -> int:
    """The shell's exit code for the signal that ended the command (128 + its number), or
    ``default`` (Ctrl-C's 130) when none did."""
    return 128 + _received[0] if _received else default


def ignore_in_worker() -> None:
    """In a worker process: the parent stops its workers itself after any of these signals (a
    closed terminal sends SIGHUP to the whole process group)."""
    for signum in (signal.SIGINT, *HANDLED):
        signal.signal(signum, signal.SIG_IGN)
