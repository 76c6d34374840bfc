"""Writing a one-time secret to stdout: all of it reaches stdout, or the reason it did not.

``keys create``, ``keys rotate`` and ``users create --generate-password``
print a secret that exists nowhere else.  For a listing a closed stdout is a
normal end (``| head``, exit 0, docs/architecture.md §5.2); for such a secret
it is a loss, so these commands write it through :func:`stdout_failure` and
turn a failure into :class:`~vutf_cli.errors.SecretNotDelivered` (exit 9),
naming what was created.  Delivered means: written, flushed to the operating
system, and synced when stdout is a regular file (``> key.txt``).  A reader
that takes the bytes and then drops them (``| true`` that has read them) is
beyond what a writer can see.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from vutf_cli.errors import PipeClosed, StdoutFailed
from vutf_cli.output.stdout import discard_unwritten

if TYPE_CHECKING:
    from vutf_cli.output import Terminal

__all__ = ["stdout_failure"]

CLOSED = "stdout is closed"


def stdout_failure(terminal: Terminal, write: Callable[[], None]) -> str | None:
    """Run ``write`` (to ``terminal.stdout``): None once it is delivered, else the reason."""
    # A process started with fd 1 closed has a stdout whose reader is gone
    # (cli.standard_streams): that is PipeClosed here, as `| head` is.
    stream: TextIO = terminal.stdout.stream
    try:
        write()
        terminal.stdout.flush()
        _sync_if_regular_file(stream)
    except PipeClosed:
        reason = "stdout is closed: nothing reads it"
    except StdoutFailed as exc:
        reason = exc.reason
    except OSError as exc:  # fsync of the file stdout is (`> key.txt`)
        reason = exc.strerror or str(exc)
    except ValueError:
        # Writing to a closed file object.
        reason = CLOSED
    else:
        return None
    discard_unwritten(stream)
    return reason


def _sync_if_regular_file(stream: TextIO) -> None:
    fd = _fileno(stream)
    if fd is not None and stat.S_ISREG(os.fstat(fd).st_mode):
        os.fsync(fd)


def _fileno(stream: TextIO) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError):
        # In-memory streams (test runners) have no descriptor; nothing to sync.
        return None
