"""``make_engine(settings)``: the one place engines are built.

Every engine has ``hide_parameters=True`` (bound values, which may be secrets,
never appear in error messages), a connect timeout, and a statement timeout.
SQLite files are created 0600, whatever the URL form (``db.sqlite_files``),
and run in WAL mode; write transactions start with ``BEGIN IMMEDIATE`` so
concurrent writers queue on the lock (up to the
deadline) instead of failing half-way with "database is locked".  Only a
caller that means to create the file asks for it (``create_missing``): the
default embedded database and ``vutf db upgrade``.  Otherwise a missing file
is refused when connecting (exit 8), so a typo in a URL leaves no file behind.

A stalled PostgreSQL server (or a middlebox that accepts and never answers)
must not hang a command.  libpq has no read timeout, and neither TCP
keepalives nor ``tcp_user_timeout`` notice a peer whose kernel still
acknowledges every packet.  So PostgreSQL engines install a psycopg2 *wait
callback* (:func:`wait_for_server`): psycopg2 then drives libpq
non-blockingly and every wait on the socket goes through ``select`` with a
limit:

* while connecting: ``connect_timeout``, and never past the deadline of the
  operation in progress (see :func:`io_deadline`), to the millisecond;
* waiting for a statement's answer: ``statement_timeout`` plus
  ``connect_timeout``; by then the server would have cancelled the statement
  itself, so silence means it is unreachable.

A wait that runs out raises ``OperationalError`` ("... timeout expired"),
which psycopg2 follows by closing the connection: it is retried like any
other lost connection.  Ctrl-C during a wait also ends it at once.
psycopg2 has one process-wide wait callback: :func:`bounded_waits` installs
it only while a unit of work holds a connection, so other code in the same
process keeps psycopg2's ordinary blocking behaviour.
"""

from __future__ import annotations

import math
import os
import select
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from vutf_cli.db.sqlite_files import create_database_file, sqlite_file
from vutf_cli.db.types import read_stored_json
from vutf_cli.errors import InvalidInput, SchemaOutdated
from vutf_cli.settings import Settings, mask_url, resolve_database_url

# Execution option read by the SQLite "begin" hook: how to open the transaction.
SQLITE_BEGIN_OPTION = "vutf_sqlite_begin"

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# libpq's sslmode values: anything else fails when connecting.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_URL_HINT = "use postgresql://user@host:5432/dbname or sqlite:///path/to/file.db"


def parse_database_url(raw: str) -> URL:
    """The one reading of a database URL, for connecting and for checking it.

    The forms :func:`resolve_database_url` refuses or rewrites (an empty URL,
    an unencoded "@" in the userinfo, ``postgres://``, a relative SQLite path)
    are handled there, so a ``Settings`` built without ``load_settings`` gets
    the same answer.
    """
    raw = resolve_database_url(raw, "the database URL")
    try:
        if "\x00" in raw:
            raise ArgumentError("NUL character")  # no file or host name holds one
        url = make_url(raw)
    except (ArgumentError, ValueError):  # ValueError: a bad port or IPv6 host
        raise InvalidInput(f"invalid database URL: {mask_url(raw)}", hint=_URL_HINT) from None
    if url.get_backend_name() not in SUPPORTED_BACKENDS:
        raise InvalidInput(
            f"unsupported database {url.get_backend_name()!r} in {mask_url(raw)}",
            hint="vutf supports postgresql:// and sqlite:/// URLs",
        )
    if url.get_backend_name() == "postgresql" and url.drivername != "postgresql+psycopg2":
        if url.drivername != "postgresql":
            raise InvalidInput(f"unsupported driver {url.drivername!r}; vutf uses psycopg2")
        url = url.set(drivername="postgresql+psycopg2")
    if url.get_backend_name() == "postgresql":
        _check_postgres_options(url, raw)
    else:
        _check_sqlite_url(url, raw)
    return url


def _check_sqlite_url(url: URL, raw: str) -> None:
    """Refuse, before anything is created, a SQLite URL whose files vutf could not make private."""
    if url.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise InvalidInput(
            f"unsupported driver {url.drivername!r} in {mask_url(raw)}; vutf uses pysqlite",
            hint="write sqlite:///path/to/file.db",
        )
    try:
        sqlite_file(url)
    except ArgumentError:  # a user, password, host or port in a SQLite URL
        raise InvalidInput(f"invalid database URL: {mask_url(raw)}", hint=_URL_HINT) from None
    except InvalidInput as exc:  # a form whose files could not be made private
        message = f"invalid database URL {mask_url(raw)}: {exc.message}"
        raise InvalidInput(message, hint=exc.hint) from None


def _check_postgres_options(url: URL, raw: str) -> None:
    """Refuse what libpq would only refuse when connecting (reported as a server error)."""
    if url.port is not None and not 1 <= url.port <= 65535:
        raise InvalidInput(
            f"invalid database URL: {mask_url(raw)}: port {url.port} is not between 1 and 65535",
            hint=_URL_HINT,
        )
    sslmode = url.query.get("sslmode")
    modes = [sslmode] if isinstance(sslmode, str) else list(sslmode or ())
    for mode in modes:
        if mode not in SSL_MODES:
            raise InvalidInput(
                f"invalid database URL: {mask_url(raw)}: unknown sslmode {mode[:40]!r}",
                hint="sslmode is one of: " + ", ".join(SSL_MODES),
            )


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL (URI filenames included), or None for an in-memory database."""
    found = sqlite_file(url)
    return None if found is None else found.path


def missing_database_error(settings: Settings) -> SchemaOutdated:
    """The error (exit 8) for a SQLite file that does not exist and is not to be created."""
    return SchemaOutdated(
        f"no database at {settings.masked_url}: the file does not exist",
        hint="check the path; `vutf db upgrade` creates the database there",
    )


def make_engine(
    settings: Settings, *, pool_size: int | None = None, create_missing: bool = True
) -> Engine:
    """The engine for ``settings.database_url``.

    ``create_missing`` (SQLite): create the file (0600, and its folder 0700)
    if it does not exist yet.  When False, nothing is created: connecting to
    a missing file raises :func:`missing_database_error` (exit 8).
    """
    url = parse_database_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _make_sqlite_engine(url, settings, create_missing=create_missing)
    return _make_postgres_engine(url, settings, pool_size)


# -- bounded waits on a PostgreSQL server ------------------------------------------------
# psycopg2's connection status while libpq is still connecting (not exported).
_READY_STATUSES = frozenset({1, 2, 5})  # STATUS_READY, STATUS_BEGIN, STATUS_PREPARED
_deadlines = threading.local()


@contextmanager
def io_deadline(deadline_at: float | None) -> Iterator[None]:
    """While active, connecting in this thread gives up at ``deadline_at`` (``time.monotonic``).

    ``Database.run`` wraps each operation in one, so a connection attempt
    made late in the retry loop gets only what is left of the deadline.
    """
    previous = getattr(_deadlines, "at", None)
    _deadlines.at = deadline_at
    try:
        yield
    finally:
        _deadlines.at = previous


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else 0.0
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def wait_limit(conn: Any) -> tuple[float | None, bool]:
    """How long one wait on ``conn`` may last (None: no limit), and whether it is connecting."""
    if conn.status not in _READY_STATUSES:
        limit = _seconds(conn.get_dsn_parameters().get("connect_timeout"))
        deadline_at = getattr(_deadlines, "at", None)
        if deadline_at is not None:
            remaining = max(deadline_at - time.monotonic(), 0.05)
            limit = remaining if limit is None else min(limit, remaining)
        return limit, True
    # Set by the connection class of vutf's engines (see _connection_class).
    statement_timeout_ms = getattr(conn, "vutf_statement_timeout_ms", None)
    if not statement_timeout_ms:
        return None, False
    # A connection's parameters never change: its limit is worked out once,
    # not on each of the several waits of every statement.
    limit = getattr(conn, "vutf_ready_wait_limit", None)
    if limit is None:
        connect_timeout = _seconds(conn.get_dsn_parameters().get("connect_timeout"))
        limit = int(statement_timeout_ms) / 1000 + (connect_timeout or 5.0)
        conn.vutf_ready_wait_limit = limit
    return limit, False


def wait_for_server(conn: Any) -> None:
    """psycopg2 wait callback: like ``psycopg2.extras.wait_select``, with time limits."""
    import psycopg2
    from psycopg2 import extensions

    limit, connecting = wait_limit(conn)
    give_up_at = None if limit is None else time.monotonic() + limit
    while True:
        state = conn.poll()
        if state == extensions.POLL_OK:
            return
        if state == extensions.POLL_READ:
            waits: tuple[list[int], list[int]] = ([conn.fileno()], [])
        elif state == extensions.POLL_WRITE:
            waits = ([], [conn.fileno()])
        else:
            raise psycopg2.OperationalError(f"unexpected state from poll: {state}")
        timeout = None if give_up_at is None else max(give_up_at - time.monotonic(), 0.0)
        readable, writable, _ = select.select(*waits, [], timeout)
        if not readable and not writable:
            assert limit is not None
            params = conn.get_dsn_parameters()
            where = f'server at "{params.get("host")}", port {params.get("port")}'
            if connecting:
                raise psycopg2.OperationalError(
                    f"connection to {where} failed: timeout expired after {limit:.1f} s"
                )
            raise psycopg2.OperationalError(
                f"could not receive data from {where}: timeout expired "
                f"(no answer in {limit:.1f} s, longer than the statement timeout allows)"
            )


class _WaitCallbackUsers:
    """Reference count of the code that wants :func:`wait_for_server` installed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0


_callback_users = _WaitCallbackUsers()


@contextmanager
def bounded_waits() -> Iterator[None]:
    """While active, psycopg2 waits through :func:`wait_for_server`.

    psycopg2 has one process-wide wait callback, so it is installed only while
    vutf is using a connection (reference-counted across threads) and left
    alone if something else (e.g. psycogreen) installed its own.
    """
    from psycopg2 import extensions

    with _callback_users.lock:
        if _callback_users.count == 0 and extensions.get_wait_callback() is None:
            extensions.set_wait_callback(wait_for_server)
        _callback_users.count += 1
    try:
        yield
    finally:
        with _callback_users.lock:
            _callback_users.count -= 1
            if _callback_users.count == 0 and extensions.get_wait_callback() is wait_for_server:
                extensions.set_wait_callback(None)


def _connection_class(statement_timeout_ms: int) -> Any:
    """psycopg2's connection class, carrying the statement timeout for :func:`wait_limit`."""
    from psycopg2.extensions import connection

    class VutfConnection(connection):  # type: ignore[misc]  # psycopg2 has no type stubs
        vutf_statement_timeout_ms = statement_timeout_ms
        vutf_ready_wait_limit: float | None = None  # wait_limit's, once connected

    return VutfConnection


def transaction_settings_sql(settings: Settings) -> str:
    """What every PostgreSQL transaction of vutf starts with.

    ``SET LOCAL`` rather than the libpq ``options`` startup parameter: behind
    a pooler in transaction mode (pgbouncer) consecutive transactions may run
    on different server sessions, and startup parameters never reach them
    (pgbouncer refuses ``options`` outright).  ``SET`` takes no snapshot, so
    a ``SET TRANSACTION ISOLATION LEVEL`` may still follow.
    """
    statement_ms = int(settings.statement_timeout_ms)
    idle_ms = max(statement_ms, 60_000)
    return (
        f"SET LOCAL statement_timeout = {statement_ms}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}; "
        "SET LOCAL timezone = 'UTC'"
    )


def _make_postgres_engine(url: URL, settings: Settings, pool_size: int | None) -> Engine:
    connect_args: dict[str, Any] = {
        # libpq takes whole seconds; 0 would mean "wait forever".
        # One attempt never outlives the command's deadline.
        "connect_timeout": max(1, math.ceil(min(settings.connect_timeout, settings.db_deadline))),
        "connection_factory": _connection_class(settings.statement_timeout_ms),
        # A startup parameter pgbouncer passes on (unlike "options").
        "application_name": "vutf",
        # Keepalives notice a peer that vanished without closing the socket.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    engine = create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=pool_size or settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.db_deadline,
        pool_recycle=1800,
        hide_parameters=True,
        # jsonb is read by the driver; with vutf's reader, a value written
        # outside vutf that Python cannot read is named (db.types).
        json_deserializer=read_stored_json,
    )
    begin_transaction = transaction_settings_sql(settings)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin_transaction)

    return engine


def _refuse_non_regular_file(path: Path, settings: Settings) -> None:
    """A device or FIFO is no database, and SQLite would put its journal beside it (in /dev)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing (created later, or reported as missing) or unreadable (SQLite says)
    if not stat.S_ISREG(mode):
        raise InvalidInput(
            f"invalid database URL: {settings.masked_url}: {path} is not a regular file",
            hint="a SQLite database is a file: name a new or existing file",
        )


def _make_sqlite_engine(url: URL, settings: Settings, *, create_missing: bool) -> Engine:
    target = sqlite_file(url)
    path = None if target is None else target.path
    if path is not None:
        _refuse_non_regular_file(path, settings)
    if target is not None and create_missing and target.may_create:
        # Before SQLite does: it gives -wal, -shm and -journal the main file's mode.
        create_database_file(target.path)
    busy_ms = int(settings.db_deadline * 1000)
    engine = create_engine(
        url,
        # The driver's own transaction handling is switched off: vutf emits
        # BEGIN itself so that writers can take the lock up front.
        connect_args={"timeout": settings.db_deadline, "isolation_level": None},
        hide_parameters=True,
    )

    if path is not None and not create_missing:

        @event.listens_for(engine, "do_connect")
        def _refuse_missing_file(*_: Any) -> None:
            # Checked at every connection (not once): sqlite3.connect would
            # create the file, and the folder may appear or vanish meanwhile.
            if not os.path.exists(path):  # False on any OSError too
                raise missing_database_error(settings)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if target is not None and not target.read_only:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine
