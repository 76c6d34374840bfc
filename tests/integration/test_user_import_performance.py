"""The bulk write path of ``vutf users import``, on SQLite and PostgreSQL.

An import writes its users with one multi-row INSERT per chunk
(``UserRepository.create_many``), checks availability with a few
``lower(...) IN (...)`` queries (``UserRepository.holders_of``) and writes the
audit rows with ``AuditLogRepository.append_many``.  These tests check that
the fast path stores exactly what the row-by-row path did: the same columns
and defaults, one ``user.create`` row per user in file order, a valid chain,
all or nothing across chunks.  Speed itself is measured by a benchmark
script, not asserted here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog, User
from vutf_cli.db.repositories import users as users_repository
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, InvalidInput
from vutf_cli.security.passwords import Passwords
from vutf_cli.services import user_passwords, user_transfer
from vutf_cli.services import users as service
from vutf_cli.services.user_import import ImportConflict

PASSWORD = "correct horse battery staple"
# Columns that differ between any two users however they were created.
IDENTITY = ("id", "created_at", "updated_at", "password_hash")
PROFILE = ("username", "email", "full_name", "is_active", "is_superuser", "is_verified")


@pytest.fixture(scope="module")
def test_hashes() -> list[str]:
    """A few argon2id hashes (test profile) of known passwords."""
    hasher = Passwords("test")
    return [hasher.hash(f"{PASSWORD} {number}") for number in range(3)]


class Progress:
    """A real progress sink (what Terminal.progress is), recording what it was told."""

    def __init__(self, on_open: Callable[[str], None] | None = None) -> None:
        self.advanced: dict[str, int] = {}
        self._on_open = on_open

    @contextmanager
    def __call__(self, total: int | None, description: str) -> Iterator[Callable[[int], None]]:
        self.advanced[description] = 0
        if self._on_open is not None:
            self._on_open(description)

        def advance(steps: int = 1) -> None:
            self.advanced[description] += steps

        yield advance


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def user_rows(db: Database) -> list[dict[str, Any]]:
    """Every user as the database returns it, in (created_at, id) order."""
    table = User.__table__
    return db.run(
        lambda uow: [
            dict(row._mapping)
            for row in uow.session.execute(
                sa.select(table).order_by(table.c.created_at, table.c.id)
            )
        ],
        read_only=True,
    )


def audit_rows(db: Database) -> list[AuditLog]:
    def read(uow: UnitOfWork) -> list[AuditLog]:
        rows = list(uow.session.scalars(sa.select(AuditLog).order_by(AuditLog.seq)))
        for row in rows:
            uow.session.expunge(row)
        return rows

    return db.run(read, read_only=True)


def register(db: Database, username: str, email: str | None = None) -> None:
    db.run(
        lambda uow: uow.users.create_user(
            username=username, email=email or f"{username}@example.com", password=PASSWORD
        )
    )


# -- UserRepository.create_many ---------------------------------------------------
def test_create_many_stores_what_create_stores(db: Database, test_hashes: list[str]) -> None:
    wanted: list[dict[str, Any]] = [
        {"username": "bulk0", "email": "bulk0@example.com", "password_hash": test_hashes[0]},
        {
            "username": "Bulk1",
            "email": "bulk1@example.com",
            "password_hash": test_hashes[1],
            "full_name": "Bulk One",
            "is_superuser": True,
        },
        {
            "username": "bulk2",
            "email": "bulk2@example.com",
            "password_hash": test_hashes[2],
            "is_active": False,
        },
    ]

    ids = db.run(lambda uow: uow.users.create_many(wanted))
    db.run(lambda uow: uow.users.create(**{**wanted[1], "username": "orm1", "email": "o@e.com"}))

    rows = user_rows(db)
    assert [row["id"] for row in rows[:3]] == ids
    assert [row["username"] for row in rows] == ["bulk0", "Bulk1", "bulk2", "orm1"]
    assert [row["password_hash"] for row in rows[:3]] == test_hashes
    bulk, orm = rows[1], rows[3]
    # Apart from identity, name and email, a bulk row equals one made through the ORM.
    different = {"username", "email", *IDENTITY}
    assert {k: v for k, v in bulk.items() if k not in different} == {
        k: v for k, v in orm.items() if k not in different
    }
    assert (bulk["version"], bulk["created_by"], bulk["updated_by"]) == (
        1,
        "tester@test",
        "tester@test",
    )
    assert (bulk["is_deleted"], bulk["deleted_at"], bulk["last_login_at"]) == (False, None, None)
    assert [row["is_active"] for row in rows[:3]] == [True, True, False]
    assert [row["full_name"] for row in rows[:3]] == [None, "Bulk One", None]
    # Strictly increasing creation times, in the order the rows were given.
    created = [row["created_at"] for row in rows[:3]]
    assert created == sorted(set(created))
    assert all(row["created_at"] == row["updated_at"] for row in rows[:3])


def test_bulk_rows_work_with_the_orm_afterwards(db: Database, test_hashes: list[str]) -> None:
    db.run(
        lambda uow: uow.users.create_many(
            [{"username": "later", "email": "later@example.com", "password_hash": test_hashes[0]}]
        )
    )

    def change(uow: UnitOfWork) -> tuple[int, str]:
        user = uow.users.require("LATER")
        uow.users.update(user, full_name="Changed")
        return user.version, user.updated_by or ""

    assert db.run(change) == (2, "tester@test")
    user = user_passwords.check_password(db, "later", f"{PASSWORD} 0")
    assert user.username == "later"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"username": "x1", "email": "x1@example.com"}], "missing user column"),
        (
            [{"username": "x2", "email": "x2@e.com", "password_hash": "h", "version": 7}],
            "cannot give user column",
        ),
        (
            [{"username": "x3", "email": "x3@e.com", "password_hash": "h", "nope": 1}],
            "nope",
        ),
    ],
)
def test_create_many_refuses_columns_it_does_not_take(
    db: Database, rows: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        db.run(lambda uow: uow.users.create_many(rows))
    assert db.run(lambda uow: uow.users.create_many([])) == []
    assert user_rows(db) == []


def test_create_many_is_stopped_by_the_unique_indexes(db: Database, test_hashes: list[str]) -> None:
    register(db, "Taken")
    register(db, "gone")
    db.run(lambda uow: uow.users.delete(uow.users.require("gone")))
    clash = [
        {"username": "fresh", "email": "fresh@example.com", "password_hash": test_hashes[0]},
        {"username": "taken", "email": "other@example.com", "password_hash": test_hashes[0]},
    ]

    with pytest.raises(Conflict):
        db.run(lambda uow: uow.users.create_many(clash))
    assert [row["username"] for row in user_rows(db)] == ["Taken", "gone"]

    # A soft-deleted name may be registered again, in bulk too.
    again = [{"username": "GONE", "email": "gone@example.com", "password_hash": test_hashes[1]}]
    db.run(lambda uow: uow.users.create_many(again))
    assert [(r["username"], r["is_deleted"]) for r in user_rows(db)] == [
        ("Taken", False),
        ("gone", True),
        ("GONE", False),
    ]


# -- UserRepository.holders_of ------------------------------------------------------
def test_holders_of_matches_live_users_case_insensitively(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(db, "alice")
    register(db, "Bob", "BOB@Example.com")
    register(db, "carol")
    register(db, "dave")
    db.run(lambda uow: uow.users.delete(uow.users.require("carol")))
    names = ["ALICE", "carol", "nobody", *(f"filler{n}" for n in range(8))]
    emails = ["bob@example.com", "Dave@Example.COM", "carol@example.com"]
    expected = [
        ("Bob", "bob@example.com"),
        ("alice", "alice@example.com"),
        ("dave", "dave@example.com"),
    ]

    assert db.run(lambda uow: uow.users.holders_of(names, emails), read_only=True) == expected
    # Several IN lists per column give the same answer.
    monkeypatch.setattr(users_repository, "LOOKUP_CHUNK", 2)
    assert db.run(lambda uow: uow.users.holders_of(names, emails), read_only=True) == expected
    assert db.run(lambda uow: uow.users.holders_of([], []), read_only=True) == []


# -- the import service on the bulk path ------------------------------------------
def test_import_of_many_rows_writes_every_user_and_audit_row(
    db: Database, test_hashes: list[str]
) -> None:
    count = 1500  # more than one write chunk and more than one lookup chunk
    plaintext = {7, 1001, 1499}
    records = []
    for number in range(count):
        record: dict[str, Any] = {
            "username": f"user{number:04d}",
            "email": f"User{number:04d}@Example.com",
            "is_verified": number % 2 == 0,
        }
        if number % 5 == 0:
            record["full_name"] = f"User {number}"
        if number in plaintext:
            record["password"] = f"{PASSWORD} {number}"
        else:
            record["password_hash"] = test_hashes[number % 3]
        records.append(record)
    progress = Progress()

    report = user_transfer.import_users(db, jsonl(records), progress=progress, workers=1)

    assert (report.created, report.to_create, report.skipped, report.invalid) == (
        count,
        count,
        0,
        0,
    )
    assert progress.advanced["importing users"] == count
    users = user_rows(db)
    assert [user["username"] for user in users] == [r["username"] for r in records]
    assert [user["email"] for user in users] == [r["email"].lower() for r in records]
    assert [user["full_name"] for user in users] == [r.get("full_name") for r in records]
    assert [user["is_verified"] for user in users] == [r["is_verified"] for r in records]
    assert all((u["verified_at"] is not None) == u["is_verified"] for u in users)
    hasher = Passwords("test")
    for number, user in enumerate(users):
        if number in plaintext:
            assert hasher.verify(user["password_hash"], f"{PASSWORD} {number}")
        else:
            assert user["password_hash"] == test_hashes[number % 3]

    rows = audit_rows(db)
    assert [row.action for row in rows] == ["user.create"] * count + ["user.import"]
    assert [row.resource_id for row in rows[:-1]] == [str(user["id"]) for user in users]
    assert [row.user_id for row in rows[:-1]] == [user["id"] for user in users]
    assert [row.changes for row in rows[:-1]] == [
        {**{name: user[name] for name in PROFILE}, "source": "import"} for user in users
    ]
    assert rows[-1].changes == {
        "format": "jsonl",
        "source": "-",
        "rows": count,
        "created": count,
        "skipped": 0,
        "invalid": 0,
    }
    assert len({row.meta["request_id"] for row in rows if row.meta}) == 1
    assert all(row.actor == "tester@test" and row.status == "success" for row in rows)
    report_chain = db.run(lambda uow: uow.audit.verify_chain(), read_only=True)
    assert report_chain.ok, report_chain
    assert report_chain.checked == count + 1


def test_imported_and_created_users_leave_the_same_audit_row(
    db: Database, test_hashes: list[str]
) -> None:
    service.create_user(db, username="made", email="made@example.com", password=PASSWORD)
    data = jsonl([{"username": "came", "email": "came@example.com", "password": PASSWORD}])
    user_transfer.import_users(db, data)

    made, came, _summary = audit_rows(db)
    assert came.changes == {
        **(made.changes or {}),
        "username": "came",
        "email": "came@example.com",
        "source": "import",
    }
    for name in ("action", "resource_type", "status", "actor", "error_message", "duration_ms"):
        assert getattr(came, name) == getattr(made, name)
    assert set(came.meta or {}) == set(made.meta or {})


def test_clashes_and_skips_are_found_across_chunks(
    db: Database, test_hashes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(users_repository, "LOOKUP_CHUNK", 3)
    monkeypatch.setattr(user_transfer, "_WRITE_CHUNK", 4)
    register(db, "User03")
    register(db, "someone", "user11@example.com")
    records = [
        {
            "username": f"user{number:02d}",
            "email": f"user{number:02d}@example.com",
            "password_hash": test_hashes[0],
        }
        for number in range(14)
    ]

    with pytest.raises(ImportConflict) as refused:
        user_transfer.import_users(db, jsonl(records))
    assert [(p.line, p.message) for p in refused.value.problems] == [
        (4, "user 'user03' already exists"),
        (4, "email 'user03@example.com' already belongs to user 'User03'"),
        (12, "email 'user11@example.com' already belongs to user 'someone'"),
    ]
    assert len(user_rows(db)) == 2

    report = user_transfer.import_users(db, jsonl(records), skip_existing=True, skip_invalid=True)
    assert (report.created, report.skipped, report.invalid) == (12, 1, 1)
    names = [row["username"] for row in user_rows(db)]
    assert names == ["User03", "someone"] + [
        f"user{number:02d}" for number in range(14) if number not in (3, 11)
    ]
    assert db.run(lambda uow: uow.audit.verify_chain(), read_only=True).ok


def test_a_failure_in_a_later_chunk_undoes_the_earlier_ones(
    db: Database, test_hashes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(user_transfer, "_WRITE_CHUNK", 4)
    records = [
        {
            "username": f"user{number:02d}",
            "email": f"user{number:02d}@example.com",
            "password_hash": test_hashes[0],
        }
        for number in range(10)
    ]

    def register_meanwhile(description: str) -> None:
        if description == "importing users":  # user09 is in the third chunk
            service.create_user(db, username="user09", email="u9@example.com", password=PASSWORD)

    with pytest.raises(Conflict):
        user_transfer.import_users(db, jsonl(records), progress=Progress(register_meanwhile))

    assert [row["username"] for row in user_rows(db)] == ["user09"]
    assert [(row.action, row.status) for row in audit_rows(db)] == [
        ("user.create", "success"),
        ("user.import", "failure"),
    ]
    assert db.run(lambda uow: uow.audit.verify_chain(), read_only=True).ok
