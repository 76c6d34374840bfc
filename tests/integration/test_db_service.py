"""vutf_cli.services.db and db_status against real databases (SQLite and PostgreSQL).

The service layer below `vutf db`: status, ping, check, the downgrade plan,
migrations and offline SQL, with the errors each is documented to raise.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.engine import make_engine
from vutf_cli.db.schema_version import HEAD_REVISION
from vutf_cli.errors import DatabaseUnavailable, IntegrityFailure, NotFound, SchemaOutdated
from vutf_cli.services import db as db_service
from vutf_cli.services import db_status
from vutf_cli.settings import Settings

UNREACHABLE_URL = "postgresql://postgres:s3cret-svc@127.0.0.1:1/vutf_unreachable"


def _database(url: str, **overrides: object) -> Database:
    settings = Settings(database_url=url, actor="tester@test", argon2_profile="test")
    return Database(settings.with_overrides(**{"db_deadline": 5.0, **overrides}))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = _database(database_url)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def empty_db(empty_database_url: str) -> Iterator[Database]:
    database = _database(empty_database_url)
    try:
        yield database
    finally:
        database.dispose()


def _execute(url: str, *statements: str) -> None:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _insert_user(url: str, name: str) -> None:
    _execute(
        url,
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) "
        f"VALUES ('{uuid.uuid4()}', '{name}', '{name}@example.com', 'x', "
        "'2026-01-01 00:00:00', '2026-01-01 00:00:00')",
    )


# -- status -----------------------------------------------------------------------------
def test_status_at_head(db: Database, database_url: str, backend: str) -> None:
    _insert_user(database_url, "alice")
    _insert_user(database_url, "bob")
    status = db_status.status(db)
    assert status.dialect == backend
    assert status.current == status.head == HEAD_REVISION
    assert status.at_head is True
    assert (status.users_rows, status.api_keys_rows, status.audit_log_rows) == (2, 0, 0)
    assert status.server_version
    assert status.driver == ("psycopg2" if backend == "postgresql" else "pysqlite")
    assert status.db_deadline == 5.0
    assert status.statement_timeout_ms == db.settings.statement_timeout_ms
    assert status.pool_class == "QueuePool"
    if backend == "postgresql":
        assert status.server_version[0].isdigit()
        assert (status.pool_size, status.max_overflow) == (
            db.settings.pool_size,
            db.settings.max_overflow,
        )
        assert status.pool_timeout == db.settings.db_deadline
    else:
        assert status.server_version == sqlite3.sqlite_version


def test_status_without_schema(empty_db: Database) -> None:
    status = db_status.status(empty_db)
    assert status.current is None
    assert status.at_head is False
    assert (status.users_rows, status.api_keys_rows, status.audit_log_rows) == (None, None, None)


def test_status_masks_the_password(database_url: str, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite URLs carry no password")
    url = sa.engine.make_url(database_url).set(password="hunter2-svc")
    db = _database(url.render_as_string(hide_password=False))
    try:
        status = db_status.status(db)
    finally:
        db.dispose()
    assert "hunter2-svc" not in status.database
    assert ":***@" in status.database


# -- ping -------------------------------------------------------------------------------
def test_ping(db: Database, backend: str) -> None:
    result = db_status.ping(db)
    assert result.dialect == backend
    assert result.server_version
    assert 0 < result.latency_ms <= result.total_ms
    assert result.database == db.settings.masked_url


def test_ping_unreachable_gives_up_at_the_deadline() -> None:
    db = _database(UNREACHABLE_URL, db_deadline=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            db_status.ping(db)
    finally:
        db.dispose()
    assert time.monotonic() - started < 5
    assert caught.value.exit_code == 7
    assert "postgres:***@127.0.0.1:1" in caught.value.message
    assert "s3cret-svc" not in caught.value.message


# -- check ------------------------------------------------------------------------------
def test_check_passes_at_head(db: Database) -> None:
    result = db_service.check(db)
    assert result.at_head is True
    assert result.drift is False
    assert result.current == HEAD_REVISION


def test_check_without_schema_is_schema_outdated(empty_db: Database) -> None:
    with pytest.raises(SchemaOutdated) as caught:
        db_service.check(empty_db)
    assert caught.value.exit_code == 8
    assert caught.value.hint == "run `vutf db upgrade`"


def test_check_at_an_unknown_revision(db: Database, database_url: str) -> None:
    _execute(database_url, "UPDATE alembic_version SET version_num = 'from_the_future'")
    with pytest.raises(SchemaOutdated) as caught:
        db_service.check(db)
    assert "from_the_future" in caught.value.message
    assert caught.value.hint is not None
    assert "newer vutf" in caught.value.hint


def test_check_detects_drift(db: Database, database_url: str) -> None:
    _execute(database_url, "CREATE INDEX ix_unexpected ON users (full_name)")
    with pytest.raises(IntegrityFailure) as caught:
        db_service.check(db)
    assert caught.value.exit_code == 6
    assert "ix_unexpected" in caught.value.message


@pytest.mark.parametrize(
    ("predicate", "shown"),
    [("", "lower"), (" WHERE is_deleted", "is_deleted")],
    ids=["without-predicate", "other-predicate"],
)
def test_check_detects_a_partial_index_that_lost_its_predicate(
    db: Database, database_url: str, predicate: str, shown: str
) -> None:
    # Alembic compares no predicates: vutf does (a deleted user's email would stay taken).
    _execute(database_url, "DROP INDEX uq_users_email_live")
    _execute(
        database_url, f"CREATE UNIQUE INDEX uq_users_email_live ON users (lower(email)){predicate}"
    )
    with pytest.raises(IntegrityFailure) as caught:
        db_service.check(db)
    assert caught.value.exit_code == 6
    assert "uq_users_email_live is not limited to rows WHERE NOT is_deleted" in caught.value.message
    assert shown in caught.value.message


# -- migrations through the service ---------------------------------------------------------
def test_plan_downgrade_changes_nothing(db: Database, database_url: str) -> None:
    _insert_user(database_url, "carol")
    plan = db_service.plan_downgrade(db, "-5")
    assert plan.current == HEAD_REVISION
    assert plan.destination == "base"  # "-5" pinned to what it means now
    assert [step.revision for step in plan.steps] == [
        HEAD_REVISION,
        "0004_roles",
        "0003_login_lockout",
        "0002_audit_chain_link",
        "0001_initial",
    ]
    assert plan.drops_everything is True
    assert dict(plan.row_counts) == {
        "users": 1,
        "api_keys": 0,
        "audit_log": 0,
        "roles": 4,  # the built-in roles
        "user_roles": 0,
    }
    assert db_service.current(db).current == HEAD_REVISION


def test_plan_downgrade_to_the_current_revision_is_empty(db: Database) -> None:
    plan = db_service.plan_downgrade(db, HEAD_REVISION)
    assert plan.steps == ()
    assert plan.drops_everything is False
    result = db_service.downgrade(db, plan)
    assert result.changed is False
    assert result.current == HEAD_REVISION


def test_plan_downgrade_unknown_revision(db: Database) -> None:
    with pytest.raises(NotFound):
        db_service.plan_downgrade(db, "no_such_rev")


def test_downgrade_then_upgrade(db: Database, database_url: str) -> None:
    down = db_service.downgrade(db, db_service.plan_downgrade(db, "base"))
    assert (down.previous, down.current, down.changed) == (HEAD_REVISION, None, True)
    engine = make_engine(Settings(database_url=database_url))
    try:
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()

    up = db_service.upgrade(db)
    assert (up.previous, up.current, up.at_head, up.changed) == (None, HEAD_REVISION, True, True)
    assert db_service.check(db).drift is False

    again = db_service.upgrade(db)
    assert again.changed is False


def test_upgrade_unknown_revision(db: Database) -> None:
    with pytest.raises(NotFound):
        db_service.upgrade(db, "no_such_rev")
    assert db_service.current(db).current == HEAD_REVISION


def test_upgrade_unreachable_is_unavailable() -> None:
    db = _database(UNREACHABLE_URL, db_deadline=1.0)
    try:
        with pytest.raises(DatabaseUnavailable):
            db_service.upgrade(db)
    finally:
        db.dispose()


# -- offline ---------------------------------------------------------------------------------
def test_history_and_heads() -> None:
    history = db_service.history()
    assert history[0].revision == HEAD_REVISION
    assert history[0].is_head is True
    assert history[-1].down_revision is None
    assert [head.revision for head in db_service.heads()] == [HEAD_REVISION]


def test_render_sql_ranges() -> None:
    settings = Settings(database_url=UNREACHABLE_URL)
    up = db_service.render_upgrade_sql(settings)
    assert (up.dialect, up.revision_range) == ("postgresql", "base:head")
    assert "CREATE TABLE audit_log (" in up.sql
    down = db_service.render_downgrade_sql(settings, "base")
    assert down.revision_range == "head:base"
    assert "DROP TABLE users;" in down.sql
    explicit = db_service.render_downgrade_sql(settings, f"{HEAD_REVISION}:base")
    assert explicit.revision_range == f"{HEAD_REVISION}:base"
    assert explicit.sql == down.sql
