"""Migration 0005_normalize_identities with legacy spellings in it, on both dialects (finding 6).

Rows stored before the identity rule (an email in full-width letters or in
NFD, set here by SQL as an older vutf stored them) are rewritten to their
normalized form, so that they are found again and cannot be duplicated; two
live users that would become one identity refuse the upgrade (exit 8, both
named, nothing changed) rather than being merged; downgrade changes nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from tests.cli.conftest import invoke
from vutf_cli.db import migrations
from vutf_cli.db.database import Database
from vutf_cli.db.engine import make_engine
from vutf_cli.db.schema_version import HEAD_REVISION
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import SchemaOutdated
from vutf_cli.services import users as user_service
from vutf_cli.settings import Settings

pytestmark = pytest.mark.fresh_database

PASSWORD = "correct horse battery staple"
FULL_WIDTH = "\uff4a\uff4f\uff45" + "2@example.org"  # "joe" in full-width letters
NFD = unicodedata.normalize("NFD", "jos\u00e9@example.org")  # e + combining acute


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


def legacy_users(settings: Settings, engine: Engine, spellings: dict[str, str]) -> None:
    """Users created at 0004_roles, then given the email spellings an older vutf stored."""
    migrations.upgrade(settings, engine, "0004_roles")
    with engine.begin() as conn:  # created as the schema of 0004 wants them
        conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": HEAD_REVISION})
    db = Database(settings)
    try:
        for username in spellings:
            user_service.create_user(
                db, username=username, email=f"{username}@placeholder.org", password=PASSWORD
            )
    finally:
        db.dispose()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0004_roles'"))
        for username, email in spellings.items():
            conn.execute(
                sa.text("UPDATE users SET email = :email WHERE username = :username"),
                {"email": email, "username": username},
            )


def emails(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            name: email
            for name, email in conn.execute(sa.text("SELECT username, email FROM users"))
        }


def revision(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar())


def test_legacy_spellings_are_normalized_and_found_again(
    settings_empty: Settings, engine: Engine
) -> None:
    legacy_users(settings_empty, engine, {"joe2": FULL_WIDTH, "jose": NFD})
    migrations.upgrade(settings_empty, engine)
    assert revision(engine) == "0005_normalize_identities"
    assert emails(engine) == {
        "joe2": "joe2@example.org",
        "jose": "jos\u00e9@example.org",
    }
    migrations.check_drift(settings_empty, engine)
    db = Database(settings_empty)
    try:
        for spelled, username in ((FULL_WIDTH, "joe2"), (NFD, "jose")):

            def found(uow: UnitOfWork, spelled: str = spelled) -> str | None:
                user = uow.users.get_by_identifier(spelled)
                return None if user is None else user.username

            assert db.run(found, read_only=True) == username
    finally:
        db.dispose()

    migrations.downgrade(settings_empty, engine, "0004_roles")  # a no-op on the data
    assert revision(engine) == "0004_roles"
    assert emails(engine)["joe2"] == "joe2@example.org"


def test_users_that_would_become_one_refuse_the_upgrade_and_nothing_changes(
    settings_empty: Settings, engine: Engine
) -> None:
    legacy_users(settings_empty, engine, {"joe2": FULL_WIDTH, "joe3": "joe2@example.org"})
    before = emails(engine)
    with pytest.raises(SchemaOutdated) as refused:
        migrations.upgrade(settings_empty, engine)
    message = refused.value.message
    assert message.startswith("migration 0005_normalize_identities refused: 1 identity is")
    assert f"{FULL_WIDTH!r}" in message
    assert "'joe2@example.org'" in message
    assert "would all be email 'joe2@example.org'" in message
    assert refused.value.exit_code == 8
    assert revision(engine) == "0004_roles"
    assert emails(engine) == before


def test_the_command_line_says_so_in_one_line_with_a_hint(
    settings_empty: Settings, engine: Engine, empty_database_url: str
) -> None:
    legacy_users(settings_empty, engine, {"joe2": FULL_WIDTH, "joe3": "joe2@example.org"})
    result = invoke(["db", "upgrade"], env={"VUTF_DATABASE_URL": empty_database_url})
    assert (result.exit_code, result.stdout) == (8, ""), result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: migration 0005_normalize_identities refused:")
    assert lines[1].startswith("hint: rename or delete all but one user of each")
    assert "Traceback" not in result.stderr
