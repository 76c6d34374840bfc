"""``users import`` on PostgreSQL writes with ``COPY … FROM STDIN``; an outage then.

The fault-injecting proxy cuts the connection the moment the import's write
transaction starts the COPY of the users, or the COPY of their audit rows
(after the users went in): the installed ``vutf`` exits 7 with one
``error:`` line, within the deadline, and nothing of the import is left (the
transaction is lost with the connection); the chain still verifies.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.conftest import run_vutf
from tests.reliability.pg_instance import PgInstance
from tests.reliability.tcp_proxy import Mode, TcpProxy
from tests.reliability.test_faults import (
    LAST_ATTEMPT_SLACK,
    USER_PASSWORD,
    assert_clean_unavailable,
    reported_retries,
    verify_chain,
)


@pytest.mark.parametrize("statement", [b"COPY users", b"COPY audit_log"])
def test_an_outage_in_mid_copy_exits_7_and_imports_nothing(
    statement: bytes,
    pg_running: PgInstance,
    pg_database: str,
    proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    deadline = 2.0
    rows = [
        {"username": f"imp{n:02d}", "email": f"imp{n:02d}@example.com", "password": USER_PASSWORD}
        for n in range(20)
    ]
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    proxy.drop_on(statement, Mode.DROP)

    result = run_vutf(
        "users",
        "import",
        str(source),
        database_url=proxy.url(pg_database),
        env={"VUTF_DB_DEADLINE": str(deadline)},
    )
    proxy.set_mode(Mode.PASS)

    assert proxy.attempts_by_mode[Mode.DROP] >= 1  # the outage did hit the COPY
    assert_clean_unavailable(result, proxy.url(pg_database))
    _retried, seconds = reported_retries(result.stderr)
    assert seconds <= deadline + LAST_ATTEMPT_SLACK, result.describe()
    imported = pg_running.execute(
        "SELECT count(*) FROM users WHERE username LIKE 'imp%%'", database=pg_database
    )[0][0]
    audit = pg_running.execute(
        "SELECT count(*) FROM audit_log WHERE action IN ('user.create', 'user.import')",
        database=pg_database,
    )[0][0]
    assert (imported, audit) == (0, 0)  # all or nothing
    verify_chain(pg_running.url(pg_database))
