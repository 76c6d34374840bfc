"""vutf_cli.services.audit on SQLite and PostgreSQL: filters, query plans, export, follow.

The plan test EXPLAINs the very statement the service runs (``page_statement``
with bound parameters, wrapped in an ``EXPLAIN`` construct) for every
combination of filters, on a few thousand rows with fresh statistics, and
asserts that no combination reads ``audit_log`` without an index.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import ClauseElement, Executable
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from tests.audit_seed import RowMaker, bulk_seed
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import AuditEntry
from vutf_cli.errors import InvalidInput, NotFound
from vutf_cli.security.audit_chain import GENESIS_HASH
from vutf_cli.services import audit as audit_service
from vutf_cli.services import audit_export, audit_follow, audit_verify
from vutf_cli.services.audit import ResolvedFilters

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
ACTIONS = (
    "user.create",
    "user.update",
    "user.delete",
    "user.login",
    "api_key.create",
    "api_key.revoke",
    "db.upgrade",
    "user_group.create",
)
USERS = tuple(uuid.UUID(int=n + 1) for n in range(40))


# -- seeding -------------------------------------------------------------------------
def varied(seed: int = 20240101) -> RowMaker:
    """Rows with random actors, users, actions, resources and statuses (the same for a seed)."""
    rng = random.Random(seed)

    def make(seq: int) -> dict[str, Any]:
        action = rng.choice(ACTIONS)
        resource_type = {"db": "database", "user_group": "group"}.get(
            action.split(".")[0], action.split(".")[0]
        )
        return {
            "actor": f"actor{rng.randrange(12)}",
            "user_id": rng.choice(USERS) if rng.random() < 0.8 else None,
            "action": action,
            "resource_type": resource_type,
            "resource_id": f"r{rng.randrange(250)}",
            "status": rng.choices(("success", "failure", "error"), (80, 15, 5))[0],
        }

    return make


def _all_entries(db: Database) -> list[AuditEntry]:
    return list(_export(db, audit_service.AuditQuery()))


def _export(db: Database, query: audit_service.AuditQuery, **kwargs: Any) -> list[AuditEntry]:
    with audit_export.open_export(db, query, **kwargs) as stream:
        return list(stream.entries)


# -- EXPLAIN ----------------------------------------------------------------------------
class Explain(Executable, ClauseElement):
    """``<prefix> <statement>``, compiled with the statement's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement: Any, prefix: str) -> None:
        self.statement = statement
        self.prefix = prefix


@compiles(Explain)
def _compile_explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


def _plan(db: Database, statement: Any) -> tuple[bool, str]:
    """(uses an index for every read of audit_log, the plan as text)."""
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            # .cursor: the raw rows, without the statement's result processors.
            result = conn.execute(Explain(statement, "EXPLAIN (FORMAT JSON)"))
            plan = json.dumps(result.cursor.fetchall()[0][0])
            return "Seq Scan" not in plan, plan
        result = conn.execute(Explain(statement, "EXPLAIN QUERY PLAN"))
        details = [str(row[-1]) for row in result.cursor.fetchall()]
    reads = [d for d in details if re.match(r"(SCAN|SEARCH) audit_log\b", d)]
    indexed = all(
        "USING INDEX" in d or "USING COVERING INDEX" in d or "USING INTEGER PRIMARY KEY" in d
        for d in reads
    )
    return bool(reads) and indexed, "\n".join(details)


FILTER_VALUES: dict[str, dict[str, Any]] = {
    "actor": {"actor": "actor3"},
    "user": {"user_id": USERS[4]},
    "action": {"action": "user.create"},
    "action_glob": {"action": "user.*"},
    "resource_type": {"resource_type": "user"},
    "resource_id": {"resource_id": "r17"},
    "status": {"status": "failure"},
    "since": {"since": BASE_TIME + timedelta(days=1)},
    "until": {"until": BASE_TIME + timedelta(days=2)},
}


def _combinations() -> list[tuple[str, ...]]:
    names = list(FILTER_VALUES)
    combos = []
    for size in range(1, len(names) + 1):
        for combo in itertools.combinations(names, size):
            if "action" in combo and "action_glob" in combo:
                continue  # one --action option: exact or glob, not both
            combos.append(combo)
    return combos


def test_every_filter_combination_uses_an_index(db: Database) -> None:
    bulk_seed(db, 3000, varied(), start=BASE_TIME)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    combos = _combinations()
    assert len(combos) == 2**7 * 3 - 1
    unindexed = []
    for combo in [(), *combos]:
        values: dict[str, Any] = {}
        for name in combo:
            values.update(FILTER_VALUES[name])
        filters = ResolvedFilters(**values)
        # A first page newest first, a later one, and a later page oldest first.
        for descending, after_seq in ((True, None), (True, 2000), (False, 1000)):
            statement = audit_service.page_statement(
                filters, db.dialect, descending=descending, after_seq=after_seq, limit=51
            )
            indexed, plan = _plan(db, statement)
            if not indexed:
                unindexed.append((combo, descending, after_seq, plan))
    assert unindexed == [], f"{len(unindexed)} plans read audit_log without an index:\n" + (
        "\n".join(f"{combo} desc={d} after={a}:\n{plan}" for combo, d, a, plan in unindexed[:3])
    )


# -- filters: the rewritten shapes return exactly the right rows ----------------------
def _seqs(db: Database, **filters: Any) -> list[int]:
    query = audit_service.AuditQuery(**filters)
    page = audit_service.list_entries(db, query, descending=False, limit=10_000)
    assert page.next_cursor is None
    return [entry.seq for entry in page.entries]


@pytest.fixture
def seeded(db: Database) -> list[AuditEntry]:
    bulk_seed(db, 600, varied(), start=BASE_TIME)
    return _all_entries(db)


@pytest.mark.parametrize(
    ("glob", "pattern"),
    [
        ("user.*", r"user\..*"),
        ("*.create", r".*\.create"),
        ("user.?reate", r"user\..reate"),
        ("user_*", r"user_.*"),  # "_" is literal, not LIKE's any-character
        ("api_key.*", r"api_key\..*"),
        ("*", r".*"),
        ("nothing.*", r"nothing\..*"),
    ],
)
def test_action_globs_match_exactly(
    db: Database, seeded: list[AuditEntry], glob: str, pattern: str
) -> None:
    expected = [e.seq for e in seeded if re.fullmatch(pattern, e.action)]
    assert _seqs(db, action=glob) == expected
    if glob == "user_*":
        assert expected
        assert {e.action for e in seeded if e.seq in expected} == {"user_group.create"}


def test_each_filter_and_combinations(db: Database, seeded: list[AuditEntry]) -> None:
    def expect(predicate: Callable[[AuditEntry], bool]) -> list[int]:
        return [e.seq for e in seeded if predicate(e)]

    since, until = seeded[100].created_at, seeded[300].created_at
    assert _seqs(db, actor="actor3") == expect(lambda e: e.actor == "actor3")
    assert _seqs(db, action="user.login") == expect(lambda e: e.action == "user.login")
    assert _seqs(db, resource_type="api_key") == expect(lambda e: e.resource_type == "api_key")
    # resource_id without its type goes through the enumerated types.
    assert _seqs(db, resource_id="r17") == expect(lambda e: e.resource_id == "r17")
    assert _seqs(db, resource_type="user", resource_id="r17") == expect(
        lambda e: e.resource_type == "user" and e.resource_id == "r17"
    )
    assert _seqs(db, status="error") == expect(lambda e: e.status == "error")
    assert _seqs(db, since=since, until=until) == expect(lambda e: since <= e.created_at < until)
    assert _seqs(db, actor="actor1", action="user.*", status="success", since=since) == expect(
        lambda e: (
            e.actor == "actor1"
            and e.action.startswith("user.")
            and e.status == "success"
            and e.created_at >= since
        )
    )
    assert _seqs(db, actor="nobody") == []


def test_user_filter_resolves_username_email_id_and_deleted_users(db: Database) -> None:
    def create(uow: UnitOfWork) -> tuple[uuid.UUID, uuid.UUID]:
        alice = uow.users.create_user(
            username="alice", email="alice@example.com", password="correct horse battery"
        )
        bob = uow.users.create_user(
            username="bob", email="bob@example.com", password="correct horse battery"
        )
        return alice.id, bob.id

    alice_id, bob_id = db.run(create)
    db.run(
        lambda uow: [
            uow.audit.append(action="user.create", resource_type="user", user_id=uid)
            for uid in (alice_id, bob_id, alice_id)
        ]
    )
    assert _seqs(db, user="alice") == [1, 3]
    assert _seqs(db, user="BOB@example.com") == [2]
    assert _seqs(db, user=str(alice_id)) == [1, 3]

    def delete_bob(uow: UnitOfWork) -> None:
        bob = uow.users.get_by_username("bob")
        assert bob is not None
        uow.users.delete(bob)

    db.run(delete_bob)
    assert _seqs(db, user="bob") == [2]  # deleted users keep their history
    with pytest.raises(NotFound):
        _seqs(db, user="carol")


def test_build_query_validates_and_resolves_relative_times() -> None:
    now = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)
    query = audit_service.build_query(since="2h", until="now", now=now)
    assert (query.since, query.until) == (now - timedelta(hours=2), now)
    assert audit_service.build_query(since="15m", now=now).since == now - timedelta(minutes=15)
    assert audit_service.build_query(since="7d", now=now).since == now - timedelta(days=7)
    assert audit_service.build_query(since="today", now=now).since == datetime(
        2024, 5, 10, tzinfo=UTC
    )
    assert audit_service.build_query(since="yesterday", now=now).since == datetime(
        2024, 5, 9, tzinfo=UTC
    )
    assert audit_service.build_query(since="2024-05-01T08:00:00+02:00", now=now).since == (
        datetime(2024, 5, 1, 6, 0, tzinfo=UTC)
    )
    assert audit_service.build_query(status="FAILURE").status == "failure"
    assert audit_service.build_query(action="User.*").action == "user.*"
    for bad in (
        {"status": "ok"},
        {"since": "last tuesday"},
        {"until": "3 fortnights"},
        {"since": "2h", "until": "3h"},  # since after until
        {"action": "user.[ab]*"},
        {"actor": "  "},
    ):
        with pytest.raises(InvalidInput):
            audit_service.build_query(now=now, **bad)


def test_cursors_are_opaque_and_checked() -> None:
    cursor = audit_service.encode_cursor(1234, descending=True)
    assert "1234" not in cursor
    assert audit_service.decode_cursor(cursor, descending=True) == 1234
    with pytest.raises(InvalidInput, match="ordered newest first"):
        audit_service.decode_cursor(cursor, descending=False)
    for bad in ("", "xyz", "1234", "!!!", audit_service.encode_cursor(5, descending=False)[:-2]):
        with pytest.raises(InvalidInput):
            audit_service.decode_cursor(bad, descending=False)


def test_anchor_parsing() -> None:
    digest = "ab" * 32
    assert audit_verify.parse_anchor(f"12:{digest.upper()}") == (12, digest)
    assert audit_verify.parse_anchor(f"0:{GENESIS_HASH}") is None
    for bad in ("12", f"x:{digest}", f"12:{digest[:-1]}", f"0:{digest}", f"-1:{digest}"):
        with pytest.raises(InvalidInput):
            audit_verify.parse_anchor(bad)


# -- export ------------------------------------------------------------------------------
def test_export_reads_one_snapshot(db: Database) -> None:
    bulk_seed(db, 250)
    with audit_export.open_export(db, audit_service.AuditQuery(), batch_size=100) as stream:
        assert stream.head_seq == 250
        first = [next(stream.entries) for _ in range(150)]
        # Appended while the export is half-way: not part of its snapshot.
        db.run(lambda uow: [uow.audit.append(action="user.create", resource_type="user")])
        rest = list(stream.entries)
    assert [e.seq for e in first + rest] == list(range(1, 251))
    assert db.run(lambda uow: uow.audit.head(), read_only=True)[0] == 251  # type: ignore[index]


def test_export_streams_in_constant_memory(db: Database) -> None:
    bulk_seed(db, 30_000)
    tracemalloc.start()
    try:
        count = 0
        with audit_export.open_export(db, audit_service.AuditQuery()) as stream:
            for entry in stream.entries:
                count += entry.seq > 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 30_000
    # Holding 30,000 entries takes well over 50 MB; one batch of 1,000 a few MB.
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_export_filters_like_list(db: Database, seeded: list[AuditEntry]) -> None:
    query = audit_service.build_query(action="api_key.*", status="success")
    exported = _export(db, query, batch_size=7)
    listed = audit_service.list_entries(db, query, descending=False, limit=10_000).entries
    assert exported == list(listed)
    assert exported
    assert all(e.action.startswith("api_key.") for e in exported)


# -- follow --------------------------------------------------------------------------------
def test_follow_starts_at_the_head_and_sees_new_rows(db: Database) -> None:
    bulk_seed(db, 5)
    following = audit_follow.follow(
        db,
        audit_service.build_query(action="user.*"),
        interval=0.05,
        max_events=2,
        timeout=20,
    )
    assert following.after_seq == 5

    def writer() -> None:
        db.run(
            lambda uow: [
                uow.audit.append(action=action, resource_type="user")
                for action in ("api_key.create", "user.update", "user.delete", "user.login")
            ]
        )

    thread = threading.Thread(target=writer)
    thread.start()
    seen = [(e.seq, e.action) for e in following.entries]
    thread.join()
    assert seen == [(7, "user.update"), (8, "user.delete")]  # filtered, then max_events


def test_follow_replays_from_since_seq_and_stops_at_the_timeout(db: Database) -> None:
    bulk_seed(db, 8)
    following = audit_follow.follow(
        db, audit_service.AuditQuery(), since_seq=6, interval=0.05, timeout=0.3
    )
    assert following.after_seq == 5
    assert [e.seq for e in following.entries] == [6, 7, 8]
    with pytest.raises(InvalidInput):
        audit_follow.follow(db, audit_service.AuditQuery(), interval=0)


def test_follow_keeps_polling_through_an_outage(settings: Any) -> None:
    """Polls that find the database unreachable warn once; the follow goes on afterwards.

    Two polls are sent to a real server address where nothing listens (a
    closed port), so they fail the way a stopped database does.
    """
    database = Database(settings)
    down = Database(
        settings.with_overrides(
            database_url=_closed_port_url(), db_deadline=0.5, connect_timeout=1.0
        )
    )
    outages: list[str] = []
    recoveries: list[bool] = []
    calls = {"n": 0}
    real_run = database.run

    def run_with_an_outage(fn: Any, *, read_only: bool = False) -> Any:
        calls["n"] += 1  # 1 = the start, 2 and 3 = polls during the outage
        if calls["n"] in (2, 3):
            return down.run(fn, read_only=read_only)
        if calls["n"] == 4:  # back up, and a row arrived meanwhile
            real_run(lambda uow: uow.audit.append(action="user.create", resource_type="user"))
        return real_run(fn, read_only=read_only)

    try:
        bulk_seed(database, 2)
        database.run = run_with_an_outage  # type: ignore[method-assign]
        following = audit_follow.follow(
            database,
            audit_service.AuditQuery(),
            interval=0.05,
            max_events=1,
            timeout=30,
            on_outage=lambda error: outages.append(error.code),
            on_recovery=lambda: recoveries.append(True),
        )
        assert [e.seq for e in following.entries] == [3]
    finally:
        database.dispose()
        down.dispose()
    assert calls["n"] == 4
    assert outages == ["database_unavailable"]  # once, not once per failed poll
    assert recoveries == [True]


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/nowhere"
