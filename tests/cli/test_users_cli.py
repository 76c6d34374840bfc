"""`vutf users` from the command line, on SQLite and PostgreSQL.

Every subcommand's happy path and its refusals with their exact exit codes
(2 invalid input, 3 unknown user, 4 conflict / stale version / wrong state,
5 wrong password), stdout and stderr checked separately, and the database
itself inspected afterwards: the users and api_keys rows, and the audit log
(one success row per mutation, one failure row per refusal).  CliRunner's
stdin is not a terminal, so passwords come from --password-stdin or
--password-file, and confirmations need --yes.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli.conftest import CliResult, RunCli, invoke
from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, AuditLog, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import UserView
from vutf_cli.security.passwords import Passwords

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different, equally long passphrase"
WRONG_PASSWORD = "definitely not the right one"
USER_FIELDS = [f.name for f in dataclasses.fields(UserView)]
SUBCOMMANDS = (
    "create",
    "list",
    "show",
    "update",
    "set-password",
    "check-password",
    "activate",
    "deactivate",
    "verify",
    "delete",
    "restore",
    "export",
    "import",
)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


# -- helpers -------------------------------------------------------------------------
def ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result


def refused(result: CliResult, exit_code: int, code: str | None = None) -> CliResult:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    if code is not None:
        error = result.error()
        assert (error["code"], error["exit_code"]) == (code, exit_code)
    else:
        assert result.stderr.startswith("error: ")
    return result


def create(run_cli: RunCli, username: str, *args: str, password: str = PASSWORD) -> dict[str, Any]:
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
            input=password + "\n",
        )
    )
    user: dict[str, Any] = result.json()
    return user


def check(run_cli: RunCli, user: str, password: str) -> CliResult:
    return run_cli("users", "check-password", user, "--password-stdin", input=password)


def audit_rows(db: Database) -> list[dict[str, Any]]:
    def read(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = uow.session.scalars(sa.select(AuditLog).order_by(AuditLog.seq))
        return [
            {
                "action": row.action,
                "status": row.status,
                "resource_id": row.resource_id,
                "user_id": row.user_id,
                "changes": row.changes,
                "request_id": (row.meta or {}).get("request_id"),
                "error_message": row.error_message,
            }
            for row in rows
        ]

    return db.run(read, read_only=True)


def new_audit_rows(db: Database, before: int) -> list[tuple[str, str]]:
    return [(row["action"], row["status"]) for row in audit_rows(db)[before:]]


def user_row(db: Database, username: str) -> dict[str, Any] | None:
    def read(uow: UnitOfWork) -> dict[str, Any] | None:
        user = uow.users.get_by_username(username, include_deleted=True)
        if user is None:
            return None
        return {c.key: getattr(user, c.key) for c in sa.inspect(User).column_attrs}

    return db.run(read, read_only=True)


def add_key(db: Database, username: str, name: str = "ci") -> uuid.UUID:
    def work(uow: UnitOfWork) -> uuid.UUID:
        user = uow.users.require(username)
        key, _plaintext = uow.keys.create_key(user=user, name=name, permissions={"read": True})
        return key.id

    return db.run(work)


def keys_of(db: Database, user_id: str) -> list[dict[str, Any]]:
    def read(uow: UnitOfWork) -> list[dict[str, Any]]:
        stmt = sa.select(ApiKey).where(ApiKey.user_id == uuid.UUID(user_id))
        return [
            {"id": key.id, "revoked_at": key.revoked_at, "is_deleted": key.is_deleted}
            for key in uow.session.scalars(stmt)
        ]

    return db.run(read, read_only=True)


def seed_users(db: Database, count: int, **values: Any) -> None:
    """``count`` users written directly (one hash shared: fast), user00..userNN."""
    password_hash = Passwords("test").hash(PASSWORD)

    def work(uow: UnitOfWork) -> None:
        for i in range(count):
            uow.users.create_user(
                username=f"user{i:02d}",
                email=f"user{i:02d}@example.com",
                password_hash=password_hash,
                **values,
            )

    db.run(work)


def next_cursor(result: CliResult) -> str | None:
    found = re.search(r"^next cursor: (\S+)$", result.stderr, re.MULTILINE)
    return found.group(1) if found else None


# -- help ----------------------------------------------------------------------------
@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_has_summary_options_and_examples(command: str) -> None:
    result = ok(invoke(["users", command, "--help"]))
    lines = result.stdout.splitlines()
    usage = next(i for i, line in enumerate(lines) if line.startswith("Usage:"))
    summary = next(line for line in lines[usage + 1 :] if line.strip())
    assert summary.strip().endswith(".")
    assert "Options:" in result.stdout
    examples = result.stdout.split("Examples:", 1)[1].splitlines()
    assert any(line.strip().startswith("vutf ") and f"users {command}" in line for line in examples)


def test_group_help_lists_every_subcommand() -> None:
    result = ok(invoke(["users", "--help"]))
    for command in SUBCOMMANDS:
        assert f"  {command} " in result.stdout


def test_users_list_imports_neither_alembic_nor_rich_for_json(database_url: str) -> None:
    code = (
        "import sys\n"
        "from vutf_cli.cli.app import main\n"
        "try:\n"
        "    main(['users', 'list', '--json'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'rich'))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "VUTF_DATABASE_URL": database_url,
        "VUTF_ARGON2_PROFILE": "test",
        "VUTF_CONFIG": os.devnull,
    }
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert "HEAVY []" in done.stderr


# -- create --------------------------------------------------------------------------
def test_create_reads_stdin_and_reports_the_user(run_cli: RunCli, db: Database) -> None:
    result = ok(
        run_cli(
            "users",
            "create",
            "alice",
            "--email",
            "Alice@Example.COM",
            "--full-name",
            "Alice Liddell",
            "--superuser",
            "--verified",
            "--password-stdin",
            "--json",
            input=PASSWORD + "\n",
        )
    )
    user = result.json()
    assert list(user) == USER_FIELDS
    assert user["username"] == "alice"
    assert user["email"] == "alice@example.com"
    assert user["full_name"] == "Alice Liddell"
    assert (user["is_superuser"], user["is_verified"], user["is_active"]) == (True, True, True)
    assert TIMESTAMP.fullmatch(user["created_at"])
    assert TIMESTAMP.fullmatch(user["verified_at"])
    assert user["created_by"] == "tester@test"
    assert "created user 'alice'" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr

    # Exactly one trailing newline was stripped from stdin.
    ok(check(run_cli, "alice", PASSWORD))
    ok(check(run_cli, "alice", PASSWORD + "\n"))
    refused(check(run_cli, "alice", PASSWORD + "\n\n"), 5)

    rows = audit_rows(db)
    assert [(r["action"], r["status"]) for r in rows] == [
        ("user.create", "success"),
        ("user.login", "success"),
        ("user.login", "success"),
        ("user.login", "failure"),
    ]
    assert rows[0]["resource_id"] == user["id"]
    assert str(rows[0]["user_id"]) == user["id"]
    assert rows[0]["changes"]["username"] == "alice"


def test_create_from_password_file_and_table_output(
    run_cli: RunCli, tmp_path: Path, database_url: str
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    result = ok(
        run_cli(
            "users", "create", "bob", "--email", "bob@example.com", "--password-file", str(secret)
        )
    )
    # A table says what was done in one line (and where), the record is for -o json.
    assert result.stdout == ""
    target = database_url.removeprefix("sqlite:///")  # a SQLite file, or the (password-free) URL
    assert result.stderr.splitlines()[-2:] == ["created user 'bob'", f"database: {target}"]
    ok(check(run_cli, "bob", PASSWORD))


def test_generated_password_is_shown_once(run_cli: RunCli, db: Database) -> None:
    as_json = ok(
        run_cli(
            "users",
            "create",
            "carol",
            "--email",
            "carol@example.com",
            "--generate-password",
            "--json",
        )
    )
    document = as_json.json()
    generated = document.pop("password")
    assert list(document) == USER_FIELDS
    assert len(generated) >= 24
    assert generated not in as_json.stderr
    assert "store it now" in as_json.stderr
    ok(check(run_cli, "carol", generated))

    table = ok(
        run_cli("users", "create", "dave", "--email", "dave@example.com", "--generate-password")
    )
    shown = re.search(r"^password\s+(\S+)$", table.stdout, re.MULTILINE)
    assert shown is not None
    assert table.stdout.count(shown.group(1)) == 1
    assert shown.group(1) not in table.stderr
    assert "store it now" in table.stderr
    ok(check(run_cli, "dave", shown.group(1)))
    # The generated password is in no audit row either.
    assert all(generated not in str(row) for row in audit_rows(db))


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["a b", "--email", "x@example.com", "--password-stdin"], PASSWORD, "invalid username"),
        (["ab", "--email", "x@example.com", "--password-stdin"], PASSWORD, "invalid username"),
        (["erin", "--email", "not-an-email", "--password-stdin"], PASSWORD, "invalid email"),
        (["erin", "--email", "e@example.com", "--password-stdin"], "tooshort", "too short"),
        (["erin", "--email", "e@example.com", "--password-stdin"], "", "empty password"),
        (
            ["erin", "--email", "e@example.com", "--generate-password", "--password-stdin"],
            PASSWORD,
            "--generate-password",
        ),
        (["erin", "--email", "e@example.com"], None, "stdin is not a terminal"),
        (["erin", "--password-stdin"], PASSWORD, "--email"),
        (["erin", "--email", "e@example.com", "--bogus"], PASSWORD, "--bogus"),
    ],
)
def test_create_refuses_invalid_input_with_exit_2(
    run_cli: RunCli, db: Database, args: list[str], stdin: str | None, message: str
) -> None:
    result = refused(run_cli("users", "create", *args, input=stdin), 2)
    assert message in result.stderr
    if stdin:
        assert stdin not in result.stderr
    if stdin is None:
        assert "hint: use --password-stdin" in result.stderr
    assert user_row(db, "erin") is None
    assert audit_rows(db) == []  # invalid input is refused before any transaction


def test_create_duplicate_is_a_conflict_with_a_failure_row(run_cli: RunCli, db: Database) -> None:
    create(run_cli, "frank")
    same_name = run_cli(
        "users",
        "create",
        "FRANK",
        "--email",
        "other@example.com",
        "--password-stdin",
        "--json",
        input=PASSWORD,
    )
    refused(same_name, 4, "conflict")
    assert "username already exists" in same_name.error()["message"]
    same_email = run_cli(
        "users",
        "create",
        "frank2",
        "--email",
        "Frank@example.com",
        "--password-stdin",
        input=PASSWORD,
    )
    refused(same_email, 4)
    assert "email already exists" in same_email.stderr
    assert new_audit_rows(db, 0) == [
        ("user.create", "success"),
        ("user.create", "failure"),
        ("user.create", "failure"),
    ]
    failures = audit_rows(db)[1:]
    assert [row["resource_id"] for row in failures] == ["FRANK", "frank2"]
    assert all(row["error_message"].startswith("conflict:") for row in failures)


def test_if_not_exists_is_idempotent(run_cli: RunCli, db: Database) -> None:
    first = create(run_cli, "gina", "--if-not-exists")
    again = ok(
        run_cli(
            "users",
            "create",
            "gina",
            "--email",
            "gina@example.com",
            "--if-not-exists",
            "--generate-password",
            "--json",
        )
    )
    document = again.json()
    assert "password" not in document  # nothing was generated for an existing user
    assert document == first
    assert "already exists; left unchanged" in again.stderr
    different = ok(
        run_cli(
            "users",
            "create",
            "gina",
            "--email",
            "elsewhere@example.com",
            "--if-not-exists",
            "--password-stdin",
            input=PASSWORD,
        )
    )
    assert "differs from the request in: email" in different.stderr
    assert user_row(db, "gina")["email"] == "gina@example.com"  # type: ignore[index]
    assert new_audit_rows(db, 0) == [("user.create", "success")]


# -- list ----------------------------------------------------------------------------
def test_list_table_json_and_empty(run_cli: RunCli) -> None:
    empty = ok(run_cli("users", "list", "--json"))
    assert empty.json() == []
    assert "no users found" in empty.stderr
    assert ok(run_cli("users", "list", "-o", "jsonl")).stdout == ""
    assert ok(run_cli("users", "list", "-o", "csv")).stdout.strip() == ",".join(USER_FIELDS)

    create(run_cli, "hank", "--full-name", "Hank Hill")
    table = ok(run_cli("users", "list"))
    header = table.stdout.splitlines()[0].split()
    assert header == [
        "username",
        "email",
        "state",
        "full_name",
        "superuser",
        "verified",
        "created_at",
    ]
    assert "hank" in table.stdout
    assert "Hank Hill" in table.stdout
    assert "password" not in table.stdout
    listed = ok(run_cli("users", "list", "--json")).json()
    assert [list(row) for row in listed] == [USER_FIELDS]
    assert ok(run_cli("users", "list", "--quiet")).stderr == ""


def test_list_filters(run_cli: RunCli, db: Database) -> None:
    seed_users(db, 3)
    create(run_cli, "boss", "--superuser")
    ok(run_cli("users", "deactivate", "user01"))
    ok(run_cli("--yes", "users", "delete", "user02"))

    def names(*args: str) -> list[str]:
        return [row["username"] for row in ok(run_cli("users", "list", "--json", *args)).json()]

    assert names() == ["user00", "user01", "boss"]
    assert names("--active") == ["user00", "boss"]
    assert names("--inactive") == ["user01"]
    assert names("--superuser") == ["boss"]
    assert names("--no-superuser") == ["user00", "user01"]
    assert names("--deleted") == ["user02"]
    assert names("--include-deleted") == ["user00", "user01", "user02", "boss"]
    assert names("--sort", "-username") == ["user01", "user00", "boss"]
    assert names("--sort", "email", "--active") == ["boss", "user00"]
    assert names("--search", "USER0") == ["user00", "user01"]
    assert names("--search", "boss@") == ["boss"]

    refused(run_cli("users", "list", "--sort", "password_hash"), 2)
    refused(run_cli("users", "list", "--limit", "0"), 2)
    refused(run_cli("users", "list", "--deleted", "--include-deleted"), 2)
    refused(run_cli("users", "list", "--cursor", "garbage!"), 2)


def test_list_search_treats_percent_and_underscore_literally(run_cli: RunCli) -> None:
    create(run_cli, "a_b", "--full-name", "100% real")
    create(run_cli, "axb", "--full-name", "1000 real")
    create(run_cli, "plain")

    def names(text: str) -> list[str]:
        rows = ok(run_cli("users", "list", "--json", "--search", text)).json()
        return sorted(row["username"] for row in rows)

    assert names("_") == ["a_b"]
    assert names("a_b") == ["a_b"]
    assert names("0%") == ["a_b"]
    assert names("%") == ["a_b"]
    assert names("real") == ["a_b", "axb"]
    assert names("zzz") == []


@pytest.mark.parametrize("sort", ["created_at", "-username", "email"])
def test_cursor_pagination_yields_every_user_once(run_cli: RunCli, db: Database, sort: str) -> None:
    seed_users(db, 25)
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        args = ["users", "list", "--json", "--limit", "10", "--sort", sort]
        if cursor is not None:
            args += ["--cursor", cursor]
        # --quiet: the cursor is printed all the same (scripts need it).
        result = ok(run_cli(*args, "--quiet"))
        page = [row["username"] for row in result.json()]
        assert len(page) <= 10
        seen += page
        pages += 1
        assert cursor not in result.stdout if cursor else True
        cursor = next_cursor(result)
        if cursor is None:
            break
        assert cursor not in result.stdout
    assert pages == 3
    assert len(seen) == 25
    assert set(seen) == {f"user{i:02d}" for i in range(25)}
    if sort == "-username":
        assert seen == sorted(seen, reverse=True)
    if sort == "email":
        assert seen == sorted(seen)


def test_cursor_of_another_sort_is_refused(run_cli: RunCli, db: Database) -> None:
    seed_users(db, 3)
    cursor = next_cursor(ok(run_cli("users", "list", "--limit", "1", "--sort", "username")))
    assert cursor is not None
    result = refused(run_cli("users", "list", "--cursor", cursor, "--sort", "email"), 2)
    assert "invalid cursor" in result.stderr


# -- show ----------------------------------------------------------------------------
def test_show_by_username_email_or_id(run_cli: RunCli) -> None:
    user = create(run_cli, "ivy")
    for ident in ("ivy", "IVY", "Ivy@Example.com", user["id"]):
        assert ok(run_cli("users", "show", ident, "--json")).json() == user
    table = ok(run_cli("users", "show", "ivy"))
    assert re.search(r"^email\s+ivy@example\.com$", table.stdout, re.MULTILINE)
    missing = refused(run_cli("users", "show", "nobody", "--json"), 3, "not_found")
    assert "nobody" in missing.error()["message"]


def test_show_with_keys(run_cli: RunCli, db: Database) -> None:
    create(run_cli, "jack")
    key_id = add_key(db, "jack", "deploy")
    shown = ok(run_cli("users", "show", "jack", "--with-keys", "--json")).json()
    assert list(shown)[: len(USER_FIELDS)] == USER_FIELDS
    assert [key["id"] for key in shown["api_keys"]] == [str(key_id)]
    key = shown["api_keys"][0]
    assert (key["name"], key["state"], key["username"]) == ("deploy", "active", "jack")
    assert "key_hash" not in key
    table = ok(run_cli("users", "show", "jack", "--with-keys"))
    assert "deploy" in table.stdout
    assert "active" in table.stdout
    without = ok(run_cli("users", "show", "jack", "--json")).json()
    assert "api_keys" not in without


def test_show_finds_deleted_users_and_marks_them(run_cli: RunCli) -> None:
    create(run_cli, "kate")
    ok(run_cli("--yes", "users", "delete", "kate"))
    shown = ok(run_cli("users", "show", "kate", "--json"))
    assert shown.json()["is_deleted"] is True
    assert "is deleted" in shown.stderr


# -- update ---------------------------------------------------------------------------
def test_update_fields_and_version(run_cli: RunCli, db: Database) -> None:
    user = create(run_cli, "liam", "--full-name", "Liam")
    updated = ok(
        run_cli(
            "users",
            "update",
            "liam",
            "--email",
            "LIAM@new.example.com",
            "--superuser",
            "--expected-version",
            str(user["version"]),
            "--json",
        )
    )
    after = updated.json()
    assert after["email"] == "liam@new.example.com"
    assert after["is_superuser"] is True
    assert after["version"] == user["version"] + 1
    assert "email" in updated.stderr
    assert "is_superuser" in updated.stderr

    cleared = ok(run_cli("users", "update", "liam", "--full-name", "", "--no-superuser", "--json"))
    assert cleared.json()["full_name"] is None
    assert cleared.json()["is_superuser"] is False

    unchanged = ok(run_cli("users", "update", "liam", "--no-superuser", "--json"))
    assert unchanged.json()["version"] == cleared.json()["version"]
    assert "nothing changed" in unchanged.stderr

    rows = audit_rows(db)
    assert [(r["action"], r["status"]) for r in rows] == [
        ("user.create", "success"),
        ("user.update", "success"),
        ("user.update", "success"),
    ]
    assert rows[1]["changes"] == {
        "email": {"old": "liam@example.com", "new": "liam@new.example.com"},
        "is_superuser": {"old": False, "new": True},
    }


def test_update_refusals(run_cli: RunCli, db: Database) -> None:
    user = create(run_cli, "mia")
    create(run_cli, "noah")
    count = len(audit_rows(db))
    stale = refused(
        run_cli(
            "users",
            "update",
            "mia",
            "--email",
            "m2@example.com",
            "--expected-version",
            str(user["version"] + 5),
            "--json",
        ),
        4,
        "stale_version",
    )
    assert "version" in stale.error()["message"]
    refused(run_cli("users", "update", "mia", "--email", "noah@example.com"), 4)
    refused(run_cli("users", "update", "nobody", "--email", "x@example.com"), 3)
    refused(run_cli("users", "update", "mia", "--email", "bad"), 2)
    refused(run_cli("users", "update", "mia"), 2)
    assert user_row(db, "mia")["email"] == "mia@example.com"  # type: ignore[index]
    assert new_audit_rows(db, count) == [("user.update", "failure")] * 3


# -- passwords -------------------------------------------------------------------------
def test_set_password(run_cli: RunCli, db: Database, tmp_path: Path) -> None:
    create(run_cli, "olga")
    secret = tmp_path / "new"
    secret.write_text(NEW_PASSWORD)
    result = ok(run_cli("users", "set-password", "olga", "--password-file", str(secret), "--json"))
    assert result.json()["version"] == 2
    assert NEW_PASSWORD not in result.stdout + result.stderr
    refused(check(run_cli, "olga", PASSWORD), 5)
    ok(check(run_cli, "olga", NEW_PASSWORD))

    refused(run_cli("users", "set-password", "olga", "--password-stdin", input="short"), 2)
    refused(run_cli("users", "set-password", "olga"), 2)  # no TTY, no source
    refused(run_cli("users", "set-password", "nobody", "--password-stdin", input=NEW_PASSWORD), 3)
    refused(
        run_cli(
            "users",
            "set-password",
            "olga",
            "--password-stdin",
            "--password-file",
            str(secret),
            input=NEW_PASSWORD,
        ),
        2,
    )
    rows = audit_rows(db)
    assert [(r["action"], r["status"]) for r in rows] == [
        ("user.create", "success"),
        ("user.set_password", "success"),
        ("user.login", "failure"),
        ("user.login", "success"),
        ("user.set_password", "failure"),
    ]
    assert rows[1]["changes"] == {"changed": ["password_hash"]}


def test_check_password_says_the_same_for_unknown_user_and_wrong_password(
    run_cli: RunCli, db: Database
) -> None:
    create(run_cli, "paul")
    matches = ok(check(run_cli, "paul", PASSWORD))
    assert matches.stdout == ""
    assert "matches" in matches.stderr
    wrong = refused(check(run_cli, "paul", WRONG_PASSWORD), 5)
    unknown = refused(check(run_cli, "nobody", WRONG_PASSWORD), 5)
    assert wrong.stderr == unknown.stderr == "error: invalid username or password\n"
    wrong_json, unknown_json = (
        refused(
            run_cli(
                "users", "check-password", who, "--password-stdin", "--json", input=WRONG_PASSWORD
            ),
            5,
            "denied",
        )
        for who in ("paul", "nobody")
    )
    assert wrong_json.stderr == unknown_json.stderr
    assert WRONG_PASSWORD not in wrong.stderr + wrong_json.stderr
    # A deleted user is as unknown as one that never existed.
    ok(run_cli("--yes", "users", "delete", "paul"))
    assert refused(check(run_cli, "paul", PASSWORD), 5).stderr == unknown.stderr
    # Each check is one user.login row; the reasons are for the operator only.
    rows = audit_rows(db)
    assert [(r["action"], r["status"], r["changes"]) for r in rows[1:]] == [
        ("user.login", "success", None),
        ("user.login", "failure", {"reason": "wrong_password", "failed_login_count": 1}),
        ("user.login", "failure", {"reason": "unknown_user", "identifier": "nobody"}),
        ("user.login", "failure", {"reason": "wrong_password", "failed_login_count": 2}),
        ("user.login", "failure", {"reason": "unknown_user", "identifier": "nobody"}),
        ("user.delete", "success", rows[-2]["changes"]),
        ("user.login", "failure", {"reason": "deleted"}),
    ]


# -- state ---------------------------------------------------------------------------------
def test_activate_deactivate_verify(run_cli: RunCli, db: Database) -> None:
    create(run_cli, "quinn")
    off = ok(run_cli("users", "deactivate", "quinn", "--json"))
    assert off.json()["is_active"] is False
    again = ok(run_cli("users", "deactivate", "quinn", "--json"))
    assert again.json()["version"] == off.json()["version"]
    assert "already inactive" in again.stderr
    assert ok(run_cli("users", "activate", "quinn", "--json")).json()["is_active"] is True
    assert "already active" in ok(run_cli("users", "activate", "quinn")).stderr
    verified = ok(run_cli("users", "verify", "quinn", "--json")).json()
    assert verified["is_verified"] is True
    assert TIMESTAMP.fullmatch(verified["verified_at"])
    assert ok(run_cli("users", "verify", "quinn", "--json")).json() == verified
    for command in ("activate", "deactivate", "verify"):
        refused(run_cli("users", command, "nobody", "--json"), 3, "not_found")
    assert new_audit_rows(db, 0) == [
        ("user.create", "success"),
        ("user.deactivate", "success"),
        ("user.activate", "success"),
        ("user.verify", "success"),
        ("user.activate", "failure"),
        ("user.deactivate", "failure"),
        ("user.verify", "failure"),
    ]


# -- delete / restore ----------------------------------------------------------------------
def test_delete_without_yes_and_without_tty_changes_nothing(run_cli: RunCli, db: Database) -> None:
    create(run_cli, "rita")
    add_key(db, "rita")
    for args in (["users", "delete", "rita"], ["users", "delete", "rita", "--hard"]):
        result = refused(run_cli(*args), 2)
        assert "confirmation required" in result.stderr
        assert "hint: re-run with --yes" in result.stderr
    row = user_row(db, "rita")
    assert row is not None
    assert row["is_deleted"] is False
    assert all(key["revoked_at"] is None for key in keys_of(db, str(row["id"])))
    assert new_audit_rows(db, 0) == [("user.create", "success")]


def test_soft_delete_revokes_keys_and_frees_the_name(run_cli: RunCli, db: Database) -> None:
    old = create(run_cli, "sam")
    first_key, second_key = add_key(db, "sam", "one"), add_key(db, "sam", "two")
    deleted = ok(run_cli("users", "delete", "sam", "--yes", "--json"))
    assert deleted.json()["is_deleted"] is True
    assert TIMESTAMP.fullmatch(deleted.json()["deleted_at"])
    assert deleted.json()["deleted_by"] == "tester@test"
    assert "revoked 2 API key(s)" in deleted.stderr
    keys = keys_of(db, old["id"])
    assert {key["id"] for key in keys} == {first_key, second_key}
    assert all(key["revoked_at"] is not None for key in keys)
    delete_row = audit_rows(db)[-1]
    assert (delete_row["action"], delete_row["resource_id"]) == ("user.delete", old["id"])
    assert sorted(delete_row["changes"]["revoked_api_keys"]) == sorted(
        [str(first_key), str(second_key)]
    )

    refused(check(run_cli, "sam", PASSWORD), 5)
    # Deleting again changes nothing: exit 0 (tests/cli/test_repeatable_mutations.py).
    again = ok(run_cli("--yes", "users", "delete", "sam"))
    assert "already deleted; nothing changed" in again.stderr

    new = create(run_cli, "sam")  # the name is free again
    assert new["id"] != old["id"]
    assert ok(run_cli("users", "show", "sam", "--json")).json()["id"] == new["id"]
    # The old one cannot come back while its name is taken.
    clash = refused(run_cli("users", "restore", old["id"], "--json"), 4, "conflict")
    assert "already exists" in clash.error()["message"]
    assert new_audit_rows(db, 0) == [
        ("user.create", "success"),
        ("user.delete", "success"),
        ("user.login", "failure"),
        ("user.create", "success"),
        ("user.restore", "failure"),
    ]


def test_restore(run_cli: RunCli, db: Database) -> None:
    user = create(run_cli, "tina")
    ok(run_cli("--yes", "users", "delete", "tina"))
    restored = ok(run_cli("users", "restore", "tina", "--json")).json()
    assert restored["id"] == user["id"]
    assert (restored["is_deleted"], restored["deleted_at"], restored["deleted_by"]) == (
        False,
        None,
        None,
    )
    ok(check(run_cli, "tina", PASSWORD))
    live = ok(run_cli("users", "restore", "tina"))
    assert "already live (not deleted); nothing changed" in live.stderr
    refused(run_cli("users", "restore", "nobody"), 3)
    assert new_audit_rows(db, 0) == [
        ("user.create", "success"),
        ("user.delete", "success"),
        ("user.restore", "success"),
        ("user.login", "success"),
        ("user.restore", "failure"),
    ]


def test_hard_delete_removes_the_row_and_its_keys(run_cli: RunCli, db: Database) -> None:
    user = create(run_cli, "uma")
    add_key(db, "uma")
    result = ok(run_cli("users", "delete", "uma", "--hard", "--yes", "--json"))
    assert result.json()["id"] == user["id"]
    assert user_row(db, "uma") is None
    assert keys_of(db, user["id"]) == []
    refused(run_cli("users", "show", user["id"]), 3)
    # A soft-deleted user can be purged too.
    create(run_cli, "vic")
    ok(run_cli("--yes", "users", "delete", "vic"))
    ok(run_cli("--yes", "users", "delete", "vic", "--hard"))
    assert user_row(db, "vic") is None
    refused(run_cli("--yes", "users", "delete", "vic", "--hard"), 3)
    rows = audit_rows(db)
    assert [(r["action"], r["status"]) for r in rows] == [
        ("user.create", "success"),
        ("user.delete", "success"),
        ("user.create", "success"),
        ("user.delete", "success"),
        ("user.delete", "success"),
        ("user.delete", "failure"),
    ]
    assert rows[1]["changes"] == {"hard": True, "username": "uma", "api_keys_removed": 1}


# -- cross-cutting -----------------------------------------------------------------------------
def test_each_mutation_commits_with_its_own_audit_row(run_cli: RunCli, db: Database) -> None:
    """One success row per mutation, carrying the request id of its own transaction."""
    user = create(run_cli, "walt")
    steps = [
        (["users", "update", "walt", "--full-name", "Walt"], "user.update"),
        (["users", "set-password", "walt", "--password-stdin"], "user.set_password"),
        (["users", "deactivate", "walt"], "user.deactivate"),
        (["users", "activate", "walt"], "user.activate"),
        (["users", "verify", "walt"], "user.verify"),
        (["--yes", "users", "delete", "walt"], "user.delete"),
        (["users", "restore", "walt"], "user.restore"),
    ]
    for args, action in steps:
        before = len(audit_rows(db))
        ok(run_cli(*args, input=NEW_PASSWORD))
        new_rows = audit_rows(db)[before:]
        assert [(r["action"], r["status"]) for r in new_rows] == [(action, "success")]
        assert new_rows[0]["resource_id"] == user["id"]
    request_ids = [row["request_id"] for row in audit_rows(db)]
    assert len(set(request_ids)) == len(request_ids)  # one transaction each


def test_passwords_never_reach_output_or_any_table(run_cli: RunCli, db: Database) -> None:
    marker = "Zebra-Quokka-Marmalade-7781"
    second = "Yak-Narwhal-Porridge-4412-xx"
    outputs: list[CliResult] = [
        run_cli(
            "users", "create", "xena", "--email", "x@example.com", "--password-stdin", input=marker
        ),
        run_cli(
            "users", "create", "xena", "--email", "x2@example.com", "--password-stdin", input=marker
        ),
        run_cli("users", "check-password", "xena", "--password-stdin", input=marker),
        run_cli("users", "check-password", "xena", "--password-stdin", input=second),
        run_cli("users", "set-password", "xena", "--password-stdin", input=second),
        run_cli("users", "set-password", "xena", "--password-stdin", input="weak"),
        run_cli("users", "show", "xena", "--json"),
        run_cli("users", "list", "-o", "csv"),
        run_cli("users", "export", "-o", "jsonl"),
        run_cli("--debug", "users", "check-password", "nobody", "--password-stdin", input=marker),
    ]
    for result in outputs:
        for secret in (marker, second, "weak"):
            assert secret not in result.stdout
            assert secret not in result.stderr

    def dump(uow: UnitOfWork) -> list[tuple[str, str, str]]:
        cells = []
        for table in ("users", "api_keys", "audit_log"):
            for row in uow.session.execute(sa.text(f"SELECT * FROM {table}")).mappings():
                cells += [(table, name, str(value)) for name, value in row.items()]
        return cells

    cells = db.run(dump, read_only=True)
    assert cells
    for table, column, value in cells:
        assert marker not in value, (table, column)
        assert second not in value, (table, column)
        if column == "password_hash":
            assert value.startswith("$argon2id$v=19$")


def test_global_options_after_the_subcommand_and_quiet(run_cli: RunCli) -> None:
    result = ok(
        run_cli(
            "users",
            "create",
            "yara",
            "--email",
            "y@example.com",
            "--password-stdin",
            "--quiet",
            "-o",
            "jsonl",
            input=PASSWORD,
        )
    )
    assert result.stderr == ""
    assert result.jsonl()[0]["username"] == "yara"
