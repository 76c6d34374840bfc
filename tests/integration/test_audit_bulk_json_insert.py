"""append_many's PostgreSQL insert (every row in one JSON parameter) on both backends.

On PostgreSQL append_many sends the rows as the canonical JSON they were
hashed from and the server unpacks them; SQLite keeps the bound multi-row
INSERT.  Either way the rows must be indistinguishable from rows written by
``append`` (which binds each value): here with values chosen to trip a JSON
round trip (escapes, JSON-looking text, nulls inside and outside JSON,
numbers jsonb rewrites, the integer column's limit), and with the loosely
checked values that must keep taking the bound insert, failing or not as
``append`` does.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, select, text

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import VutfError
from vutf_cli.services import audit_trail

AUDIT = cast(Table, AuditLog.__table__)
ROW_IDENTITY = ("id", "seq", "created_at", "prev_hash", "row_hash")
AWKWARD_TEXT = 'tab\t nl\n cr\r esc\x1b del\x7f \u2028\u2029 "q" \\ \\u0000 é ✓ 🎉 null'

ENTRIES: list[dict[str, Any]] = [
    {"action": "user.create", "resource_type": "user"},
    {"action": "user.create", "resource_type": "user", "changes": {}},
    {"action": "user.create", "resource_type": "user", "changes": {"x": None, "y": [None]}},
    {
        "action": "user.update",
        "resource_type": "user",
        "resource_id": "null",
        "user_id": uuid.UUID("5f0c6a64-3b1e-4bb4-9d57-3a3c1f1f2b10"),
        "changes": {
            AWKWARD_TEXT: AWKWARD_TEXT,
            "json-looking": ['{"a":1}', "[]", "true", '"quoted"'],
            "numbers": [0, -1, 2**63, 10**30, 1e-7, 1e20, 1.5, -0.0, 123456789.123456789],
            "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "nested": {"list": [{"deep": {"deeper": [1, "two", None, True, False]}}]},
            "token": "scrubbed",
        },
        "metadata": {"command": AWKWARD_TEXT, "secret": "scrubbed", "extra": {"a": [1]}},
        "error_message": AWKWARD_TEXT,
        "duration_ms": 2**31 - 1,
        "ip_address": "2001:db8::1",
        "user_agent": "ua \x1b[31m ✓",
        "actor": "{}",
    },
    {
        "action": "api_key.revoke",
        "resource_type": "api_key",
        "resource_id": "",
        "status": "error",
        "error_message": "",
        "duration_ms": 0,
        "user_agent": "",
        "metadata": {},
    },
]


def _rows(db: Database) -> list[dict[str, Any]]:
    return db.run(
        lambda uow: [
            dict(row._mapping) for row in uow.session.execute(select(AUDIT).order_by(AUDIT.c.seq))
        ],
        read_only=True,
    )


def _content(row: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in row.items() if name not in ROW_IDENTITY}


def _content_of_any_transaction(row: dict[str, Any]) -> dict[str, Any]:
    """:func:`_content` without the request id, which each transaction has its own of."""
    content = _content(row)
    content["metadata"] = {**content["metadata"], "request_id": None}
    return content


def test_awkward_values_are_stored_as_append_stores_them(db: Database) -> None:
    def work(uow: UnitOfWork) -> range:
        for entry in ENTRIES:
            audit_trail.append(uow, **entry)
        return audit_trail.append_many(uow, ENTRIES)

    assert db.run(work) == range(len(ENTRIES) + 1, 2 * len(ENTRIES) + 1)

    rows = _rows(db)
    appended, bulk = rows[: len(ENTRIES)], rows[len(ENTRIES) :]
    assert [_content(row) for row in bulk] == [_content(row) for row in appended]
    assert [type(row["changes"]) for row in bulk] == [type(row["changes"]) for row in appended]
    # Spot checks that the comparison above is about the right things.
    assert bulk[0]["changes"] is None
    assert bulk[1]["changes"] == {}
    assert bulk[2]["changes"] == {"x": None, "y": [None]}
    assert bulk[3]["changes"][AWKWARD_TEXT] == AWKWARD_TEXT
    assert bulk[3]["changes"]["numbers"][3] == 10**30
    assert bulk[3]["changes"]["numbers"][5] == 10**20
    assert "token" not in bulk[3]["changes"]
    assert "secret" not in bulk[3]["metadata"]
    assert bulk[3]["error_message"] == AWKWARD_TEXT
    assert bulk[3]["duration_ms"] == 2**31 - 1
    assert bulk[3]["actor"] == "{}"
    assert bulk[3]["resource_id"] == "null"
    assert bulk[4]["resource_id"] == ""
    assert bulk[4]["error_message"] == ""
    assert db.run(lambda uow: uow.audit.verify_chain(), read_only=True).ok

    if db.settings.database_url.startswith("postgresql"):
        # SQL NULL for no changes, never a jsonb null.
        counts = db.run(
            lambda uow: uow.session.execute(
                text(
                    "SELECT count(*) FILTER (WHERE changes IS NULL), "
                    "count(*) FILTER (WHERE jsonb_typeof(changes) = 'null') FROM audit_log"
                )
            ).one(),
            read_only=True,
        )
        without_changes = sum("changes" not in entry for entry in ENTRIES)
        assert tuple(counts) == (2 * without_changes, 0)


class Status(str):
    """A status that is not a plain str: a value the JSON text would not carry as is."""


@pytest.mark.parametrize(
    "loose",
    [
        {"duration_ms": 2**31},
        {"error_message": {"not": "text"}},
        {"status": Status("failure")},
    ],
    ids=["duration-over-integer-range", "dict-error-message", "str-subclass-status"],
)
def test_loosely_checked_values_behave_as_with_append(db: Database, loose: dict[str, Any]) -> None:
    entry = {"action": "user.create", "resource_type": "user", **loose}

    def outcome(write: Any) -> tuple[str, str]:
        try:
            db.run(write)
        except VutfError as exc:
            # SQLite numbers the refused parameter: the ORM and the bulk
            # INSERT list the columns differently.
            return (
                "error",
                re.sub(r"parameter \d+", "parameter N", f"{type(exc).__name__}: {exc}"),
            )
        return ("ok", "")

    one = outcome(lambda uow: audit_trail.append(uow, **entry))
    many = outcome(lambda uow: audit_trail.append_many(uow, [ENTRIES[0], entry]))

    assert many == one
    rows = _rows(db)
    if one[0] == "ok":
        assert _content_of_any_transaction(rows[-1]) == _content_of_any_transaction(rows[0])
        assert db.run(lambda uow: uow.audit.verify_chain(), read_only=True).ok
    else:
        assert rows == []
