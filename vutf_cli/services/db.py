"""The schema behind `vutf db`: where it is, migrating it, and checking it for drift.

Alembic is imported only inside the functions that need it (``upgrade``,
``downgrade``, ``history``, ``check`` and the ``--sql`` renderers);
``current`` compares against the head constant instead.  `vutf db status` and
`ping` are in :mod:`vutf_cli.services.db_status`, the runtime role in
:mod:`vutf_cli.services.runtime_role`.

Every function returns a frozen view.  Failures arrive as vutf errors:
unreachable or unusable database → DatabaseUnavailable (7), unknown target
revision → NotFound (3), pending migrations, or a database migrated by a
newer vutf → SchemaOutdated (8), drift → IntegrityFailure (6).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vutf_cli.errors import Conflict, Denied, InternalError, SchemaOutdated, VutfError
from vutf_cli.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.exc import SQLAlchemyError

    from vutf_cli.db.database import Database
    from vutf_cli.db.migrations import ScriptRevision

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


def _current_revision(db: Database) -> str | None:
    return db.run(lambda uow: uow.schema_revision(), read_only=True)


def _inspected_revision(db: Database) -> str | None:
    """The revision for a read-only look: None for a missing SQLite file, left uncreated.

    A revision this vutf does not know is exit 8 (a newer vutf migrated the database).
    """
    revision = None if db.missing_file else _current_revision(db)
    _refuse_unknown(db, revision)
    return revision


def _refuse_unknown(db: Database, revision: str | None) -> None:
    if revision is None or revision == _head():
        return
    from vutf_cli.db import migrations

    if not migrations.is_known_revision(revision):
        raise migrations.newer_schema_error(db.settings.masked_url, revision)


def _head() -> str:
    from vutf_cli.db.schema_version import HEAD_REVISION

    return HEAD_REVISION


def _dialect_of(settings: Settings) -> str:
    from vutf_cli.db.engine import parse_database_url

    return str(parse_database_url(settings.database_url).get_backend_name())


def _revision_status(db: Database, revision: str | None) -> RevisionStatus:
    head = _head()
    return RevisionStatus(
        database=db.settings.masked_url,
        dialect=db.dialect,
        current=revision,
        head=head,
        at_head=revision == head,
    )


def _migration_result(db: Database, previous: str | None) -> MigrationResult:
    now = _revision_status(db, _current_revision(db))
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
def _sql_errors(db: Database, failure: Callable[[str], VutfError]) -> Iterator[None]:
    """SQLAlchemy errors that survived the retries, as vutf errors."""
    from sqlalchemy.exc import SQLAlchemyError

    from vutf_cli.db.database import storage_error
    from vutf_cli.db.resilience import describe

    try:
        yield
    except SQLAlchemyError as exc:
        # A file that is not a database, read-only or on a full disk is exit 7, like elsewhere.
        translated = storage_error(exc, db.settings)
        raise translated or _permanent_error(exc, describe(exc), failure) from exc


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
    db: Database,
    operation: Callable[[], None],
    *,
    idempotent: bool,
    failure: Callable[[str], VutfError],
) -> None:
    """Run one Alembic operation (its own transaction) under the breaker and retry policy.

    Only idempotent operations are retried: an upgrade or downgrade to a fixed
    revision that did commit before the connection dropped is a no-op the
    second time, whereas a relative one (``+1``, ``-1``) would move again.
    """
    with _sql_errors(db, failure):
        db.run_operation(operation, idempotent=idempotent)


def _rolled_back(doing: str) -> Callable[[str], VutfError]:
    def make(reason: str) -> VutfError:
        return Conflict(
            f"{doing} failed and was rolled back: {reason}",
            hint="the database holds something the migration did not expect; see `vutf db status`",
        )

    return make


# -- commands ---------------------------------------------------------------------------
def current(db: Database) -> RevisionStatus:
    return _revision_status(db, _inspected_revision(db))


def upgrade(db: Database, revision: str = "head") -> MigrationResult:
    # The one command (with the default database's first use) that creates a
    # missing SQLite file.
    db.allow_creating()
    # Reach the server first (with the retry policy) so an outage is exit 7;
    # at head already, no migration lock is taken (a read-only copy says so too).
    found = _current_revision(db)
    _refuse_unknown(db, found)
    if revision == "head" and found == _head():
        return _migration_result(db, found)
    # What a waiting process finds under the migration lock is its "before".
    with _sql_errors(db, _rolled_back(f"the upgrade to {revision}")):
        previous = db.migrate(revision)
    return _migration_result(db, previous)


def plan_downgrade(db: Database, revision: str) -> DowngradePlan:
    """Resolve REVISION against the database's current revision; change nothing."""
    from vutf_cli.db import migrations
    from vutf_cli.services.db_status import probe

    found = db.run(probe, read_only=True)
    _refuse_unknown(db, found.revision)
    steps = tuple(_view(step) for step in migrations.downgrade_steps(found.revision, revision))
    destination = revision
    if not steps:
        destination = found.revision or BASE
    elif migrations.is_relative_revision(revision) and "," not in (steps[-1].down_revision or ""):
        # Pin "-1" to the revision it means now, so a retry cannot go further.
        destination = steps[-1].down_revision or BASE
    return DowngradePlan(
        database=db.settings.masked_url,
        dialect=db.dialect,
        current=found.revision,
        target=revision,
        destination=destination,
        steps=steps,
        row_counts=tuple(
            (name, count) for name, count in found.row_counts.items() if count is not None
        ),
    )


def downgrade(db: Database, plan: DowngradePlan) -> MigrationResult:
    """Carry out a plan from :func:`plan_downgrade` (a plan without steps is a no-op)."""
    from vutf_cli.db import migrations

    if plan.steps:
        _run_alembic(
            db,
            lambda: migrations.downgrade(db.settings, db.engine, plan.destination),
            idempotent=not migrations.is_relative_revision(plan.destination),
            failure=_rolled_back(f"the downgrade to {plan.target}"),
        )
    return _migration_result(db, plan.current)


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


def check(db: Database) -> CheckResult:
    """Pass (return) only at head with no drift; else SchemaOutdated (8) or IntegrityFailure (6)."""
    from vutf_cli.db import migrations

    status = current(db)
    if not status.at_head:
        raise _not_at_head(status, [script.revision for script in migrations.revisions()])
    _run_alembic(
        db,
        lambda: migrations.check_drift(db.settings, db.engine),
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
    # A revision this vutf does not know was refused by current() already.
    where = f"the database at {status.database}"
    if status.current is None:
        return SchemaOutdated(f"{where} has no vutf schema (head is {status.head})")
    pending = known_newest_first.index(status.current)
    return SchemaOutdated(
        f"{where} is at revision {status.current}, head is {status.head} "
        f"({pending} migration(s) pending)"
    )


__all__ = [
    "BASE",
    "CheckResult",
    "DowngradePlan",
    "MigrationResult",
    "RenderedSql",
    "RevisionStatus",
    "RevisionView",
    "check",
    "current",
    "downgrade",
    "heads",
    "history",
    "plan_downgrade",
    "render_downgrade_sql",
    "render_upgrade_sql",
    "upgrade",
]
