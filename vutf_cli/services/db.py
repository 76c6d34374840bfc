"""Schema operations behind `vutf db`: migrate, inspect, check, ping.

Alembic is imported only inside the functions that need it (``upgrade``,
``downgrade``, ``history``, ``check`` and the ``--sql`` renderers), so
ordinary commands never pay for it; ``current``, ``status`` and ``ping``
compare against the head constant instead.

Every function returns a frozen view.  Failures arrive as vutf errors:
unreachable database → DatabaseUnavailable (7), unknown revision → NotFound
(3), pending migrations → SchemaOutdated (8), drift → IntegrityFailure (6).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vutf_cli.errors import Conflict, Denied, InternalError, SchemaOutdated, VutfError
from vutf_cli.services.runtime import Runtime
from vutf_cli.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.exc import SQLAlchemyError

    from vutf_cli.db.migrations import ScriptRevision
    from vutf_cli.db.uow import UnitOfWork

# The tables whose rows `vutf db status` counts (and a downgrade to base drops).
APP_TABLES = ("users", "api_keys", "audit_log")

BASE = "base"


# -- views -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RevisionStatus:
    """Where the database's schema is, compared with this vutf's head."""

    database: str
    dialect: str
    current: str | None
    head: str
    at_head: bool


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """The outcome of an upgrade or downgrade."""

    database: str
    dialect: str
    previous: str | None
    current: str | None
    head: str
    at_head: bool
    changed: bool


@dataclass(frozen=True, slots=True)
class RevisionView:
    """One migration script (`vutf db history` / `vutf db heads`)."""

    revision: str
    down_revision: str | None
    is_head: bool
    description: str


@dataclass(frozen=True, slots=True)
class RenderedSql:
    """The SQL a migration would run, rendered offline (``--sql``)."""

    dialect: str
    revision_range: str
    sql: str


@dataclass(frozen=True, slots=True)
class DowngradePlan:
    """What `vutf db downgrade` is about to do, for the operator to confirm."""

    database: str
    dialect: str
    current: str | None
    target: str  # as the operator wrote it
    destination: str  # the absolute revision (or "base") it resolves to
    steps: tuple[RevisionView, ...]  # the revisions undone, newest first
    row_counts: tuple[tuple[str, int], ...]  # rows in the vutf tables right now

    @property
    def drops_everything(self) -> bool:
        return bool(self.steps) and self.destination == BASE


@dataclass(frozen=True, slots=True)
class CheckResult:
    """`vutf db check` passed: at head, and the live schema matches the models."""

    database: str
    dialect: str
    current: str | None
    head: str
    at_head: bool
    drift: bool


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


# -- probing the live database -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Probe:
    server_version: str
    revision: str | None
    row_counts: dict[str, int | None]


def _server_version(uow: UnitOfWork) -> str:
    from sqlalchemy import text

    if uow.dialect == "postgresql":
        return str(uow.session.execute(text("SHOW server_version")).scalar_one())
    return str(uow.session.execute(text("SELECT sqlite_version()")).scalar_one())


def _probe(uow: UnitOfWork) -> _Probe:
    from sqlalchemy import func, inspect, select, table

    inspector = inspect(uow.session.connection())
    counts: dict[str, int | None] = {}
    for name in APP_TABLES:
        if inspector.has_table(name):
            counts[name] = int(
                uow.session.execute(select(func.count()).select_from(table(name))).scalar_one()
            )
        else:
            counts[name] = None
    return _Probe(
        server_version=_server_version(uow),
        revision=uow.schema_revision(),
        row_counts=counts,
    )


def _current_revision(rt: Runtime) -> str | None:
    return rt.db.run(lambda uow: uow.schema_revision(), read_only=True)


def _head() -> str:
    from vutf_cli.db.schema_version import HEAD_REVISION

    return HEAD_REVISION


def _dialect_of(settings: Settings) -> str:
    from vutf_cli.db.engine import parse_database_url

    return str(parse_database_url(settings.database_url).get_backend_name())


def _revision_status(rt: Runtime, revision: str | None) -> RevisionStatus:
    head = _head()
    return RevisionStatus(
        database=rt.settings.masked_url,
        dialect=rt.db.dialect,
        current=revision,
        head=head,
        at_head=revision == head,
    )


def _migration_result(rt: Runtime, previous: str | None) -> MigrationResult:
    now = _revision_status(rt, _current_revision(rt))
    return MigrationResult(
        database=now.database,
        dialect=now.dialect,
        previous=previous,
        current=now.current,
        head=now.head,
        at_head=now.at_head,
        changed=now.current != previous,
    )


def _view(script: ScriptRevision) -> RevisionView:
    return RevisionView(
        revision=script.revision,
        down_revision=script.down_revision,
        is_head=script.is_head,
        description=script.description,
    )


# -- running Alembic against the live database ------------------------------------------
@contextmanager
def _sql_errors(failure: Callable[[str], VutfError]) -> Iterator[None]:
    """SQLAlchemy errors that survived the retries, as vutf errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from vutf_cli.db.resilience import describe

    try:
        yield
    except SQLAlchemyError as exc:
        raise _permanent_error(exc, describe(exc), failure) from exc


def _permanent_error(
    exc: SQLAlchemyError, reason: str, failure: Callable[[str], VutfError]
) -> VutfError:
    pgcode = getattr(getattr(exc, "orig", None), "pgcode", None)
    if pgcode == "42501":  # insufficient_privilege
        return Denied(
            f"the database refused: {reason}",
            hint="migrations need a role that may create and drop tables",
        )
    return failure(reason)


def _run_alembic(
    rt: Runtime,
    operation: Callable[[], None],
    *,
    idempotent: bool,
    failure: Callable[[str], VutfError],
) -> None:
    """Run one Alembic operation (its own transaction) under the retry policy.

    Only idempotent operations are retried: an upgrade or downgrade to a fixed
    revision that did commit before the connection dropped is a no-op the
    second time, whereas a relative one (``+1``, ``-1``) would move again.
    """
    from vutf_cli.db.resilience import RetryPolicy, run_with_retry

    policy = rt.db.policy if idempotent else RetryPolicy(deadline=0.0)
    with _sql_errors(failure):
        run_with_retry(
            operation, policy=policy, breaker=rt.db.breaker, target=rt.settings.masked_url
        )


def _rolled_back(doing: str) -> Callable[[str], VutfError]:
    def make(reason: str) -> VutfError:
        return Conflict(
            f"{doing} failed and was rolled back: {reason}",
            hint="the database holds something the migration did not expect; see `vutf db status`",
        )

    return make


# -- commands ---------------------------------------------------------------------------
def current(rt: Runtime) -> RevisionStatus:
    return _revision_status(rt, _current_revision(rt))


def upgrade(rt: Runtime, revision: str = "head") -> MigrationResult:
    from vutf_cli.db import migrations

    # Reach the server first (with the retry policy) so an outage is exit 7.
    previous = _current_revision(rt)
    _run_alembic(
        rt,
        lambda: migrations.upgrade(rt.settings, rt.db.engine, revision),
        idempotent=not migrations.is_relative_revision(revision),
        failure=_rolled_back(f"the upgrade to {revision}"),
    )
    return _migration_result(rt, previous)


def plan_downgrade(rt: Runtime, revision: str) -> DowngradePlan:
    """Resolve REVISION against the database's current revision; change nothing."""
    from vutf_cli.db import migrations

    probe = rt.db.run(_probe, read_only=True)
    steps = tuple(_view(step) for step in migrations.downgrade_steps(probe.revision, revision))
    destination = revision
    if not steps:
        destination = probe.revision or BASE
    elif migrations.is_relative_revision(revision) and "," not in (steps[-1].down_revision or ""):
        # Pin "-1" to the revision it means now, so a retry cannot go further.
        destination = steps[-1].down_revision or BASE
    return DowngradePlan(
        database=rt.settings.masked_url,
        dialect=rt.db.dialect,
        current=probe.revision,
        target=revision,
        destination=destination,
        steps=steps,
        row_counts=tuple(
            (name, count) for name, count in probe.row_counts.items() if count is not None
        ),
    )


def downgrade(rt: Runtime, plan: DowngradePlan) -> MigrationResult:
    """Carry out a plan from :func:`plan_downgrade` (a plan without steps is a no-op)."""
    from vutf_cli.db import migrations

    if plan.steps:
        _run_alembic(
            rt,
            lambda: migrations.downgrade(rt.settings, rt.db.engine, plan.destination),
            idempotent=not migrations.is_relative_revision(plan.destination),
            failure=_rolled_back(f"the downgrade to {plan.target}"),
        )
    return _migration_result(rt, plan.current)


def render_upgrade_sql(settings: Settings, revision: str = "head") -> RenderedSql:
    """The upgrade's SQL, offline: REVISION means base→REVISION, or give FROM:TO."""
    from vutf_cli.db import migrations

    return RenderedSql(
        dialect=_dialect_of(settings),
        revision_range=revision if ":" in revision else f"{BASE}:{revision}",
        sql=migrations.render_sql(settings, revision),
    )


def render_downgrade_sql(settings: Settings, revision: str) -> RenderedSql:
    """The downgrade's SQL, offline: REVISION means head→REVISION, or give FROM:TO."""
    from vutf_cli.db import migrations

    revision_range = revision if ":" in revision else f"head:{revision}"
    return RenderedSql(
        dialect=_dialect_of(settings),
        revision_range=revision_range,
        sql=migrations.render_sql(settings, revision_range, downgrade=True),
    )


def history() -> list[RevisionView]:
    """Every migration script, newest first (no database needed)."""
    from vutf_cli.db import migrations

    return [_view(script) for script in migrations.revisions()]


def heads() -> list[RevisionView]:
    from vutf_cli.db import migrations

    return [_view(script) for script in migrations.heads()]


def check(rt: Runtime) -> CheckResult:
    """Pass (return) only at head with no drift; else SchemaOutdated (8) or IntegrityFailure (6)."""
    from vutf_cli.db import migrations

    status = current(rt)
    if not status.at_head:
        raise _not_at_head(status, [script.revision for script in migrations.revisions()])
    _run_alembic(
        rt,
        lambda: migrations.check_drift(rt.settings, rt.db.engine),
        idempotent=True,
        failure=lambda reason: InternalError(f"comparing the schema failed: {reason}"),
    )
    return CheckResult(
        database=status.database,
        dialect=status.dialect,
        current=status.current,
        head=status.head,
        at_head=True,
        drift=False,
    )


def _not_at_head(status: RevisionStatus, known_newest_first: list[str]) -> SchemaOutdated:
    where = f"the database at {status.database}"
    if status.current is None:
        return SchemaOutdated(f"{where} has no vutf schema (head is {status.head})")
    if status.current not in known_newest_first:
        return SchemaOutdated(
            f"{where} is at revision {status.current}, which this vutf does not know "
            f"(its head is {status.head})",
            hint="the database was probably migrated by a newer vutf; upgrade vutf",
        )
    pending = known_newest_first.index(status.current)
    return SchemaOutdated(
        f"{where} is at revision {status.current}, head is {status.head} "
        f"({pending} migration(s) pending)"
    )


def status(rt: Runtime) -> DatabaseStatus:
    probe = rt.db.run(_probe, read_only=True)
    revision = _revision_status(rt, probe.revision)
    pool_class, pool_size, max_overflow, pool_timeout = _pool_settings(rt)
    settings = rt.settings
    return DatabaseStatus(
        database=revision.database,
        dialect=revision.dialect,
        driver=str(rt.db.engine.dialect.driver),
        server_version=probe.server_version,
        current=revision.current,
        head=revision.head,
        at_head=revision.at_head,
        users_rows=probe.row_counts["users"],
        api_keys_rows=probe.row_counts["api_keys"],
        audit_log_rows=probe.row_counts["audit_log"],
        pool_class=pool_class,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_timeout=settings.connect_timeout,
        statement_timeout_ms=settings.statement_timeout_ms,
        db_deadline=settings.db_deadline,
    )


def _pool_settings(rt: Runtime) -> tuple[str, int | None, int | None, float | None]:
    """The engine's actual pool (what was configured, not what is checked out)."""
    from sqlalchemy.pool import QueuePool

    pool = rt.db.engine.pool
    if not isinstance(pool, QueuePool):
        return type(pool).__name__, None, None, None
    # QueuePool has no public accessor for max_overflow.
    max_overflow = getattr(pool, "_max_overflow", None)
    return (
        type(pool).__name__,
        pool.size(),
        int(max_overflow) if isinstance(max_overflow, int) else None,
        float(pool.timeout()),
    )


def ping(rt: Runtime) -> PingResult:
    """One query round trip, under the retry policy (DatabaseUnavailable past the deadline)."""
    started = time.perf_counter()

    def round_trip(uow: UnitOfWork) -> tuple[str, float]:
        uow.session.connection()  # the connection is made outside the timed part
        sent = time.perf_counter()
        version = _server_version(uow)
        return version, time.perf_counter() - sent

    version, latency = rt.db.run(round_trip, read_only=True)
    total = time.perf_counter() - started
    return PingResult(
        database=rt.settings.masked_url,
        dialect=rt.db.dialect,
        server_version=version,
        latency_ms=round(latency * 1000, 3),
        total_ms=round(total * 1000, 3),
    )


__all__ = [
    "APP_TABLES",
    "CheckResult",
    "DatabaseStatus",
    "DowngradePlan",
    "MigrationResult",
    "PingResult",
    "RenderedSql",
    "RevisionStatus",
    "RevisionView",
    "check",
    "current",
    "downgrade",
    "heads",
    "history",
    "ping",
    "plan_downgrade",
    "render_downgrade_sql",
    "render_upgrade_sql",
    "status",
    "upgrade",
]
