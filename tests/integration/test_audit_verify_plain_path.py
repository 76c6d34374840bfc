"""verify_chain's plain path agrees with the exact (Core row) path, on both backends.

verify_chain reads the rows straight from the driver and renders their
canonical JSON itself; a row it cannot render exactly goes the Core way
(``hash_content`` of a Core row, the code every row took before).  Here the
same log is verified both ways (the exact way by making every batch go the
Core way) and the reports must be equal, or both must raise the same error:
on clean chains written by the repository, and on rows edited by hand in
every column in ways the plain path must render (or hand over) exactly:
other UUID and timestamp spellings, JSON text spelled another way, values
of another type, timestamps Python cannot hold.  Each edit is checked
twice: as it is (the row no longer matches its hash) and re-hashed by a
forger the exact way (the chain verifies, both ways, or fails the same way).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, select, text, update

from tests.audit_tampering import tampering
from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.repositories.audit import AuditLogRepository, hash_content
from vutf_cli.domain.views import ChainReport
from vutf_cli.security.audit_chain import GENESIS_HASH, compute_row_hash

AUDIT = cast(Table, AuditLog.__table__)
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
            "nested": {"list": [{"deep": {"deeper": [1, "two", None, True, False]}}]},
        },
        "metadata": {"command": AWKWARD_TEXT, "extra": {"a": [1]}},
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


@contextmanager
def core_rows_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """verify_chain as before the plain path: every batch as Core rows."""
    with monkeypatch.context() as patch:
        patch.setattr(AuditLogRepository, "_plain_batch", lambda self, *arguments: None)
        yield


def _verify(db: Database, **options: Any) -> ChainReport | tuple[str, str]:
    """The report, or the error's type and message."""
    try:
        return db.run(lambda uow: uow.audit.verify_chain(**options), read_only=True)
    except Exception as error:  # compared, not swallowed
        return type(error).__name__, str(error)


def _both_ways(
    db: Database, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> ChainReport | tuple[str, str]:
    """verify_chain's result, checked equal to the exact path's."""
    plain = _verify(db, **options)
    with core_rows_only(monkeypatch):
        exact = _verify(db, **options)
    assert plain == exact
    return plain


def _write(db: Database, entries: list[dict[str, Any]], repeat: int = 1) -> None:
    def work(uow: Any) -> None:
        for _ in range(repeat):
            for entry in entries:
                uow.audit.append(**entry)

    db.run(work)


def _rehash(db: Database) -> None:
    """Recompute every row's links and hashes the exact way, as a forger would."""
    with tampering(db) as conn:
        rows = conn.execute(select(AUDIT).order_by(AUDIT.c.seq)).all()
        prev = GENESIS_HASH
        key = db.settings.audit_key
        for row in rows:
            row_hash = compute_row_hash(prev, hash_content(row), key)
            conn.execute(
                update(AUDIT)
                .where(AUDIT.c.seq == row.seq)
                .values(prev_hash=prev, row_hash=row_hash)
            )
            prev = row_hash


def _edit(db: Database, seq: int, assignments: str, **params: Any) -> None:
    with tampering(db) as conn:
        conn.execute(
            text(f"UPDATE audit_log SET {assignments} WHERE seq = :seq"), {"seq": seq, **params}
        )


def _count_core_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = AuditLogRepository._table_batch

    def counted(self: AuditLogRepository, after: Any, limit: int) -> Any:
        calls.append(limit)
        return original(self, after, limit)

    monkeypatch.setattr(AuditLogRepository, "_table_batch", counted)
    return calls


@pytest.fixture(params=[None, "an audit key"], ids=["sha256", "hmac"])
def keyed_db(request: pytest.FixtureRequest, settings: Any) -> Iterator[Database]:
    database = Database(settings.with_overrides(audit_key=request.param))
    try:
        yield database
    finally:
        database.dispose()


def test_clean_chains_verify_the_plain_way_only(
    keyed_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(keyed_db, ENTRIES, repeat=3)
    core_batches = _count_core_batches(monkeypatch)
    report = _verify(keyed_db, batch_size=4)
    assert isinstance(report, ChainReport)
    assert report.ok
    assert report.checked == 3 * len(ENTRIES)
    assert core_batches == []  # every row rendered the plain way
    assert _both_ways(keyed_db, monkeypatch, batch_size=4) == report
    assert _both_ways(keyed_db, monkeypatch, since_seq=7, batch_size=2) == _verify(
        keyed_db, since_seq=7, batch_size=2
    )
    anchored = _both_ways(keyed_db, monkeypatch, anchor=(5, "0" * 64), batch_size=3)
    assert isinstance(anchored, ChainReport)
    assert (anchored.problem, anchored.bad_seq) == ("anchor", 5)


def test_the_first_bad_row_is_the_same_both_ways(
    keyed_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(keyed_db, ENTRIES, repeat=2)
    _edit(keyed_db, 7, "actor = :actor", actor="mallory")
    report = _both_ways(keyed_db, monkeypatch, batch_size=3)
    assert isinstance(report, ChainReport)
    assert (report.problem, report.bad_seq, report.checked) == ("edited", 7, 6)


# Hand edits either backend stores; each must verify the same both ways.
COMMON_EDITS: list[tuple[str, dict[str, Any]]] = [
    ("actor = :value", {"value": AWKWARD_TEXT}),
    ("resource_id = NULL", {}),
    ("error_message = :value", {"value": "x" * 5000}),
    ("duration_ms = NULL", {}),
    ("duration_ms = -5", {}),
    ("user_id = NULL", {}),
    ("changes = NULL", {}),
    ("metadata = NULL", {}),
]

SQLITE_EDITS: list[tuple[str, dict[str, Any]]] = [
    # UUIDs in spellings GUID reads (and normalizes), or refuses.
    ("id = upper(id)", {}),
    ("id = '{' || id || '}'", {}),
    ("id = replace(id, '-', '')", {}),
    ("user_id = 'urn:uuid:' || id", {}),
    ("user_id = 'not a uuid'", {}),
    ("user_id = 42", {}),
    # Timestamps in other ISO spellings, with an offset, or unreadable.
    ("created_at = '2026-01-02T03:04:05'", {}),
    ("created_at = '2026-01-02 03:04:05.5'", {}),
    ("created_at = '2026-01-02 03:04:05+02:00'", {}),
    ("created_at = '2026-01-02'", {}),
    ("created_at = '20260102T030405'", {}),
    ("created_at = '0005-01-02 03:04:05.000001'", {}),
    ("created_at = '2026-02-30 00:00:00.000000'", {}),
    ("created_at = 'yesterday'", {}),
    ("created_at = 20260102", {}),
    # JSON text spelled another way, or not JSON at all.
    ("changes = :value", {"value": ' { "b" : 1.50, "a" : [1e2, "\\u00e9", -0] } '}),
    ("changes = :value", {"value": '{"b":1,"a":2}'}),
    ("changes = :value", {"value": "\ufeff{}"}),
    ("changes = :value", {"value": '"just text"'}),
    ("changes = :value", {"value": "null"}),
    ("changes = :value", {"value": "[NaN]"}),
    ("changes = :value", {"value": "{not json"}),
    ("changes = :value", {"value": "[" * 5000 + "]" * 5000}),
    ("metadata = :value", {"value": '{"a":1}{"b":2}'}),
    ("metadata = :value", {"value": b'{"bytes":true}'}),
    ("metadata = :value", {"value": '{"big":1e400}'}),
    ("metadata = :value", {"value": '{"n":123456789012345678901234567890}'}),
    # Values of another type in text and integer columns.
    ("actor = 42", {}),
    ("actor = 4.5", {}),
    ("ip_address = x'00ff'", {}),
    ("duration_ms = 1.5", {}),
    ("duration_ms = 'slow'", {}),
    ("prev_hash = 7", {}),
]

POSTGRES_EDITS: list[tuple[str, dict[str, Any]]] = [
    # Timestamps at and beyond the edges of Python's datetime.
    ("created_at = '0001-01-01 00:00:00+00'", {}),
    ("created_at = '0005-03-04 05:06:07.000008+00'", {}),
    ("created_at = '0999-12-31 23:59:59.999999+00'", {}),
    ("created_at = '9999-12-31 23:59:59.999999+00'", {}),
    ("created_at = '2026-06-01 12:00:00+05:30'", {}),
    ("created_at = '10000-01-01 00:00:00+00'", {}),
    ("created_at = '0044-03-15 12:00:00+00 BC'", {}),
    ("created_at = 'infinity'", {}),
    ("created_at = '-infinity'", {}),
    # jsonb that is not an object, or that json.loads turns into other values.
    ("changes = CAST(:value AS jsonb)", {"value": "null"}),
    ("changes = CAST(:value AS jsonb)", {"value": '"just text"'}),
    ("changes = CAST(:value AS jsonb)", {"value": "[1.50, 1e2, -0, 1E-7, 0.1]"}),
    ("changes = CAST(:value AS jsonb)", {"value": '{"big": 1e400, "small": 1e-400}'}),
    ("changes = CAST(:value AS jsonb)", {"value": "[" * 3000 + "]" * 3000}),
    (
        "metadata = CAST(:value AS jsonb)",
        {"value": '{"é": 1, "e": 2, "ab": 3, "b": {"z": 1, "a": 2}}'},
    ),
    ("metadata = CAST(:value AS jsonb)", {"value": json.dumps({AWKWARD_TEXT: AWKWARD_TEXT})}),
]


HAND_EDITS = [
    pytest.param(backend, assignments, params, id=f"{backend}-{number}")
    for backend, edits in (
        ("sqlite", COMMON_EDITS + SQLITE_EDITS),
        ("postgresql", COMMON_EDITS + POSTGRES_EDITS),
    )
    for number, (assignments, params) in enumerate(edits)
]


# ``backend`` is parametrized here (overriding its fixture): each backend has its own edits.
@pytest.mark.parametrize(("backend", "assignments", "params"), HAND_EDITS)
def test_hand_edited_rows_verify_the_same_both_ways(
    backend: str,
    keyed_db: Database,
    monkeypatch: pytest.MonkeyPatch,
    assignments: str,
    params: dict[str, Any],
) -> None:
    _write(keyed_db, ENTRIES, repeat=2)
    # Row 4 has every column set; batches of 3 put it second in its batch.
    _edit(keyed_db, 4, assignments, **params)
    edited = _both_ways(keyed_db, monkeypatch, batch_size=3)
    if isinstance(edited, ChainReport):
        assert not edited.ok or edited.checked == 2 * len(ENTRIES)
    try:
        _rehash(keyed_db)
    except Exception:  # the exact path cannot read the row: nothing to re-hash
        return
    _both_ways(keyed_db, monkeypatch, batch_size=3)
    _both_ways(keyed_db, monkeypatch, batch_size=1)
    _both_ways(keyed_db, monkeypatch, since_seq=4, batch_size=2)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(
                st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=6
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    value=JSON_VALUES,
    spelling=st.sampled_from(
        [
            {"separators": (",", ":")},
            {"separators": (", ", ": "), "ensure_ascii": True},
            {"indent": 1, "sort_keys": True},
        ]
    ),
)
def test_stored_json_in_any_spelling_verifies_the_same_both_ways(
    db: Database, monkeypatch: pytest.MonkeyPatch, value: Any, spelling: dict[str, Any]
) -> None:
    if db.run(lambda uow: uow.audit.head(), read_only=True) is None:
        _write(db, ENTRIES[:3])
    stored = json.dumps(value, **spelling)
    assignment = "changes = :value" if db.dialect == "sqlite" else "changes = CAST(:value AS jsonb)"
    _edit(db, 2, assignment, value=stored)
    _rehash(db)
    report = _both_ways(db, monkeypatch, batch_size=2)
    assert isinstance(report, ChainReport)
    assert report.ok


WRITE_TEXT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    entries=st.lists(
        st.fixed_dictionaries(
            {
                "action": st.sampled_from(["user.create", "api_key.use", "a.b_c.d"]),
                "resource_type": st.sampled_from(["user", "api_key"]),
            },
            optional={
                "resource_id": WRITE_TEXT,
                "changes": st.dictionaries(WRITE_TEXT, JSON_VALUES, max_size=4),
                "metadata": st.dictionaries(WRITE_TEXT, JSON_VALUES, max_size=4),
                "error_message": WRITE_TEXT,
                "duration_ms": st.integers(min_value=0, max_value=2**31 - 1),
                "user_agent": WRITE_TEXT,
                "status": st.sampled_from(["success", "failure", "error"]),
            },
        ),
        min_size=1,
        max_size=5,
    )
)
def test_written_rows_verify_the_plain_way(
    db: Database, monkeypatch: pytest.MonkeyPatch, entries: list[dict[str, Any]]
) -> None:
    _write(db, entries)
    core_batches = _count_core_batches(monkeypatch)
    report = _verify(db, batch_size=3)
    monkeypatch.undo()
    assert isinstance(report, ChainReport)
    assert report.ok
    assert core_batches == []
    assert _both_ways(db, monkeypatch, batch_size=3) == report
