"""Values through the bulk paths of ``vutf users import``, on SQLite and PostgreSQL.

On PostgreSQL ``UserRepository.create_many`` sends its rows, and
``holders_of`` its lookup values, as ONE JSON text parameter that the server
unpacks (``jsonb_array_elements``); elsewhere they are ordinary bound
parameters.  These tests check that both store and find exactly what they
were given: text the JSON encoding must escape, text that merely looks like
an escape, NUL and over-long text refused (not cut), and how many queries a
large lookup takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.models import User
from vutf_cli.db.repositories import users as users_repository
from vutf_cli.errors import InvalidInput
from vutf_cli.security.passwords import Passwords

PASSWORD = "correct horse battery staple"

# Text a JSON encoding has to escape, or that looks like JSON or an escape.
AWKWARD_NAMES = [
    "Quote \" and apostrophe ' inside",
    "Back\\slash, and \\u0000 spelled out",
    "\\\\u0000 after an escaped backslash",
    '{"looks": ["like", "json"]}',
    "Ünïcödé 名前 ✓ and 🦄 beyond the BMP",
    "right-to-left: שלום",
    "trailing space ",
]


@pytest.fixture(scope="module")
def password_hash() -> str:
    return Passwords("test").hash(PASSWORD)


def stored_users(db: Database) -> list[dict[str, Any]]:
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


@contextmanager
def counted_selects(db: Database) -> Iterator[list[str]]:
    """The SELECT statements ``db`` sends while the block runs."""
    selects: list[str] = []

    def count(*args: Any) -> None:
        statement = args[2]
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield selects
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def test_create_many_stores_awkward_text_exactly(db: Database, password_hash: str) -> None:
    rows = [
        {
            "username": f"awkward{number}",
            "email": f"o'brien\\{number}@example.com",
            "password_hash": password_hash,
            "full_name": name,
            "is_verified": number % 2 == 1,
        }
        for number, name in enumerate(AWKWARD_NAMES)
    ]

    ids = db.run(lambda uow: uow.users.create_many(rows))

    stored = stored_users(db)
    assert [user["id"] for user in stored] == ids
    assert [user["full_name"] for user in stored] == AWKWARD_NAMES
    assert [user["email"] for user in stored] == [row["email"] for row in rows]
    assert [user["is_verified"] for user in stored] == [row["is_verified"] for row in rows]
    assert all(user["password_hash"] == password_hash for user in stored)
    # The stored times are the ones assigned, to the microsecond.
    created = [user["created_at"] for user in stored]
    assert created == sorted(set(created))
    assert all(user["updated_at"] == user["created_at"] for user in stored)


@pytest.mark.parametrize(
    "row",
    [
        {"full_name": "nul \x00 inside"},
        {"full_name": "escaped backslash then nul \\\x00"},
        {"username": "nul\x00name"},
    ],
)
def test_create_many_refuses_nul_and_writes_nothing(
    db: Database, password_hash: str, row: dict[str, Any]
) -> None:
    good = {"username": "fine", "email": "fine@example.com", "password_hash": password_hash}
    bad = {"username": "bad", "email": "bad@example.com", "password_hash": password_hash, **row}

    with pytest.raises(InvalidInput, match="NUL"):
        db.run(lambda uow: uow.users.create_many([good, bad]))
    assert stored_users(db) == []


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_over_long_text_is_refused_not_cut(db: Database, password_hash: str) -> None:
    # SQLite does not enforce varchar lengths; PostgreSQL must refuse, and
    # the JSON path must not cast to varchar(n), which would silently cut.
    row = {
        "username": "long",
        "email": "long@example.com",
        "password_hash": password_hash,
        "full_name": "x" * 256,
    }

    with pytest.raises(InvalidInput, match="too long"):
        db.run(lambda uow: uow.users.create_many([row]))
    assert stored_users(db) == []


def test_holders_of_finds_awkward_values_in_few_queries(
    db: Database, password_hash: str, backend: str
) -> None:
    emails = ["o'brien@example.com", 'quote"d\\back@example.com', "ünï@example.com"]
    db.run(
        lambda uow: uow.users.create_many(
            [
                {"username": f"holder{n}", "email": email, "password_hash": password_hash}
                for n, email in enumerate(emails)
            ]
        )
    )
    # More values than one IN list holds, so the chunking shows.
    names = ["HOLDER0", *(f"nobody{n}" for n in range(2 * users_repository.LOOKUP_CHUNK + 1))]
    asked_emails = [email.upper() for email in emails[1:]] + ["nobody@example.com"]

    with counted_selects(db) as selects:
        holders = db.run(lambda uow: uow.users.holders_of(names, asked_emails), read_only=True)

    assert holders == [
        ("holder0", emails[0]),
        ("holder1", emails[1]),
        ("holder2", emails[2]),
    ]
    lookups = [s for s in selects if "FROM users" in s]
    if backend == "postgresql":
        assert len(lookups) == 2  # one per column, whatever the number of values
    else:
        assert len(lookups) == math.ceil(len(names) / users_repository.LOOKUP_CHUNK) + 1
