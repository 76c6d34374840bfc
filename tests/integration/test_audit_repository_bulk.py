"""AuditLogRepository.append_many on SQLite and PostgreSQL.

append_many writes many rows in one bulk INSERT for imports.  What matters is
that nobody can tell its rows from rows written one by one with ``append``:
same checks, same stored values, same metadata, and a chain that
``verify_chain`` accepts, with or without ``VUTF_AUDIT_KEY``, continuing from
and continued by ``append``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, cast

import pytest
from sqlalchemy import Table, select

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.repositories.audit import hash_content
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import InvalidInput
from vutf_cli.security.audit_chain import GENESIS_HASH, compute_row_hash
from vutf_cli.services import audit_trail
from vutf_cli.settings import Settings

AUDIT = cast(Table, AuditLog.__table__)
# Columns that differ between any two rows, however they were written.
ROW_IDENTITY = ("id", "seq", "created_at", "prev_hash", "row_hash")

USER_ID = uuid.UUID("5f0c6a64-3b1e-4bb4-9d57-3a3c1f1f2b10")
SPECS: list[dict[str, Any]] = [
    {"action": "user.create", "resource_type": "user"},
    {
        "action": "user.update",
        "resource_type": "user",
        "resource_id": str(USER_ID),
        "user_id": USER_ID,
        "changes": {
            "email": {"old": "a@example.com", "new": "b@example.com"},
            "when": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
            "ratio": 1e20,
            "zero": -0.0,
            "nested": {"list": [1, "two", None, True], "password": "never stored"},
            "unicode": "Zoë ✓",
        },
    },
    {
        "action": "api_key.revoke",
        "resource_type": "api_key",
        "resource_id": "key-1",
        "status": "failure",
        "error_message": "conflict: already revoked",
        "duration_ms": 12,
        "ip_address": "192.0.2.7",
        "user_agent": "vutf-test/1",
        "actor": "someone-else@host",
        "metadata": {"command": "overridden", "token": "hidden", "extra": [1, 2]},
    },
    {"action": "user.import", "resource_type": "user", "changes": {}},
]


def _raw_rows(db: Database) -> list[dict[str, Any]]:
    """Every row as the database returns it (Core, typed columns, no ORM identity map)."""
    return db.run(
        lambda uow: [
            dict(row._mapping) for row in uow.session.execute(select(AUDIT).order_by(AUDIT.c.seq))
        ],
        read_only=True,
    )


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name not in ROW_IDENTITY}


@pytest.fixture(params=[None, "an audit key"], ids=["sha256", "hmac"])
def keyed_db(request: pytest.FixtureRequest, settings: Settings) -> Any:
    database = Database(settings.with_overrides(audit_key=request.param))
    try:
        yield database
    finally:
        database.dispose()


def test_rows_of_append_many_are_indistinguishable_from_appended_ones(keyed_db: Database) -> None:
    def work(uow: UnitOfWork) -> range:
        for spec in SPECS:
            audit_trail.append(uow, **spec)
        return audit_trail.append_many(uow, SPECS)

    written = keyed_db.run(work)

    rows = _raw_rows(keyed_db)
    assert written == range(len(SPECS) + 1, 2 * len(SPECS) + 1)
    assert [row["seq"] for row in rows] == list(range(1, 2 * len(SPECS) + 1))
    appended, bulk = rows[: len(SPECS)], rows[len(SPECS) :]
    # Same transaction, so the same request id: every stored value is equal.
    assert [_content(row) for row in bulk] == [_content(row) for row in appended]
    # Secrets scrubbed, overrides kept, stored forms as jsonb returns them.
    third = bulk[2]
    assert third["actor"] == "someone-else@host"
    assert third["metadata"]["command"] == "overridden"
    assert "token" not in third["metadata"]
    assert third["metadata"]["extra"] == [1, 2]
    assert "password" not in bulk[1]["changes"]["nested"]
    assert bulk[1]["changes"]["ratio"] == 10**20
    assert bulk[1]["changes"]["when"] == "2026-01-02T03:04:05.678901Z"
    assert bulk[0]["changes"] is None
    assert bulk[0]["error_message"] is None
    # Each hash recomputes from the row as read back, linked to its predecessor.
    key = keyed_db.settings.audit_key
    previous = GENESIS_HASH
    for row in rows:
        assert row["prev_hash"] == previous
        assert row["row_hash"] == compute_row_hash(previous, hash_content(row), key)
        previous = row["row_hash"]
    report = keyed_db.run(lambda uow: uow.audit.verify_chain(), read_only=True)
    assert report.ok, report
    assert report.checked == 2 * len(SPECS)


def test_append_many_starts_a_chain_and_append_continues_it(db: Database) -> None:
    first = db.run(lambda uow: audit_trail.append_many(uow, SPECS[:2]))
    second = db.run(lambda uow: audit_trail.append_many(uow, SPECS))
    last = db.run(lambda uow: audit_trail.append(uow, **SPECS[0]).seq)

    rows = _raw_rows(db)
    assert (first, second, last) == (range(1, 3), range(3, 7), 7)
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert [row["seq"] for row in rows] == list(range(1, 8))
    assert all(row["prev_hash"] == before["row_hash"] for before, row in pairwise(rows))
    # created_at follows seq, as with append.
    assert [row["created_at"] for row in rows] == sorted(row["created_at"] for row in rows)
    # Each transaction's rows carry its own request id.
    request_ids = [row["metadata"]["request_id"] for row in rows]
    assert len(set(request_ids[:2])) == 1
    assert len(set(request_ids[2:6])) == 1
    assert len(set(request_ids)) == 3
    assert db.run(lambda uow: uow.audit.exists_request(request_ids[3]), read_only=True)
    report = db.run(lambda uow: uow.audit.verify_chain(), read_only=True)
    assert report.ok
    assert report.checked == 7


def test_many_rows_in_one_call(db: Database) -> None:
    entries = [
        {
            "action": "user.create",
            "resource_type": "user",
            "resource_id": f"user-{number}",
            "changes": {"number": number},
        }
        for number in range(2500)
    ]

    assert db.run(lambda uow: audit_trail.append_many(uow, entries)) == range(1, 2501)

    rows = _raw_rows(db)
    assert [row["resource_id"] for row in rows] == [f"user-{n}" for n in range(2500)]
    assert [row["changes"] for row in rows] == [{"number": n} for n in range(2500)]
    assert db.run(lambda uow: uow.audit.verify_chain(batch_size=700), read_only=True).ok


def test_nothing_to_append_writes_nothing(db: Database) -> None:
    assert db.run(lambda uow: audit_trail.append_many(uow, [])) == range(0)
    assert _raw_rows(db) == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"action": "Not An Action", "resource_type": "user"}, "invalid audit action"),
        ({"action": "user.create", "resource_type": "user", "status": "maybe"}, "audit status"),
        ({"action": "user.create", "resource_type": ""}, "resource_type must not be empty"),
        ({"action": "user.create", "resource_type": "user", "duration_ms": -1}, "duration_ms"),
        ({"action": "user.create", "resource_type": "user", "changes": {"x": "\x00"}}, "NUL"),
        ({"action": "user.create", "resource_type": "user", "seq": 5}, "unknown audit field"),
    ],
)
def test_every_entry_is_checked_before_anything_is_written(
    db: Database, bad: dict[str, Any], message: str
) -> None:
    def work(uow: UnitOfWork) -> None:
        audit_trail.append(uow, **SPECS[0])
        with pytest.raises(InvalidInput, match=message):
            audit_trail.append_many(uow, [SPECS[0], bad, SPECS[1]])
        # The good entry before the bad one was not written either.
        assert uow.audit.head() == (1, uow.audit.get("1").row_hash)  # type: ignore[union-attr]

    db.run(work)
    assert [row["seq"] for row in _raw_rows(db)] == [1]
