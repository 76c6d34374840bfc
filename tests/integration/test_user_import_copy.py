"""``users import`` written in bulk: COPY on PostgreSQL, one executemany on SQLite.

What COPY's text format changes (escaping of backslashes, tabs, newlines,
NULL spelled ``\\N``) must not change what is stored; the audit rows, written
from one canonical-text template per import, must be exactly the rows the
ordinary path writes and verify as a chain; a refusal anywhere in the middle
leaves nothing behind.  Runs on real SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, VutfError
from vutf_cli.security.audit_chain import canonical_json, hash_canonical
from vutf_cli.security.passwords import Passwords
from vutf_cli.services import user_transfer
from vutf_cli.services import users as users_service
from vutf_cli.services.user_import import ImportRejected

PASSWORD = "correct horse battery staple"

# Full names that COPY's text format must carry exactly.
AWKWARD_NAMES = [
    "back\\slash",
    "\\N",  # COPY's NULL, spelled out: must stay text
    "ends with a backslash \\",
    "\\t not a tab, \\n not a newline",
    "quotes \"double\" and 'single'",
    "José Núñez",
    "王小明",
    "emoji \U0001f600 astral",
    "comma, semicolon; pipe |",
    None,  # no full name: NULL
]


@pytest.fixture(scope="module")
def a_hash() -> str:
    return Passwords("test").hash(PASSWORD)


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def users_by_name(db: Database) -> dict[str, dict[str, Any]]:
    table = User.__table__
    return db.run(
        lambda uow: {
            row.username: dict(row._mapping) for row in uow.session.execute(sa.select(table))
        },
        read_only=True,
    )


def audit_rows(db: Database) -> list[AuditLog]:
    def read(uow: UnitOfWork) -> list[AuditLog]:
        rows = list(uow.session.scalars(sa.select(AuditLog).order_by(AuditLog.seq)))
        for row in rows:
            uow.session.expunge(row)
        return rows

    return db.run(read, read_only=True)


def assert_chain_verifies(db: Database) -> None:
    report = db.run(lambda uow: uow.audit.verify_chain(), read_only=True)
    assert report.ok, report
    # And recomputed here from the rows as read back, field by field.
    prev = "0" * 64
    for row in audit_rows(db):
        content = {name: getattr(row, name) for name in ("id", "seq", "created_at", "actor")}
        content.update(
            {
                name: getattr(row, name)
                for name in (
                    "user_id",
                    "action",
                    "resource_type",
                    "resource_id",
                    "status",
                    "changes",
                    "error_message",
                    "duration_ms",
                    "ip_address",
                    "user_agent",
                )
            }
        )
        content["metadata"] = row.meta
        assert row.prev_hash == prev
        assert hash_canonical(prev, canonical_json(content), db.settings.audit_key) == row.row_hash
        prev = row.row_hash


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements the engine sends meanwhile (SQLAlchemy's public event)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_awkward_text_is_stored_exactly_and_audited(db: Database, a_hash: str) -> None:
    rows = [
        {
            "username": f"user{number}",
            "email": f"user{number}@example.com",
            "full_name": name,
            "password_hash": a_hash,
            "is_superuser": number % 2 == 0,
            "is_verified": number % 3 == 0,
        }
        for number, name in enumerate(AWKWARD_NAMES)
    ]
    rows.append({"username": "unicode-mail", "email": "ünï\\@example.com", "password_hash": a_hash})

    report = user_transfer.import_users(db, jsonl(rows), fmt="jsonl")

    assert report.created == len(rows)
    stored = users_by_name(db)
    for number, name in enumerate(AWKWARD_NAMES):
        user = stored[f"user{number}"]
        assert user["full_name"] == name
        assert user["is_superuser"] is (number % 2 == 0)
        assert user["is_verified"] is (number % 3 == 0)
        assert (user["verified_at"] is not None) is (number % 3 == 0)
        assert user["password_hash"] == a_hash
        assert user["created_by"] == user["updated_by"] == "tester@test"
        assert user["version"] == 1
    assert stored["unicode-mail"]["email"] == "ünï\\@example.com"

    log = audit_rows(db)
    creates = [row for row in log if row.action == "user.create"]
    assert [row.changes["username"] for row in creates] == [row["username"] for row in rows]
    assert [row.changes["full_name"] for row in creates] == [row.get("full_name") for row in rows]
    for row in creates:
        assert row.user_id == stored[row.changes["username"]]["id"]
        assert row.resource_id == str(row.user_id)
        assert row.changes["source"] == "import"
        assert row.actor == "tester@test"
        assert row.status == "success"
    # Every row of the import shares the metadata of the first one (the template).
    assert len({json.dumps(row.meta, sort_keys=True) for row in creates}) == 1
    assert log[-1].action == "user.import"
    assert_chain_verifies(db)


def test_an_import_is_a_few_statements_not_one_per_chunk(db: Database, a_hash: str) -> None:
    rows = [
        {"username": f"bulk{n}", "email": f"bulk{n}@example.com", "password_hash": a_hash}
        for n in range(2500)
    ]

    with statements(db) as seen:
        report = user_transfer.import_users(db, jsonl(rows), fmt="jsonl")

    assert report.created == 2500
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    # The users in one statement (none on PostgreSQL: COPY), the first
    # user.create row and the summary through the ordinary path, the other
    # audit rows in one statement (none on PostgreSQL).
    assert len(inserts) <= 4, inserts
    assert len(audit_rows(db)) == 2501
    assert_chain_verifies(db)


@pytest.mark.parametrize("name", ["tab\there", "new\nline", "carriage\rreturn", "nul\x00byte"])
def test_control_characters_in_full_names_refuse_the_file(
    db: Database, a_hash: str, name: str
) -> None:
    rows = [
        {"username": "fine", "email": "fine@example.com", "password_hash": a_hash},
        {"username": "bad", "email": "bad@example.com", "full_name": name, "password_hash": a_hash},
    ]

    with pytest.raises(ImportRejected):
        user_transfer.import_users(db, jsonl(rows), fmt="jsonl")

    assert users_by_name(db) == {}
    assert audit_rows(db) == []


def test_a_clash_met_by_the_bulk_write_rolls_everything_back(db: Database, a_hash: str) -> None:
    rows = [
        {"username": f"user{n}", "email": f"user{n}@example.com", "password_hash": a_hash}
        for n in range(50)
    ]

    @contextmanager
    def progress(total: int | None, description: str) -> Iterator[Any]:
        # Opened after the availability check, before the write transaction:
        # a user registered now is met by the unique index in mid-write.
        if description == "importing users":
            db.run(
                lambda uow: uow.users.create_user(
                    username="USER40", email="someone@example.com", password=PASSWORD
                )
            )
        yield lambda steps=1: None

    with pytest.raises(Conflict):
        user_transfer.import_users(db, jsonl(rows), fmt="jsonl", progress=progress)

    assert list(users_by_name(db)) == ["USER40"]
    actions = [(row.action, row.status) for row in audit_rows(db)]
    assert ("user.create", "success") not in actions
    assert actions[-1] == ("user.import", "failure")
    assert_chain_verifies(db)


def _refuse_audit_row(db: Database, seq: int) -> None:
    """A database trigger refusing the audit row with ``seq``: a refusal in mid-COPY."""
    if db.engine.dialect.name == "postgresql":
        ddl = [
            f"""CREATE FUNCTION test_refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.seq = {seq} THEN RAISE EXCEPTION 'refused by the test'; END IF;
                RETURN NEW;
            END $$""",
            """CREATE TRIGGER test_refuse BEFORE INSERT ON audit_log
            FOR EACH ROW EXECUTE FUNCTION test_refuse_row()""",
        ]
    else:
        ddl = [
            f"""CREATE TRIGGER test_refuse BEFORE INSERT ON audit_log WHEN NEW.seq = {seq}
            BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"""
        ]
    with db.engine.begin() as connection:
        for statement in ddl:
            connection.exec_driver_sql(statement)


def test_a_refusal_in_the_middle_of_the_audit_rows_rolls_everything_back(
    db: Database, a_hash: str
) -> None:
    rows = [
        {"username": f"user{n}", "email": f"user{n}@example.com", "password_hash": a_hash}
        for n in range(30)
    ]
    _refuse_audit_row(db, 17)

    with pytest.raises(VutfError):
        user_transfer.import_users(db, jsonl(rows), fmt="jsonl")

    assert users_by_name(db) == {}
    assert [row.action for row in audit_rows(db) if row.action == "user.create"] == []
    assert_chain_verifies(db)
    # The same import succeeds once the refusal is gone, chained after what exists.
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            "DROP TRIGGER test_refuse"
            + (" ON audit_log" if db.engine.dialect.name == "postgresql" else "")
        )
    assert user_transfer.import_users(db, jsonl(rows), fmt="jsonl").created == 30
    assert_chain_verifies(db)


def test_an_import_after_other_rows_chains_on_the_head(db: Database, a_hash: str) -> None:
    users_service.create_user(db, username="first", email="first@example.com", password=PASSWORD)
    rows = [
        {"username": f"user{n}", "email": f"user{n}@example.com", "password_hash": a_hash}
        for n in range(5)
    ]

    user_transfer.import_users(db, jsonl(rows), fmt="jsonl")
    user_transfer.import_users(
        db,
        jsonl(
            [
                {**row, "username": f"other{n}", "email": f"other{n}@e.com"}
                for n, row in enumerate(rows)
            ]
        ),
        fmt="jsonl",
    )

    assert [row.seq for row in audit_rows(db)] == list(range(1, 2 + 6 + 6))
    assert_chain_verifies(db)


def test_chunk_after_chunk_continues_one_chain(
    db: Database, a_hash: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(user_transfer, "_WRITE_CHUNK", 3)
    rows = [
        {
            "username": f"user{n}",
            "email": f"user{n}@example.com",
            "full_name": AWKWARD_NAMES[n % len(AWKWARD_NAMES)],
            "password_hash": a_hash,
        }
        for n in range(10)
    ]

    with statements(db) as seen:
        assert user_transfer.import_users(db, jsonl(rows), fmt="jsonl").created == 10

    # Four chunks. PostgreSQL: everything by COPY but the first user.create
    # row (the ordinary path, which the template is checked against) and the
    # summary row. SQLite: four users statements, four audit ones, those two.
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == (2 if db.engine.dialect.name == "postgresql" else 4 + 4 + 2)
    stored = users_by_name(db)
    assert [stored[f"user{n}"]["full_name"] for n in range(10)] == [
        row["full_name"] for row in rows
    ]
    creates = [row for row in audit_rows(db) if row.action == "user.create"]
    assert [row.changes["username"] for row in creates] == [f"user{n}" for n in range(10)]
    assert_chain_verifies(db)
