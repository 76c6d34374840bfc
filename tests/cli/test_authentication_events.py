"""Every authentication attempt is one audit row (issue 13, items 1 and 3).

``vutf users check-password`` appends one ``user.login`` row and ``vutf keys
verify`` one ``api_key.use`` row per attempt, success or failure, with the
subject's user id whenever it exists and the reason of a refusal in
``changes``; an inactive or deleted user is refused like a wrong password.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.cli.conftest import RunCli
from tests.roles_support import grant_role_in
from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, AuditLog
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Denied
from vutf_cli.security import api_keys as key_format
from vutf_cli.services import key_verification, user_passwords

PASSWORD = "correct horse battery staple"
WRONG = "definitely not the right one"
REFUSAL = "error: invalid username or password\n"


def make_user(db: Database, username: str) -> uuid.UUID:
    password_hash = db.passwords.hash(PASSWORD)

    def create(uow: UnitOfWork) -> uuid.UUID:
        user = uow.users.create_user(
            username=username, email=f"{username}@example.org", password_hash=password_hash
        )
        grant_role_in(uow, user)  # a key never carries more than its owner holds
        return user.id

    return db.run(create)


def rows_after(db: Database, seq: int) -> list[dict[str, Any]]:
    def read(uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = uow.session.scalars(
            sa.select(AuditLog).where(AuditLog.seq > seq).order_by(AuditLog.seq)
        )
        return [
            {
                "action": row.action,
                "status": row.status,
                "user_id": row.user_id,
                "resource_id": row.resource_id,
                "changes": row.changes,
                "ip_address": row.ip_address,
                "user_agent": row.user_agent,
            }
            for row in rows
        ]

    return db.run(read, read_only=True)


def head(db: Database) -> int:
    return db.run(
        lambda uow: uow.session.scalar(sa.select(sa.func.coalesce(sa.func.max(AuditLog.seq), 0))),
        read_only=True,
    )


def one_row(db: Database, seq: int) -> dict[str, Any]:
    rows = rows_after(db, seq)
    assert len(rows) == 1, rows
    return rows[0]


def check(run_cli: RunCli, user: str, password: str) -> tuple[int, str]:
    result = run_cli("users", "check-password", user, "--password-stdin", input=password)
    return result.exit_code, result.stderr


def test_each_password_check_is_one_login_row(run_cli: RunCli, db: Database) -> None:
    alice = make_user(db, "alice")
    bob = make_user(db, "bob")

    def attempt(user: str, password: str) -> tuple[int, str, dict[str, Any]]:
        seq = head(db)
        exit_code, stderr = check(run_cli, user, password)
        return exit_code, stderr, one_row(db, seq)

    code, _, row = attempt("alice", PASSWORD)
    assert (code, row["action"], row["status"]) == (0, "user.login", "success")
    assert (row["user_id"], row["resource_id"], row["changes"]) == (alice, str(alice), None)

    expected = [
        ("alice", WRONG, alice, {"reason": "wrong_password", "failed_login_count": 1}),
        ("nobody", PASSWORD, None, {"reason": "unknown_user", "identifier": "nobody"}),
    ]
    for user, password, user_id, changes in expected:
        code, stderr, row = attempt(user, password)
        assert (code, stderr) == (5, REFUSAL)
        assert (row["action"], row["status"]) == ("user.login", "failure")
        assert (row["user_id"], row["changes"]) == (user_id, changes)

    # Inactive: the right password is refused like a wrong one (not counted
    # for lockout); a wrong password for an inactive user is a wrong password.
    assert run_cli("users", "deactivate", "bob").exit_code == 0
    for password, changes in (
        (PASSWORD, {"reason": "inactive"}),
        (WRONG, {"reason": "wrong_password", "failed_login_count": 1}),
    ):
        code, stderr, row = attempt("bob", password)
        assert (code, stderr, row["status"]) == (5, REFUSAL, "failure")
        assert (row["user_id"], row["changes"]) == (bob, changes)

    # Deleted: refused whatever the password, and the row still names the user.
    assert run_cli("--yes", "users", "delete", "bob").exit_code == 0
    code, stderr, row = attempt("bob", PASSWORD)
    assert (code, stderr, row["status"]) == (5, REFUSAL, "failure")
    assert (row["user_id"], row["changes"]) == (bob, {"reason": "deleted"})

    # The operator finds alice's failed logins.
    listed = run_cli("audit", "list", "--user", "alice", "--status", "failure", "--json")
    assert listed.exit_code == 0, listed.stderr
    failures = [(e["action"], e["changes"]) for e in listed.json()]
    assert failures == [("user.login", {"reason": "wrong_password", "failed_login_count": 1})]


def test_a_library_caller_records_ip_and_user_agent(db: Database) -> None:
    alice = make_user(db, "alice")
    seq = head(db)
    user_passwords.check_password(
        db, "alice", PASSWORD, ip_address="203.0.113.7", user_agent="curl/8.5"
    )
    with pytest.raises(Denied, match=r"^invalid username or password$"):
        user_passwords.check_password(db, "alice", WRONG, ip_address="203.0.113.8")
    rows = rows_after(db, seq)
    assert [(r["status"], r["user_id"], r["ip_address"], r["user_agent"]) for r in rows] == [
        ("success", alice, "203.0.113.7", "curl/8.5"),
        ("failure", alice, "203.0.113.8", None),
    ]


def test_each_key_verification_is_one_use_row(run_cli: RunCli, db: Database) -> None:
    alice = make_user(db, "alice")

    def create(name: str, *scopes: str) -> dict[str, Any]:
        result = run_cli(
            "keys", "create", "-u", "alice", "-n", name, "-s", ",".join(scopes), "--json"
        )
        assert result.exit_code == 0, result.stderr
        created: dict[str, Any] = result.json()
        return created

    def attempt(key: str, *args: str) -> tuple[int, str, dict[str, Any]]:
        seq = head(db)
        result = run_cli("keys", "verify", *args, input=key + "\n")
        return result.exit_code, result.stderr, one_row(db, seq)

    good = create("good", "targets:read")
    code, _, row = attempt(good["key"])
    assert (code, row["action"], row["status"]) == (0, "api_key.use", "success")
    assert (row["user_id"], row["resource_id"]) == (alice, good["id"])
    assert row["changes"] == {"usage_recorded": False}

    code, stderr, row = attempt(good["key"], "--require-scope", "users:write")
    assert (code, stderr) == (5, "error: API key lacks scope 'users:write'\n")
    assert (row["status"], row["user_id"], row["resource_id"]) == ("failure", alice, good["id"])
    assert row["changes"] == {"reason": "missing_scope", "usage_recorded": False}

    code, stderr, row = attempt(key_format.generate_api_key())
    assert (code, stderr) == (5, "error: unknown API key\n")
    assert (row["status"], row["user_id"], row["resource_id"]) == ("failure", None, None)
    assert row["changes"] == {"reason": "unknown_key", "usage_recorded": False}

    expired = create("old", "read")
    db.run(
        lambda uow: uow.session.execute(
            sa.update(ApiKey)
            .where(ApiKey.id == expired["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    )
    revoked = create("gone", "read")
    assert run_cli("--yes", "keys", "revoke", revoked["key_prefix"]).exit_code == 0
    for key, reason in ((expired, "expired"), (revoked, "revoked")):
        code, stderr, row = attempt(key["key"], "--record-usage")
        assert (code, stderr) == (5, f"error: API key {reason}\n")
        assert (row["status"], row["user_id"], row["resource_id"]) == ("failure", alice, key["id"])
        assert row["changes"] == {"reason": reason, "usage_recorded": False}

    assert run_cli("users", "deactivate", "alice").exit_code == 0
    code, stderr, row = attempt(good["key"])
    assert (code, stderr) == (5, "error: owner inactive\n")
    assert (row["user_id"], row["changes"]) == (
        alice,
        {"reason": "inactive_owner", "usage_recorded": False},
    )

    # A malformed key never reaches the database, so it is not recorded.
    seq = head(db)
    assert run_cli("keys", "verify", input="vutf_not-a-key\n").exit_code == 5
    assert rows_after(db, seq) == []


def test_a_key_verification_records_ip_and_user_agent(run_cli: RunCli, db: Database) -> None:
    make_user(db, "alice")
    created = run_cli("keys", "create", "-u", "alice", "-n", "ci", "--json")
    key = created.json()["key"]
    seq = head(db)
    key_verification.verify_key(db, key, ip_address="198.51.100.1", user_agent="svc/1")
    row = one_row(db, seq)
    assert (row["status"], row["ip_address"], row["user_agent"]) == (
        "success",
        "198.51.100.1",
        "svc/1",
    )
