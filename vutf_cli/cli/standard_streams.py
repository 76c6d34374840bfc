"""The process's standard streams as vutf needs them, set up before anything runs.

**Closed at start.**  A process started with stdin, stdout or stderr closed
(``<&-``, ``>&-``, ``2>&-``; some job runners and daemons start children so)
has no Python stream for it (``sys.stdout is None``: every write was an
internal error, exit 1) and a free file descriptor 0, 1 or 2, which the next
file vutf opens would take, so that an output file or a database socket
would receive what was meant for that stream.  So each missing one is opened:

* stdin on ``/dev/null``: empty input, as ``< /dev/null`` gives;
* stdout on the write end of a pipe whose reader is already gone, so that
  writing to it is exactly a closed pipe: data ends quietly (exit 0) and a
  one-time secret is not delivered (exit 9), never written to nowhere with
  exit 0;
* stderr on ``/dev/null``: messages are dropped, the exit code still tells.

**stdout fails as vutf says.**  A write to stdout that fails is
:class:`~vutf_cli.errors.PipeClosed` (its reader went away: exit 0, a
one-time secret exit 9) or :class:`~vutf_cli.errors.StdoutFailed` (``>
file`` on a full disk, an I/O error: exit 7), whoever writes: vutf's
renderers, and Typer itself (help, ``--version``, completion scripts).  A
full disk was an OSError, exit 1.

**stderr never fails a command.**  Its reader may go away too (``vutf … 2>&1
| head -1``), or it may be a file on a full disk: a message that cannot be
written is dropped (and so is every later one), and the command ends with
the exit code it has, never exit 1 because a warning could not be shown.

**Encoding.**  Python encodes the standard streams in the locale's encoding,
which is ASCII or Latin-1 under a non-UTF-8 locale (``PYTHONUTF8=0`` with
``LC_ALL=POSIX``, ``PYTHONIOENCODING=ascii``): a name with an ``ë`` ended a
listing half-written with exit 1, and a password read from a pipe was not
the bytes sent.  stdin and stdout that are not a terminal carry data (JSON,
CSV and YAML are UTF-8, and ``jq`` reads nothing else), so they are UTF-8
whatever the locale; a terminal keeps its encoding, and what it cannot show
(there and on stderr) is written as a visible escape (``\\xeb``), never an
error.  stdin at a terminal is left alone: a password typed there stays as
typed.

Only :func:`vutf_cli.cli.app.main` calls this (docs/architecture.md §5.2):
a test's own process has its streams.
"""

from __future__ import annotations

import codecs
import io
import os
import sys
from typing import TYPE_CHECKING, TextIO

from vutf_cli.errors import PipeClosed, StdoutFailed

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

__all__ = ["prepare_standard_streams"]

_STDIN, _STDOUT, _STDERR = 0, 1, 2


def prepare_standard_streams() -> None:
    """Open each standard stream that is closed; make the data streams UTF-8 (see above)."""
    for fd in (_STDIN, _STDOUT, _STDERR):  # in order: each takes the lowest free number
        try:
            os.fstat(fd)
        except OSError:
            _occupy(fd)
    sys.stdin = _fitted(sys.stdin, _STDIN)
    stdout = _fitted(sys.stdout, _STDOUT)
    # Python's own choice: stdout line-buffered at a terminal, stderr always.
    at_terminal = isinstance(stdout, io.TextIOWrapper) and stdout.line_buffering
    sys.stdout = _on_sink(stdout, _DataSink(_STDOUT), line_buffering=at_terminal)
    sys.stderr = _on_sink(_fitted(sys.stderr, _STDERR), _MessageSink(_STDERR), line_buffering=True)


def _occupy(fd: int) -> None:
    if fd == _STDOUT:
        reader, writer = os.pipe()
        os.close(reader)  # a reader that is gone: every write is EPIPE
        opened = writer
    else:
        opened = os.open(os.devnull, os.O_RDONLY if fd == _STDIN else os.O_WRONLY)
    if opened != fd:
        os.dup2(opened, fd)
        os.close(opened)


def _fitted(stream: TextIO | None, fd: int) -> TextIO:
    """``stream`` (a new one on ``fd`` when Python had none) in the encoding vutf writes."""
    if stream is None:
        stream = open(fd, "r" if fd == _STDIN else "w", closefd=False)  # noqa: SIM115
    if not isinstance(stream, io.TextIOWrapper):
        return stream  # replaced by whoever embeds vutf: theirs to encode
    at_terminal = os.isatty(fd)
    if fd != _STDERR and not at_terminal:
        if not _is_utf8(stream.encoding):
            stream.reconfigure(encoding="utf-8", errors="surrogateescape")
    elif fd != _STDIN and stream.errors == "strict":
        # What is typed at a terminal is left as it is: a password must stay its bytes.
        stream.reconfigure(errors="backslashreplace")
    return stream


def _is_utf8(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        return False


def _on_sink(stream: TextIO, sink: _Descriptor, *, line_buffering: bool) -> TextIO:
    """``stream`` as it encodes, writing through ``sink`` instead."""
    if not isinstance(stream, io.TextIOWrapper):
        return stream  # replaced by whoever embeds vutf: theirs to handle
    stream.flush()
    return io.TextIOWrapper(
        io.BufferedWriter(sink),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=line_buffering,
        write_through=stream.write_through,  # python -u, PYTHONUNBUFFERED
    )


class _Descriptor(io.RawIOBase):
    """A standard stream's file descriptor, written with ``os.write``."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)


class _DataSink(_Descriptor):
    """stdout: a failed write is PipeClosed (its reader is gone: exit 0, a secret exit 9)
    or StdoutFailed (a full disk, an I/O error: exit 7), also for what Typer writes itself
    (help, --version, completion scripts), never an OSError that reads as a bug."""

    def write(self, data: Buffer) -> int:
        try:
            return os.write(self._fd, data)
        except BrokenPipeError:
            raise PipeClosed() from None
        except OSError as exc:
            raise StdoutFailed(exc.strerror or str(exc)) from None


class _MessageSink(_Descriptor):
    """stderr: once a write fails, this and every later message is dropped."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self._failed = False

    def write(self, data: Buffer) -> int:
        size = memoryview(data).nbytes
        if self._failed:
            return size
        try:
            return os.write(self._fd, data)
        except OSError:  # EPIPE: its reader is gone; ENOSPC, EIO: it cannot hold more
            self._failed = True
            return size
