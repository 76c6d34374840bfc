"""`vutf db` from the command line, on SQLite and PostgreSQL.

Every command in every output format, stdout and stderr checked separately,
and each documented exit code produced for real: 0, 2 (confirmation without
--yes), 3 (unknown revision), 6 (schema drift), 7 (unreachable database) and
8 (schema not at head).
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli.conftest import CliResult, RunCli, invoke
from vutf_cli.db.engine import make_engine
from vutf_cli.db.schema_version import HEAD_REVISION
from vutf_cli.settings import Settings

COMMANDS = ("upgrade", "downgrade", "current", "history", "heads", "check", "status", "ping")
REVISION_COLUMNS = ["revision", "down_revision", "is_head", "description"]
PASSWORD = "s3cret-db-cli"
# Nothing listens on port 1: connections are refused at once.
UNREACHABLE_URL = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/vutf_unreachable"
UNREACHABLE_MASKED = "postgresql://postgres:***@127.0.0.1:1/vutf_unreachable"


# -- helpers -------------------------------------------------------------------------
def _revision(url: str) -> str | None:
    """The alembic_version row, read directly (not through vutf)."""
    engine = make_engine(Settings(database_url=url))
    try:
        if not sa.inspect(engine).has_table("alembic_version"):
            return None
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(Settings(database_url=url))
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _execute(url: str, *statements: str) -> None:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def _insert_users(url: str, count: int) -> None:
    statements = [
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at) "
        f"VALUES ('{uuid.uuid4()}', 'user{i}', 'user{i}@example.com', 'x', "
        "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        for i in range(count)
    ]
    _execute(url, *statements)


def _with_password(url: str) -> str:
    """The same PostgreSQL database with a password in the URL (trust auth ignores it)."""
    return sa.engine.make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def _parse(result: CliResult, fmt: str) -> list[dict[str, Any]]:
    """stdout parsed as the given machine format, as a list of records."""
    if fmt == "json":
        data = result.json()
        return data if isinstance(data, list) else [data]
    if fmt == "jsonl":
        return result.jsonl()
    assert fmt == "csv"
    return list(csv.DictReader(io.StringIO(result.stdout)))


def _assert_ok(result: CliResult) -> None:
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr


def _assert_error(result: CliResult, exit_code: int, code: str) -> dict[str, Any]:
    """A failure in -o json: the JSON error object on stderr, nothing on stdout."""
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    error = result.error()
    assert error["code"] == code
    assert error["exit_code"] == exit_code
    return error


# -- help -----------------------------------------------------------------------------
@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_summary_options_and_example(command: str) -> None:
    result = invoke(["db", command, "--help"])
    _assert_ok(result)
    lines = result.stdout.splitlines()
    usage = next(i for i, line in enumerate(lines) if line.startswith("Usage:"))
    summary = next(line for line in lines[usage + 1 :] if line.strip())
    assert summary.strip().endswith(".")
    assert "Options:" in result.stdout
    assert "Examples:" in result.stdout
    example_lines = result.stdout.split("Examples:", 1)[1].splitlines()
    assert any(line.strip().startswith(("vutf ", "VUTF_")) for line in example_lines)


def test_group_help_lists_every_command() -> None:
    result = invoke(["db", "--help"])
    _assert_ok(result)
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


def test_help_imports_neither_sqlalchemy_nor_alembic() -> None:
    code = (
        "import sys\n"
        "from vutf_cli.cli.app import main\n"
        "try:\n"
        "    main(['db', 'status', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "HEAVY []" in done.stderr


# -- current / history / heads -----------------------------------------------------------
def test_current_at_head(run_cli: RunCli, backend: str) -> None:
    result = run_cli("db", "current", "--json")
    _assert_ok(result)
    assert result.json() == {
        "database": result.json()["database"],
        "dialect": backend,
        "current": HEAD_REVISION,
        "head": HEAD_REVISION,
        "at_head": True,
    }
    assert result.stderr == ""


def test_empty_database_has_no_revision_and_check_says_upgrade(
    run_cli: RunCli, empty_database_url: str
) -> None:
    env = {"VUTF_DATABASE_URL": empty_database_url}
    current = run_cli("db", "current", "-o", "json", env=env)
    _assert_ok(current)
    assert current.json()["current"] is None
    assert current.json()["at_head"] is False

    checked = run_cli("db", "check", "-o", "json", env=env)
    error = _assert_error(checked, 8, "schema_outdated")
    assert "no vutf schema" in error["message"]
    assert "vutf db upgrade" in error["hint"]

    text = run_cli("db", "check", env=env)
    assert text.exit_code == 8
    assert text.stderr.splitlines()[0].startswith("error: ")
    assert "hint: run `vutf db upgrade`" in text.stderr
    assert _revision(empty_database_url) is None


@pytest.mark.parametrize("command", ["history", "heads"])
def test_history_and_heads_rows(run_cli: RunCli, command: str) -> None:
    result = run_cli("db", command, "-o", "json")
    _assert_ok(result)
    rows = result.json()
    assert isinstance(rows, list)
    assert [list(row) for row in rows] == [REVISION_COLUMNS] * len(rows)
    assert rows[0]["revision"] == HEAD_REVISION
    assert rows[0]["is_head"] is True
    assert rows[0]["description"].startswith("Stored usernames and emails rewritten")
    if command == "heads":
        assert len(rows) == 1
    else:
        assert rows[-1]["down_revision"] is None  # the first migration
        assert rows[-1]["description"].startswith("Initial schema")


def test_history_needs_no_database() -> None:
    result = invoke(["db", "history", "-o", "csv"], env={"VUTF_DATABASE_URL": UNREACHABLE_URL})
    _assert_ok(result)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows[0]["revision"] == HEAD_REVISION
    assert rows[0]["is_head"] == "true"


# -- every command in every format ----------------------------------------------------------
READ_COMMANDS: dict[str, list[str]] = {
    "current": ["db", "current"],
    "status": ["db", "status"],
    "ping": ["db", "ping"],
    "history": ["db", "history"],
    "heads": ["db", "heads"],
    "check": ["db", "check"],
    "upgrade": ["db", "upgrade"],  # at head already: a no-op
}


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_every_command_parses_in_machine_formats(run_cli: RunCli, fmt: str) -> None:
    for name, args in READ_COMMANDS.items():
        result = run_cli(*args, "-o", fmt)
        _assert_ok(result)
        records = _parse(result, fmt)
        assert records, name
        if name in ("history", "heads"):
            assert list(records[0]) == REVISION_COLUMNS
        elif name != "ping":
            assert "head" in records[0], name
            assert records[0]["head"] == HEAD_REVISION
        # stdout is data only: no notice ever lands there.
        assert "nothing to do" not in result.stdout
        assert "no drift" not in result.stdout


def test_every_command_renders_a_plain_table(run_cli: RunCli) -> None:
    for name, args in READ_COMMANDS.items():
        result = run_cli(*args)
        _assert_ok(result)
        assert "\x1b[" not in result.stdout, name  # piped + NO_COLOR: no ANSI
        assert HEAD_REVISION in result.stdout or name == "ping", name
        assert "nothing to do" not in result.stdout
    assert "latency_ms" in run_cli("db", "ping").stdout


def test_notices_go_to_stderr_and_quiet_silences_them(run_cli: RunCli) -> None:
    noisy = run_cli("db", "upgrade", "-o", "json")
    _assert_ok(noisy)
    assert "nothing to do" in noisy.stderr
    assert noisy.json()["changed"] is False

    checked = run_cli("db", "check", "-o", "json")
    _assert_ok(checked)
    assert "no drift" in checked.stderr
    assert checked.json() == {**checked.json(), "at_head": True, "drift": False}

    quiet = run_cli("db", "upgrade", "-o", "json", "--quiet")
    _assert_ok(quiet)
    assert quiet.stderr == ""
    assert quiet.json()["current"] == HEAD_REVISION


# -- status and ping ---------------------------------------------------------------------
def test_status_reports_counts_pool_and_timeouts(
    run_cli: RunCli, database_url: str, backend: str
) -> None:
    _insert_users(database_url, 2)
    result = run_cli(
        "db", "status", "--json", env={"VUTF_DB_DEADLINE": "9", "VUTF_STATEMENT_TIMEOUT": "4321"}
    )
    _assert_ok(result)
    status = result.json()
    assert status["dialect"] == backend
    assert status["server_version"]
    assert status["current"] == HEAD_REVISION
    assert status["at_head"] is True
    assert (status["users_rows"], status["api_keys_rows"], status["audit_log_rows"]) == (2, 0, 0)
    assert status["pool_class"] == "QueuePool"
    assert status["pool_size"] >= 1
    assert isinstance(status["max_overflow"], int)
    assert isinstance(status["pool_timeout"], float)
    assert status["db_deadline"] == 9.0
    assert status["statement_timeout_ms"] == 4321
    assert status["connect_timeout"] > 0
    if backend == "postgresql":
        # What make_engine configures for PostgreSQL.
        assert status["pool_size"] == 5
        assert status["max_overflow"] == 5
        assert status["pool_timeout"] == 9.0


def test_status_on_empty_database(run_cli: RunCli, empty_database_url: str) -> None:
    result = run_cli("db", "status", "-o", "jsonl", env={"VUTF_DATABASE_URL": empty_database_url})
    _assert_ok(result)
    (status,) = result.jsonl()
    assert status["current"] is None
    assert status["users_rows"] is None
    assert status["at_head"] is False


def test_status_masks_the_password(run_cli: RunCli, database_url: str, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite URLs carry no password")
    url = _with_password(database_url)
    for fmt in ("json", "csv", "table"):
        result = run_cli("db", "status", "-o", fmt, env={"VUTF_DATABASE_URL": url})
        _assert_ok(result)
        assert PASSWORD not in result.stdout + result.stderr
        assert "postgres:***@" in result.stdout


def test_ping_reports_latency_and_version(run_cli: RunCli, backend: str) -> None:
    result = run_cli("db", "ping", "-o", "json")
    _assert_ok(result)
    ping = result.json()
    assert ping["dialect"] == backend
    assert ping["server_version"]
    assert 0 <= ping["latency_ms"] <= ping["total_ms"]
    assert result.stderr == ""


@pytest.mark.parametrize("command", ["ping", "status", "current", "check", "upgrade"])
def test_unreachable_database_exits_7_within_the_deadline(command: str) -> None:
    deadline = 1.0
    started = time.monotonic()
    result = invoke(
        ["db", command],
        env={"VUTF_DATABASE_URL": UNREACHABLE_URL, "VUTF_DB_DEADLINE": f"{deadline:g}"},
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 7, (result.stdout, result.stderr)
    # vutf's own account of its retries: it retried (a refused connection is
    # transient) and stopped by the deadline.  The last attempt may begin just
    # before the deadline and fails at once here; the slack is for scheduling.
    retried = re.search(r"gave up after (\d+) attempt\(s\) in ([0-9.]+) s", result.stderr)
    assert retried is not None, result.stderr
    assert int(retried.group(1)) >= 2, result.stderr
    assert float(retried.group(2)) <= deadline + 0.5, result.stderr
    assert elapsed < 60  # a hang guard, not a measure
    assert result.stdout == ""
    assert PASSWORD not in result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert UNREACHABLE_MASKED in error_lines[0]


def test_unreachable_database_json_error() -> None:
    result = invoke(
        ["db", "ping", "--json"],
        env={"VUTF_DATABASE_URL": UNREACHABLE_URL, "VUTF_DB_DEADLINE": "1"},
    )
    error = _assert_error(result, 7, "database_unavailable")
    assert UNREACHABLE_MASKED in error["message"]
    assert PASSWORD not in result.stderr


# -- --sql: offline, changes nothing ----------------------------------------------------------
def test_upgrade_sql_prints_ddl_and_changes_nothing(
    run_cli: RunCli, empty_database_url: str, backend: str
) -> None:
    env = {"VUTF_DATABASE_URL": empty_database_url}
    result = run_cli("db", "upgrade", "--sql", env=env)
    _assert_ok(result)
    for table in ("users", "api_keys", "audit_log", "alembic_version"):
        assert f"CREATE TABLE {table} (" in result.stdout
    if backend == "postgresql":
        assert "CREATE FUNCTION audit_log_refuse_change()" in result.stdout
        assert "permissions JSONB NOT NULL" in result.stdout
    else:
        assert "CREATE TRIGGER audit_log_no_update" in result.stdout
    assert result.stderr == ""
    assert _revision(empty_database_url) is None
    assert _tables(empty_database_url) == set()


def test_downgrade_sql_prints_drops_and_changes_nothing(run_cli: RunCli, database_url: str) -> None:
    result = run_cli("db", "downgrade", "base", "--sql")  # no --yes needed: nothing runs
    _assert_ok(result)
    for table in ("users", "api_keys", "audit_log"):
        assert f"DROP TABLE {table};" in result.stdout
    assert _revision(database_url) == HEAD_REVISION
    assert {"users", "api_keys", "audit_log"} <= _tables(database_url)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_sql_in_machine_formats(fmt: str) -> None:
    result = invoke(
        ["db", "upgrade", "--sql", "-o", fmt], env={"VUTF_DATABASE_URL": UNREACHABLE_URL}
    )
    _assert_ok(result)
    (record,) = _parse(result, fmt)
    assert record["dialect"] == "postgresql"
    assert record["revision_range"] == "base:head"
    assert "CREATE TABLE users (" in record["sql"]


def test_sql_is_offline_and_keeps_the_password_out() -> None:
    # A socket that only listens stands in for the server: any connection
    # vutf opened would be waiting in its backlog.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        result = invoke(
            ["db", "downgrade", "-2", "--sql"],  # down to 0003: past 0004's DROP TABLE
            env={
                "VUTF_DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/vutf",
                "VUTF_DB_DEADLINE": "1",
            },
        )
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    _assert_ok(result)
    assert "DROP TABLE user_roles;" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


# -- downgrade ---------------------------------------------------------------------------
def test_downgrade_without_yes_and_without_tty_fails_with_a_hint(
    run_cli: RunCli, database_url: str
) -> None:
    result = run_cli("db", "downgrade", "base")
    assert result.exit_code == 2
    assert result.stdout == ""
    # What would happen is shown first, then the refusal.
    assert result.stderr.index("about to downgrade") < result.stderr.index("error:")
    assert "drops every vutf table" in result.stderr
    assert "hint:" in result.stderr
    assert "--yes" in result.stderr
    assert _revision(database_url) == HEAD_REVISION

    as_json = run_cli("db", "downgrade", "base", "-o", "json")
    error = _assert_error(as_json, 2, "invalid_input")
    assert "--yes" in error["hint"]
    assert _revision(database_url) == HEAD_REVISION


def test_downgrade_to_base_then_upgrade_again(
    run_cli: RunCli, database_url: str, backend: str
) -> None:
    _insert_users(database_url, 1)
    down = run_cli("db", "downgrade", "base", "--yes", "-o", "json")
    _assert_ok(down)
    assert down.json()["previous"] == HEAD_REVISION
    assert down.json()["current"] is None
    assert down.json()["changed"] is True
    assert "users: 1" in down.stderr  # the plan named the rows about to go
    assert _revision(database_url) is None
    assert _tables(database_url) == {"alembic_version"}

    again = run_cli("db", "downgrade", "base", "--yes", "-o", "json")
    _assert_ok(again)
    assert again.json()["changed"] is False
    assert "nothing to do" in again.stderr

    up = run_cli("db", "upgrade", "-o", "json")
    _assert_ok(up)
    assert up.json() == {
        "database": up.json()["database"],
        "dialect": backend,
        "previous": None,
        "current": HEAD_REVISION,
        "head": HEAD_REVISION,
        "at_head": True,
        "changed": True,
    }
    assert run_cli("db", "check").exit_code == 0


def test_downgrade_relative_revision(run_cli: RunCli, database_url: str) -> None:
    result = run_cli("db", "downgrade", "-1", "--yes", "--json")
    _assert_ok(result)
    assert result.json()["current"] == "0004_roles"
    assert _revision(database_url) == "0004_roles"


# -- errors ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["upgrade", "no_such_rev"], ["downgrade", "no_such_rev", "--yes"]],
    ids=["upgrade", "downgrade"],
)
def test_unknown_revision_is_not_found(run_cli: RunCli, database_url: str, args: list[str]) -> None:
    result = run_cli("db", *args, "-o", "json")
    error = _assert_error(result, 3, "not_found")
    assert "no_such_rev" in error["message"]
    assert _revision(database_url) == HEAD_REVISION

    text = run_cli("db", *args)
    assert text.exit_code == 3
    assert text.stderr.startswith("error: unknown revision")


def test_unknown_revision_with_sql_is_not_found() -> None:
    result = invoke(
        ["db", "upgrade", "no_such_rev", "--sql"], env={"VUTF_DATABASE_URL": UNREACHABLE_URL}
    )
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_drift_exits_6(run_cli: RunCli, database_url: str) -> None:
    _execute(database_url, "ALTER TABLE users ADD COLUMN surprise_column integer")
    result = run_cli("db", "check", "-o", "json")
    error = _assert_error(result, 6, "integrity_failure")
    assert "surprise_column" in error["message"]

    text = run_cli("db", "check")
    assert text.exit_code == 6
    assert text.stderr.startswith("error: the database schema drifts from the models")


def test_check_passes_at_head(run_cli: RunCli, backend: str) -> None:
    result = run_cli("db", "check", "-o", "json")
    _assert_ok(result)
    assert result.json()["dialect"] == backend
    assert result.json()["current"] == HEAD_REVISION
    assert result.json()["drift"] is False


def test_bad_output_format_is_usage_error(run_cli: RunCli) -> None:
    result = run_cli("db", "current", "-o", "xml")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "xml" in result.stderr


def test_json_output_is_one_document(run_cli: RunCli) -> None:
    result = run_cli("db", "status", "--json")
    _assert_ok(result)
    assert isinstance(json.loads(result.stdout), dict)
