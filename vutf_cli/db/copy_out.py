"""Stream a SELECT's rows from PostgreSQL with ``COPY (...) TO STDOUT``.

Why COPY: the server sends rows as fast as it makes them while this process
works on the ones already received, so a long export costs about the slower
of the two instead of their sum.  A cursor fetch alternates between them.

Three things the ordinary query path gives for free must be done by hand:

* parameters: COPY takes no bind parameters, so the statement is compiled
  by SQLAlchemy (bind processors applied) and its values are inlined by
  psycopg2's own quoting (``cursor.mogrify``);
* the wait callback: psycopg2 refuses COPY while a wait callback is set
  (vutf sets one to bound every wait on the server, see ``db.engine``), so it
  is lifted for the COPY and put back afterwards;
* the time limit that callback enforced: a watchdog thread shuts the socket
  down when no row has arrived for as long as the callback would have waited
  (statement timeout plus connect timeout), which ends the blocked read with
  an error instead of hanging on a stalled server; it does the same on
  Ctrl-C, which libpq's blocking wait would otherwise ignore (it resumes a
  wait a signal interrupts).  A COPY that ends abnormally leaves the
  connection unusable, so it is invalidated.

The sink runs while the COPY is open and should be quick (callers buffer
and write afterwards: a slow reader must not keep a statement open).
Rows are written in CSV format with quote and delimiter characters that
never appear unescaped in JSON text (``\\x01``, ``\\x02``), so a one-column
text row arrives exactly as the server rendered it, newline-terminated.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Connection, Select
from sqlalchemy.exc import DBAPIError, OperationalError

from vutf_cli.db.engine import wait_limit

__all__ = [
    "CopyProgress",
    "client_codec",
    "copy_rows",
    "copy_watchdog",
    "inline_statement",
    "without_wait_callback",
]

_COPY_OPTIONS: Final = "FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02'"
# How often the watchdog looks for progress.
_WATCH_INTERVAL: Final = 0.25


def inline_statement(connection: Connection, statement: Select[Any]) -> str:
    """``statement`` as SQL text with its parameters inlined (for COPY, which takes none)."""
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect)
    params = compiled.construct_params()
    for name, bind in compiled.binds.items():
        processor = bind.type.bind_processor(dialect)
        if processor is not None and name in params:
            params[name] = processor(params[name])
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        inlined: bytes = cursor.mogrify(compiled.string, params)
    finally:
        cursor.close()
    return inlined.decode(client_codec(raw))  # mogrify encodes in the client encoding


class CopyProgress:
    """What the watchdog watches (rows received so far) and what it did."""

    __slots__ = ("interrupted", "rows", "stalled")

    def __init__(self) -> None:
        self.rows = 0
        self.stalled = False
        self.interrupted = False


class _Writer:
    """The file psycopg2 writes each COPY row to (one ``write`` per row)."""

    __slots__ = ("last", "progress", "sink")

    def __init__(self, sink: Callable[[bytes], None], progress: CopyProgress) -> None:
        self.sink = sink
        self.progress = progress
        self.last: bytes | None = None

    def write(self, row: bytes) -> None:
        self.progress.rows += 1
        self.last = row
        self.sink(row)


@contextmanager
def without_wait_callback() -> Iterator[None]:
    from psycopg2 import extensions

    callback = extensions.get_wait_callback()
    extensions.set_wait_callback(None)
    try:
        yield
    finally:
        extensions.set_wait_callback(callback)


@contextmanager
def _signals_to(fd: int) -> Iterator[bool]:
    """Have signals also written to ``fd`` (only possible in the main thread); yield whether."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
    try:
        yield True
    finally:
        signal.set_wakeup_fd(previous)


def _shut(raw: Any) -> None:
    # shutdown() (not close) on a duplicate of the socket: the blocked read in
    # libpq returns with an error, and libpq still owns (and closes) its fd.
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(raw.fileno())) as sock:
        sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def copy_watchdog(raw: Any, progress: CopyProgress, limit: float | None) -> Iterator[None]:
    """End the COPY when the server is silent for ``limit`` seconds, or on Ctrl-C.

    libpq, without the wait callback, resumes a wait that a signal
    interrupted, so Ctrl-C would wait for the server; the signal is also
    written to a pipe this thread watches, and it ends the wait instead.
    """
    done = threading.Event()
    signals, wakeup = os.pipe()
    os.set_blocking(wakeup, False)

    def watch() -> None:
        seen, since = progress.rows, time.monotonic()
        while not done.is_set():
            readable, _, _ = select.select([signals], [], [], _WATCH_INTERVAL)
            if readable and {signal.SIGINT, signal.SIGTERM} & set(os.read(signals, 64)):
                progress.interrupted = True
                _shut(raw)
                return
            if progress.rows != seen:
                seen, since = progress.rows, time.monotonic()
            elif limit is not None and time.monotonic() - since > limit:
                progress.stalled = True
                _shut(raw)
                return

    watcher = threading.Thread(target=watch, name="vutf-copy-watchdog", daemon=True)
    try:
        with _signals_to(wakeup):
            try:
                watcher.start()
                yield
            finally:
                done.set()
                with contextlib.suppress(OSError):
                    os.write(wakeup, b"\0")  # wake the watcher now, not at its next poll
                if watcher.ident is not None:
                    _join_through_interrupts(watcher)
    finally:
        # Only once the watcher is gone: it reads from these descriptors.
        os.close(signals)
        os.close(wakeup)


def _join_through_interrupts(thread: threading.Thread) -> None:
    """Join ``thread`` even if Ctrl-C arrives meanwhile; then raise that KeyboardInterrupt."""
    interrupted: KeyboardInterrupt | None = None
    while True:
        try:
            thread.join()
        except KeyboardInterrupt as exc:
            interrupted = exc
        else:
            break
    if interrupted is not None:
        raise interrupted


def client_codec(raw: Any) -> str:
    """The Python codec of the connection's client_encoding."""
    from psycopg2.extensions import encodings

    codec: str = encodings.get(raw.encoding, raw.encoding)
    return codec


def _utf8(raw: Any, sink: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``sink`` fed UTF-8 whatever the connection's client_encoding (COPY sends that)."""
    codec = client_codec(raw)
    if codec.replace("-", "").replace("_", "").lower() == "utf8":
        return sink
    return lambda row: sink(row.decode(codec).encode("utf-8"))


def copy_rows(
    connection: Connection, statement: Select[Any], sink: Callable[[bytes], None]
) -> tuple[int, bytes | None]:
    """Send each row of a one-column ``statement`` to ``sink``; return the count and the last row.

    Runs inside the connection's current transaction (so it reads its
    snapshot); ``sink`` runs while the COPY is open, so it must not use the
    connection.  A driver error is raised as the SQLAlchemy error of its class
    (as a statement run by SQLAlchemy raises it); a stall as
    ``OperationalError``; Ctrl-C as KeyboardInterrupt.  When the COPY does not
    end normally the connection is invalidated (closed): the COPY cannot be
    resumed, and the transaction's rollback must not be sent into it.
    """
    import psycopg2

    raw: Any = connection.connection.dbapi_connection
    copy = f"COPY ({inline_statement(connection, statement)}) TO STDOUT WITH ({_COPY_OPTIONS})"
    progress = CopyProgress()
    writer = _Writer(_utf8(raw, sink), progress)
    limit, _connecting = wait_limit(raw)
    params = raw.get_dsn_parameters()  # before: a connection that fails is closed
    cursor = raw.cursor()
    try:
        with without_wait_callback(), copy_watchdog(raw, progress, limit):
            cursor.copy_expert(copy, writer)
        cursor.close()
    except BaseException as exc:
        connection.invalidate(exc if isinstance(exc, Exception) else None)
        if progress.interrupted:
            raise KeyboardInterrupt from None
        if progress.stalled:
            where = f'server at "{params.get("host")}", port {params.get("port")}'
            stalled = psycopg2.OperationalError(
                f"could not receive data from {where}: timeout expired "
                f"(no answer in {limit:.1f} s, longer than the statement timeout allows)"
            )
            raise OperationalError("COPY", None, stalled, connection_invalidated=True) from exc
        if isinstance(exc, psycopg2.Error):
            raise DBAPIError.instance(
                "COPY", None, exc, psycopg2.Error, connection_invalidated=True
            ) from exc
        raise
    return progress.rows, writer.last
