"""``audit verify`` reads the log in batches and, on PostgreSQL, rebuilds the JSON texts
of a whole batch at once: the verdict must be the row-by-row one, wherever in a
batch the problem is.  Real SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.audit_tampering import tampering
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork

# Values whose jsonb output differs from their canonical text (key order by
# length, spaces, number spelling), so a batch's texts must really be rebuilt.
CHANGES: list[Any] = [
    None,
    {"zz": 1, "a": [1, 2.5, {"y": None, "b": True}], "mmm": "zoë \u2028 \U0001f600"},
    {"small": 1e-7, "large": 1e20, "tenth": 0.1, "neg": -3},
    {"quote": 'say": hi, "x"', "backslash": "\\", "ctrl": "\t\n"},
    {"": "", "nested": {"deeper": {"deepest": []}}},
    ["a", 1, None],
]


def _log(db: Database, rows: int) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.audit.append_many(
            [
                {
                    "action": "user.update",
                    "resource_type": "user",
                    "resource_id": f"u{number}",
                    "changes": None
                    if CHANGES[number % len(CHANGES)] is None
                    else {"n": number, "v": CHANGES[number % len(CHANGES)]},
                    "metadata": {"ticket": f"OPS-{number % 4}", "ünï": [number]},
                }
                for number in range(rows)
            ]
        )

    db.run(work)


@pytest.mark.parametrize("batch_size", [1, 2, 7, 50, 2000])
def test_any_batch_size_verifies_the_whole_log(db: Database, batch_size: int) -> None:
    _log(db, 40)

    report = db.run(lambda uow: uow.audit.verify_chain(batch_size=batch_size), read_only=True)

    assert (report.ok, report.checked, report.last_seq) == (True, 40, 40)


@pytest.mark.parametrize("edited", [1, 15, 21, 40])
def test_an_edit_anywhere_in_a_batch_is_found_at_its_row(db: Database, edited: int) -> None:
    _log(db, 40)
    with tampering(db) as conn:
        if db.dialect == "postgresql":
            # A value Python cannot read: the batch's one json.loads fails and
            # the rows are read one by one, which names the row.
            conn.exec_driver_sql(
                "UPDATE audit_log SET metadata = %(big)s::jsonb WHERE seq = %(seq)s",
                {"big": '{"n":' + "9" * 5000 + "}", "seq": edited},
            )
        else:
            # Same value, other spelling: only the stored text itself tells.
            conn.exec_driver_sql(
                "UPDATE audit_log SET metadata = ' ' || metadata WHERE seq = ?", (edited,)
            )

    report = db.run(lambda uow: uow.audit.verify_chain(batch_size=10), read_only=True)

    assert (report.ok, report.bad_seq, report.problem) == (False, edited, "edited")
    assert report.checked == edited - 1


def test_an_edit_keeping_valid_json_is_found_on_postgresql(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("on SQLite any change of text is an edit (above)")
    _log(db, 30)
    with tampering(db) as conn:
        conn.exec_driver_sql(
            "UPDATE audit_log SET changes = jsonb_set(changes, '{n}', '999') WHERE seq = 17"
        )

    report = db.run(lambda uow: uow.audit.verify_chain(batch_size=10), read_only=True)

    assert (report.ok, report.bad_seq, report.problem) == (False, 17, "edited")
