"""`vutf db status` and `vutf db ping`: what the live database is, and one round trip.

Both read only; neither creates a missing SQLite file (``status`` reports an
empty one), not even the embedded default database, which every other
command creates on first use: looking must not make a target that may be
the wrong one look healthy (:func:`uncreated_default`).  :func:`probe` is also
what a downgrade plan counts rows with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vutf_cli.db.database import Database
    from vutf_cli.db.uow import UnitOfWork
    from vutf_cli.settings import Settings

__all__ = [
    "DatabaseStatus",
    "PingResult",
    "Probe",
    "missing_probe",
    "ping",
    "probe",
    "status",
    "uncreated_default",
]


@dataclass(frozen=True, slots=True)
class DatabaseStatus:
    """Everything `vutf db status` reports (the URL is masked)."""

    database: str
    dialect: str
    driver: str
    server_version: str
    current: str | None
    head: str
    at_head: bool
    users_rows: int | None
    api_keys_rows: int | None
    audit_log_rows: int | None
    pool_class: str
    pool_size: int | None
    max_overflow: int | None
    pool_timeout: float | None
    connect_timeout: float
    statement_timeout_ms: int
    db_deadline: float


@dataclass(frozen=True, slots=True)
class PingResult:
    """One round trip to the server."""

    database: str
    dialect: str
    server_version: str
    latency_ms: float  # the query's round trip
    total_ms: float  # including connecting (and any retries)


@dataclass(frozen=True, slots=True)
class Probe:
    """What one look at the live database found."""

    server_version: str
    revision: str | None
    row_counts: dict[str, int | None]


def server_version(uow: UnitOfWork) -> str:
    from sqlalchemy import text

    if uow.dialect == "postgresql":
        return str(uow.session.execute(text("SHOW server_version")).scalar_one())
    return str(uow.session.execute(text("SELECT sqlite_version()")).scalar_one())


def probe(uow: UnitOfWork) -> Probe:
    """The server's version, the schema revision and the rows in each vutf table."""
    from sqlalchemy import func, inspect, select, table

    from vutf_cli.db.models import APP_TABLES

    inspector = inspect(uow.session.connection())
    counts: dict[str, int | None] = {}
    for name in APP_TABLES:
        if inspector.has_table(name):
            counts[name] = int(
                uow.session.execute(select(func.count()).select_from(table(name))).scalar_one()
            )
        else:
            counts[name] = None
    return Probe(
        server_version=server_version(uow),
        revision=uow.schema_revision(),
        row_counts=counts,
    )


def missing_probe() -> Probe:
    """What a SQLite file that does not exist (and is not created by looking) holds: nothing."""
    import sqlite3

    from vutf_cli.db.models import APP_TABLES

    return Probe(
        server_version=sqlite3.sqlite_version,
        revision=None,
        row_counts=dict.fromkeys(APP_TABLES),
    )


def uncreated_default(settings: Settings) -> Path | None:
    """The embedded default database's file when ``settings`` target it and it does not exist."""
    from vutf_cli.settings import default_database_url

    if not settings.is_default_database:
        return None
    path = Path(default_database_url().removeprefix("sqlite:///"))
    return None if path.exists() else path


def status(db: Database) -> DatabaseStatus:
    """What the database is; a missing SQLite file is reported empty, never created."""
    from vutf_cli.db.schema_version import HEAD_REVISION

    if uncreated_default(db.settings) is not None:
        # Read as any missing file is: the engine is built without creating it.
        db.create_missing = False

    found = missing_probe() if db.missing_file else db.run(probe, read_only=True)
    pool_class, pool_size, max_overflow, pool_timeout = _pool_settings(db)
    settings = db.settings
    return DatabaseStatus(
        database=settings.masked_url,
        dialect=db.dialect,
        driver=str(db.engine.dialect.driver),
        server_version=found.server_version,
        current=found.revision,
        head=HEAD_REVISION,
        at_head=found.revision == HEAD_REVISION,
        users_rows=found.row_counts["users"],
        api_keys_rows=found.row_counts["api_keys"],
        audit_log_rows=found.row_counts["audit_log"],
        pool_class=pool_class,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_timeout=settings.connect_timeout,
        statement_timeout_ms=settings.statement_timeout_ms,
        db_deadline=settings.db_deadline,
    )


def _pool_settings(db: Database) -> tuple[str, int | None, int | None, float | None]:
    """The engine's actual pool (what was configured, not what is checked out)."""
    from sqlalchemy.pool import QueuePool

    pool = db.engine.pool
    if not isinstance(pool, QueuePool):
        return type(pool).__name__, None, None, None
    # QueuePool has no public accessor for max_overflow: the engine was built with this one.
    return type(pool).__name__, pool.size(), db.settings.max_overflow, float(pool.timeout())


def ping(db: Database) -> PingResult:
    """One query round trip, under the retry policy (DatabaseUnavailable past the deadline)."""
    started = time.perf_counter()

    def round_trip(uow: UnitOfWork) -> tuple[str, float]:
        uow.session.connection()  # the connection is made outside the timed part
        sent = time.perf_counter()
        version = server_version(uow)
        return version, time.perf_counter() - sent

    version, latency = db.run(round_trip, read_only=True)
    total = time.perf_counter() - started
    return PingResult(
        database=db.settings.masked_url,
        dialect=db.dialect,
        server_version=version,
        latency_ms=round(latency * 1000, 3),
        total_ms=round(total * 1000, 3),
    )
