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

A stdin open for writing only (``0> file``, a slip for ``< file``) cannot be
read (every read was ``Bad file descriptor``, exit 1), so it is as closed.

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
import fcntl
import io
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

__all__ = ["prepare_standard_streams"]

_STDIN, _STDOUT, _STDERR = 0, 1, 2


def prepare_standard_streams() -> None:
    """Open each standard stream that is closed; make the data streams UTF-8 (see above)."""
    for fd in (_STDIN, _STDOUT, _STDERR):  # in order: each takes the lowest free number
        if not _usable(fd):
            _occupy(fd)
    sys.stdin = _fitted(sys.stdin, _STDIN)
    sys.stdout = _fitted(sys.stdout, _STDOUT)
    sys.stderr = _forgiving(_fitted(sys.stderr, _STDERR))


def _usable(fd: int) -> bool:
    """Whether ``fd`` is open (stdin: for reading)."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return False
    return fd != _STDIN or flags & os.O_ACCMODE != os.O_WRONLY


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


def _forgiving(stream: TextIO) -> TextIO:
    """stderr as ``stream`` writes it, on a descriptor whose failures drop the message.

    The text layer writes straight through to the descriptor, with no buffer
    between: a buffer keeps what a write it saw fail (or be interrupted by
    Ctrl-C just after the bytes left) had, and writes it again later.
    """
    if not isinstance(stream, io.TextIOWrapper):
        return stream
    stream.flush()
    return io.TextIOWrapper(
        _MessageSink(stream.fileno()),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=True,
        write_through=True,
    )


class _MessageSink(io.RawIOBase):
    """File descriptor 2 for messages: once a write fails, everything is dropped."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._failed = False

    def writable(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return "<stderr>"

    def read(self, size: int = -1, /) -> bytes:
        raise io.UnsupportedOperation("stderr is not read")

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        while view and not self._failed:
            try:
                view = view[os.write(self._fd, view) :]  # all of it: nothing buffers the rest
            except OSError:  # EPIPE: its reader is gone; ENOSPC, EIO: it cannot hold more
                self._failed = True
        return size
