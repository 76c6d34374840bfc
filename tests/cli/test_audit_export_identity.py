"""`vutf audit export` (lines rendered by the database) is byte for byte `audit list -o jsonl`.

This is the one place that proves it (for both backends): 25,000 rows cross
the batch boundaries of both backends (10,000 rows a COPY, 5,000 a SQLite
statement), and the hostile values below cross tiny ones.

The export's JSON lines are made by SQL (``vutf_cli.db.audit_sql``); the
list is rendered by Python from AuditEntry views.  Every value that could
make the two spell something differently is exercised here, on both
backends: escapes, terminal-unsafe characters, non-ASCII text, separators
inside strings, arrays of non-strings, decimals (which ``jsonb`` prints its
own way), big integers, empty containers, NULLs; rows edited by hand around
the triggers; tiny batches, so that rows left to Python fall on batch edges.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError

from tests.audit_seed import bulk_seed
from tests.audit_tampering import tampering
from tests.cli.conftest import RunCli
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.services import audit_export

HOSTILE_TEXT = [
    "plain",
    "zoë 🔑 ü",
    'say "hi": ok',
    "back\\slash \\u00e9 \\/ \\n",
    "Doe, John",
    'a, "b"',
    "tab\tnew\nline\rcarriage",
    "\x01\x02\x1f control",
    "del \x7f c1 \x85 \x9f",
    "bidi \u202e reversed \u2066 isolate \u2069",
    "separators \u2028 \u2029",
    "astral 𝄞 and nul-free",
    "[1, 2]: {a, b}",
    "",
]

CHANGES: list[dict[str, Any] | None] = [
    None,
    {},
    {"email": "a@example.com", "is_active": True, "full_name": None},
    {"roles": {"old": [], "new": ["admin", "ops"]}},
    {"numbers": [1, 2, 3], "mixed": [True, None, "a, b", {"k": [1, 2]}], "nested": [[1], [2, 3]]},
    {"float": 0.5, "small": 1e-07, "large": 1e22, "neg": -2.5, "whole": 2.0},
    # jsonb spells a fraction its own way wherever it stands: an array's only element too.
    {"alone": [1e-05], "nested": [[2.5e-07]], "first": [0.5, "a"], "whole": [2.0]},
    {"big": 12345678901234567890123, "negative": -3, "zero": 0},
    {"objects": [{"a": 1}, {"b": {"c": None}}], "empty": {}, "empty_list": []},
    {text_: text_ for text_ in HOSTILE_TEXT if text_},
    {"list_of_text": HOSTILE_TEXT},
]


def _entries() -> Iterator[dict[str, Any]]:
    for number, value in enumerate(HOSTILE_TEXT):
        yield {
            "actor": value or "someone",
            "resource_id": value or None,
            "error_message": value or None,
            "user_agent": value[:255] or None,
            "status": "failure" if number % 3 else "success",
        }
    for number, changes in enumerate(CHANGES):
        yield {
            "actor": "changes",
            "user_id": uuid.UUID(int=number + 1),
            "changes": changes,
            "duration_ms": number * 1000,
            "ip_address": "2001:db8::1" if number % 2 else "10.0.0.1",
        }
    yield {"actor": "meta", "metadata": {"ticket": "OPS-7", "ratio": 0.25, "attempt": 3}}
    yield {"actor": "meta", "metadata": {"note": 'quote " and, comma', "tags": ["a", "b"]}}


def _append_all(db: Database) -> int:
    entries = list(_entries())

    def work(uow: UnitOfWork) -> None:
        for entry in entries:
            uow.audit.append(action="user.update", resource_type="user", **entry)

    db.run(work)
    return len(entries)


def _list_jsonl(run_cli: RunCli, *filters: str) -> str:
    listed = run_cli("audit", "list", "--reverse", "--limit", "100000", "-o", "jsonl", *filters)
    assert listed.exit_code == 0, listed.stderr
    return listed.stdout


def _export(run_cli: RunCli, *filters: str) -> str:
    exported = run_cli("audit", "export", *filters)
    assert exported.exit_code == 0, exported.stderr
    return exported.stdout


def _assert_same_lines(exported: str, listed: str) -> None:
    # Line by line first, for a readable failure; then the whole text.
    for number, (got, want) in enumerate(
        zip(exported.split("\n"), listed.split("\n"), strict=True), start=1
    ):
        assert got == want, f"line {number} differs"
    assert exported == listed


def test_25000_rows_across_batch_boundaries_are_list_byte_for_byte(
    run_cli: RunCli, db: Database
) -> None:
    total = 25_000
    assert total > 2 * max(audit_export.POSTGRES_COPY_BATCH, audit_export.SQLITE_LINES_BATCH)
    bulk_seed(db, total, lambda seq: {"changes": {"n": seq, "ratio": seq / 7}} if seq % 9 else {})
    exported = run_cli("audit", "export")
    assert exported.exit_code == 0, exported.stderr
    assert f"exported {total} audit entries" in exported.stderr
    listed = _list_jsonl(run_cli)
    assert len(listed.splitlines()) == total
    _assert_same_lines(exported.stdout, listed)


def test_every_value_is_spelled_as_list_spells_it(run_cli: RunCli, db: Database) -> None:
    total = _append_all(db)
    listed = _list_jsonl(run_cli)
    assert len(listed.splitlines()) == total
    # The hostile characters really are in the output, escaped the vutf way.
    assert "\\u202e" in listed
    assert "\\u2028" in listed
    assert "\\u007f" in listed
    assert "\\u0001" in listed
    assert "zoë 🔑" in listed
    _assert_same_lines(_export(run_cli), listed)


@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_batch_edges(
    run_cli: RunCli, db: Database, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append_all(db)
    monkeypatch.setattr(audit_export, "POSTGRES_COPY_BATCH", batch)
    monkeypatch.setattr(audit_export, "SQLITE_LINES_BATCH", batch)
    _assert_same_lines(_export(run_cli), _list_jsonl(run_cli))


@pytest.mark.parametrize(
    "filters",
    [
        ("--by-actor", "changes"),
        ("--action", "user.*"),
        ("--status", "failure"),
        ("--user", str(uuid.UUID(int=5))),
        ("--since", "2000-01-01", "--until", "2999-01-01"),
        ("--by-actor", "nobody"),
        ("--since-seq", "3"),
        ("--since-seq", "2", "--status", "success"),
    ],
)
def test_filtered_export_is_the_filtered_list(
    run_cli: RunCli, db: Database, filters: tuple[str, ...]
) -> None:
    _append_all(db)
    _assert_same_lines(_export(run_cli, *filters), _list_jsonl(run_cli, *filters))


def _insert_raw(db: Database, rows: list[dict[str, Any]]) -> None:
    """Rows written around vutf (and its triggers), the way a hand edit would."""
    with tampering(db) as conn:
        seq = conn.execute(text("SELECT COALESCE(MAX(seq), 0) FROM audit_log")).scalar_one()
        for row in rows:
            seq += 1
            values = {
                "id": str(uuid.uuid4()),
                "seq": seq,
                "created_at": datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
                "actor": "hand",
                "user_id": None,
                "action": "user.update",
                "resource_type": "user",
                "resource_id": None,
                "status": "success",
                "changes": None,
                "metadata": None,
                "error_message": None,
                "duration_ms": None,
                "ip_address": None,
                "user_agent": None,
                "prev_hash": "0" * 64,
                "row_hash": "f" * 64,
                **row,
            }
            columns = ", ".join(values)
            if db.dialect == "postgresql":
                placeholders = ", ".join(
                    f"CAST(:{name} AS jsonb)" if name in ("changes", "metadata") else f":{name}"
                    for name in values
                )
            else:
                placeholders = ", ".join(f":{name}" for name in values)
                if isinstance(values["created_at"], datetime):
                    values["created_at"] = values["created_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
            conn.execute(text(f"INSERT INTO audit_log ({columns}) VALUES ({placeholders})"), values)


def test_rows_edited_by_hand(run_cli: RunCli, db: Database) -> None:
    _append_all(db)
    spaced = '{"b" : 1, "a": [1,  2], "c": "x, y"}'
    rows: list[dict[str, Any]] = [
        {"changes": spaced},
        {"metadata": '{"name": "caf\\u00e9", "slash": "a\\/b"}'},
        {"changes": '{"big": 100000000000000000000, "list": [1,2]}'},
        # A JSON column that is one string, ending or starting with a separator.
        {"metadata": '"x, "'},
        {"changes": '"a, "', "metadata": '": b"'},
    ]
    if db.dialect == "postgresql":
        # jsonb keeps a decimal's digits as given; Python prints its float.
        rows.append({"changes": '{"price": 1.50, "tiny": 0.0000001, "exp": 1E5, "z": -0}'})
        # psycopg2 reads them as datetime.max and datetime.min.
        rows += [{"created_at": "infinity"}, {"created_at": "-infinity"}]
    else:
        rows += [
            {"id": str(uuid.uuid4()).upper()},
            {"user_id": "{" + str(uuid.uuid4()) + "}"},
            {"created_at": "2025-05-06 07:08:09"},
        ]
    _insert_raw(db, rows)
    _assert_same_lines(_export(run_cli), _list_jsonl(run_cli))


def test_export_to_a_file_is_the_same_text(run_cli: RunCli, db: Database, tmp_path: Any) -> None:
    _append_all(db)
    target = tmp_path / "audit.jsonl"
    exported = run_cli("audit", "export", "--output-file", str(target))
    assert exported.exit_code == 0, exported.stderr
    assert exported.stdout == ""
    assert target.read_text(encoding="utf-8") == _list_jsonl(run_cli)
    for line in target.read_text(encoding="utf-8").splitlines():
        json.loads(line)


def test_hand_edited_numbers(run_cli: RunCli, db: Database) -> None:
    """The one known difference: JSON a hand edit spelled non-canonically in SQLite.

    vutf stores numbers as Python spells them, so this only happens to a
    SQLite file edited around vutf (which `vutf audit verify` reports).
    Detecting it would cost a JSON walk of every row; the value is the same
    JSON number either way.  PostgreSQL's jsonb marks such rows for Python.
    """
    _insert_raw(db, [{"changes": '{"price": 1.50, "exp": 1E5, "dup": 1, "dup": 2}'}])
    exported, listed = _export(run_cli), _list_jsonl(run_cli)
    if db.dialect == "postgresql":
        # jsonb keeps "1.50" (the row is left to Python) and only the last "dup".
        assert '"price":1.5' in listed
        assert exported == listed
    else:
        assert '"price":1.5,"exp":100000.0,"dup":2' in listed
        assert '"price":1.50,"exp":1E5,"dup":1,"dup":2' in exported
        assert json.loads(exported) == json.loads(listed)  # the same values once read


def test_hand_edited_lookalike_ids_and_times_in_sqlite(run_cli: RunCli, db: Database) -> None:
    """Part of the same difference: an id or time edited into a look-alike of vutf's form.

    The SQL only checks length and case (every row pays for the check); the
    exact form would cost a GLOB of ~1 s per million rows more.
    """
    moved = uuid.uuid4().hex  # 36 characters, lower case, hyphens in the wrong places
    odd_id = f"{moved[:9]}-{moved[9:12]}-{moved[12:16]}-{moved[16:20]}-{moved[20:]}"
    odd_time = "2024-01-01 00:00:00.000+01"  # 26 characters, with an offset
    if db.dialect == "postgresql":
        with pytest.raises(DataError):  # a uuid column holds no such text
            _insert_raw(db, [{"user_id": odd_id}])
        return
    _insert_raw(db, [{"user_id": odd_id, "created_at": odd_time}])
    exported, listed = _export(run_cli), _list_jsonl(run_cli)
    assert f'"user_id":"{odd_id}"' in exported
    assert '"created_at":"2024-01-01T00:00:00.000+01Z"' in exported
    assert f'"user_id":"{uuid.UUID(moved)}"' in listed
    assert '"created_at":"2023-12-31T23:00:00.000000Z"' in listed


def test_a_timestamp_python_cannot_hold_fails_list_and_export_alike(
    run_cli: RunCli, db: Database
) -> None:
    """A hand-edited created_at out of Python's range: an error, never a wrong or null date."""
    _append_all(db)
    # A BC date on PostgreSQL; on SQLite (text) anything that is not a time.
    _insert_raw(db, [{"created_at": "0044-03-15 BC" if db.dialect == "postgresql" else "infinity"}])
    for command in (["list", "-o", "jsonl"], ["export"]):
        result = run_cli("audit", *command)
        assert result.exit_code == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert '"created_at":null' not in result.stdout
    if db.dialect == "postgresql":
        exported = run_cli("audit", "export")
        assert "created_at is outside the years 1 to 9999" in exported.stderr
        assert exported.stdout == ""  # the batch is written only once its COPY is over


def test_a_number_python_cannot_read_fails_list_and_export_alike(
    run_cli: RunCli, db: Database
) -> None:
    """A hand-edited number of more than 4300 digits: exit 6 naming it, never a bug."""
    _append_all(db)
    digits = "9" * 5000
    # As a string, the same digits are text like any other: exported as listed.
    _insert_raw(db, [{"metadata": '{"s": "' + digits + '"}'}])
    _assert_same_lines(_export(run_cli), _list_jsonl(run_cli))
    _insert_raw(db, [{"changes": '{"n": ' + digits + "}"}])
    head = db.run(lambda uow: uow.audit.head(), read_only=True)
    assert head is not None
    for command in (["list", "-o", "jsonl"], ["list"], ["export"], ["show", str(head[0])]):
        result = run_cli("audit", *command)
        assert result.exit_code == 6, (command, result.stderr)
        assert "a number too long to read (more than 4300 digits)" in result.stderr
        assert "this is a bug" not in result.stderr


def test_text_that_is_not_utf8_fails_list_and_export_alike(run_cli: RunCli, db: Database) -> None:
    """SQLite stores whatever bytes it is given; PostgreSQL refuses them (nothing to export)."""
    _append_all(db)
    if db.dialect == "postgresql":
        with pytest.raises(DataError), tampering(db) as conn:
            conn.execute(text("SELECT convert_from('\\xff61'::bytea, 'UTF8')"))
        return
    with tampering(db) as conn:
        conn.execute(text("UPDATE audit_log SET resource_id = CAST(X'FF61' AS TEXT) WHERE seq = 2"))
    listed = run_cli("audit", "list", "-o", "jsonl")
    exported = run_cli("audit", "export")
    assert (listed.exit_code, exported.exit_code) == (1, 1), exported.stderr
    assert "Could not decode to UTF-8 column 'resource_id'" in exported.stderr
    assert "this is a bug" not in exported.stderr


# Text at a string's edge that looks like jsonb's separators (", " before a
# closing quote, ": " after an opening one), in keys, values, arrays and the
# row's own text columns: compacting jsonb text must not touch it.
EDGE_TEXT = ["y, ", ": x", ", ", ": ", "a, ", ":", ", b", "[: ", "{, }"]


def test_separators_at_the_edge_of_a_string(run_cli: RunCli, db: Database) -> None:
    def work(uow: UnitOfWork) -> None:
        for value in EDGE_TEXT:
            uow.audit.append(
                action="user.update",
                resource_type="user",
                actor=value,
                resource_id=value,
                changes={"v": value, value: 1, "list": [value, value], "n": {value: [value]}},
                metadata={"k": value},
            )
            # No array: nothing else sends the line to Python.
            uow.audit.append(
                action="user.update", resource_type="user", actor=value, changes={"v": value}
            )

    db.run(work)
    listed = _list_jsonl(run_cli)
    assert '"v":"y, "' in listed
    assert '"v":": x"' in listed
    _assert_same_lines(_export(run_cli), listed)


def test_timestamps_with_trailing_zeros_in_the_fraction(run_cli: RunCli, db: Database) -> None:
    """PostgreSQL drops the fraction's trailing zeros (or the whole fraction); vutf keeps six."""
    _append_all(db)
    _insert_raw(
        db,
        [
            {"created_at": datetime(2025, 5, 6, 7, 8, 9, micros, tzinfo=UTC)}
            for micros in (0, 100000, 120000, 123400, 123450, 999990, 1)
        ],
    )
    listed = _list_jsonl(run_cli)
    assert '"created_at":"2025-05-06T07:08:09.000000Z"' in listed
    assert '"created_at":"2025-05-06T07:08:09.100000Z"' in listed
    _assert_same_lines(_export(run_cli), listed)


def test_small_and_large_floats_written_by_vutf(run_cli: RunCli, db: Database) -> None:
    """jsonb prints a float below 1e-4 as a plain decimal (0.00001), Python as 1e-05."""

    def work(uow: UnitOfWork) -> None:
        for number in (1e-05, -2.5e-07, 0.0001, 1e16, 123.456, 1e-300):
            uow.audit.append(
                action="user.update",
                resource_type="user",
                changes={"x": number, "list": [number]},
                metadata={"y": number},
            )

    db.run(work)
    listed = _list_jsonl(run_cli)
    assert '"x":1e-05' in listed
    _assert_same_lines(_export(run_cli), listed)
