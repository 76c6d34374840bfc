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
from types import FrameType
from typing import Final, NoReturn

__all__ = ["INTERRUPTING_SIGNALS", "interrupt_on_signals"]

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
