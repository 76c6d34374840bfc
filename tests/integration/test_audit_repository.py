"""AuditLogRepository on SQLite and PostgreSQL: the chain, the append-only rule, reading, verifying.

Tampering goes around vutf, as an attacker with database access would: one
transaction that switches the append-only triggers off (PostgreSQL: ``ALTER
TABLE ... DISABLE TRIGGER USER``, which also disables ``ENABLE ALWAYS``
triggers; SQLite: ``DROP TRIGGER``), changes rows with raw SQL and puts the
triggers back, so they are never off for anyone else.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

import pytest
from sqlalchemy import Table, TextClause, delete, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DatabaseError

from tests.audit_tampering import tampering
from vutf_cli.db.audit_sql import AuditFilters, glob_to_like, page_statement
from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.repositories.audit import (
    AuditLogRepository,
    hash_content,
    stored_json,
)
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import AuditEntry
from vutf_cli.errors import IntegrityFailure, InvalidInput
from vutf_cli.security.audit_chain import GENESIS_HASH, compute_row_hash
from vutf_cli.settings import Settings

AUDIT = cast(Table, AuditLog.__table__)
HEX64 = re.compile(r"[0-9a-f]{64}")


# -- helpers -------------------------------------------------------------------
def _append(db: Database, count: int = 1, **fields: Any) -> list[AuditEntry]:
    """``count`` rows with the same fields, in one transaction, as views."""
    values = {"action": "user.create", "resource_type": "user", **fields}

    def work(uow: UnitOfWork) -> list[AuditEntry]:
        return [AuditLogRepository.to_entry(uow.audit.append(**values)) for _ in range(count)]

    return db.run(work)


def _append_specs(db: Database, specs: list[dict[str, Any]]) -> list[AuditEntry]:
    def work(uow: UnitOfWork) -> list[AuditEntry]:
        return [
            AuditLogRepository.to_entry(
                uow.audit.append(**{"action": "user.create", "resource_type": "user", **spec})
            )
            for spec in specs
        ]

    return db.run(work)


def _raw_rows(db: Database) -> list[dict[str, Any]]:
    """Every row as the database returns it (Core, typed columns, no ORM identity map)."""
    return db.run(
        lambda uow: [
            dict(row._mapping) for row in uow.session.execute(select(AUDIT).order_by(AUDIT.c.seq))
        ],
        read_only=True,
    )


def _verify(db: Database, **kwargs: Any) -> Any:
    return db.run(lambda uow: uow.audit.verify_chain(**kwargs), read_only=True)


def _row_at(conn: Connection, seq: int) -> dict[str, Any]:
    row = conn.execute(select(AUDIT).where(AUDIT.c.seq == seq)).one()
    return dict(row._mapping)


def _forge(
    conn: Connection,
    template: dict[str, Any],
    *,
    seq: int,
    prev_hash: str,
    key: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Insert a row copied from ``template`` whose own hash is consistent (a careful forger)."""
    values = {**template, "id": uuid.uuid4(), "seq": seq, "prev_hash": prev_hash, **changes}
    values["row_hash"] = compute_row_hash(prev_hash, hash_content(values), key)
    conn.execute(insert(AUDIT).values(**values))
    return values


def _assert_refused(db: Database, exc: BaseException) -> None:
    if db.dialect == "postgresql":
        assert getattr(getattr(exc, "orig", None), "pgcode", None) == "VU001"
    assert "append-only" in str(exc)


# -- appending and the chain ---------------------------------------------------
def test_empty_log_has_no_head_and_verifies(db: Database) -> None:
    assert db.run(lambda uow: uow.audit.head(), read_only=True) is None
    report = _verify(db)
    assert report.ok
    assert (report.checked, report.first_seq, report.last_seq, report.head_hash) == (
        0,
        None,
        None,
        None,
    )


def test_append_builds_a_valid_chain(db: Database) -> None:
    first = _append(db, 1)
    more = _append(db, 3, action="api_key.create", resource_type="api_key", status="failure")
    entries = first + more
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH == "0" * 64
    for earlier, later in itertools.pairwise(entries):
        assert later.prev_hash == earlier.row_hash
    assert all(HEX64.fullmatch(e.row_hash) for e in entries)
    assert len({e.row_hash for e in entries}) == 4
    assert entries[1].actor == "tester@test"  # the unit of work's actor
    assert db.run(lambda uow: uow.audit.head(), read_only=True) == (4, entries[-1].row_hash)

    report = _verify(db)
    assert report.ok
    assert (report.checked, report.first_seq, report.last_seq) == (4, 1, 4)
    assert report.head_hash == entries[-1].row_hash
    assert report.problem is None


def test_explicit_actor_overrides_the_unit_of_work(db: Database) -> None:
    (entry,) = _append(db, actor="ops-bot")
    assert entry.actor == "ops-bot"


TRICKY_CHANGES: dict[str, Any] = {
    "zeta": {"b": 2, "a": [3, {"y": None, "x": True}], "é": "Zoë 日本語 🚀"},
    "alpha": 'line\nbreak "quoted" back\\slash \u2028',
    "floats": [
        0.1,
        1.0,
        100.0,
        1e20,
        1.5e16,
        1e15,
        1.5e-7,
        -2.5e-10,
        -0.0,
        0.30000000000000004,
        1.7976931348623157e308,
        5e-324,
    ],
    "ints": [0, -1, 2**63 + 5, 123456789012345678901234567890],
    "when": datetime(2024, 2, 29, 23, 59, 59, 999999).astimezone(),
    "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "tuple": (1, "two"),
    "empty": {},
}


def test_hash_recomputes_from_the_row_read_back(db: Database) -> None:
    user_id = uuid.uuid4()
    (written,) = _append(
        db,
        user_id=user_id,
        resource_id=str(user_id),
        changes=TRICKY_CHANGES,
        metadata={"zz": {"nested": [1.25, "ü"]}, "aa": 1},
        error_message="ünïcödé error",
        duration_ms=17,
        ip_address="2001:db8::1",
        user_agent="vutf/test",
    )
    (raw,) = _raw_rows(db)
    # What the database gives back is what was hashed: the hash recomputes.
    assert compute_row_hash(raw["prev_hash"], hash_content(raw)) == raw["row_hash"]
    assert raw["row_hash"] == written.row_hash
    assert raw["created_at"] == written.created_at  # microseconds survive
    assert raw["created_at"].utcoffset() == timedelta(0)
    assert raw["user_id"] == user_id
    assert raw["changes"] == stored_json(TRICKY_CHANGES)
    assert raw["changes"]["floats"][3] == 100000000000000000000  # 1e20, as jsonb returns it
    assert raw["changes"]["when"].endswith("Z")
    assert raw["changes"]["ref"] == "12345678-1234-5678-1234-567812345678"

    # Same through the ORM, in a new session.
    def reread(uow: UnitOfWork) -> bool:
        row = uow.audit.get("1")
        assert row is not None
        return compute_row_hash(row.prev_hash, hash_content(row)) == row.row_hash

    assert db.run(reread, read_only=True)
    assert _verify(db).ok


@pytest.mark.parametrize(
    "value",
    [
        1e20,
        1.5e16,
        1e16,
        1e15,
        1.5e-7,
        -0.0,
        0.1,
        1.0,
        100.0,
        -2.5e-10,
        5e-324,
        1.7976931348623157e308,
        0.30000000000000004,
        2**70,
        "Zoë",
        {"b": [1.5e300]},
    ],
)
def test_stored_json_predicts_what_the_database_returns(db: Database, value: Any) -> None:
    if db.dialect == "postgresql":
        sql = text("SELECT CAST(:doc AS jsonb)")
    else:
        sql = text("SELECT json(:doc)")

    def round_trip(document: Any) -> str:
        returned = db.run(
            lambda uow: uow.session.execute(sql, {"doc": json.dumps(document)}).scalar(),
            read_only=True,
        )
        if isinstance(returned, str):
            returned = json.loads(returned)
        return json.dumps(returned, sort_keys=True)

    predicted = stored_json({"v": value})
    # What vutf stores comes back unchanged ...
    assert round_trip(predicted) == json.dumps(predicted, sort_keys=True)
    if db.dialect == "postgresql":
        # ... and is what jsonb makes of the original value.
        assert round_trip({"v": value}) == json.dumps(predicted, sort_keys=True)


@pytest.mark.parametrize(
    "changes",
    [
        {"v": float("nan")},
        {"v": float("inf")},
        {"v": "nul\x00"},
        {"bad\x00key": 1},
        {"v": "\ud800"},
    ],
)
def test_values_jsonb_cannot_carry_are_refused(db: Database, changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        _append(db, changes=changes)
    assert db.run(lambda uow: uow.audit.head(), read_only=True) is None


def test_hmac_key_changes_hashes_and_a_wrong_key_fails(settings: Settings) -> None:
    keyed = Database(settings.with_overrides(audit_key="first-audit-key"))
    try:
        entries = _append(keyed, 3)
        (raw, *_) = _raw_rows(keyed)
        content = hash_content(raw)
        assert raw["row_hash"] == compute_row_hash(GENESIS_HASH, content, "first-audit-key")
        assert raw["row_hash"] != compute_row_hash(GENESIS_HASH, content)
        assert _verify(keyed).ok
    finally:
        keyed.dispose()
    for other_key in ("second-audit-key", None):
        other = Database(settings.with_overrides(audit_key=other_key))
        try:
            report = _verify(other)
        finally:
            other.dispose()
        assert not report.ok
        assert (report.problem, report.bad_seq) == ("edited", 1)
        assert "VUTF_AUDIT_KEY" in (report.detail or "")
    assert entries[0].prev_hash == GENESIS_HASH


def test_metadata_starts_from_the_unit_of_works_defaults(settings: Settings) -> None:
    """The repository stores the defaults it is given, the request id, and the row's own
    metadata over them (what goes into them is the services' choice: test_audit_metadata)."""
    defaults = {"host": "h1", "command": "users list", "options": ["--json"]}
    database = Database(settings, audit_metadata=defaults)

    def work(uow: UnitOfWork) -> tuple[str, AuditEntry, AuditEntry]:
        given = uow.audit.append(
            action="user.update",
            resource_type="user",
            metadata={"extra": [1, 2], "host": "override-host"},
        )
        plain = uow.audit.append(action="user.update", resource_type="user")
        to_entry = AuditLogRepository.to_entry
        return uow.request_id, to_entry(given), to_entry(plain)

    try:
        request_id, given, plain = database.run(work)
        expected = {**defaults, "request_id": request_id}
        assert given.metadata == {**expected, "host": "override-host", "extra": [1, 2]}
        assert plain.metadata == expected
        assert [row["metadata"] for row in _raw_rows(database)] == [given.metadata, plain.metadata]
        assert _verify(database).ok
    finally:
        database.dispose()


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "User.Create"},
        {"action": "user"},
        {"action": "user..create"},
        {"action": "user.create "},
        {"action": "1user.create"},
        {"status": "ok"},
        {"resource_type": ""},
        {"resource_id": "x" * 256},
        {"duration_ms": -1},
        {"duration_ms": 1.5},
        {"actor": ""},
    ],
)
def test_append_validates_its_input(db: Database, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        _append(db, **fields)
    assert db.run(lambda uow: uow.audit.head(), read_only=True) is None


# -- append-only -------------------------------------------------------------------
def test_repository_refuses_update_and_delete(db: Database) -> None:
    _append(db)
    with pytest.raises(IntegrityFailure, match="append-only"):
        db.run(lambda uow: uow.audit.update(1, actor="mallory"))
    with pytest.raises(IntegrityFailure, match="append-only"):
        db.run(lambda uow: uow.audit.delete(1))
    assert _raw_rows(db)[0]["actor"] == "tester@test"


def _execute(statement: TextClause, uow: UnitOfWork) -> None:
    uow.session.execute(statement)


def _refused_statements(dialect: str) -> list[str]:
    statements = [
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
        "DELETE FROM audit_log WHERE seq = 1",
    ]
    if dialect == "postgresql":
        statements.append("TRUNCATE audit_log")
    else:
        # Would replace row 1 (same id and seq) without firing a DELETE trigger.
        statements.append(
            "INSERT OR REPLACE INTO audit_log (id, seq, created_at, actor, action, resource_type,"
            " status, prev_hash, row_hash) SELECT id, seq, created_at, 'mallory', action,"
            " resource_type, status, prev_hash, row_hash FROM audit_log WHERE seq = 1"
        )
    return statements


def test_the_database_refuses_changes_through_raw_sql(db: Database) -> None:
    _append(db, 2)
    before = _raw_rows(db)
    for statement in _refused_statements(db.dialect):
        with pytest.raises(DatabaseError) as caught, db.engine.begin() as conn:
            conn.exec_driver_sql(statement)
        _assert_refused(db, caught.value)
        # Through the data layer, the refusal is an integrity failure (exit 6), not retried.
        with pytest.raises(IntegrityFailure, match="append-only"):
            db.run(partial(_execute, text(statement)))
    assert _raw_rows(db) == before
    assert _verify(db).ok


def test_sqlite_refuses_replacing_insert_by_seq_alone(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("INSERT OR REPLACE is SQLite syntax (PostgreSQL: see TRUNCATE above)")
    _append(db)
    (row,) = _raw_rows(db)
    with pytest.raises(DatabaseError, match="append-only"), db.engine.begin() as conn:
        conn.execute(insert(AUDIT).prefix_with("OR REPLACE").values(**{**row, "id": uuid.uuid4()}))
    assert _raw_rows(db) == [row]


def test_tampering_helper_restores_the_triggers(db: Database) -> None:
    _append(db)
    with tampering(db) as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 1).values(actor="mallory"))
    with pytest.raises(DatabaseError) as caught, db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM audit_log")
    _assert_refused(db, caught.value)
    assert _raw_rows(db)[0]["actor"] == "mallory"


# -- reading ---------------------------------------------------------------------------
def test_get_by_seq_or_id(db: Database) -> None:
    entries = _append(db, 3)

    def lookup(uow: UnitOfWork) -> list[int | None]:
        found = [
            uow.audit.get("2"),
            uow.audit.get(f" {entries[2].id} "),
            uow.audit.get("99"),
            uow.audit.get(str(uuid.uuid4())),
            uow.audit.get(str(entries[0].id).upper()),
        ]
        return [None if row is None else row.seq for row in found]

    assert db.run(lookup, read_only=True) == [2, 3, None, None, 1]
    with pytest.raises(InvalidInput):
        db.run(lambda uow: uow.audit.get("not-a-seq"), read_only=True)


def test_exists_request(db: Database) -> None:
    def work(uow: UnitOfWork) -> tuple[str, bool]:
        uow.audit.append(action="user.create", resource_type="user")
        return uow.request_id, uow.audit.exists_request(uow.request_id)

    request_id, seen_in_own_transaction = db.run(work)
    assert seen_in_own_transaction
    assert db.run(lambda uow: uow.audit.exists_request(request_id), read_only=True)
    assert not db.run(lambda uow: uow.audit.exists_request(str(uuid.uuid4())), read_only=True)

    # A row older than the look-back window is not considered.
    written_at = _raw_rows(db)[0]["created_at"]
    with tampering(db) as conn:
        conn.execute(update(AUDIT).values(created_at=written_at - timedelta(hours=2)))
    assert not db.run(lambda uow: uow.audit.exists_request(request_id), read_only=True)


def _raw_rows_conn(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(select(AUDIT).order_by(AUDIT.c.seq))]


@pytest.fixture
def varied(db: Database) -> list[AuditEntry]:
    """Twelve rows differing in every filterable column."""
    alice, bob = uuid.UUID(int=1), uuid.UUID(int=2)
    specs: list[dict[str, Any]] = [
        {"action": "user.create", "actor": "alice", "user_id": alice, "resource_id": "u1"},
        {"action": "user.delete", "actor": "alice", "user_id": alice, "resource_id": "u1"},
        {
            "action": "api_key.create",
            "resource_type": "api_key",
            "actor": "bob",
            "user_id": bob,
            "resource_id": "k1",
        },
        {
            "action": "api_key.revoke",
            "resource_type": "api_key",
            "actor": "bob",
            "resource_id": "k1",
            "status": "failure",
        },
        {"action": "userxkey.create", "actor": "carol", "status": "error"},
        {"action": "user_group.create", "resource_type": "group", "actor": "carol"},
        {
            "action": "user.update",
            "actor": "alice",
            "user_id": alice,
            "resource_id": "u1",
            "status": "failure",
        },
        {"action": "db.upgrade", "resource_type": "database", "actor": "root"},
        {"action": "user.create", "actor": "bob", "user_id": bob, "resource_id": "u2"},
        {
            "action": "user.login",
            "actor": "bob",
            "user_id": bob,
            "resource_id": "u2",
            "status": "failure",
        },
        {
            "action": "api_key.create",
            "resource_type": "api_key",
            "actor": "alice",
            "user_id": alice,
            "resource_id": "k2",
        },
        {"action": "user.create", "actor": "root", "resource_id": "u3"},
    ]
    return _append_specs(db, specs)


def _page(
    uow: UnitOfWork, *, descending: bool, after_seq: int | None, limit: int, **filters: Any
) -> list[int]:
    """The seqs of one page of the one listing statement (``db.audit_sql.page_statement``)."""
    statement = page_statement(
        AuditFilters(**filters),
        uow.dialect,
        descending=descending,
        after_seq=after_seq,
        limit=limit,
    )
    return [row.seq for row in uow.session.execute(statement)]


def _seqs(db: Database, **filters: Any) -> list[int]:
    return db.run(
        lambda uow: _page(uow, descending=False, after_seq=None, limit=100, **filters),
        read_only=True,
    )


def test_each_filter(db: Database, varied: list[AuditEntry]) -> None:
    def expect(predicate: Callable[[AuditEntry], bool]) -> list[int]:
        return [e.seq for e in varied if predicate(e)]

    assert _seqs(db, actor="alice") == expect(lambda e: e.actor == "alice") == [1, 2, 7, 11]
    assert _seqs(db, user_id=uuid.UUID(int=2)) == [3, 9, 10]
    assert _seqs(db, action="user.create") == [1, 9, 12]
    assert _seqs(db, resource_type="api_key") == [3, 4, 11]
    assert _seqs(db, resource_id="u1") == [1, 2, 7]
    assert _seqs(db, status="failure") == [4, 7, 10]
    assert _seqs(db, status="error") == [5]
    assert _seqs(db, actor="alice", status="failure") == [7]
    assert _seqs(db, actor="nobody") == []
    assert _seqs(db) == list(range(1, 13))


def test_action_globs(db: Database, varied: list[AuditEntry]) -> None:
    assert _seqs(db, action="user.*") == [1, 2, 7, 9, 10, 12]
    assert _seqs(db, action="*.create") == [1, 3, 5, 6, 9, 11, 12]
    assert _seqs(db, action="user.?reate") == [1, 9, 12]
    # "_" is literal: user_* must not match userxkey.create.
    assert _seqs(db, action="user_*") == [6]
    assert _seqs(db, action="api_key.*") == [3, 4, 11]
    assert _seqs(db, action="*") == list(range(1, 13))
    assert glob_to_like("a%b_c\\*?") == "a\\%b\\_c\\\\%_"


def test_time_range(db: Database, varied: list[AuditEntry]) -> None:
    since, until = varied[3].created_at, varied[8].created_at
    expected = [e.seq for e in varied if since <= e.created_at < until]
    assert 4 in expected
    assert 9 not in expected
    assert _seqs(db, since=since, until=until) == expected
    assert _seqs(db, since=varied[-1].created_at) == [12]
    assert _seqs(db, until=varied[0].created_at) == []
    assert _seqs(db, since=varied[-1].created_at + timedelta(seconds=1)) == []


@pytest.mark.parametrize("descending", [True, False])
def test_keyset_pagination_has_no_skips_or_repeats(db: Database, descending: bool) -> None:
    _append(db, 23)
    _append(db, 7, status="failure")

    def page(uow: UnitOfWork, cursor: int | None, filters: dict[str, Any]) -> Any:
        seqs = _page(uow, descending=descending, after_seq=cursor, limit=6, **filters)
        return seqs[:5], (seqs[4] if len(seqs) > 5 else None)

    def walk(**filters: Any) -> tuple[list[int], int]:
        seen: list[int] = []
        pages = 0
        cursor: int | None = None
        while True:
            seqs, cursor = db.run(partial(page, cursor=cursor, filters=filters), read_only=True)
            pages += 1
            seen.extend(seqs)
            assert len(seqs) <= 5
            if cursor is None:
                return seen, pages
            assert cursor == seqs[-1]

    everything = list(range(1, 31))
    seen, pages = walk()
    assert seen == (everything[::-1] if descending else everything)
    assert pages == 6  # 30 rows, 5 a page: the 6th page knows it is the last
    failures, _ = walk(status="failure")
    assert failures == (list(range(30, 23, -1)) if descending else list(range(24, 31)))


def test_stats_by_each_dimension(db: Database, varied: list[AuditEntry]) -> None:
    def expected(key: Callable[[AuditEntry], str]) -> list[tuple[str, int]]:
        counts = Counter(key(e) for e in varied)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def stats(by: str, **kwargs: Any) -> list[tuple[str, int]]:
        return db.run(lambda uow: uow.audit.stats(by=by, **kwargs), read_only=True)

    assert stats("action") == expected(lambda e: e.action)
    assert stats("action")[0] == ("user.create", 3)
    assert (
        stats("actor")
        == expected(lambda e: e.actor)
        == [("alice", 4), ("bob", 4), ("carol", 2), ("root", 2)]
    )
    assert stats("resource_type") == expected(lambda e: e.resource_type)
    assert stats("status") == [("success", 8), ("failure", 3), ("error", 1)]
    assert stats("day") == expected(lambda e: e.created_at.date().isoformat())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", stats("day")[0][0])
    assert stats("status", since=varied[6].created_at) == [("success", 4), ("failure", 2)]
    assert stats("actor", until=varied[0].created_at) == []
    with pytest.raises(InvalidInput):
        stats("weekday")


def test_stats_day_is_the_utc_date(db: Database) -> None:
    _append(db)
    # Move the row to 23:30 UTC: in any timezone east of UTC that is already tomorrow.
    late = datetime.fromisoformat("2024-03-10T23:30:00.123456+00:00")
    with tampering(db) as conn:
        conn.execute(update(AUDIT).values(created_at=late))
    assert db.run(lambda uow: uow.audit.stats(by="day"), read_only=True) == [("2024-03-10", 1)]


# -- verifying: each kind of tampering, pinpointed -------------------------------------------
@pytest.fixture
def ten(db: Database) -> list[AuditEntry]:
    return _append(db, 10, changes={"n": 1})


def _report(db: Database, **kwargs: Any) -> Any:
    # A small batch size makes the walk cross batch boundaries.
    return _verify(db, batch_size=3, **kwargs)


def test_clean_chain_with_since_and_anchor(db: Database, ten: list[AuditEntry]) -> None:
    report = _report(db, since_seq=4, anchor=(10, ten[-1].row_hash))
    assert report.ok
    assert (report.checked, report.first_seq, report.last_seq) == (7, 4, 10)
    assert report.head_hash == ten[-1].row_hash
    assert _report(db, anchor=(3, ten[2].row_hash)).ok
    assert _report(db, since_seq=8, anchor=(3, ten[2].row_hash)).ok
    assert _report(db, since_seq=1).checked == 10
    assert _report(db, since_seq=11).checked == 0
    with pytest.raises(InvalidInput):
        _report(db, anchor=(10, "nothex"))


def test_edited_field_is_found_at_its_seq(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 5).values(actor="mallory"))
    report = _report(db)
    assert not report.ok
    assert (report.problem, report.bad_seq) == ("edited", 5)
    assert (report.checked, report.last_seq, report.head_hash) == (4, 4, ten[3].row_hash)


def test_edited_json_is_found_at_its_seq(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 7).values(changes={"n": 2}))
    report = _report(db)
    assert (report.problem, report.bad_seq) == ("edited", 7)


def test_edit_before_since_seq_is_out_of_scope(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 2).values(actor="mallory"))
    assert _report(db, since_seq=4).ok
    assert (_report(db).problem, _report(db).bad_seq) == ("edited", 2)


@pytest.mark.parametrize("victim", [1, 5])
def test_deleted_row_is_missing_at_its_own_seq(
    db: Database, ten: list[AuditEntry], victim: int
) -> None:
    with tampering(db) as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == victim))
    report = _report(db)
    assert (report.problem, report.bad_seq) == ("missing", victim)
    assert report.checked == victim - 1


def test_deleted_rows_are_missing_from_the_first(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq.in_([4, 5, 6])))
    report = _report(db)
    assert (report.problem, report.bad_seq) == ("missing", 4)
    assert "4-6" in (report.detail or "")


def test_missing_row_before_since_seq_is_reported(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == 3))
    report = _report(db, since_seq=4)
    assert (report.problem, report.bad_seq) == ("missing", 3)
    report = _report(db, since_seq=3)
    assert (report.problem, report.bad_seq) == ("missing", 3)


def test_swapped_rows_are_reordered(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 5).values(seq=1000))
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 6).values(seq=5))
        conn.execute(update(AUDIT).where(AUDIT.c.seq == 1000).values(seq=6))
    report = _report(db)
    assert (report.problem, report.bad_seq) == ("reordered", 5)
    assert "row 6" in (report.detail or "")


def test_forged_row_with_a_consistent_hash_is_inserted(db: Database, ten: list[AuditEntry]) -> None:
    # The forger hashes correctly but links to row 9 (say, to hide row 10).
    with tampering(db) as conn:
        _forge(conn, _row_at(conn, 10), seq=11, prev_hash=ten[8].row_hash, actor="mallory")
    report = _report(db)
    assert (report.problem, report.bad_seq) == ("inserted", 11)
    assert report.checked == 10


def test_forged_first_row_is_inserted(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        template = _row_at(conn, 1)
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == 1))
        _forge(conn, template, seq=1, prev_hash="1" * 64, actor="mallory")
    report = _report(db)
    assert (report.problem, report.bad_seq) == ("inserted", 1)


def test_replaced_row_is_caught_at_its_successor(db: Database, ten: list[AuditEntry]) -> None:
    # Without an audit key, a replacement of row 5 can link correctly backwards;
    # the broken link is then row 6's (documented: reported at the successor).
    with tampering(db) as conn:
        template = _row_at(conn, 5)
        conn.execute(delete(AUDIT).where(AUDIT.c.seq == 5))
        _forge(conn, template, seq=5, prev_hash=ten[3].row_hash, actor="mallory")
    report = _report(db)
    assert (report.problem, report.bad_seq) == ("inserted", 6)
    assert "row 5" in (report.detail or "")


def test_with_an_audit_key_a_forger_without_it_is_caught_at_the_forged_row(
    settings: Settings,
) -> None:
    keyed = Database(settings.with_overrides(audit_key="the-real-key"))
    try:
        entries = _append(keyed, 4)
        with tampering(keyed) as conn:
            # Links perfectly, but hashed without the key (or with a guess).
            _forge(conn, _row_at(conn, 4), seq=5, prev_hash=entries[-1].row_hash, key=None)
        report = _verify(keyed)
    finally:
        keyed.dispose()
    assert (report.problem, report.bad_seq) == ("edited", 5)


def test_truncation_needs_an_anchor(db: Database, ten: list[AuditEntry]) -> None:
    old_head = (10, ten[-1].row_hash)
    with tampering(db) as conn:
        conn.execute(delete(AUDIT).where(AUDIT.c.seq > 7))
    plain = _report(db)
    assert plain.ok
    assert plain.last_seq == 7
    report = _report(db, anchor=old_head)
    assert not report.ok
    assert (report.problem, report.bad_seq) == ("anchor", 10)
    assert "truncated" in (report.detail or "")
    assert report.checked == 7


def test_truncation_to_nothing_is_caught_by_the_anchor(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        conn.execute(delete(AUDIT))
    assert _report(db).ok
    report = _report(db, anchor=(10, ten[-1].row_hash))
    assert (report.problem, report.bad_seq) == ("anchor", 10)


def test_wholesale_rewrite_is_caught_by_the_anchor(db: Database, ten: list[AuditEntry]) -> None:
    with tampering(db) as conn:
        prev = GENESIS_HASH
        for row in _raw_rows_conn(conn):
            row["actor"] = "mallory"
            row["prev_hash"] = prev
            row["row_hash"] = prev = compute_row_hash(prev, hash_content(row))
            conn.execute(
                update(AUDIT)
                .where(AUDIT.c.seq == row["seq"])
                .values(actor=row["actor"], prev_hash=row["prev_hash"], row_hash=row["row_hash"])
            )
    assert _report(db).ok  # a consistent rewrite verifies on its own
    report = _report(db, anchor=(10, ten[-1].row_hash))
    assert (report.problem, report.bad_seq) == ("anchor", 10)
    assert "rewritten" in (report.detail or "")
    # An anchor before the walk's start is looked up directly.
    report = _report(db, since_seq=6, anchor=(3, ten[2].row_hash))
    assert (report.problem, report.bad_seq) == ("anchor", 3)
    # An anchor inside the walk fails in seq order.
    report = _report(db, anchor=(4, ten[3].row_hash))
    assert (report.problem, report.bad_seq, report.checked) == ("anchor", 4, 3)
