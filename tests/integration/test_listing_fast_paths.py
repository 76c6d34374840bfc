"""The cheap paths behind ``vutf users list``, on SQLite and PostgreSQL.

* ``keyset_rows`` pages exactly like ``keyset`` (same rows, same order, same
  cursors, same refusals) but returns result rows, so listing builds no ORM
  object and configures no mapper.
* The partial unique indexes are declared on the models for both dialects:
  ``create_all`` and Alembic's autogenerate get their ``WHERE NOT is_deleted``.
* The schema check every command starts with finds the ``alembic_version``
  table without the inspector.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from sqlalchemy import Engine

from vutf_cli.db import migrations
from vutf_cli.db.base import Base
from vutf_cli.db.database import Database
from vutf_cli.db.engine import make_engine
from vutf_cli.db.models import User
from vutf_cli.db.repositories.base import BaseRepository, KeysetPage
from vutf_cli.db.schema_version import HEAD_REVISION
from vutf_cli.errors import InvalidInput
from vutf_cli.security.passwords import Passwords
from vutf_cli.settings import Settings

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LIVE_INDEXES = (
    "uq_users_username_live",
    "uq_users_email_live",
    "uq_api_keys_user_id_name_live",
    "uq_roles_name_live",
    "uq_user_roles_user_id_role_id_live",
)
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def password_hash() -> str:
    return Passwords("test").hash("correct horse battery staple")


@pytest.fixture
def members(db: Database, password_hash: str) -> int:
    """40 users over 6 timestamps (ties), some never logged in (NULLs), 4 soft-deleted."""
    with db.unit_of_work() as uow:
        for i in range(40):
            user = uow.users.create(
                username=f"member{i:03d}",
                email=f"member{i:03d}@example.com",
                password_hash=password_hash,
                full_name=None if i % 5 == 0 else f"Member {i}",
                created_at=T0 + timedelta(minutes=i % 6),
                last_login_at=None if i % 3 == 0 else T0 + timedelta(hours=i % 4),
            )
            if i % 10 == 7:
                uow.users.delete(user)
        uow.commit()
    return 40


def _walk(repo: BaseRepository[Any], method: str, limit: int, **kwargs: Any) -> list[Any]:
    """[(ids of a page, its next_cursor), ...] through every page."""
    pages: list[Any] = []
    cursor = None
    while True:
        page: KeysetPage[Any] = getattr(repo, method)(cursor=cursor, limit=limit, **kwargs)
        pages.append(([item.id for item in page.items], page.next_cursor))
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        assert len(pages) < 100, "keyset pagination did not end"


@pytest.mark.parametrize(
    ("order_by", "descending", "kwargs"),
    [
        ("created_at", False, {}),
        ("created_at", True, {}),
        ("username", False, {"include_deleted": True}),
        ("id", True, {}),
        ("last_login_at", False, {}),  # nullable: NULLs last
        ("last_login_at", True, {"filters": {"is_deleted": True}}),
        ("email", False, {"where": [User.username.like("member01%")]}),
    ],
)
def test_keyset_rows_pages_exactly_like_keyset(
    db: Database, members: int, order_by: str, descending: bool, kwargs: dict[str, Any]
) -> None:
    with db.unit_of_work(read_only=True) as uow:
        for limit in (1, 7, 40):
            orm = _walk(
                uow.users, "keyset", limit, order_by=order_by, descending=descending, **kwargs
            )
            rows = _walk(
                uow.users, "keyset_rows", limit, order_by=order_by, descending=descending, **kwargs
            )
            assert rows == orm, f"limit={limit}"


def test_keyset_rows_hold_every_column_as_the_orm_reads_it(db: Database, members: int) -> None:
    with db.unit_of_work(read_only=True) as uow:
        objects = uow.users.keyset(limit=40, include_deleted=True).items
        rows = uow.users.keyset_rows(limit=40, include_deleted=True).items
        columns = [column.name for column in Base.metadata.tables["users"].columns]
        assert list(rows[0]._mapping.keys()) == columns
        for obj, row in zip(objects, rows, strict=True):
            assert {name: getattr(obj, name) for name in columns} == dict(row._mapping)
        assert isinstance(rows[0].id, uuid.UUID)
        assert rows[0].created_at.tzinfo is UTC


def test_cursors_of_either_method_serve_the_other(db: Database, members: int) -> None:
    with db.unit_of_work(read_only=True) as uow:
        from_orm = uow.users.keyset(limit=5, order_by="username").next_cursor
        from_rows = uow.users.keyset_rows(limit=5, order_by="username").next_cursor
        assert from_orm == from_rows is not None
        following = uow.users.keyset(limit=5, order_by="username", cursor=from_rows)
        following_rows = uow.users.keyset_rows(limit=5, order_by="username", cursor=from_orm)
        assert [u.id for u in following.items] == [r.id for r in following_rows.items]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"order_by": "nope"}, "unknown field 'nope' for user"),
        ({"order_by": "api_keys"}, "unknown field 'api_keys' for user"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"cursor": "garbage"}, "invalid cursor"),
        ({"filters": {"nope": 1}}, "unknown field 'nope' for user"),
    ],
)
def test_keyset_rows_refuses_what_keyset_refuses(
    db: Database, kwargs: dict[str, Any], message: str
) -> None:
    with db.unit_of_work(read_only=True) as uow:
        for method in (uow.users.keyset, uow.users.keyset_rows):
            with pytest.raises(InvalidInput, match=message):
                method(**kwargs)


def _run_python(code: str, **env: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


def test_listing_users_configures_no_mapper(database_url: str, members: int) -> None:
    """A fresh process: listing (with a search and a cursor) leaves every mapper unconfigured."""
    answer = _run_python(
        """
        import json, os, sys
        from vutf_cli.db.models import ApiKey, AuditLog, User
        from vutf_cli.services import user_queries as users
        from vutf_cli.services.audit_trail import database_for
        from vutf_cli.settings import Settings

        db = database_for(Settings(database_url=os.environ["LIST_URL"], db_deadline=5.0))
        first = users.list_users(db, search="member", limit=3, sort="-username")
        second = users.list_users(db, search="member", limit=3, sort="-username",
                                  cursor=first.next_cursor)
        db.dispose()
        print(json.dumps({
            "listed": [u.username for u in first.items + second.items],
            "configured": [m.__mapper__.configured for m in (User, ApiKey, AuditLog)],
        }))
        """,
        LIST_URL=database_url,
    )
    assert answer["listed"] == [f"member{i:03d}" for i in (39, 38, 36, 35, 34, 33)]
    assert answer["configured"] == [False, False, False]


# -- the partial indexes, as the models declare them -----------------------------------------
@pytest.fixture
def empty_engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(Settings(database_url=empty_database_url, db_deadline=5.0))
    try:
        yield engine
    finally:
        engine.dispose()


def _index_definition(engine: Engine, name: str) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
        else:
            sql = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
        definition = conn.execute(sa.text(sql), {"name": name}).scalar_one()
    return " ".join(str(definition).split())


def test_create_all_builds_the_live_indexes_as_partial_indexes(empty_engine: Engine) -> None:
    Base.metadata.create_all(empty_engine)
    for name in LIVE_INDEXES:
        definition = _index_definition(empty_engine, name)
        assert definition.startswith(f"CREATE UNIQUE INDEX {name} ON ")
        if empty_engine.dialect.name == "sqlite":
            assert definition.endswith("WHERE NOT is_deleted")
        else:
            assert definition.endswith("WHERE (NOT is_deleted)")

    # And they behave as such: a soft-deleted name does not block a new user.
    users = Base.metadata.tables["users"]
    row = {
        "password_hash": "x",
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
    }
    with empty_engine.begin() as conn:
        conn.execute(
            sa.insert(users).values(
                id=uuid.uuid4(), username="alice", email="alice@example.com", is_deleted=True, **row
            )
        )
        conn.execute(
            sa.insert(users).values(
                id=uuid.uuid4(), username="Alice", email="alice@example.com", **row
            )
        )
    with pytest.raises(sa.exc.IntegrityError), empty_engine.begin() as conn:
        conn.execute(
            sa.insert(users).values(
                id=uuid.uuid4(), username="ALICE", email="other@example.com", **row
            )
        )


def test_alembic_sees_the_predicates_of_both_dialects() -> None:
    """What alembic/env.py hands to autogenerate renders like the hand-written migration."""
    metadata = Base.metadata
    for table in metadata.tables.values():
        for index in table.indexes:
            if index.name in LIVE_INDEXES:
                for dialect in ("postgresql", "sqlite"):
                    assert str(index.dialect_kwargs[f"{dialect}_where"]) == "NOT is_deleted"
            else:
                assert index.dialect_options["postgresql"]["where"] is None
    index = next(i for i in metadata.tables["users"].indexes if i.name == "uq_users_email_live")
    rendered = render_python_code(ops.UpgradeOps([ops.CreateIndexOp.from_index(index)]))
    assert "unique=True" in rendered
    assert "postgresql_where=sa.text('NOT is_deleted')" in rendered
    assert "sqlite_where=sa.text('NOT is_deleted')" in rendered


def test_schema_revision_is_none_until_migrated(empty_database_url: str) -> None:
    settings = Settings(database_url=empty_database_url, db_deadline=5.0)
    db = Database(settings, create_missing=True)
    try:
        assert db.run(lambda uow: uow.schema_revision(), read_only=True) is None
        if db.dialect == "postgresql":
            # A table of that name outside the search_path does not count.
            with db.engine.begin() as conn:
                conn.exec_driver_sql("CREATE SCHEMA elsewhere")
                conn.exec_driver_sql("CREATE TABLE elsewhere.alembic_version (version_num text)")
            assert db.run(lambda uow: uow.schema_revision(), read_only=True) is None
        migrations.upgrade(settings, db.engine)
        assert db.run(lambda uow: uow.schema_revision(), read_only=True) == HEAD_REVISION
    finally:
        db.dispose()
