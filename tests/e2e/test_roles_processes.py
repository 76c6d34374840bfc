"""Roles from many processes at once, with the installed `vutf`, on SQLite and PostgreSQL.

Issue 15, item 5: assigning and removing the same role from many processes
ends with exactly one live assignment or none, never a duplicate; a role
deleted while it is being assigned ends in a clean refusal (3 when the role
was already gone, 4 when it went between lookup and lock), never an orphan.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog, Role, UserRole
from vutf_cli.services import roles
from vutf_cli.services import users as user_service

pytestmark = pytest.mark.slow

VUTF = Path(sys.executable).with_name("vutf")
PROCESSES = 8
TIMEOUT = 120


def _all_at_once(database_url: str, commands: list[list[str]]) -> list[tuple[int, str]]:
    env = {**os.environ, "VUTF_DATABASE_URL": database_url, "VUTF_ARGON2_PROFILE": "test"}
    running = [
        subprocess.Popen(
            [str(VUTF), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    results = []
    for process in running:
        _, stderr = process.communicate(timeout=TIMEOUT)
        results.append((process.returncode, stderr))
    return results


def _count(db: Database, statement: sa.Select[tuple[int]]) -> int:
    return int(db.run(lambda uow: uow.session.execute(statement).scalar_one(), read_only=True))


LIVE_ASSIGNMENTS = sa.select(sa.func.count()).select_from(UserRole).where(~UserRole.is_deleted)


@pytest.fixture
def bob(db: Database) -> None:
    for name in ("bob", "carol", "dave"):
        user_service.create_user(
            db, username=name, email=f"{name}@example.com", password="correct horse battery staple"
        )


@pytest.mark.usefixtures("bob")
def test_many_processes_assigning_one_role_leave_one_assignment(
    database_url: str, db: Database
) -> None:
    results = _all_at_once(database_url, [["users", "add-role", "bob", "viewer"]] * PROCESSES)
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [4] * (PROCESSES - 1), results
    assert _count(db, LIVE_ASSIGNMENTS) == 1
    statuses = sa.select(sa.func.count()).where(
        AuditLog.action == "user_role.assign", AuditLog.status == "failure"
    )
    assert _count(db, statuses) == PROCESSES - 1  # every refusal is on the record


@pytest.mark.usefixtures("bob")
def test_assigning_and_removing_at_once_ends_with_one_or_none(
    database_url: str, db: Database
) -> None:
    commands = [
        ["users", "add-role", "bob", "viewer", "--if-not-exists"]
        if index % 2 == 0
        else ["users", "remove-role", "bob", "viewer", "--if-exists"]
        for index in range(PROCESSES)
    ]
    results = _all_at_once(database_url, commands)
    assert [code for code, _ in results] == [0] * PROCESSES, results
    assert _count(db, LIVE_ASSIGNMENTS) in (0, 1)


@pytest.mark.usefixtures("bob")
def test_a_role_deleted_while_being_assigned_leaves_no_orphan(
    database_url: str, db: Database
) -> None:
    roles.create_role(db, name="ops", scopes=["write"])
    commands = [["--yes", "roles", "delete", "ops"]] + [
        ["users", "add-role", name, "ops"] for name in ("bob", "carol", "dave")
    ]
    results = _all_at_once(database_url, commands)
    assert results[0][0] == 0, results[0]
    assert {code for code, _ in results[1:]} <= {0, 3, 4}, results
    orphans = (
        sa.select(sa.func.count())
        .select_from(UserRole)
        .join(Role, Role.id == UserRole.role_id)
        .where(~UserRole.is_deleted, Role.is_deleted)
    )
    assert _count(db, orphans) == 0
