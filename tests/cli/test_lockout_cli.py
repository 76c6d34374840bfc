"""Lockout, `users unlock`, `users show` state and weak imported hashes, through the
real entry point on SQLite and PostgreSQL (issue 11 item 7, issue 13 items 3-4)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher

from tests.cli.conftest import RunCli
from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.security.passwords import PROFILES, Passwords

PASSWORD = "correct horse battery staple"
WRONG = "definitely not the right one"
REFUSAL = "error: invalid username or password\n"
LOCKOUT = {"VUTF_LOCKOUT_THRESHOLD": "2", "VUTF_LOCKOUT_DURATION": "600"}
WEAK_HASH = PasswordHasher.from_parameters(
    dataclasses.replace(PROFILES["test"], memory_cost=1024)
).hash(PASSWORD)


def create(run_cli: RunCli, username: str) -> None:
    result = run_cli(
        "users",
        "create",
        username,
        "--email",
        f"{username}@example.com",
        "--password-stdin",
        input=PASSWORD,
    )
    assert result.exit_code == 0, result.stderr


def check(run_cli: RunCli, username: str, password: str) -> tuple[int, str]:
    result = run_cli(
        "users", "check-password", username, "--password-stdin", input=password, env=LOCKOUT
    )
    return result.exit_code, result.stderr


def show(run_cli: RunCli, username: str) -> dict[str, Any]:
    result = run_cli("users", "show", username, "--json")
    assert result.exit_code == 0, result.stderr
    shown: dict[str, Any] = result.json()
    return shown


def audit_rows(db: Database, action: str) -> list[AuditLog]:
    def read(uow: UnitOfWork) -> list[AuditLog]:
        rows = list(
            uow.session.scalars(
                sa.select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.seq)
            )
        )
        uow.session.expunge_all()
        return rows

    return db.run(read, read_only=True)


def test_a_locked_user_is_refused_like_a_wrong_password_until_unlocked(
    run_cli: RunCli, db: Database
) -> None:
    create(run_cli, "alice")
    assert show(run_cli, "alice")["state"] == "active"
    assert [check(run_cli, "alice", WRONG) for _ in range(2)] == [(5, REFUSAL)] * 2
    # Locked: the right password gets the answer of a wrong one.
    assert check(run_cli, "alice", PASSWORD) == (5, REFUSAL)
    assert check(run_cli, "nobody", PASSWORD) == (5, REFUSAL)
    shown = show(run_cli, "alice")
    assert (shown["state"], shown["failed_login_count"]) == ("locked", 3)
    assert shown["locked_until"].endswith("Z")
    assert shown["last_failed_login_at"] is not None
    reasons = [row.changes["reason"] for row in audit_rows(db, "user.login") if row.changes]
    assert reasons == ["wrong_password", "wrong_password", "locked", "unknown_user"]

    # The table shows the state and the counters too.
    table = run_cli("users", "show", "alice")
    assert table.exit_code == 0, table.stderr
    lines = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines() if line}
    assert lines["state"] == ["locked"]
    assert lines["failed_login_count"] == ["3"]
    assert lines["locked_until"]

    unlocked = run_cli("users", "unlock", "alice", "--json")
    assert unlocked.exit_code == 0, unlocked.stderr
    assert "unlocked user 'alice'" in unlocked.stderr
    record = unlocked.json()
    assert (record["state"], record["failed_login_count"], record["locked_until"]) == (
        "active",
        0,
        None,
    )
    again = run_cli("users", "unlock", "alice")
    assert again.exit_code == 0
    assert "user 'alice' is not locked; nothing changed" in again.stderr
    code, stderr = check(run_cli, "alice", PASSWORD)
    assert (code, stderr.splitlines()[0]) == (0, "the password matches for user 'alice'")
    shown = show(run_cli, "alice")
    assert (shown["state"], shown["failed_login_count"], shown["locked_until"]) == (
        "active",
        0,
        None,
    )
    [unlock_row] = audit_rows(db, "user.unlock")
    assert (unlock_row.status, unlock_row.actor) == ("success", "tester@test")
    assert unlock_row.user_id is not None
    assert unlock_row.changes is not None
    assert unlock_row.changes["was_locked"] is True

    missing = run_cli("users", "unlock", "nobody")
    assert (missing.exit_code, missing.stdout) == (3, "")
    assert missing.stderr.startswith("error: user 'nobody' not found")


def test_users_show_says_inactive_and_deleted(run_cli: RunCli) -> None:
    create(run_cli, "bob")
    assert run_cli("users", "deactivate", "bob").exit_code == 0
    assert show(run_cli, "bob")["state"] == "inactive"
    assert run_cli("--yes", "users", "delete", "bob").exit_code == 0
    assert show(run_cli, "bob")["state"] == "deleted"


def test_a_bad_lockout_setting_is_exit_2_before_anything_runs(run_cli: RunCli) -> None:
    for name, value in (("VUTF_LOCKOUT_THRESHOLD", "nan"), ("VUTF_LOCKOUT_WINDOW", "-5")):
        result = run_cli("users", "list", env={name: value})
        assert result.exit_code == 2
        assert result.stderr.startswith(f"error: {name} (environment) must be ")
        assert len(result.stderr.splitlines()) == 1


def test_weak_hashes_are_refused_at_import_unless_allowed_then_rehashed(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    good = Passwords("test").hash(PASSWORD)
    source = tmp_path / "users.jsonl"
    source.write_text(
        "".join(
            json.dumps({"username": name, "email": f"{name}@example.com", "password_hash": h})
            + "\n"
            for name, h in (("strong", good), ("legacy", WEAK_HASH))
        )
    )
    refused = run_cli("users", "import", str(source))
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert [line for line in refused.stderr.splitlines() if line.startswith("line ")] == [
        "line 2: password_hash is outside the configured argon2 profile's bounds "
        "(m 1024 < 8192); --allow-weak-hashes imports it to be rehashed at the next login"
    ]
    assert run_cli("users", "list", "--json").json() == []

    allowed = run_cli("users", "import", str(source), "--allow-weak-hashes")
    assert allowed.exit_code == 0, allowed.stderr
    created = {row.changes["username"]: row.changes for row in audit_rows(db, "user.create")}
    assert created["legacy"]["rehash_on_login"] is True
    assert "rehash_on_login" not in created["strong"]
    [summary] = audit_rows(db, "user.import")
    assert summary.changes is not None
    assert summary.changes["weak_hashes"] == 1

    assert check(run_cli, "legacy", PASSWORD)[0] == 0
    [*_, login] = audit_rows(db, "user.login")
    assert login.changes == {"rehashed": True}

    def stored(uow: UnitOfWork) -> str:
        found = uow.session.scalar(sa.select(User.password_hash).where(User.username == "legacy"))
        assert found is not None
        return found

    rehashed = db.run(stored, read_only=True)
    assert rehashed != WEAK_HASH
    assert not db.passwords.needs_rehash(rehashed)


def test_hashes_costlier_than_the_bound_are_refused_at_import_like_weak_ones(
    run_cli: RunCli, db: Database, tmp_path: Path
) -> None:
    """Review finding 8: a hash every attempt would pay minutes for is not let in silently."""
    test = PROFILES["test"]  # m=8192, t=1
    within = dataclasses.replace(test, memory_cost=4 * 8192, time_cost=4)  # at the bound
    beyond = dataclasses.replace(test, memory_cost=4 * 8192 + 8, time_cost=5)
    source = tmp_path / "users.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "username": name,
                    "email": f"{name}@example.com",
                    "password_hash": PasswordHasher.from_parameters(params).hash(PASSWORD),
                }
            )
            + "\n"
            for name, params in (("within", within), ("beyond", beyond))
        )
    )
    refused = run_cli("users", "import", str(source))
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert [line for line in refused.stderr.splitlines() if line.startswith("line ")] == [
        "line 2: password_hash is outside the configured argon2 profile's bounds "
        "(m 32776 > 4 \u00d7 8192, t 5 > 4 \u00d7 1); --allow-weak-hashes imports it as it is"
    ]
    allowed = run_cli("users", "import", str(source), "--allow-weak-hashes")
    assert allowed.exit_code == 0, allowed.stderr
    # Kept as it is, not marked for a rehash that would be a downgrade.
    created = {row.changes["username"]: row.changes for row in audit_rows(db, "user.create")}
    assert "rehash_on_login" not in created["beyond"]
