"""`vutf users export` and `vutf users import`, on SQLite and PostgreSQL.

Export is compared with `users list` field for field; import is checked for
its all-or-nothing rule (every bad row reported by line, nothing written),
``--dry-run``, ``--skip-existing`` / ``--skip-invalid``, CSV with a byte order
mark and CRLF line ends, and a round trip of users with their password
hashes into another fresh database, where they can still log in.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli.conftest import CliResult, RunCli, invoke
from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import UserView
from vutf_cli.security.passwords import Passwords

PASSWORD = "correct horse battery staple"
USER_FIELDS = [f.name for f in dataclasses.fields(UserView)]


# -- helpers -------------------------------------------------------------------------
def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def create(run_cli: RunCli, username: str, *args: str) -> dict[str, Any]:
    result = ok(
        run_cli(
            "users",
            "create",
            username,
            "--email",
            f"{username}@example.com",
            "--password-stdin",
            "--json",
            *args,
            input=PASSWORD,
        )
    )
    user: dict[str, Any] = result.json()
    return user


def usernames(db: Database) -> list[str]:
    def read(uow: UnitOfWork) -> list[str]:
        page = uow.users.keyset_rows(include_deleted=True, order_by="username", limit=100_000)
        return [row.username for row in page.items]

    return db.run(read, read_only=True)


def audit_actions(db: Database) -> list[tuple[str, str]]:
    def read(uow: UnitOfWork) -> list[tuple[str, str]]:
        rows = uow.session.scalars(sa.select(AuditLog).order_by(AuditLog.seq))
        return [(row.action, row.status) for row in rows]

    return db.run(read, read_only=True)


def audit_request_ids(db: Database) -> list[str]:
    def read(uow: UnitOfWork) -> list[str]:
        rows = uow.session.scalars(sa.select(AuditLog).order_by(AuditLog.seq))
        return [str((row.meta or {}).get("request_id")) for row in rows]

    return db.run(read, read_only=True)


def problems(result: CliResult) -> list[str]:
    """The per-line problem lines of a refused import (text mode)."""
    return [line for line in result.stderr.splitlines() if line.startswith("line ")]


def jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def row(username: str, **values: Any) -> dict[str, Any]:
    return {
        "username": username,
        "email": f"{username}@example.com",
        "password": PASSWORD,
        **values,
    }


# -- export --------------------------------------------------------------------------
def test_export_equals_list_and_hides_hashes_by_default(run_cli: RunCli) -> None:
    create(run_cli, "alice", "--full-name", "Alice")
    create(run_cli, "bob", "--superuser")
    create(run_cli, "gone")
    ok(run_cli("--yes", "users", "delete", "gone"))

    exported = ok(run_cli("users", "export"))  # table format -> json
    listed = ok(run_cli("users", "list", "--json"))
    assert exported.stdout == listed.stdout
    assert [user["username"] for user in exported.json()] == ["alice", "bob"]
    assert "exported 2 user(s)" in exported.stderr
    assert (
        ok(run_cli("users", "export", "--include-deleted", "--json")).stdout
        == ok(run_cli("users", "list", "--include-deleted", "--json")).stdout
    )
    assert [u["username"] for u in ok(run_cli("users", "export", "--deleted")).json()] == ["gone"]
    both = run_cli("users", "export", "--deleted", "--include-deleted", "--json")
    assert (both.exit_code, both.stdout) == (2, "")
    assert both.error()["code"] == "invalid_input"
    assert all(list(user) == USER_FIELDS for user in exported.json())
    assert "password" not in exported.stdout

    lines = ok(run_cli("users", "export", "-o", "jsonl")).jsonl()
    assert lines == exported.json()

    hashed = ok(run_cli("users", "export", "--include-hashes", "--json"))
    assert "password hashes" in hashed.stderr
    for user in hashed.json():
        assert list(user) == [*USER_FIELDS, "password_hash"]
        assert user.pop("password_hash").startswith("$argon2id$v=19$")
    assert hashed.json() != exported.json()
    assert [{k: v for k, v in u.items() if k != "password_hash"} for u in hashed.json()] == (
        exported.json()
    )


def test_export_streams_many_users_in_pages(run_cli: RunCli, db: Database) -> None:
    password_hash = Passwords("test").hash(PASSWORD)

    def seed(uow: UnitOfWork) -> None:
        for i in range(1203):  # more than two export pages of 500
            uow.users.create(
                username=f"u{i:04d}", email=f"u{i:04d}@example.com", password_hash=password_hash
            )

    db.run(seed)
    exported = ok(run_cli("users", "export", "-o", "jsonl")).jsonl()
    assert len(exported) == 1203
    assert len({user["id"] for user in exported}) == 1203
    assert [u["created_at"] for u in exported] == sorted(u["created_at"] for u in exported)


def test_csv_export_defuses_formulas(run_cli: RunCli) -> None:
    create(run_cli, "eve", "--full-name", '=HYPERLINK("http://evil.example","x")')
    create(run_cli, "mallory", "--full-name", "+1 call me")
    result = ok(run_cli("users", "export", "-o", "csv"))
    records = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(records[0]) == USER_FIELDS
    by_name = {record["username"]: record for record in records}
    assert by_name["eve"]["full_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert by_name["mallory"]["full_name"] == "'+1 call me"
    assert by_name["eve"]["is_active"] == "true"
    # JSON carries the exact value.
    exact = {u["username"]: u["full_name"] for u in ok(run_cli("users", "export")).json()}
    assert exact["eve"] == '=HYPERLINK("http://evil.example","x")'


# -- round trip ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_round_trip_into_another_database(
    run_cli: RunCli, other_database_url: str, tmp_path: Path, fmt: str
) -> None:
    create(run_cli, "alice", "--full-name", "=Alice, the first", "--superuser", "--verified")
    create(run_cli, "bob")
    ok(run_cli("users", "deactivate", "bob"))
    exported = ok(run_cli("users", "export", "--include-hashes", "-o", fmt))
    dump = tmp_path / f"users.{fmt}"
    dump.write_text(exported.stdout)

    other = {"VUTF_DATABASE_URL": other_database_url}
    imported = ok(run_cli("users", "import", str(dump), "--json", env=other))
    report = imported.json()
    assert report == {
        "format": fmt,
        "rows": 2,
        "to_create": 2,
        "created": 2,
        "skipped": 0,
        "invalid": 0,
        "dry_run": False,
        "problems": [],
    }
    for name, expected in (("alice", 0), ("bob", 5)):  # bob was exported deactivated
        check = run_cli(
            "users", "check-password", name, "--password-stdin", input=PASSWORD, env=other
        )
        assert check.exit_code == expected, check.stderr

    def essentials(users: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        keys = ("username", "email", "full_name", "is_active", "is_superuser", "is_verified")
        return [tuple(user[key] for key in keys) for user in users]

    before = ok(run_cli("users", "list", "--json")).json()
    after = ok(run_cli("users", "list", "--json", env=other)).json()
    assert essentials(after) == essentials(before)
    assert {u["id"] for u in after}.isdisjoint({u["id"] for u in before})  # ids are new

    # Importing the same file again: every row clashes; --skip-existing is a no-op.
    again = run_cli("users", "import", str(dump), env=other)
    assert again.exit_code == 4
    assert len(problems(again)) == 4  # username and email of both rows
    skipped = ok(run_cli("users", "import", str(dump), "--skip-existing", "--json", env=other))
    assert (skipped.json()["created"], skipped.json()["skipped"]) == (0, 2)


def test_round_trip_through_a_pipe(run_cli: RunCli, other_database_url: str) -> None:
    create(run_cli, "carol")
    exported = ok(run_cli("users", "export", "--include-hashes", "-o", "jsonl"))
    other = {"VUTF_DATABASE_URL": other_database_url}
    ok(run_cli("users", "import", "-", input=exported.stdout, env=other))
    check = run_cli(
        "users", "check-password", "carol", "--password-stdin", input=PASSWORD, env=other
    )
    assert check.exit_code == 0


# -- import -----------------------------------------------------------------------------------
def test_import_plaintext_passwords_writes_one_audit_row_each(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    # Ten plaintext rows: more than the threshold, so they are hashed in a process pool.
    rows = [row(f"user{i}", full_name=f"User {i}") for i in range(10)]
    rows[3]["is_superuser"] = True
    rows[4]["is_active"] = False
    rows[5]["is_verified"] = True
    source = tmp_path / "users.jsonl"
    source.write_text(jsonl(rows))
    result = ok(run_cli("users", "import", str(source), "--json"))
    assert result.json()["created"] == 10
    assert PASSWORD not in result.stdout + result.stderr
    assert usernames(db) == sorted(f"user{i}" for i in range(10))
    listed = {
        u["username"]: u for u in ok(run_cli("users", "list", "--include-deleted", "--json")).json()
    }
    assert listed["user3"]["is_superuser"] is True
    assert listed["user4"]["is_active"] is False
    assert listed["user5"]["is_verified"] is True
    assert listed["user5"]["verified_at"] is not None
    assert listed["user0"]["full_name"] == "User 0"
    assert audit_actions(db) == [("user.create", "success")] * 10 + [("user.import", "success")]
    assert len(set(audit_request_ids(db))) == 1  # one transaction for all of them
    for name in ("user0", "user9"):
        ok(run_cli("users", "check-password", name, "--password-stdin", input=PASSWORD))


def test_import_reports_every_bad_row_by_line_and_writes_nothing(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    create(run_cli, "taken")
    users = [
        row("good1"),  # line 2
        row("bad name", email="bad@example.com"),  # line 8
        row("good2", email="not-an-email"),  # line 14
        row("good3", password="short"),  # line 20
        row("good1"),  # line 26: duplicate of line 2
        row("taken"),  # line 32: exists already
        {"username": "nopw", "email": "nopw@example.com"},  # line 38
        row("both", password_hash="$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"),
    ]
    source = tmp_path / "users.json"
    source.write_text(json.dumps(users, indent=2))
    starts = [
        number
        for number, line in enumerate(source.read_text().splitlines(), start=1)
        if line == "  {"
    ]
    result = run_cli("users", "import", str(source))
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    # An object of a JSON array is named by its line and its place in the array.
    at = [f"line {start}, object {number}" for number, start in enumerate(starts, start=1)]
    reported = problems(result)
    assert reported == [
        f"{at[1]}: invalid username 'bad name': use 3 to 100 characters from "
        "A-Z, a-z, 0-9, '_' and '-'",
        f"{at[2]}: invalid email address 'not-an-email': it must contain exactly one '@'",
        f"{at[3]}: password too short: it must be at least 15 characters (got 5)",
        f"{at[4]}: username 'good1' is already on {at[0]}",
        f"{at[4]}: email 'good1@example.com' is already on {at[0]}",
        f"{at[5]}: user 'taken' already exists",
        f"{at[5]}: email 'taken@example.com' already belongs to user 'taken'",
        f"{at[6]}: a password or a password_hash is required",
        f"{at[7]}: give either password or password_hash, not both",
    ]
    assert "error: import refused: 9 problem(s) in 7 rows; nothing was written" in result.stderr
    assert "short" not in result.stderr.replace("too short", "")
    assert usernames(db) == ["taken"]
    assert audit_actions(db) == [("user.create", "success")]  # invalid input: no failure row

    # -o json: one error object on stderr, the problems listed inside it.
    as_json = run_cli("users", "import", str(source), "--json")
    assert as_json.exit_code == 2
    assert len(as_json.stderr.splitlines()) == 1
    error = as_json.error()
    assert (error["code"], error["exit_code"]) == ("invalid_import", 2)
    assert [(p["row"], p["line"]) for p in error["problems"]] == [
        (number, starts[number - 1]) for number in (2, 3, 4, 5, 5, 6, 6, 7, 8)
    ]
    assert [p["message"] for p in error["problems"]] == [
        text.split(": ", 1)[1] for text in reported
    ]


def test_import_conflicts_only_exit_4_with_a_failure_row(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    create(run_cli, "taken")
    source = tmp_path / "users.jsonl"
    source.write_text(jsonl([row("fresh"), row("TAKEN", email="other@example.com")]))
    result = run_cli("users", "import", str(source), "--json")
    assert result.exit_code == 4
    assert result.error()["code"] == "import_conflict"
    assert usernames(db) == ["taken"]
    assert audit_actions(db) == [("user.create", "success"), ("user.import", "failure")]

    dry = ok(run_cli("users", "import", str(source), "--skip-existing", "--dry-run", "--json"))
    assert dry.json()["to_create"] == 1
    assert dry.json()["skipped"] == 1
    skipping = ok(run_cli("users", "import", str(source), "--skip-existing", "--json"))
    assert (skipping.json()["created"], skipping.json()["skipped"]) == (1, 1)
    assert usernames(db) == ["fresh", "taken"]


def test_skip_invalid_imports_the_good_rows(run_cli: RunCli, db: Database, tmp_path: Path) -> None:
    source = tmp_path / "users.jsonl"
    source.write_text(jsonl([row("good"), row("bad", email="nope"), row("fine")]))
    result = ok(run_cli("users", "import", str(source), "--skip-invalid"))
    assert re.search(r"^created\s+2$", result.stdout, re.MULTILINE)
    assert re.search(r"^invalid\s+1$", result.stdout, re.MULTILINE)
    assert "skipped: line 2: invalid email address 'nope'" in result.stderr
    assert usernames(db) == ["fine", "good"]


def test_dry_run_writes_nothing(run_cli: RunCli, db: Database, tmp_path: Path) -> None:
    source = tmp_path / "users.csv"
    source.write_text("username,email,password\nann,ann@example.com,correct horse battery staple\n")
    result = ok(run_cli("users", "import", str(source), "--dry-run", "--json"))
    assert result.json()["dry_run"] is True
    assert result.json()["to_create"] == 1
    assert result.json()["created"] == 0
    assert "nothing was written" in result.stderr
    assert usernames(db) == []
    assert audit_actions(db) == []
    bad = tmp_path / "bad.csv"
    bad.write_text("username,email,password\nann,ann@example.com,short\n")
    assert run_cli("users", "import", str(bad), "--dry-run").exit_code == 2
    assert audit_actions(db) == []


def test_csv_with_bom_crlf_and_quoted_cells_from_stdin(run_cli: RunCli, db: Database) -> None:
    text = (
        "username,email,full_name,is_superuser,is_verified,password\r\n"
        'ann,Ann@Example.com,"Smith, Ann",yes,,correct horse battery staple\r\n'
        "\r\n"
        'ben,ben@example.com,"Line ""quoted""",0,TRUE,correct horse battery staple\r\n'
        "cat,cat@example.com,'=not a formula,false,false,correct horse battery staple\r\n"
    )
    data = b"\xef\xbb\xbf" + text.encode("utf-8")
    result = ok(run_cli("users", "import", "-", "--json", input=data))
    assert result.json()["format"] == "csv"
    assert result.json()["created"] == 3
    users = {u["username"]: u for u in ok(run_cli("users", "list", "--json")).json()}
    assert users["ann"]["email"] == "ann@example.com"
    assert users["ann"]["full_name"] == "Smith, Ann"
    assert users["ann"]["is_superuser"] is True
    assert users["ann"]["is_verified"] is False
    assert users["ben"]["full_name"] == 'Line "quoted"'
    assert users["ben"]["is_verified"] is True
    assert users["cat"]["full_name"] == "=not a formula"  # the export's escape is undone
    ok(run_cli("users", "check-password", "ben", "--password-stdin", input=PASSWORD))

    bad = "\ufeffusername,email,password\r\nok1,ok1@example.com,correct horse battery staple\r\n"
    bad += "x,x@example.com,correct horse battery staple\r\n"
    refused = run_cli("users", "import", "-", input=bad.encode())
    assert refused.exit_code == 2
    assert problems(refused) == [
        "line 3: invalid username 'x': use 3 to 100 characters from A-Z, a-z, 0-9, '_' and '-'"
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("u.csv", "username,email,password,colour,shoe\n", "unknown column(s): 'colour', 'shoe'"),
        (
            "u.jsonl",
            '{"username": "abc", "email": "a@b.cd", "pin": 1}\n',
            "unknown column(s): 'pin'",
        ),
        ("u.csv", "username,password\n", "missing required column(s): email"),
        ("u.json", '[{"username": "abc"},', "line 1: not valid JSON"),
        ("u.json", '{"username": "abc"}', "expected a JSON array"),
        ("u.jsonl", '{"username": "abc"}\n[1]\n', "line 2: expected a JSON object"),
        ("u.csv", "", "the import file is empty"),
        ("u.csv", "username,email,email\n", "duplicate column(s): email"),
    ],
)
def test_unusable_files_are_refused(
    run_cli: RunCli, db: Database, tmp_path: Path, name: str, content: str, message: str
) -> None:
    source = tmp_path / name
    source.write_text(content)
    result = run_cli("users", "import", str(source))
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert usernames(db) == []


def test_import_value_types_are_checked(run_cli: RunCli, tmp_path: Path) -> None:
    source = tmp_path / "users.jsonl"
    source.write_text(
        jsonl(
            [
                row("one", is_superuser="yes"),
                row("two", email=42),
                row("three", is_deleted=True),
                row("four", password=None, password_hash="not-a-hash"),
            ]
        )
    )
    result = run_cli("users", "import", str(source))
    assert result.exit_code == 2
    assert problems(result) == [
        "line 1: is_superuser must be true or false, not a string",
        "line 2: email must be a string, not a number",
        "line 3: the user is deleted; deleted users are not imported",
        "line 4: password_hash is not an argon2id PHC string "
        "($argon2id$v=19$m=...,t=...,p=...$salt$hash) with sane parameters",
    ]


def test_import_errors_for_missing_file_and_format(run_cli: RunCli, tmp_path: Path) -> None:
    missing = run_cli("users", "import", str(tmp_path / "nope.csv"))
    assert missing.exit_code == 2
    assert "cannot read" in missing.stderr
    source = tmp_path / "users.txt"
    source.write_text(jsonl([row("abc")]))
    assert run_cli("users", "import", str(source), "--input-format", "xml").exit_code == 2
    ok(run_cli("users", "import", str(source), "--input-format", "jsonl"))  # sniffed also works
    ok(run_cli("users", "import", str(source), "--skip-existing"))


def test_import_help_needs_no_database() -> None:
    result = invoke(["users", "import", "--help"])
    assert result.exit_code == 0
    assert "password_hash" in result.stdout


# -- records that share a line: a compact JSON array ------------------------------------
def compact_array(rows: list[dict[str, Any]]) -> str:
    """Every object on line 1, as `jq -c` or json.dump without indent writes them."""
    return json.dumps(rows)


def test_objects_sharing_a_line_keep_their_own_passwords(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    first, second = "first password of the file", "second password of the file"
    source = tmp_path / "users.json"
    source.write_text(compact_array([row("pwa", password=first), row("pwb", password=second)]))
    assert ok(run_cli("users", "import", str(source), "--json")).json()["created"] == 2
    for username, right, wrong in (("pwa", first, second), ("pwb", second, first)):
        ok(run_cli("users", "check-password", username, "--password-stdin", input=right))
        refused = run_cli("users", "check-password", username, "--password-stdin", input=wrong)
        assert refused.exit_code == 5, refused.stderr


def test_duplicates_on_one_line_are_found_and_named_by_object(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    source = tmp_path / "users.json"
    source.write_text(compact_array([row("dup"), row("other"), row("DUP", email="x@example.com")]))
    dry = run_cli("users", "import", str(source), "--dry-run")
    assert dry.exit_code == 2, dry.stderr
    assert problems(dry) == ["line 1, object 3: username 'DUP' is already on line 1, object 1"]
    assert usernames(db) == []
    assert audit_actions(db) == []


def test_skip_invalid_and_skip_existing_count_objects_not_lines(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    create(run_cli, "old1")
    create(run_cli, "old2")
    source = tmp_path / "users.json"
    rows = [row("old1"), row("old2"), row("bad", email="nope"), row("new1"), row("new2")]
    source.write_text(compact_array(rows))
    result = ok(
        run_cli("users", "import", str(source), "--skip-invalid", "--skip-existing", "--json")
    )
    report = result.json()
    assert (report["rows"], report["created"], report["skipped"], report["invalid"]) == (5, 2, 2, 1)
    assert report["problems"] == [
        {
            "row": 3,
            "line": 1,
            "message": "invalid email address 'nope': it must contain exactly one '@'",
        }
    ]
    assert usernames(db) == ["new1", "new2", "old1", "old2"]


@pytest.mark.parametrize("name", ["u.json", "u.jsonl"])
def test_json_nested_too_deeply_is_invalid_input(
    run_cli: RunCli, db: Database, tmp_path: Path, name: str
) -> None:
    source = tmp_path / name
    nested = "[" * 100_000 + "]" * 100_000
    source.write_text(f"[{nested}]" if name == "u.json" else nested + "\n")
    result = run_cli("users", "import", str(source))
    assert result.exit_code == 2, result.stderr
    assert "line 1: not valid JSON: nested deeper than 64 levels" in result.stderr
    assert "Traceback" not in result.stderr
    assert usernames(db) == []


def test_a_password_hash_longer_than_its_column_is_refused_on_every_backend(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    # A well-formed argon2id string with a 300-byte salt: valid PHC, too long to store.
    salt = "c2FsdHNhbHQ" * 40
    long_hash = f"$argon2id$v=19$m=65536,t=3,p=4${salt}$aGFzaGhhc2hoYXNoaGFzaGhhc2g"
    assert len(long_hash) > 255
    source = tmp_path / "users.jsonl"
    source.write_text(jsonl([row("longhash", password=None, password_hash=long_hash)]))
    for args in ([], ["--dry-run"]):
        result = run_cli("users", "import", str(source), *args)
        assert result.exit_code == 2, result.stderr
        assert problems(result) == ["line 1: password_hash is longer than 255 characters"]
    assert usernames(db) == []
