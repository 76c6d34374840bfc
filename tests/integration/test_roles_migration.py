"""Migration 0004_roles with data in it: upgrade, downgrade and re-upgrade, on both dialects.

The rows of the older tables survive the round trip; the role tables go on
downgrade and come back with the built-in roles (same fixed ids) on upgrade,
with no drift from the models.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from vutf_cli.db import migrations
from vutf_cli.db.database import Database
from vutf_cli.db.engine import make_engine
from vutf_cli.services import role_assignments, roles
from vutf_cli.services import users as user_service
from vutf_cli.services.permissions import user_permissions
from vutf_cli.services.role_assignments import Target
from vutf_cli.settings import Settings

pytestmark = pytest.mark.fresh_database


@pytest.fixture
def settings_empty(empty_database_url: str) -> Settings:
    return Settings(
        database_url=empty_database_url, db_deadline=5.0, argon2_profile="test", actor="t@t"
    )


@pytest.fixture
def engine(settings_empty: Settings) -> Iterator[Engine]:
    engine = make_engine(settings_empty)
    try:
        yield engine
    finally:
        engine.dispose()


def _rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(sql))]


def test_round_trip_with_data(settings_empty: Settings, engine: Engine) -> None:
    migrations.upgrade(settings_empty, engine)
    builtin = _rows(engine, "SELECT id, name FROM roles ORDER BY name")
    assert [name for _, name in builtin] == ["admin", "key-manager", "user-manager", "viewer"]
    db = Database(settings_empty)
    try:
        user_service.create_user(
            db, username="bob", email="bob@example.com", password="correct horse battery staple"
        )
        roles.create_role(db, name="ops", scopes=["write"])
        role_assignments.add_role(db, [Target("bob")], "ops", expires_in="7d")
        role_assignments.add_role(db, [Target("bob")], "viewer")
        assert user_permissions(db, "bob").scopes == ("read", "write")
    finally:
        db.dispose()

    migrations.downgrade(settings_empty, engine, "0003_login_lockout")
    tables = set(sa.inspect(engine).get_table_names())
    assert {"roles", "user_roles"}.isdisjoint(tables)
    assert _rows(engine, "SELECT username FROM users") == [("bob",)]

    migrations.upgrade(settings_empty, engine)
    migrations.check_drift(settings_empty, engine)
    assert _rows(engine, "SELECT id, name FROM roles ORDER BY name") == builtin
    assert _rows(engine, "SELECT count(*) FROM user_roles") == [(0,)]
    assert _rows(engine, "SELECT username FROM users") == [("bob",)]
    db = Database(settings_empty)
    try:
        assert user_permissions(db, "bob").scopes == ()
        role_assignments.add_role(db, [Target("bob")], "viewer")
        assert user_permissions(db, "bob").scopes == ("read",)
    finally:
        db.dispose()
