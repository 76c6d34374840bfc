"""`vutf audit verify` is exact: any change to a stored row's text is an edit (exit 6, its seq).

The canonical stored text is the contract (docs/architecture.md §3).  Each
edit below keeps the row's parsed value (so the row's hash, recomputed from
parsed values, would still match) or stores something Python cannot read;
every one must be reported as an edit of that row, never pass, never exit 1.
SQLite keeps text as it is given; PostgreSQL's ``uuid``, ``timestamptz`` and
``jsonb`` keep no spelling, so there the edits are values beyond what
Python (and so vutf) can hold.
"""

from __future__ import annotations

import json

import pytest

from tests.audit_tampering import tampering
from tests.cli.conftest import RunCli
from vutf_cli.db.database import Database


def _three_rows(db: Database) -> None:
    def work(uow: object) -> None:
        for number in range(3):
            uow.audit.append(  # type: ignore[attr-defined]
                action="user.update",
                resource_type="user",
                resource_id=f"u{number}",
                changes={"b": [1, 2], "a": {"z": "zoë", "n": number}},
                metadata={"ticket": "OPS-7"},
            )

    db.run(work)


def _stored(db: Database, column: str) -> str:
    with db.engine.connect() as conn:
        value = conn.exec_driver_sql(f"SELECT {column} FROM audit_log WHERE seq = 2").scalar()
    assert isinstance(value, str)
    return value


def _edit(db: Database, assignment: str, **parameters: object) -> None:
    with tampering(db) as conn:
        conn.exec_driver_sql(f"UPDATE audit_log SET {assignment} WHERE seq = 2", parameters or None)


def _assert_edit_of_row_2(run_cli: RunCli) -> None:
    result = run_cli("audit", "verify")
    assert result.exit_code == 6, (result.exit_code, result.stderr)
    assert "audit chain broken at seq 2: edited" in result.stderr
    assert result.stderr.count("\n") <= 2, result.stderr  # one error line (and a hint)


def test_an_untouched_log_verifies(run_cli: RunCli, db: Database) -> None:
    _three_rows(db)
    result = run_cli("audit", "verify")
    assert result.exit_code == 0, result.stderr


def _sqlite_only(db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL's uuid, timestamptz and jsonb keep no spelling to edit")


def _same_value_edits(changes: str, metadata: str) -> dict[str, tuple[str, dict[str, object]]]:
    parsed_changes = json.loads(changes)
    reordered = json.dumps(
        dict(reversed(list(parsed_changes.items()))), separators=(",", ":"), ensure_ascii=False
    )
    assert json.loads(reordered) == parsed_changes
    assert reordered != changes
    # A repeated key: json.loads keeps the last, SQLite's json_extract the first.
    repeated = '{"ticket":"attacker",' + metadata[1:]
    assert json.loads(repeated) == json.loads(metadata)
    return {
        "whitespace": ("changes = :text", {"text": json.dumps(parsed_changes, indent=1)}),
        "key order": ("changes = :text", {"text": reordered}),
        "repeated key": ("metadata = :text", {"text": repeated}),
        "upper-case id": ("id = upper(id)", {}),
        "T in the timestamp": ("created_at = replace(created_at, ' ', 'T')", {}),
        "timestamp with an offset": ("created_at = created_at || '+00:00'", {}),
        "blob actor": ("actor = CAST(actor AS BLOB)", {}),
        "blob JSON": ("metadata = CAST(metadata AS BLOB)", {}),
    }


EDITS = [
    "whitespace",
    "key order",
    "repeated key",
    "upper-case id",
    "T in the timestamp",
    "timestamp with an offset",
    "blob actor",
    "blob JSON",
]


@pytest.mark.parametrize("edit", EDITS)
def test_sqlite_text_spelled_otherwise_is_an_edit(run_cli: RunCli, db: Database, edit: str) -> None:
    _sqlite_only(db)
    _three_rows(db)
    assignment, parameters = _same_value_edits(_stored(db, "changes"), _stored(db, "metadata"))[
        edit
    ]
    _edit(db, assignment, **parameters)
    _assert_edit_of_row_2(run_cli)


@pytest.mark.parametrize(
    "assignment",
    [
        "metadata = '{\"a\":'",  # not JSON
        "actor = X'ff'",  # not UTF-8
        "changes = '[' || replace(hex(zeroblob(3000)), '00', '[') || ']'",  # not even balanced
        "created_at = '2024-13-45 99:99:99.000000'",  # no such time
        "seq = 2.5",
    ],
    ids=["invalid JSON", "not UTF-8", "unbalanced nesting", "no such time", "REAL seq"],
)
def test_sqlite_text_python_cannot_read_is_an_edit(
    run_cli: RunCli, db: Database, assignment: str
) -> None:
    _sqlite_only(db)
    _three_rows(db)
    _edit(db, assignment)
    result = run_cli("audit", "verify")
    assert result.exit_code == 6, (result.exit_code, result.stderr)
    assert "audit chain broken at seq 2" in result.stderr


@pytest.mark.parametrize(
    ("assignment", "postgresql_only"),
    [
        ("changes = :deep", False),
        ("metadata = :big", False),
        ("created_at = '0044-03-15 BC'", True),
        ("created_at = 'infinity'", True),
    ],
    ids=["nesting beyond Python", "a number beyond Python", "BC timestamp", "infinity"],
)
def test_values_beyond_python_are_an_edit(
    run_cli: RunCli, db: Database, assignment: str, postgresql_only: bool
) -> None:
    if postgresql_only and db.dialect != "postgresql":
        pytest.skip("SQLite stores no such timestamp")
    _three_rows(db)
    parameters = {"deep": "[" * 5000 + "]" * 5000, "big": '{"n":' + "9" * 5000 + "}"}
    used = {name: value for name, value in parameters.items() if f":{name}" in assignment}
    if db.dialect == "postgresql":
        assignment = assignment.replace(":deep", "%(deep)s::jsonb").replace(
            ":big", "%(big)s::jsonb"
        )
    else:
        assignment = assignment.replace(":deep", "?").replace(":big", "?")
    with tampering(db) as conn:
        sql = f"UPDATE audit_log SET {assignment} WHERE seq = 2"
        if db.dialect == "postgresql":
            conn.exec_driver_sql(sql, used or None)
        else:
            conn.exec_driver_sql(sql, tuple(used.values()))
    result = run_cli("audit", "verify")
    assert result.exit_code == 6, (result.exit_code, result.stderr)
    assert "audit chain broken at seq 2" in result.stderr
