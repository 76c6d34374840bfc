"""``make_engine(settings)``: the one place engines are built.

Every engine has ``hide_parameters=True`` (bound values, which may be secrets,
never appear in error messages), a connect timeout, and a statement timeout.
SQLite files are created 0600 and run in WAL mode; write transactions start
with ``BEGIN IMMEDIATE`` so concurrent writers queue on the lock (up to the
deadline) instead of failing half-way with "database is locked".
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError

from vutf_cli.errors import InvalidInput
from vutf_cli.settings import Settings, mask_url

# Execution option read by the SQLite "begin" hook: how to open the transaction.
SQLITE_BEGIN_OPTION = "vutf_sqlite_begin"

SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def parse_database_url(raw: str) -> URL:
    try:
        url = make_url(raw)
    except ArgumentError:
        raise InvalidInput(
            f"invalid database URL: {mask_url(raw)}",
            hint="use postgresql://user@host:5432/dbname or sqlite:///path/to/file.db",
        ) from None
    if url.get_backend_name() not in SUPPORTED_BACKENDS:
        raise InvalidInput(
            f"unsupported database {url.get_backend_name()!r} in {mask_url(raw)}",
            hint="vutf supports postgresql:// and sqlite:/// URLs",
        )
    if url.get_backend_name() == "postgresql" and url.drivername != "postgresql+psycopg2":
        if url.drivername != "postgresql":
            raise InvalidInput(f"unsupported driver {url.drivername!r}; vutf uses psycopg2")
        url = url.set(drivername="postgresql+psycopg2")
    return url


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL, or None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _prepare_sqlite_file(path: Path) -> None:
    """Create the database file 0600 (and its folder 0700) before SQLite does.

    SQLite gives its -wal and -shm files the mode of the main file, so all
    three end up private.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)


def make_engine(settings: Settings, *, pool_size: int | None = None) -> Engine:
    url = parse_database_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _make_sqlite_engine(url, settings)
    return _make_postgres_engine(url, settings, pool_size)


def _make_postgres_engine(url: URL, settings: Settings, pool_size: int | None) -> Engine:
    options = (
        f"-c statement_timeout={settings.statement_timeout_ms} "
        f"-c idle_in_transaction_session_timeout={max(settings.statement_timeout_ms, 60_000)} "
        "-c timezone=UTC"
    )
    connect_args: dict[str, Any] = {
        # libpq takes whole seconds; 0 would mean "wait forever".
        # One attempt never outlives the command's deadline.
        "connect_timeout": max(1, math.ceil(min(settings.connect_timeout, settings.db_deadline))),
        "options": options,
        "application_name": "vutf",
        # Keepalives notice a peer that vanished without closing the socket.
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    return create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=pool_size or settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.db_deadline,
        pool_recycle=1800,
        hide_parameters=True,
    )


def _make_sqlite_engine(url: URL, settings: Settings) -> Engine:
    path = sqlite_path(url)
    if path is not None:
        _prepare_sqlite_file(path)
    busy_ms = int(settings.db_deadline * 1000)
    engine = create_engine(
        url,
        # The driver's own transaction handling is switched off: vutf emits
        # BEGIN itself so that writers can take the lock up front.
        connect_args={"timeout": settings.db_deadline, "isolation_level": None},
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if path is not None:
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
