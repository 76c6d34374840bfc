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

from vutf_cli.errors import (
    Conflict,
    Denied,
    InternalError,
    InvalidInput,
    NotFound,
    SchemaOutdated,
    VutfError,
)
from vutf_cli.services.runtime import Runtime
from vutf_cli.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
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


@dataclass(frozen=True, slots=True)
class RuntimeRoleSql:
    """The grant (or revoke) script for a runtime role, rendered offline (``--sql``)."""

    dialect: str
    role: str
    database_name: str
    sql: str


@dataclass(frozen=True, slots=True)
class RuntimeRoleResult:
    """A runtime role after `vutf db grant-runtime` / `revoke-runtime`.

    The four table fields are the privileges the role holds *now*, however
    obtained (read back from the catalog, not what was asked for).
    """

    database: str
    database_name: str
    schema: str
    role: str
    created: bool
    can_login: bool
    hard_delete: bool
    users: tuple[str, ...]
    api_keys: tuple[str, ...]
    audit_log: tuple[str, ...]
    alembic_version: tuple[str, ...]


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


def _missing_probe() -> _Probe:
    """What a SQLite file that does not exist (and is not created by looking) holds: nothing."""
    import sqlite3

    return _Probe(
        server_version=sqlite3.sqlite_version,
        revision=None,
        row_counts=dict.fromkeys(APP_TABLES),
    )


def _current_revision(rt: Runtime) -> str | None:
    return rt.db.run(lambda uow: uow.schema_revision(), read_only=True)


def _inspected_revision(rt: Runtime) -> str | None:
    """The revision for a read-only look: None for a missing SQLite file, left uncreated."""
    return None if rt.db.missing_file else _current_revision(rt)


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
    return _revision_status(rt, _inspected_revision(rt))


def upgrade(rt: Runtime, revision: str = "head") -> MigrationResult:
    from vutf_cli.db import migrations

    # The one command (with the default database's first use) that creates a
    # missing SQLite file.
    rt.db.allow_creating()
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
    probe = _missing_probe() if rt.db.missing_file else rt.db.run(_probe, read_only=True)
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


# -- the least-privilege runtime role (PostgreSQL) ---------------------------------------
ROLE_RESOURCE = "role"

_OWNER_HINT = (
    "run it as the owner of the vutf tables (the role that ran `vutf db upgrade`) "
    "or a superuser; --create also needs the CREATEROLE attribute"
)


def require_postgresql(settings: Settings, command: str) -> str:
    """The database name of a PostgreSQL URL; InvalidInput (2) for SQLite."""
    from vutf_cli.db.engine import parse_database_url

    url = parse_database_url(settings.database_url)
    if url.get_backend_name() != "postgresql":
        raise InvalidInput(
            f"`vutf db {command}` is for PostgreSQL only: SQLite has no roles or privileges "
            f"(the database is {settings.masked_url})",
            hint="give a PostgreSQL URL with --database-url or VUTF_DATABASE_URL",
        )
    if not url.database:
        raise InvalidInput(f"the database URL {settings.masked_url} names no database")
    return url.database


def render_runtime_grant_sql(
    settings: Settings, role: str, *, create: bool = False, hard_delete: bool = True
) -> RuntimeRoleSql:
    """The grant script for ``role``, offline: the database name comes from the URL."""
    from vutf_cli.db import privileges

    database_name = require_postgresql(settings, "grant-runtime")
    statements = privileges.grant_statements(
        role, database=database_name, hard_delete=hard_delete, create=create
    )
    comments = [
        f"vutf runtime role {role!r}: exactly what vutf needs, no DDL, "
        "audit_log append-only (SELECT, INSERT).",
        f"Run it in database {database_name!r} (tables in schema public) as their owner.",
    ]
    if create:
        comments.append("CREATE ROLE fails if the role exists: drop that line then.")
    comments.append("Logging in is the DBA's step: ALTER ROLE ... LOGIN PASSWORD '...';")
    return RuntimeRoleSql(
        dialect="postgresql",
        role=role,
        database_name=database_name,
        sql=privileges.render_script(statements, comments=comments),
    )


def render_runtime_revoke_sql(settings: Settings, role: str) -> RuntimeRoleSql:
    from vutf_cli.db import privileges

    database_name = require_postgresql(settings, "revoke-runtime")
    statements = privileges.revoke_statements(role, database=database_name)
    return RuntimeRoleSql(
        dialect="postgresql",
        role=role,
        database_name=database_name,
        sql=privileges.render_script(
            statements, comments=[f"take back the vutf runtime privileges of {role!r}"]
        ),
    )


def _execute_privileged(uow: UnitOfWork, statements: list[str]) -> None:
    """Run DCL statements; the server refusing (42501) is Denied (5)."""
    from sqlalchemy.exc import DBAPIError

    from vutf_cli.db.resilience import describe

    connection = uow.session.connection()
    for statement in statements:
        try:
            # no_parameters: psycopg2 then leaves a % (legal in a quoted role
            # name) alone, so the text sent is exactly the text --sql prints.
            connection.exec_driver_sql(statement, execution_options={"no_parameters": True})
        except DBAPIError as exc:
            if getattr(exc.orig, "pgcode", None) == "42501":
                raise Denied(f"the database refused: {describe(exc)}", hint=_OWNER_HINT) from exc
            raise


def _require_administrator(connection: Connection, schema: str) -> None:
    """Denied (5) unless this connection's role may change privileges on every vutf table."""
    from sqlalchemy import text

    from vutf_cli.db import privileges

    refused = privileges.not_administered(connection, schema=schema)
    if refused:
        who = connection.execute(text("SELECT current_user")).scalar_one()
        raise Denied(
            f"role {who!r} may not change privileges on {', '.join(refused)}: "
            "only their owner (or a superuser) may",
            hint=_OWNER_HINT,
        )


def _runtime_result(
    *,
    role: str,
    schema: str,
    database_name: str,
    created: bool,
    can_login: bool,
    hard_delete: bool,
    held: dict[str, tuple[str, ...]],
    masked_url: str,
) -> RuntimeRoleResult:
    return RuntimeRoleResult(
        database=masked_url,
        database_name=database_name,
        schema=schema,
        role=role,
        created=created,
        can_login=can_login,
        hard_delete=hard_delete,
        users=held["users"],
        api_keys=held["api_keys"],
        audit_log=held["audit_log"],
        alembic_version=held["alembic_version"],
    )


def grant_runtime(
    rt: Runtime, role: str, *, create: bool = False, hard_delete: bool = True
) -> RuntimeRoleResult:
    """Give ``role`` exactly the runtime privileges (see :mod:`vutf_cli.db.privileges`).

    All in one transaction with its ``db.grant_runtime`` audit row: the
    grants, then a read-back of what the role now holds, however obtained.
    Refused (nothing changed, a failure row written): a missing role without
    ``create`` (NotFound, 3); a superuser, an owner of the vutf tables (or a
    member of the owner), or a role that would still hold more than the
    runtime set through PUBLIC or another role (Conflict, 4); an operator who
    may not grant (Denied, 5).  SQLite: InvalidInput (2), before connecting.
    """
    from vutf_cli.db import privileges
    from vutf_cli.services.audit_trail import mutate

    require_postgresql(rt.settings, "grant-runtime")
    privileges.check_role_name(role)
    rt.ensure_schema()
    allowed = privileges.runtime_privileges(hard_delete=hard_delete)

    def grant(uow: UnitOfWork) -> RuntimeRoleResult:
        connection = uow.session.connection()
        schema = privileges.vutf_schema(connection)
        database_name = privileges.current_database(connection)
        _require_administrator(connection, schema)
        facts = privileges.role_facts(connection, role, schema=schema)
        created = False
        if facts is None:
            if not create:
                raise NotFound(
                    f"there is no role {role!r}",
                    hint="add --create to create it (NOLOGIN), or create it yourself first",
                )
            _execute_privileged(uow, [f"CREATE ROLE {privileges.quote_identifier(role)} NOLOGIN"])
            created = True
            facts = privileges.role_facts(connection, role, schema=schema)
            assert facts is not None
        if facts.superuser:
            raise Conflict(
                f"role {role!r} is a superuser: no privilege can restrict it",
                hint="use a role without SUPERUSER for vutf's day-to-day commands",
            )
        if facts.owns:
            raise Conflict(
                f"role {role!r} owns (or is a member of the owner of) {', '.join(facts.owns)}: "
                "an owner can alter the tables, disable their triggers and grant itself anything",
                hint="use a role that owns nothing; keep the owner for `vutf db upgrade`",
            )
        _execute_privileged(
            uow,
            privileges.grant_statements(
                role, database=database_name, schema=schema, hard_delete=hard_delete
            ),
        )
        held = privileges.effective_privileges(connection, role, schema=schema)
        # A GRANT without the right to grant is only a warning: check it took.
        missing = privileges.excess_privileges(allowed, held)
        if missing:
            listed = "; ".join(f"{table}: {', '.join(lack)}" for table, lack in missing.items())
            raise Denied(
                f"the database did not grant {listed} to role {role!r}: "
                "this connection's role may not grant them; nothing was changed",
                hint=_OWNER_HINT,
            )
        if not privileges.may_connect_and_use(
            connection, role, database=database_name, schema=schema
        ):
            raise Denied(
                f"role {role!r} still may not connect to {database_name} or use schema {schema}: "
                "granting those needs the database's and the schema's owner",
                hint=_OWNER_HINT,
            )
        excess = privileges.excess_privileges(held, allowed)
        if excess:
            listed = "; ".join(f"{table}: {', '.join(extra)}" for table, extra in excess.items())
            raise Conflict(
                f"role {role!r} would still hold more than vutf needs ({listed}), "
                "through PUBLIC or a role it is a member of; nothing was changed",
                hint="revoke those grants or memberships (\\dp and \\du in psql show them)",
            )
        uow.audit.append(
            action="db.grant_runtime",
            resource_type=ROLE_RESOURCE,
            resource_id=role,
            changes={
                "database": database_name,
                "schema": schema,
                "created": created,
                "hard_delete": hard_delete,
                "privileges": {table: list(names) for table, names in held.items()},
            },
        )
        return _runtime_result(
            role=role,
            schema=schema,
            database_name=database_name,
            created=created,
            can_login=facts.can_login,
            hard_delete=hard_delete,
            held=held,
            masked_url=rt.settings.masked_url,
        )

    return mutate(
        rt.db, grant, action="db.grant_runtime", resource_type=ROLE_RESOURCE, resource_id=role
    )


def revoke_runtime(rt: Runtime, role: str) -> RuntimeRoleResult:
    """Take back what :func:`grant_runtime` gave (the role itself stays).

    The result lists what the role still holds afterwards (through PUBLIC
    or memberships), which is usually nothing.
    """
    from vutf_cli.db import privileges
    from vutf_cli.services.audit_trail import mutate

    require_postgresql(rt.settings, "revoke-runtime")
    privileges.check_role_name(role)
    rt.ensure_schema()

    def revoke(uow: UnitOfWork) -> RuntimeRoleResult:
        connection = uow.session.connection()
        schema = privileges.vutf_schema(connection)
        database_name = privileges.current_database(connection)
        _require_administrator(connection, schema)
        facts = privileges.role_facts(connection, role, schema=schema)
        if facts is None:
            raise NotFound(f"there is no role {role!r}")
        _execute_privileged(
            uow, privileges.revoke_statements(role, database=database_name, schema=schema)
        )
        left = privileges.direct_grants(connection, role, schema=schema)
        if left:
            listed = "; ".join(f"{table}: {', '.join(names)}" for table, names in left.items())
            raise Denied(
                f"role {role!r} keeps {listed}: granted by a role this connection cannot "
                "act for; nothing was changed",
                hint=_OWNER_HINT,
            )
        held = privileges.effective_privileges(connection, role, schema=schema)
        uow.audit.append(
            action="db.revoke_runtime",
            resource_type=ROLE_RESOURCE,
            resource_id=role,
            changes={
                "database": database_name,
                "schema": schema,
                "privileges_left": {table: list(names) for table, names in held.items()},
            },
        )
        return _runtime_result(
            role=role,
            schema=schema,
            database_name=database_name,
            created=False,
            can_login=facts.can_login,
            hard_delete="DELETE" in held["users"],
            held=held,
            masked_url=rt.settings.masked_url,
        )

    return mutate(
        rt.db, revoke, action="db.revoke_runtime", resource_type=ROLE_RESOURCE, resource_id=role
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
    "RuntimeRoleResult",
    "RuntimeRoleSql",
    "check",
    "current",
    "downgrade",
    "grant_runtime",
    "heads",
    "history",
    "ping",
    "plan_downgrade",
    "render_downgrade_sql",
    "render_runtime_grant_sql",
    "render_runtime_revoke_sql",
    "render_upgrade_sql",
    "require_postgresql",
    "revoke_runtime",
    "status",
    "upgrade",
]
