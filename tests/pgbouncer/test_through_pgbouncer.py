"""vutf through pgbouncer in transaction-pooling mode (see conftest.py for the setup).

Transaction pooling hands each transaction whatever server connection is
free, so nothing may depend on session state.  These tests run ``vutf`` with
``--database-url`` pointing at pgbouncer (in-process, except where several
processes are the point): a command flow over
users, keys, audit and db; and 4 processes x 3 ``vutf users create``
appending to the audit chain at once through a pool of 2 server
connections, after which the chain verifies and ``seq`` has no gap (more
clients than server connections is what makes them wait on the pool; more
processes would prove nothing more).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.cli.conftest import invoke
from tests.pgbouncer.conftest import POOL_SIZE, Pgbouncer
from tests.postgres_clones import connect
from vutf_cli.db.database import Database
from vutf_cli.errors import DatabaseUnavailable
from vutf_cli.settings import Settings

pytestmark = pytest.mark.postgres

VUTF = Path(sys.executable).with_name("vutf")
PASSWORD = "correct horse battery staple"
COMMAND_TIMEOUT = 120.0
WORKERS = 4
CREATES_PER_WORKER = 3


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"vutf {' '.join(self.args)} -> {self.exit_code}\n{self.stdout}\n{self.stderr}"


def vutf(url: str, *args: str, input: str | None = None) -> Run:
    """``vutf --database-url URL ARGS`` in-process: what is under test is the pooling."""
    result = invoke(["--database-url", url, *args], input=input)
    return Run(tuple(args), result.exit_code, result.stdout, result.stderr)


def vutf_process(url: str, *args: str) -> Run:
    """The installed console script, as a separate process (one client of the pool each)."""
    done = subprocess.run(
        [str(VUTF), "--database-url", url, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env=os.environ.copy(),
        check=False,
    )
    return Run(tuple(args), done.returncode, done.stdout, done.stderr)


def ok(url: str, *args: str, input: str | None = None) -> Run:
    run = vutf(url, *args, input=input)
    assert run.exit_code == 0, str(run)
    return run


def direct(database_url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A query on the server itself, not through pgbouncer."""
    conn = connect(database_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(query, params)
            return list(cursor.fetchall())
    finally:
        conn.close()


def pool_of(bouncer: Pgbouncer, database_url: str) -> dict[str, Any]:
    name = make_url(database_url).database
    pools = [pool for pool in bouncer.show("POOLS") if pool["database"] == name]
    assert len(pools) == 1, pools
    return pools[0]


@pytest.fixture
def open_databases() -> Iterator[list[Database]]:
    databases: list[Database] = []
    try:
        yield databases
    finally:
        for database in databases:
            database.dispose()


# -- the session settings travel with every transaction ---------------------------------
def test_vutf_needs_no_startup_options(pgbouncer: Pgbouncer, bouncer_url: str) -> None:
    import psycopg2

    parts = make_url(bouncer_url)
    # What vutf used to send (libpq "options") is refused by pgbouncer...
    with pytest.raises(psycopg2.OperationalError, match="unsupported startup parameter: options"):
        psycopg2.connect(
            host=parts.host,
            port=parts.port,
            dbname=parts.database,
            user=parts.username,
            options="-c statement_timeout=1000",
            connect_timeout=5,
        )
    # ...and what it sends now is accepted.
    assert ok(bouncer_url, "--json", "db", "ping").json()["dialect"] == "postgresql"


def test_every_transaction_starts_with_vutf_settings(
    pgbouncer: Pgbouncer, bouncer_url: str, database_url: str, open_databases: list[Database]
) -> None:
    from sqlalchemy import text

    db = Database(Settings(database_url=bouncer_url, statement_timeout_ms=4321, db_deadline=10))
    open_databases.append(db)

    def settings_now(uow: Any) -> tuple[str, str, str]:
        def show(name: str) -> str:
            return str(uow.session.execute(text(f"SHOW {name}")).scalar_one())

        return (
            show("statement_timeout"),
            show("timezone"),
            show("idle_in_transaction_session_timeout"),
        )

    for _ in range(5):
        assert db.run(settings_now, read_only=True) == ("4321ms", "UTC", "1min")
    # They are transaction-local: the shared server connections keep the
    # server's defaults for the next client of the pool.
    ((server_default,),) = direct(database_url, "SHOW statement_timeout")
    ((through_pool,),) = direct(bouncer_url, "SHOW statement_timeout")
    assert through_pool == server_default != "4321ms"
    assert pool_of(pgbouncer, database_url)["pool_mode"] == "transaction"


def test_the_statement_timeout_is_enforced_through_the_pool(
    bouncer_url: str, open_databases: list[Database]
) -> None:
    from sqlalchemy import text

    db = Database(Settings(database_url=bouncer_url, statement_timeout_ms=300, db_deadline=10))
    open_databases.append(db)
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="statement timed out"):
        db.run(lambda uow: uow.session.execute(text("SELECT pg_sleep(60)")), read_only=True)
    # Cancelled by the server, not waited out: no load makes 300 ms last a minute.
    assert time.monotonic() - started < 60


# -- the command line, through pgbouncer ----------------------------------------------------
def test_cli_flow_through_pgbouncer(
    pgbouncer: Pgbouncer, bouncer_url: str, database_url: str, tmp_path: Path
) -> None:
    url = bouncer_url
    ok(url, "users", "create", "alice", "--email", "alice@example.com", "--password-stdin",
       input=PASSWORD)  # fmt: skip
    ok(url, "users", "create", "bob", "--email", "bob@example.com", "--generate-password")
    listed = ok(url, "--json", "users", "list").json()
    assert sorted(user["username"] for user in listed) == ["alice", "bob"]
    assert (
        ok(url, "--json", "users", "update", "alice", "--full-name", "Alice L").json()["full_name"]
        == "Alice L"
    )
    ok(url, "users", "check-password", "alice", "--password-stdin", input=PASSWORD)
    ok(url, "users", "deactivate", "alice")
    ok(url, "users", "activate", "alice")
    ok(url, "--yes", "users", "delete", "bob")
    assert ok(url, "--json", "users", "show", "bob").json()["is_deleted"] is True
    ok(url, "users", "restore", "bob")

    ok(url, "users", "add-role", "alice", "admin")  # a key carries no scope its owner lacks
    created = ok(url, "--json", "keys", "create", "-u", "alice", "-n", "ci").json()
    used = ok(url, "--json", "keys", "verify", "--record-usage", input=created["key"]).json()
    assert used["username"] == "alice"
    rotated = ok(url, "--json", "keys", "rotate", created["key_prefix"]).json()
    assert vutf(url, "keys", "verify", input=created["key"]).exit_code == 5  # replaced at once
    ok(url, "keys", "verify", input=rotated["key"])
    ok(url, "--yes", "keys", "revoke", rotated["key_prefix"])
    assert vutf(url, "keys", "verify", input=rotated["key"]).exit_code == 5

    exported = ok(url, "-o", "jsonl", "users", "export", "--include-hashes").stdout
    assert len(exported.splitlines()) == 2
    to_import = tmp_path / "users.jsonl"
    to_import.write_text(
        json.dumps({"username": "carol", "email": "carol@example.com", "password": PASSWORD}) + "\n"
    )
    ok(url, "users", "import", str(to_import))

    actions = [entry["action"] for entry in ok(url, "--json", "audit", "list").json()]
    # One REPEATABLE READ snapshot (SET TRANSACTION after vutf's SET LOCALs).
    assert len(ok(url, "audit", "export").stdout.splitlines()) == len(actions)
    for action in ("user.create", "user.delete", "user.restore", "user.import", "api_key.rotate"):
        assert action in actions
    verified = ok(url, "--json", "audit", "verify").json()
    assert verified["ok"] is True
    assert verified["checked"] == len(actions)
    status = ok(url, "--json", "db", "status").json()
    assert status["at_head"] is True
    assert status["users_rows"] == 3
    ok(url, "db", "check")

    # It all went through pgbouncer's transaction pool for this database.
    pool = pool_of(pgbouncer, database_url)
    assert pool["pool_mode"] == "transaction"
    (stats,) = [row for row in pgbouncer.show("STATS") if row["database"] == pool["database"]]
    assert stats["total_xact_count"] >= len(actions)


@pytest.mark.slow
def test_concurrent_chain_appends_through_a_small_pool(
    pgbouncer: Pgbouncer, bouncer_url: str, database_url: str
) -> None:
    """4 processes x 3 `vutf users create`, 2 server connections: one linear chain."""
    name = make_url(database_url).database
    busiest = 0
    stop = threading.Event()
    # One connection for the whole watch, so that none of its own sessions
    # (a previous one still closing) is ever counted.
    watch = connect(database_url)
    watch.autocommit = True

    def watch_server_connections() -> None:
        nonlocal busiest
        with watch.cursor() as cursor:
            while not stop.is_set():
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                    "pg_backend_pid() AND backend_type = 'client backend'",
                    (name,),
                )
                ((count,),) = cursor.fetchall()
                busiest = max(busiest, int(count))
                stop.wait(0.05)

    def worker(index: int) -> list[Run]:
        return [
            vutf_process(
                bouncer_url,
                "users",
                "create",
                f"user-{index}-{n}",
                "--email",
                f"user-{index}-{n}@example.com",
                "--generate-password",
            )
            for n in range(CREATES_PER_WORKER)
        ]

    watcher = threading.Thread(target=watch_server_connections, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            runs = [run for batch in pool.map(worker, range(WORKERS)) for run in batch]
    finally:
        stop.set()
        watcher.join(timeout=10)
        watch.close()

    failed = [str(run) for run in runs if run.exit_code != 0]
    assert not failed, failed[:3]
    total = WORKERS * CREATES_PER_WORKER
    verified = ok(bouncer_url, "--json", "audit", "verify").json()
    assert verified["ok"] is True
    assert verified["checked"] == total
    seqs = [seq for (seq,) in direct(database_url, "SELECT seq FROM audit_log ORDER BY seq")]
    assert seqs == list(range(1, total + 1))
    assert direct(database_url, "SELECT count(*) FROM users") == [(total,)]
    # The pool did its job: never more server connections than its size.
    assert 1 <= busiest <= POOL_SIZE, busiest
