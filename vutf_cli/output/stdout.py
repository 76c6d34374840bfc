"""``Stdout``: the one place vutf writes data to stdout.

A reader that stops early (``vutf audit export | head``) closes the pipe, and
the next write or flush fails with ``BrokenPipeError``.  That is a normal way
for a pipeline to end, not a failure, so every write here turns it into
:class:`~vutf_cli.errors.PipeClosed`, which the entry point maps to exit 0
(docs/architecture.md §5).  Any other failure to write the process's stdout
(``> /dev/full``, a quota, an I/O error) is the environment's, not a bug:
:class:`~vutf_cli.errors.StdoutFailed`, exit 7.  A stream that is not the
process's stdout (an ``--output-file``, the pager's input) keeps its
``OSError`` for its owner to name.  Nothing else touches the stream, so no
``BrokenPipeError`` leaves it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from vutf_cli.errors import PipeClosed, StdoutFailed

__all__ = ["Stdout", "colors_allowed", "discard_unwritten", "isatty"]

_STDOUT_FD = 1


def isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        # No isatty, or a closed stream (e.g. at interpreter shutdown).
        return False


def colors_allowed(no_color: bool) -> bool:
    """Neither --no-color nor NO_COLOR (https://no-color.org/: set *and non-empty*)."""
    return not no_color and os.environ.get("NO_COLOR", "") == ""


class Stdout:
    """stdout as the renderers and commands see it: text, bytes, and what kind of stream.

    ``stream=None`` means whatever ``sys.stdout`` is *when written to*, so
    test runners that swap it (Click's CliRunner) see the output.
    ``tty=True`` says the stream ends on a terminal although it is a pipe
    (the pager's input).
    """

    def __init__(
        self, stream: TextIO | None = None, *, no_color: bool = False, tty: bool | None = None
    ) -> None:
        self._stream = stream
        self.no_color = no_color
        self._tty = tty

    @property
    def stream(self) -> TextIO:
        """The text stream written to now."""
        return self._stream if self._stream is not None else sys.stdout

    @property
    def is_tty(self) -> bool:
        return isatty(self.stream) if self._tty is None else self._tty

    @property
    def color(self) -> bool:
        """Whether ANSI styling may be written: colours allowed, and a terminal."""
        return colors_allowed(self.no_color) and self.is_tty

    # The three methods below are every way data reaches stdout; each turns
    # a closed pipe into PipeClosed, and the process's stdout failing into
    # StdoutFailed (_named_failures).
    def write(self, text: str) -> None:
        stream = self.stream
        with _named_failures(stream):
            stream.write(text)

    def write_bytes(self, data: bytes) -> None:
        """Write UTF-8 ``data`` to the binary stream under stdout when there is one.

        The caller flushes the text layer first (:meth:`flush`) so that what
        it wrote earlier comes first.
        """
        stream = self.stream
        binary = getattr(stream, "buffer", None)
        with _named_failures(stream):
            if binary is not None:
                binary.write(data)
            else:
                stream.write(data.decode("utf-8"))

    def flush(self) -> None:
        stream = self.stream
        binary = getattr(stream, "buffer", None)
        with _named_failures(stream):
            # The text layer first: it hands what it holds to the binary layer.
            stream.flush()
            if binary is not None:
                binary.flush()


@contextmanager
def _named_failures(stream: TextIO) -> Iterator[None]:
    """A write to ``stream`` that fails as :func:`_failure` names it (else its OSError)."""
    try:
        yield
    except OSError as exc:
        failure = _failure(stream, exc)
        if failure is None:
            raise
        raise failure from exc


def _failure(stream: TextIO, exc: OSError) -> PipeClosed | StdoutFailed | None:
    """What a failed write to ``stream`` is for its caller (None: the OSError itself)."""
    if isinstance(exc, BrokenPipeError):
        return PipeClosed()
    if _is_process_stdout(stream):
        return StdoutFailed(exc.strerror or str(exc))
    return None


def _is_process_stdout(stream: TextIO) -> bool:
    """Whether ``stream`` writes to the process's stdout.

    By its descriptor, not by being ``sys.stdout`` now: a progress bar puts
    a proxy there while it draws, and a writer bound earlier keeps the stream.
    """
    if stream is sys.stdout:
        return True
    try:
        return stream.fileno() == _STDOUT_FD
    except (AttributeError, OSError, ValueError):  # an in-memory stream
        return False


def discard_unwritten(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at /dev/null, once writing to it has failed.

    What could not be written stays in Python's buffer, and at exit Python
    flushes it again: on a closed pipe or a full disk that fails again and
    prints "Exception ignored ..." (and turns the exit code into 120).
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # an in-memory stream (a test runner's): nothing is flushed at exit
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, fd)
    except OSError:
        pass
    finally:
        os.close(devnull)
