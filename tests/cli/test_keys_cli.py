"""`vutf keys` end to end through the real root command, on SQLite and PostgreSQL.

Users are created through the repository (not `vutf users`), so these tests
depend only on the keys commands.  Every run's stdout and stderr are checked
separately; the plaintext key must appear in the issuing response only.
"""

from __future__ import annotations

import csv
import io
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from tests.cli.conftest import CliResult, RunCli, invoke
from tests.roles_support import grant_role_in
from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, AuditLog
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.security import api_keys as key_format
from vutf_cli.security.passwords import Passwords

UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/x"
VIEW_FIELDS = list(ApiKeyView.__dataclass_fields__)


# -- helpers ----------------------------------------------------------------------------
@cache
def _password_hash() -> str:
    return Passwords("test").hash("correct horse battery staple")


def make_user(db: Database, username: str) -> uuid.UUID:
    def create(uow: UnitOfWork) -> uuid.UUID:
        user = uow.users.create_user(
            username=username, email=f"{username}@example.org", password_hash=_password_hash()
        )
        grant_role_in(uow, user)  # a key never carries more than its owner holds
        return user.id

    return db.run(create)


def set_key_columns(db: Database, key_id: str, **values: Any) -> None:
    """Change a key behind vutf's back (to move it in time)."""
    db.run(
        lambda uow: uow.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(values))
    )


def audit_rows(db: Database) -> list[tuple[str, str, str | None]]:
    def read(uow: UnitOfWork) -> list[tuple[str, str, str | None]]:
        rows = uow.session.scalars(select(AuditLog).order_by(AuditLog.seq))
        return [(row.action, row.status, row.resource_id) for row in rows]

    return db.run(read, read_only=True)


def key_row(db: Database, key_id: str) -> dict[str, Any]:
    def read(uow: UnitOfWork) -> dict[str, Any]:
        key = uow.keys.get_or_raise(key_id, include_deleted=True)
        return {prop.key: getattr(key, prop.key) for prop in ApiKey.__mapper__.column_attrs}

    return db.run(read, read_only=True)


def database_text(db: Database) -> str:
    """Every value of every row of the three tables, as text."""
    parts: list[str] = []
    with db.engine.connect() as conn:
        for table in ("users", "api_keys", "audit_log"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                parts.extend(str(value) for value in row)
    return "\n".join(parts)


def create_key(run_cli: RunCli, *args: str) -> dict[str, Any]:
    result = run_cli("keys", "create", "--json", *args)
    assert result.exit_code == 0, result.stderr
    created: dict[str, Any] = result.json()
    return created


def verify(run_cli: RunCli, key: str, *args: str) -> CliResult:
    return run_cli("keys", "verify", *args, input=key + "\n")


@pytest.fixture
def alice(db: Database) -> uuid.UUID:
    return make_user(db, "alice")


class Transcript:
    """Every output after the key was issued, to prove the key never shows again."""

    def __init__(self) -> None:
        self.outputs: list[str] = []

    def add(self, result: CliResult) -> CliResult:
        self.outputs.extend([result.stdout, result.stderr])
        return result

    def assert_absent(self, *secrets: str) -> None:
        for output in self.outputs:
            for secret in secrets:
                assert secret not in output


def secret_parts(key: str) -> tuple[str, str]:
    """The whole key and its random part (without prefix and checksum)."""
    random_part = key[len(key_format.KEY_PREFIX) : -key_format.CHECKSUM_LENGTH]
    assert len(random_part) == key_format.RANDOM_LENGTH
    return key, random_part


# -- the whole lifecycle -------------------------------------------------------------------
def test_lifecycle_create_verify_use_rotate_grace_revoke(
    run_cli: RunCli, db: Database, alice: uuid.UUID
) -> None:
    after_creation = Transcript()  # every output after the first key was issued
    after_rotation = Transcript()  # every output after the second key was issued
    watching = [after_creation]

    def seen(result: CliResult) -> CliResult:
        for transcript in watching:
            transcript.add(result)
        return result

    created = create_key(run_cli, "--user", "alice", "--name", "ci", "-s", "read,targets:write")
    key = created["key"]
    assert key_format.is_well_formed(key)
    assert created["key_prefix"] == key[:12]
    assert created["username"] == "alice"
    assert created["scopes"] == ["read", "targets:write"]
    assert created["state"] == "active"
    assert "key_hash" not in created

    # verify from stdin: valid; it counts no use but the attempt is one audit row
    before = audit_rows(db)
    ok = seen(verify(run_cli, key, "--json"))
    assert ok.exit_code == 0, ok.stderr
    verified = ok.json()
    assert verified["valid"] is True
    assert verified["key_id"] == created["id"]
    assert verified["username"] == "alice"
    assert verified["scopes"] == ["read", "targets:write"]
    assert verified["expires_at"] == created["expires_at"]
    assert verified["usage_recorded"] is False
    assert audit_rows(db) == [*before, ("api_key.use", "success", created["id"])]
    assert key_row(db, created["id"])["usage_count"] == 0
    # --no-record is the read-only check: nothing at all is written
    before = audit_rows(db)
    assert seen(verify(run_cli, key, "--no-record")).exit_code == 0
    assert audit_rows(db) == before
    both = seen(verify(run_cli, key, "--no-record", "--record-usage"))
    assert (both.exit_code, audit_rows(db)) == (2, before)

    # --record-usage counts each use
    for expected in (1, 2):
        used = seen(verify(run_cli, key, "--record-usage", "--json"))
        assert used.exit_code == 0, used.stderr
        assert used.json()["usage_count"] == expected
    row = key_row(db, created["id"])
    assert row["usage_count"] == 2
    assert row["last_used_at"] is not None

    # rotate with a grace period: the old key keeps working meanwhile
    rotated = seen(run_cli("keys", "rotate", key[:12], "--grace", "1h", "--json"))
    assert rotated.exit_code == 0, rotated.stderr
    new = rotated.json()
    new_key = new["key"]
    assert key_format.is_well_formed(new_key)
    assert new_key != key
    assert new["name"] == "ci"
    assert new["username"] == "alice"
    assert new["scopes"] == ["read", "targets:write"]
    assert new["replaced_key_id"] == created["id"]
    assert new["replaced_key_name"].startswith("ci (rotated ")
    old_ends = datetime.fromisoformat(new["replaced_key_expires_at"])
    assert timedelta(minutes=59) < old_ends - datetime.now(UTC) <= timedelta(hours=1)
    # From here on, outputs must lack both keys.
    watching.append(after_rotation)
    in_grace = seen(verify(run_cli, key, "--json"))
    assert in_grace.exit_code == 0, in_grace.stderr
    assert in_grace.json()["key_id"] == created["id"]
    assert seen(verify(run_cli, new_key)).exit_code == 0

    # after the grace period the old key counts as expired
    set_key_columns(db, created["id"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    expired = seen(verify(run_cli, key))
    assert expired.exit_code == 5
    assert expired.stderr == "error: API key expired\n"
    assert expired.stdout == ""

    # revoke the new key: it is refused with that reason
    revoked = seen(run_cli("--yes", "keys", "revoke", new["key_prefix"]))
    assert revoked.exit_code == 0, revoked.stderr
    refused = seen(verify(run_cli, new_key, "--json"))
    assert refused.exit_code == 5
    assert refused.error() == {"code": "denied", "message": "API key revoked", "exit_code": 5}

    for command in (
        ("keys", "list", "--any-state"),
        ("keys", "list", "--any-state", "--json"),
        ("keys", "list", "--any-state", "-o", "csv"),
        ("keys", "show", created["id"], "--json"),
        ("keys", "show", new["id"]),
    ):
        shown = seen(run_cli(*command))
        assert shown.exit_code == 0, shown.stderr

    # Each key only ever appeared in the response that issued it.
    after_creation.assert_absent(*secret_parts(key))
    after_rotation.assert_absent(*secret_parts(new_key))
    stored = database_text(db)
    for secret in (*secret_parts(key), *secret_parts(new_key)):
        assert secret not in stored
    # Nor does the digest reach the audit log.
    digests = [key_row(db, created["id"])["key_hash"], key_row(db, new["id"])["key_hash"]]
    with db.engine.connect() as conn:
        audit_text = "\n".join(
            str(value) for row in conn.execute(text("SELECT * FROM audit_log")) for value in row
        )
    for digest in digests:
        assert digest not in audit_text

    # One row per mutation and one per verification (none for --no-record).
    assert [(action, status) for action, status, _ in audit_rows(db)] == [
        ("api_key.create", "success"),
        ("api_key.use", "success"),
        ("api_key.use", "success"),
        ("api_key.use", "success"),
        ("api_key.rotate", "success"),
        ("api_key.retire", "success"),
        ("api_key.use", "success"),
        ("api_key.use", "success"),
        ("api_key.use", "failure"),
        ("api_key.revoke", "success"),
        ("api_key.use", "failure"),
    ]


def test_create_table_output_marks_the_key_as_shown_once(run_cli: RunCli, alice: uuid.UUID) -> None:
    result = run_cli("keys", "create", "--user", "alice", "--name", "ci")
    assert result.exit_code == 0, result.stderr
    first_line, *rest = result.stdout.splitlines()
    assert first_line == "API key created: store it now, it will not be shown again"
    key_line = next(line for line in rest if line.startswith("key "))
    key = key_line.split()[-1]
    assert key_format.is_well_formed(key)
    assert "key_hash" not in result.stdout
    assert "will not be shown again" in result.stderr
    assert key not in result.stderr
    # Defaults: scope read, expiry in 90 days.
    assert any(line.split() == ["scopes", "read"] for line in rest)
    expires = next(line for line in rest if line.startswith("expires_at"))
    in_90_days = (datetime.now(UTC) + timedelta(days=90)).strftime("%Y-%m-%d")
    assert in_90_days in expires


def test_machine_formats_carry_the_key_only_when_issuing(run_cli: RunCli, alice: uuid.UUID) -> None:
    created = run_cli("keys", "create", "-u", "alice", "-n", "ci", "-o", "jsonl")
    assert created.exit_code == 0, created.stderr
    (record,) = created.jsonl()
    assert set(record) == {"key", *VIEW_FIELDS}
    as_csv = run_cli("keys", "create", "-u", "alice", "-n", "ci2", "--no-expiry", "-o", "csv")
    header, row = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert header[0] == "key"
    assert key_format.is_well_formed(row[0])
    assert row[header.index("expires_at")] == ""

    for command in (
        ("keys", "list", "--json"),
        ("keys", "show", record["key_prefix"], "--json"),
        ("keys", "extend", record["key_prefix"], "--expires-in", "5d", "--json"),
        ("keys", "set-scopes", record["key_prefix"], "-s", "write", "--json"),
    ):
        result = run_cli(*command)
        assert result.exit_code == 0, result.stderr
        payload = result.json()
        for obj in payload if isinstance(payload, list) else [payload]:
            assert "key" not in obj
            assert "key_hash" not in obj
            assert set(obj) == set(VIEW_FIELDS)
    verified = verify(run_cli, record["key"], "--json")
    assert "key" not in verified.json()


# -- --secret-file -------------------------------------------------------------------------
def test_secret_file_gets_the_key_and_stdout_does_not(
    run_cli: RunCli, db: Database, alice: uuid.UUID, tmp_path: Path
) -> None:
    path = tmp_path / "ci.key"
    result = run_cli(
        "keys", "create", "-u", "alice", "-n", "ci", "--secret-file", str(path), "--json"
    )
    assert result.exit_code == 0, result.stderr
    payload = result.json()
    assert "key" not in payload
    assert payload["secret_file"] == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    key = content.removesuffix("\n")
    assert content == key + "\n"
    assert key_format.is_well_formed(key)
    assert key[:12] == payload["key_prefix"]
    for secret in secret_parts(key):
        assert secret not in result.stdout
        assert secret not in result.stderr

    by_file = run_cli("keys", "verify", "--key-file", str(path), "--json")
    assert by_file.exit_code == 0, by_file.stderr
    assert by_file.json()["key_id"] == payload["id"]

    # An existing file is never overwritten, and then no key is issued either.
    again = run_cli("keys", "create", "-u", "alice", "-n", "other", "--secret-file", str(path))
    assert again.exit_code == 4
    assert "already exists" in again.stderr
    assert again.stdout == ""
    assert path.read_text() == content
    assert run_cli("keys", "list", "--json").json()[0]["name"] == "ci"
    assert len(run_cli("keys", "list", "--json").json()) == 1

    # A refused creation leaves no file behind.
    dup = tmp_path / "dup.key"
    refused = run_cli("keys", "create", "-u", "alice", "-n", "ci", "--secret-file", str(dup))
    assert refused.exit_code == 4
    assert not dup.exists()


def test_secret_file_table_output_and_rotation(
    run_cli: RunCli, alice: uuid.UUID, tmp_path: Path
) -> None:
    first = tmp_path / "first.key"
    created = run_cli("keys", "create", "-u", "alice", "-n", "ci", "--secret-file", str(first))
    assert created.exit_code == 0, created.stderr
    key = first.read_text().strip()
    lines = created.stdout.splitlines()
    assert lines[0] == "API key created; the key is in secret_file (mode 0600)"
    assert lines[1].split() == ["secret_file", str(first)]
    assert created.stderr == f"key written to {first}\n"
    assert key not in created.stdout

    second = tmp_path / "second.key"
    rotated = run_cli("keys", "rotate", key[:12], "--secret-file", str(second), "--json")
    assert rotated.exit_code == 0, rotated.stderr
    new_key = second.read_text().strip()
    assert stat.S_IMODE(second.stat().st_mode) == 0o600
    assert "key" not in rotated.json()
    assert new_key not in rotated.stdout + rotated.stderr
    # Without a grace period the old key stops at once.
    assert verify(run_cli, key).stderr == "error: API key expired\n"
    assert verify(run_cli, new_key).exit_code == 0


# -- refusals of create ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-s", "read,bogus"), "unknown scope 'bogus'"),
        (("--expires-at", "2001-01-01T00:00:00Z"), "is not in the future"),
        (("--expires-in", "soon"), "invalid duration"),
        (("--expires-in", "1d", "--expires-at", "2099-01-01"), "mutually exclusive"),
        (("--expires-in", "1d", "--no-expiry"), "mutually exclusive"),
    ],
)
def test_create_refuses_invalid_input_with_exit_2_and_no_audit_row(
    run_cli: RunCli, db: Database, alice: uuid.UUID, args: tuple[str, ...], message: str
) -> None:
    result = run_cli("keys", "create", "-u", "alice", "-n", "ci", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert audit_rows(db) == []
    assert run_cli("keys", "list", "--any-state", "--json").json() == []


def test_create_refuses_unknown_user_and_duplicate_name_with_failure_rows(
    run_cli: RunCli, db: Database, alice: uuid.UUID
) -> None:
    unknown = run_cli("keys", "create", "-u", "nobody", "-n", "ci", "--json")
    assert unknown.exit_code == 3
    assert unknown.error()["code"] == "not_found"

    create_key(run_cli, "-u", "alice", "-n", "ci")
    duplicate = run_cli("keys", "create", "-u", "alice", "-n", "ci")
    assert duplicate.exit_code == 4
    assert "already has an API key named 'ci'" in duplicate.stderr

    assert [(action, status) for action, status, _ in audit_rows(db)] == [
        ("api_key.create", "failure"),
        ("api_key.create", "success"),
        ("api_key.create", "failure"),
    ]


# -- verify ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("not-a-key", "malformed API key"),
        ("vutf_" + "A" * 31, "malformed API key"),
        # Right shape, wrong checksum.
        ("vutf_" + "A" * 32 + "000000", "API key checksum mismatch"),
    ],
)
def test_verify_rejects_a_malformed_key_without_touching_the_database(
    key: str, reason: str
) -> None:
    started = time.monotonic()
    result = invoke(
        ["--database-url", UNREACHABLE_URL, "keys", "verify"],
        input=key + "\n",
        env={"VUTF_DB_DEADLINE": "10"},
    )
    assert time.monotonic() - started < 2
    assert result.exit_code == 5
    assert result.stderr == f"error: {reason}\n"
    assert result.stdout == ""


def test_verify_of_a_well_formed_key_needs_the_database() -> None:
    # The contrast to the test above: with a key that passes the format check,
    # the same unreachable database is contacted and the answer is exit 7.
    result = invoke(
        ["--database-url", UNREACHABLE_URL, "keys", "verify"],
        input=key_format.generate_api_key(),
        env={"VUTF_DB_DEADLINE": "1", "VUTF_CONNECT_TIMEOUT": "1"},
    )
    assert result.exit_code == 7
    assert "127.0.0.1:1" in result.stderr


def test_verify_reads_stdin_only_and_refuses_empty_input() -> None:
    empty = invoke(["--database-url", UNREACHABLE_URL, "keys", "verify"], input="")
    assert empty.exit_code == 2
    assert "empty API key" in empty.stderr
    argv = invoke(["keys", "verify", key_format.generate_api_key()])
    assert argv.exit_code == 2


def test_verify_reasons_for_owner_state_and_scopes(
    run_cli: RunCli, db: Database, alice: uuid.UUID
) -> None:
    key = create_key(run_cli, "-u", "alice", "-n", "ci", "-s", "targets:*,sessions:read")["key"]

    granted = verify(run_cli, key, "--require-scope", "targets:write", "--json")
    assert granted.exit_code == 0, granted.stderr
    assert granted.json()["required_scope"] == "targets:write"
    denied = verify(run_cli, key, "--require-scope", "users:read")
    assert denied.exit_code == 5
    assert denied.stderr == "error: API key lacks scope 'users:read'\n"
    unknown_scope = verify(run_cli, key, "--require-scope", "everything")
    assert unknown_scope.exit_code == 2

    unknown = verify(run_cli, key_format.generate_api_key())
    assert (unknown.exit_code, unknown.stderr) == (5, "error: unknown API key\n")

    def deactivate(uow: UnitOfWork) -> None:
        uow.users.set_active(uow.users.require("alice"), False)

    db.run(deactivate)
    inactive = verify(run_cli, key)
    assert (inactive.exit_code, inactive.stderr) == (5, "error: owner inactive\n")

    def delete(uow: UnitOfWork) -> None:
        uow.users.delete(uow.users.require("alice"))

    db.run(delete)
    deleted = verify(run_cli, key, "--record-usage", "--json")
    assert deleted.exit_code == 5
    assert deleted.error()["message"] == "owner deleted"
    # Every attempt that reached the database is one api_key.use row (an
    # unknown scope is a usage error, not an attempt).
    assert [(a, s) for a, s, _ in audit_rows(db)] == [
        ("api_key.create", "success"),
        ("api_key.use", "success"),
        ("api_key.use", "failure"),
        ("api_key.use", "failure"),
        ("api_key.use", "failure"),
        ("api_key.use", "failure"),
    ]


# -- list -----------------------------------------------------------------------------------
@pytest.fixture
def keyring(run_cli: RunCli, db: Database, alice: uuid.UUID) -> dict[str, dict[str, Any]]:
    """Keys in every state: alice's active, soon, stale, expired, revoked; bob's active."""
    make_user(db, "bob")
    keys = {
        "active": create_key(run_cli, "-u", "alice", "-n", "active"),
        "soon": create_key(run_cli, "-u", "alice", "-n", "soon", "--expires-in", "3d"),
        "stale": create_key(run_cli, "-u", "alice", "-n", "stale", "--no-expiry"),
        "expired": create_key(run_cli, "-u", "alice", "-n", "expired"),
        "revoked": create_key(run_cli, "-u", "alice", "-n", "revoked"),
        "bob": create_key(run_cli, "-u", "bob", "-n", "bobs"),
    }
    now = datetime.now(UTC)
    set_key_columns(db, keys["expired"]["id"], expires_at=now - timedelta(days=1))
    set_key_columns(db, keys["stale"]["id"], last_used_at=now - timedelta(days=120))
    assert run_cli("--yes", "keys", "revoke", keys["revoked"]["id"]).exit_code == 0
    return keys


def _names(result: CliResult) -> set[str]:
    assert result.exit_code == 0, result.stderr
    return {row["name"] for row in result.json()}


def test_list_filters_by_state_expiry_usage_and_owner(
    run_cli: RunCli, keyring: dict[str, dict[str, Any]]
) -> None:
    assert _names(run_cli("keys", "list", "--json")) == {"active", "soon", "stale", "bobs"}
    assert _names(run_cli("keys", "list", "--active", "--json")) == {
        "active",
        "soon",
        "stale",
        "bobs",
    }
    assert _names(run_cli("keys", "list", "--expired", "--json")) == {"expired"}
    assert _names(run_cli("keys", "list", "--revoked", "--json")) == {"revoked"}
    assert _names(run_cli("keys", "list", "--any-state", "--json")) == {
        "active",
        "soon",
        "stale",
        "expired",
        "revoked",
        "bobs",
    }
    assert _names(run_cli("keys", "list", "--expiring-within", "7d", "--json")) == {"soon"}
    # Never used but only just created is not "unused for 90 days".
    assert _names(run_cli("keys", "list", "--unused-for", "90d", "--json")) == {"stale"}
    assert _names(run_cli("keys", "list", "--user", "bob", "--json")) == {"bobs"}
    assert _names(run_cli("keys", "list", "-u", "alice", "--revoked", "--json")) == {"revoked"}

    states = {
        row["name"]: row["state"] for row in run_cli("keys", "list", "--any-state", "--json").json()
    }
    assert states["expired"] == "expired"
    assert states["revoked"] == "revoked"

    unknown_user = run_cli("keys", "list", "--user", "nobody")
    assert unknown_user.exit_code == 3
    both = run_cli("keys", "list", "--active", "--revoked")
    assert both.exit_code == 2
    bad_duration = run_cli("keys", "list", "--unused-for", "forever")
    assert bad_duration.exit_code == 2

    empty = run_cli("keys", "list", "--user", "bob", "--expired", "--json")
    assert (empty.exit_code, empty.stdout) == (0, "[]\n")
    assert "no expired API keys found" in empty.stderr


def test_list_table_and_csv_columns(run_cli: RunCli, keyring: dict[str, dict[str, Any]]) -> None:
    table = run_cli("keys", "list", "--user", "bob")
    assert table.exit_code == 0, table.stderr
    header, _rule, row = table.stdout.splitlines()
    assert header.split() == [
        "prefix",
        "name",
        "owner",
        "scopes",
        "created",
        "expires",
        "last",
        "used",
        "uses",
        "state",
    ]
    assert row.split()[:4] == [keyring["bob"]["key_prefix"], "bobs", "bob", "read"]
    assert row.split()[-3:] == ["never", "0", "active"]

    as_csv = run_cli("keys", "list", "--any-state", "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert set(rows[0]) == set(VIEW_FIELDS)
    assert len(rows) == 6
    assert not any("key_hash" in line for line in as_csv.stdout.splitlines())


def test_list_pages_with_a_cursor(run_cli: RunCli, keyring: dict[str, dict[str, Any]]) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        args = ["keys", "list", "--any-state", "--limit", "2", "--json"]
        if cursor is not None:
            args += ["--cursor", cursor]
        result = run_cli(*args)
        assert result.exit_code == 0, result.stderr
        page = result.json()
        assert len(page) <= 2
        seen += [row["id"] for row in page]
        pages += 1
        marker = "next cursor: "
        lines = [line for line in result.stderr.splitlines() if line.startswith(marker)]
        if not lines:
            break
        cursor = lines[0].removeprefix(marker)
    assert pages == 3
    assert sorted(seen) == sorted(key["id"] for key in keyring.values())
    assert len(set(seen)) == len(seen)

    # A script paging quietly still gets the cursor (and nothing else) on stderr.
    quiet = run_cli("keys", "list", "--any-state", "--limit", "5", "--quiet", "--json")
    assert len(quiet.json()) == 5
    assert quiet.stderr.startswith("next cursor: ")
    assert quiet.stderr.count("\n") == 1

    bad = run_cli("keys", "list", "--cursor", "garbage")
    assert bad.exit_code == 2
    too_many = run_cli("keys", "list", "--limit", "0")
    assert too_many.exit_code == 2


# -- revoke ---------------------------------------------------------------------------------
def test_revoke_is_all_or_nothing_and_idempotent(
    run_cli: RunCli, db: Database, keyring: dict[str, dict[str, Any]]
) -> None:
    active, soon = keyring["active"], keyring["soon"]
    rows_before = audit_rows(db)
    mixed = run_cli("--yes", "keys", "revoke", active["key_prefix"], "vutf_NoSuch1", soon["id"])
    assert mixed.exit_code == 3
    assert "vutf_NoSuch1" in mixed.stderr
    assert key_row(db, active["id"])["revoked_at"] is None
    assert key_row(db, soon["id"])["revoked_at"] is None
    assert audit_rows(db)[len(rows_before) :] == [("api_key.revoke", "failure", None)]

    # Without a terminal and without --yes nothing happens.
    unconfirmed = run_cli("keys", "revoke", active["key_prefix"])
    assert unconfirmed.exit_code == 2
    assert "--yes" in unconfirmed.stderr
    assert key_row(db, active["id"])["revoked_at"] is None

    both = run_cli(
        "--yes",
        "keys",
        "revoke",
        active["key_prefix"],
        soon["id"],
        keyring["revoked"]["id"],
        "--json",
    )
    assert both.exit_code == 0, both.stderr
    changed = {row["name"]: row["changed"] for row in both.json()}
    assert changed == {"active": True, "soon": True, "revoked": False}
    assert all(row["state"] == "revoked" for row in both.json())
    assert "already revoked (unchanged)" in both.stderr

    again = run_cli("--yes", "keys", "revoke", active["key_prefix"], "--json")
    assert again.exit_code == 0
    assert [row["changed"] for row in again.json()] == [False]
    new_rows = audit_rows(db)[len(rows_before) + 1 :]
    assert sorted(new_rows) == sorted(
        [
            ("api_key.revoke", "success", active["id"]),
            ("api_key.revoke", "success", soon["id"]),
        ]
    )


def test_revoke_every_key_of_a_user(
    run_cli: RunCli, db: Database, keyring: dict[str, dict[str, Any]]
) -> None:
    result = run_cli("--yes", "keys", "revoke", "--user", "alice", "--all", "--json")
    assert result.exit_code == 0, result.stderr
    changed = {row["name"] for row in result.json() if row["changed"]}
    assert changed == {"active", "soon", "stale", "expired"}
    assert _names(run_cli("keys", "list", "--json")) == {"bobs"}
    revokes = [r for r in audit_rows(db) if r[:2] == ("api_key.revoke", "success")]
    assert len(revokes) == 5  # four now, one made by the keyring fixture

    assert run_cli("--yes", "keys", "revoke", "--user", "alice").exit_code == 2
    assert run_cli("--yes", "keys", "revoke", "--all").exit_code == 2
    assert run_cli("--yes", "keys", "revoke").exit_code == 2
    assert run_cli("--yes", "keys", "revoke", "--user", "nobody", "--all").exit_code == 3


# -- rotate, extend, set-scopes, show ----------------------------------------------------------
def test_rotate_refusals(run_cli: RunCli, keyring: dict[str, dict[str, Any]]) -> None:
    revoked = run_cli("keys", "rotate", keyring["revoked"]["key_prefix"])
    assert revoked.exit_code == 4
    assert "is revoked" in revoked.stderr
    expired = run_cli("keys", "rotate", keyring["expired"]["key_prefix"])
    assert expired.exit_code == 4
    unknown = run_cli("keys", "rotate", "vutf_NoSuch1")
    assert unknown.exit_code == 3
    whole_key = run_cli("keys", "rotate", key_format.generate_api_key())
    assert whole_key.exit_code == 2
    assert "never the key itself" in whole_key.stderr
    bad_grace = run_cli("keys", "rotate", keyring["active"]["key_prefix"], "--grace", "-1h")
    assert bad_grace.exit_code == 2


def test_extend_set_scopes_and_show(
    run_cli: RunCli, db: Database, keyring: dict[str, dict[str, Any]]
) -> None:
    prefix = keyring["active"]["key_prefix"]
    extended = run_cli("keys", "extend", prefix, "--expires-in", "10d", "--json")
    assert extended.exit_code == 0, extended.stderr
    expires = datetime.fromisoformat(extended.json()["expires_at"])
    assert timedelta(days=10) - timedelta(minutes=1) < expires - datetime.now(UTC)
    assert expires - datetime.now(UTC) <= timedelta(days=10)
    assert "expiry of" in extended.stderr

    assert run_cli("keys", "extend", prefix).exit_code == 2
    assert run_cli("keys", "extend", prefix, "--expires-at", "2000-01-01").exit_code == 2
    revoked = run_cli("keys", "extend", keyring["revoked"]["key_prefix"], "--expires-in", "1d")
    assert revoked.exit_code == 4

    scoped = run_cli(
        "keys", "set-scopes", prefix, "-s", "write", "-s", "targets:read,read", "--json"
    )
    assert scoped.exit_code == 0, scoped.stderr
    assert scoped.json()["scopes"] == ["read", "targets:read", "write"]
    same = run_cli("keys", "set-scopes", prefix, "-s", "read,write,targets:read")
    assert same.exit_code == 0
    assert "unchanged" in same.stderr
    assert run_cli("keys", "set-scopes", prefix, "-s", "nope").exit_code == 2
    assert run_cli("keys", "set-scopes", prefix).exit_code == 2

    mine = [r for r in audit_rows(db) if r[2] == keyring["active"]["id"]]
    assert mine == [
        ("api_key.create", "success", keyring["active"]["id"]),
        ("api_key.extend", "success", keyring["active"]["id"]),
        ("api_key.set_scopes", "success", keyring["active"]["id"]),
    ]

    shown = run_cli("keys", "show", prefix)
    assert shown.exit_code == 0, shown.stderr
    assert any(line.split() == ["name", "active"] for line in shown.stdout.splitlines())
    assert run_cli("keys", "show", "vutf_NoSuch1").exit_code == 3
    assert run_cli("keys", "show", "abc").exit_code == 2


# -- prune ----------------------------------------------------------------------------------
def test_prune_expired_soft_deletes_long_ended_keys(
    run_cli: RunCli, db: Database, keyring: dict[str, dict[str, Any]]
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    set_key_columns(db, keyring["revoked"]["id"], revoked_at=long_ago)
    set_key_columns(db, keyring["soon"]["id"], expires_at=long_ago)
    # keyring["expired"] ended a day ago: too recent for the default 30 days.

    unconfirmed = run_cli("keys", "prune-expired")
    assert unconfirmed.exit_code == 2
    pruned = run_cli("--yes", "keys", "prune-expired", "--json")
    assert pruned.exit_code == 0, pruned.stderr
    result = pruned.json()
    assert result["pruned"] == 2
    assert sorted(result["key_ids"]) == sorted([keyring["revoked"]["id"], keyring["soon"]["id"]])
    assert "pruned 2 API key(s)" in pruned.stderr
    for name in ("revoked", "soon"):
        row = key_row(db, keyring[name]["id"])
        assert row["is_deleted"] is True
        assert row["deleted_by"] == "tester@test"
    states = {
        r["name"]: r["state"] for r in run_cli("keys", "list", "--any-state", "--json").json()
    }
    assert states["soon"] == "deleted"
    assert states["revoked"] == "deleted"
    assert states["expired"] == "expired"

    nothing = run_cli("keys", "prune-expired", "--json")  # nothing to do: no confirmation needed
    assert nothing.exit_code == 0, nothing.stderr
    assert nothing.json()["pruned"] == 0

    shorter = run_cli("--yes", "keys", "prune-expired", "--older-than", "1h", "--json")
    assert shorter.json()["pruned"] == 1
    prunes = [r for r in audit_rows(db) if r[0] == "api_key.prune"]
    assert sorted(prunes) == sorted(
        ("api_key.prune", "success", keyring[name]["id"]) for name in ("revoked", "soon", "expired")
    )
    # A pruned key's name is free again.
    create_key(run_cli, "-u", "alice", "-n", "soon")


def test_errors_never_echo_a_key(run_cli: RunCli, alice: uuid.UUID) -> None:
    key = create_key(run_cli, "-u", "alice", "-n", "ci")["key"]
    wrong_checksum = key[:-1] + ("A" if key[-1] != "A" else "B")
    for result in (
        run_cli("keys", "show", key, "--json"),
        run_cli("--yes", "keys", "revoke", key, "--json"),
        verify(run_cli, wrong_checksum, "--json"),
    ):
        assert result.exit_code in (2, 5)
        assert result.error()["exit_code"] == result.exit_code
        for secret in (*secret_parts(key), *secret_parts(wrong_checksum)):
            assert secret not in result.stderr
            assert secret not in result.stdout
