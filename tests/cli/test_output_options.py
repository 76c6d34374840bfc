"""--fields, --no-headers, -o wide, mutation summaries and the target database, through `vutf`.

Every list and show command takes ``--fields`` (any format; an unknown name
is exit 2 listing the valid ones) and ``--no-headers``; a mutation in a table
format prints one summary line and the database it changed, on stderr; the
embedded default database says once that it was created.  Both backends.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.cli.conftest import CliResult, RunCli, invoke

PASSWORD = "correct horse battery staple"


def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def create(run_cli: RunCli, name: str) -> None:
    ok(
        run_cli(
            "users",
            "create",
            name,
            "--email",
            f"{name}@example.com",
            "--full-name",
            f"{name.title()} Example",
            "--password-stdin",
            input=PASSWORD,
        )
    )


@pytest.fixture
def people(run_cli: RunCli) -> RunCli:
    for name in ("alice", "bob"):
        create(run_cli, name)
    ok(run_cli("--yes", "users", "delete", "bob"))
    return run_cli


# -- --fields ------------------------------------------------------------------------------------
def test_fields_in_json_csv_and_table(people: RunCli) -> None:
    as_json = ok(
        people("users", "list", "--include-deleted", "--fields", "username,state", "--json")
    )
    assert as_json.json() == [
        {"username": "alice", "state": "active"},
        {"username": "bob", "state": "deleted"},
    ]
    as_csv = ok(people("users", "list", "--fields", "email,username", "-o", "csv"))
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["email", "username"],
        ["alice@example.com", "alice"],
    ]
    table = ok(people("users", "list", "--fields", "id,username"))
    assert table.stdout.splitlines()[0].split() == ["id", "username"]
    shown = ok(people("users", "show", "alice", "--fields", "username,version", "-o", "jsonl"))
    assert shown.jsonl() == [{"username": "alice", "version": 1}]
    entry = ok(people("audit", "show", "1", "--fields", "seq,action", "--json"))
    assert entry.json() == {"seq": 1, "action": "user.create"}
    actions = ok(
        people("audit", "list", "--reverse", "--fields", "action", "-o", "csv", "--no-headers")
    )
    assert actions.stdout.splitlines() == ["user.create", "user.create", "user.delete"]


@pytest.mark.parametrize(
    "command",
    [
        ("users", "list"),
        ("users", "show", "alice"),
        ("keys", "list"),
        ("audit", "list"),
        ("audit", "show", "1"),
    ],
)
def test_an_unknown_field_is_exit_2_listing_the_valid_ones(
    people: RunCli, command: tuple[str, ...]
) -> None:
    result = people(*command, "--fields", "id,nope")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert "error: unknown field 'nope'" in lines
    hint = next(line for line in lines if line.startswith("hint: valid fields: "))
    assert "id" in hint.removeprefix("hint: valid fields: ").split(", ")

    as_json = people(*command, "--fields", "nope", "--json")
    assert as_json.exit_code == 2
    assert as_json.error()["message"] == "unknown field 'nope'"


def test_an_empty_field_name_is_refused(people: RunCli) -> None:
    result = people("users", "list", "--fields", "username,,email")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "names an empty field" in result.stderr


# -- tables ----------------------------------------------------------------------------------------
def test_no_headers_and_wide(people: RunCli) -> None:
    bare = ok(people("users", "list", "--include-deleted", "--no-headers"))
    assert [line.split()[0] for line in bare.stdout.splitlines()] == ["alice", "bob"]
    assert "deleted" in bare.stdout.splitlines()[1].split()

    wide = ok(people("-o", "wide", "users", "list"))
    header = wide.stdout.splitlines()[0].split()
    assert header[:3] == ["username", "email", "state"]
    assert "id" in header
    alice = ok(people("users", "show", "alice", "--json")).json()
    assert alice["id"] in wide.stdout


def test_a_deleted_user_shows_as_deleted(people: RunCli) -> None:
    table = ok(people("users", "list", "--deleted"))
    header, _rule, row = table.stdout.splitlines()
    cells = dict(zip(header.split(), row.split(), strict=False))
    assert cells["username"] == "bob"
    assert cells["state"] == "deleted"
    assert "active" not in header.split()


# -- mutations and the target database ---------------------------------------------------------
def test_a_mutation_is_one_summary_line_naming_the_database(
    people: RunCli, database_url: str
) -> None:
    target = database_url.removeprefix("sqlite:///")
    changed = ok(people("users", "update", "alice", "--full-name", "Alice A."))
    assert changed.stdout == ""
    assert changed.stderr.splitlines() == [
        "updated user 'alice': full_name",
        f"database: {target}",
    ]
    assert ok(people("users", "deactivate", "alice", "--quiet")).stderr == ""

    as_json = ok(people("users", "update", "alice", "--full-name", "Alice B.", "--json"))
    assert as_json.json()["full_name"] == "Alice B."
    assert "database:" not in as_json.stderr

    status = ok(people("db", "status"))
    assert target in status.stdout


def test_creating_the_default_database_is_said_even_with_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A script that lost VUTF_DATABASE_URL must not work on a new database unnoticed.
    monkeypatch.delenv("VUTF_DATABASE_URL", raising=False)
    env = {"VUTF_DATA_DIR": str(tmp_path / "data")}
    path = tmp_path / "data" / "vutf.db"
    quiet = invoke(["-q", "--yes", "users", "delete", "ghost", "--if-exists"], env=env)
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stderr.splitlines() == [f"warning: created the default database {path}"]


@pytest.mark.parametrize("command", [["db", "ping"], ["db", "status"], ["-q", "db", "ping"]])
def test_db_ping_and_status_do_not_create_the_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.delenv("VUTF_DATABASE_URL", raising=False)
    env = {"VUTF_DATA_DIR": str(tmp_path / "data")}
    path = tmp_path / "data" / "vutf.db"
    looked = invoke(command, env=env)
    assert looked.exit_code == 0, looked.stderr  # as `vutf doctor`: not an error yet
    assert not path.exists()
    assert (
        f"warning: the default database {path} is not created yet" in looked.stderr.splitlines()[0]
    )
    if command[-1] == "status":
        assert "at_head" in looked.stdout
    else:
        assert looked.stdout == ""
    doctor = invoke(["doctor", "--json"], env=env)
    assert (doctor.exit_code, json.loads(doctor.stdout)["healthy"]) == (0, True)


def test_the_default_database_says_once_that_it_was_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VUTF_DATABASE_URL", raising=False)
    env = {"VUTF_DATA_DIR": str(tmp_path / "data")}
    first = invoke(["users", "list", "--json"], env=env)
    assert first.exit_code == 0, first.stderr
    path = tmp_path / "data" / "vutf.db"
    assert f"warning: created the default database {path}" in first.stderr.splitlines()
    assert json.loads(first.stdout) == []
    again = invoke(["users", "list", "--json"], env=env)
    assert again.exit_code == 0
    assert "created the default database" not in again.stderr
