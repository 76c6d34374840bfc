"""The signals that end vutf as Ctrl-C does, named once.

SIGINT (Ctrl-C), SIGTERM (``kill``, a service manager, a CI timeout) and
SIGHUP (the terminal or SSH session went away) all end a command the same
way: as ``KeyboardInterrupt`` in the main thread, so transactions roll back,
temporary files are removed and the exit code is 130 (docs/architecture.md
§5.4).  :func:`vutf_cli.cli.app.main` installs the handlers; the COPY
watchdog (:mod:`vutf_cli.db.copy_session`) watches for the same signals
while libpq waits on the server.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Final, NoReturn

__all__ = ["INTERRUPTING_SIGNALS", "interrupt_on_signals", "interrupts_held"]

INTERRUPTING_SIGNALS: Final = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


def interrupt_on_signals() -> None:
    """Make SIGTERM and SIGHUP raise ``KeyboardInterrupt``, as Python makes SIGINT.

    A signal ignored by whoever started vutf (``nohup``, a service manager)
    stays ignored, as Python leaves an ignored SIGINT.
    """
    for sig in INTERRUPTING_SIGNALS - {signal.SIGINT}:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Run the block whole: a signal that would interrupt it is handled once it ends.

    ``KeyboardInterrupt`` is raised wherever Python happens to be.  Inside
    SQLAlchemy's commit, rollback or close it can land between two of its
    own state changes, and its cleanup then fails its own assertions (exit 1
    instead of 130).  So the end of a transaction holds the signals whose
    handler is Python code (vutf's, Python's for Ctrl-C, or an embedding
    program's) and calls that handler after the block.  Only the main thread
    receives signals, so elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    held = {}
    for sig in INTERRUPTING_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):
            held[sig] = handler
            signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, handler)
        if received:  # the first one, as it would have been handled
            held[signal.Signals(received[0])](received[0], None)
