"""Running one ``COPY`` on a PostgreSQL connection: what COPY in and out both need.

psycopg2 refuses COPY while a wait callback is set (vutf sets one to bound
every wait on the server, see ``db.engine``), so :func:`run_copy` lifts it
for the COPY and puts it back afterwards, and replaces the time limit that
callback enforced with a watchdog thread: it shuts the socket down when no
row has arrived for as long as the callback would have waited (statement
timeout plus connect timeout), which ends the blocked read or write with an
error instead of hanging on a stalled server; it does the same on Ctrl-C,
which libpq's blocking wait would otherwise ignore (it resumes a wait a
signal interrupts).  A COPY cut off that way leaves the connection unusable,
so it is invalidated.  :mod:`vutf_cli.db.copy_out` (``COPY (...) TO
STDOUT``) and :mod:`vutf_cli.db.copy_in` (``COPY ... FROM STDIN``) are its
two users.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from vutf_cli.db.engine import wait_limit
from vutf_cli.interrupts import INTERRUPTING_SIGNALS

__all__ = ["CopyProgress", "client_codec", "run_copy"]

# How often the watchdog looks for progress.
_WATCH_INTERVAL: Final = 0.25


class CopyProgress:
    """What the watchdog watches and what it did.

    ``rows``: the rows a COPY TO has received so far.  A COPY FROM counts
    none, so its silence is measured from its start: the limit (the
    statement timeout plus the connect timeout) outlasts the server's own
    statement timeout, which ends a COPY FROM that takes too long first.
    """

    __slots__ = ("interrupted", "rows", "stalled")

    def __init__(self) -> None:
        self.rows = 0
        self.stalled = False
        self.interrupted = False


@contextmanager
def _without_wait_callback() -> Iterator[None]:
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
def _copy_watchdog(raw: Any, progress: CopyProgress, limit: float | None) -> Iterator[None]:
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
            if readable and INTERRUPTING_SIGNALS & set(os.read(signals, 64)):
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


def run_copy(
    connection: Connection,
    statement: str,
    stream: Any,
    progress: CopyProgress,
    *,
    invalidate_on_error: bool,
) -> None:
    """``cursor.copy_expert(statement, stream)`` on ``connection``, bounded and interruptible.

    ``stream`` is the file psycopg2 reads the rows from (COPY FROM) or writes
    them to (COPY TO); the latter counts ``progress.rows``, which the
    watchdog watches.  A driver error is raised as the SQLAlchemy error of
    its class (as a statement run by SQLAlchemy raises it), a stall as
    ``OperationalError``, Ctrl-C as KeyboardInterrupt.  The connection is
    invalidated (closed) when the COPY was cut off, and on any error when
    ``invalidate_on_error`` (a COPY TO that did not end normally cannot be
    resumed, and the transaction's rollback must not be sent into it); a
    server error that ends a COPY FROM normally leaves it usable.
    """
    import psycopg2

    raw: Any = connection.connection.dbapi_connection
    limit, _connecting = wait_limit(raw)
    params = raw.get_dsn_parameters()  # before: a connection that fails is closed
    cursor = raw.cursor()
    try:
        with _without_wait_callback(), _copy_watchdog(raw, progress, limit):
            cursor.copy_expert(statement, stream)
    except BaseException as exc:
        invalidated = (
            invalidate_on_error or progress.interrupted or progress.stalled or bool(raw.closed)
        )
        if invalidated:
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
                "COPY", None, exc, psycopg2.Error, connection_invalidated=invalidated
            ) from exc
        raise
    finally:
        if not raw.closed:  # an invalidated connection took its cursor with it
            cursor.close()
