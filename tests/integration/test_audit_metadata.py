"""What an audit row's metadata holds, on SQLite and PostgreSQL (docs/architecture.md §3.2).

The services decide it: ``audit_trail.database_for(settings, invocation)``
(what the command line builds, once per command) records the process (host,
OS user, vutf version) and the command path and option names of the
invocation, the unit of work adds its request id, and the services drop
secrets from ``changes`` and ``metadata`` before the repository stores them.
Nothing is read from ``sys.argv``: each test here runs with a command line
full of secrets and checks that none of it is stored.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Iterator
from typing import Any, cast

import pytest
from sqlalchemy import Table, select, text

from vutf_cli import __version__
from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.invocation import Invocation
from vutf_cli.services import audit_trail
from vutf_cli.services.users import create_user
from vutf_cli.settings import Settings

AUDIT = cast(Table, AuditLog.__table__)
ARGV_SECRET = "argv-Sentinel-4b1d"
HOSTILE_ARGV = [
    "/opt/venv/bin/vutf",
    "--database-url",
    f"postgresql://admin:{ARGV_SECRET}@db/prod",
    f"--database-url=postgresql://admin@db/prod?password={ARGV_SECRET}",
    "--actor",
    ARGV_SECRET,
    "users",
    "create",
    "--full-name",
    ARGV_SECRET,
]
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def hostile_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process's command line carries secrets; no test here may find them stored."""
    monkeypatch.setattr("sys.argv", HOSTILE_ARGV)


@pytest.fixture
def database_for(settings: Settings) -> Iterator[Any]:
    made: list[Database] = []

    def make(invocation: Invocation | None) -> Database:
        made.append(audit_trail.database_for(settings, invocation))
        return made[-1]

    yield make
    for db in made:
        db.dispose()


def _stored(db: Database) -> list[dict[str, Any]]:
    """Every row: the parsed columns, plus the metadata as the database holds its text."""
    dialect = db.dialect
    metadata_text = "metadata::text" if dialect == "postgresql" else "metadata"

    def read(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = [dict(r._mapping) for r in uow.session.execute(select(AUDIT).order_by(AUDIT.c.seq))]
        texts = uow.session.execute(
            text(f"SELECT {metadata_text} FROM audit_log ORDER BY seq")
        ).scalars()
        for row, stored in zip(rows, texts, strict=True):
            row["metadata_text"] = stored
        return rows

    return db.run(read, read_only=True)


def _assert_no_argv(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert ARGV_SECRET not in row["metadata_text"]
        assert ARGV_SECRET not in json.dumps(row["changes"])
        assert ARGV_SECRET not in row["actor"]


def test_a_command_records_its_path_and_option_names(database_for: Any) -> None:
    invocation = Invocation("users create", ("--email", "--full-name", "--password-stdin"))
    db = database_for(invocation)
    create_user(db, username="alice", email="alice@example.com", password=PASSWORD)

    (row,) = _stored(db)
    meta = row["metadata"]
    assert meta == {
        "host": socket.gethostname(),
        "os_user": getpass.getuser(),
        "vutf_version": __version__,
        "command": "users create",
        "options": ["--email", "--full-name", "--password-stdin"],
        "request_id": meta["request_id"],
        "audit_key": None,  # the fingerprint of the audit key: none here
    }
    assert len(meta["request_id"]) == 36
    assert row["changes"]["email"] == "alice@example.com"  # the audited data itself
    _assert_no_argv([row])
    report = db.run(lambda uow: uow.audit.verify_chain(), read_only=True)
    assert report.ok
    assert report.checked == 1


def test_a_library_caller_records_no_command(database_for: Any) -> None:
    db = database_for(None)
    create_user(db, username="bob", email="bob@example.com", password=PASSWORD)

    (row,) = _stored(db)
    assert set(row["metadata"]) == {"host", "os_user", "vutf_version", "request_id", "audit_key"}
    _assert_no_argv([row])


def test_a_database_built_without_metadata_records_only_the_request_id_and_key(
    db: Database,
) -> None:
    def work(uow: UnitOfWork) -> str:
        audit_trail.append(uow, action="user.update", resource_type="user")
        return uow.request_id

    request_id = db.run(work)
    (row,) = _stored(db)
    assert row["metadata"] == {"request_id": request_id, "audit_key": None}


def test_given_metadata_is_merged_over_the_defaults_without_secrets(database_for: Any) -> None:
    db = database_for(Invocation("users update", ("--full-name",)))

    def work(uow: UnitOfWork) -> None:
        audit_trail.append(
            uow,
            action="user.update",
            resource_type="user",
            metadata={"extra": [1, 2], "api_token": "t0ken", "host": "override-host"},
        )
        audit_trail.append_many(
            uow, [{"action": "user.create", "resource_type": "user", "metadata": {"Secret": 1}}]
        )

    db.run(work)
    one, many = _stored(db)
    assert one["metadata"]["host"] == "override-host"  # given metadata wins
    assert one["metadata"]["extra"] == [1, 2]
    assert one["metadata"]["command"] == "users update"
    assert one["metadata"]["options"] == ["--full-name"]
    assert "api_token" not in one["metadata"]
    assert "t0ken" not in one["metadata_text"]
    assert set(many["metadata"]) == {
        "host",
        "os_user",
        "vutf_version",
        "command",
        "options",
        "request_id",
        "audit_key",
    }
    _assert_no_argv([one, many])


SECRET_CHANGES = {
    "username": "alice",
    "password": "hunter2hunter2",
    "new_password_hash": "$argon2id$...",
    "API_TOKEN": "abc",
    "client_secret": "s",
    "key_hash": "f" * 64,
    "key": "vutf_live_key",
    "key_prefix": "vutf_abcdefg",
    "keys_rotated": 2,
    "nested": {"Password": "x", "items": [{"refresh_token": "t", "ok": 1}, "plain"]},
    "pair": ({"token": "t"}, 1),
}
SCRUBBED = {
    "username": "alice",
    "key_prefix": "vutf_abcdefg",
    "keys_rotated": 2,
    "nested": {"items": [{"ok": 1}, "plain"]},
    "pair": [{}, 1],
}


def test_secrets_are_dropped_from_changes_by_append_and_append_many(db: Database) -> None:
    def work(uow: UnitOfWork) -> None:
        audit_trail.append(uow, action="user.create", resource_type="user", changes=SECRET_CHANGES)
        entry = {"action": "user.create", "resource_type": "user", "changes": SECRET_CHANGES}
        audit_trail.append_many(uow, [entry, entry])

    db.run(work)
    rows = _stored(db)
    assert [row["changes"] for row in rows] == [SCRUBBED] * 3
    assert audit_trail.scrub_secrets(SECRET_CHANGES) == SCRUBBED
    report = db.run(lambda uow: uow.audit.verify_chain(), read_only=True)
    assert report.ok
    assert report.checked == 3


def test_the_repository_reads_no_process_state(db: Database) -> None:
    """Appending straight through the repository records only what the unit of work gives."""

    def work(uow: UnitOfWork) -> str:
        uow.audit.append(action="user.create", resource_type="user", changes={"n": 1})
        return uow.request_id

    request_id = db.run(work)
    (row,) = _stored(db)
    assert row["metadata"] == {"request_id": request_id}
    _assert_no_argv([row])
