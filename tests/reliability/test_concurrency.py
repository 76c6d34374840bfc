"""Many ``vutf`` processes at once against one database (issue 6, cases 7 and 8).

These run the installed ``vutf`` console script in real subprocesses, on both
backends, so everything between argv and the database is exercised: the
retry policy, SQLite's ``BEGIN IMMEDIATE`` queue (writers wait for the lock
instead of failing with "database is locked"), PostgreSQL's unique-index
waits and the audit chain's advisory lock.

* Case 7, a race for one name: 20 processes run ``vutf users create same-name``
  released together; exactly one wins (exit 0), the other 19 get a conflict
  (exit 4), and the database holds one user, one ``success`` audit row and a
  ``failure`` row per refusal.
* Case 8, sustained mixed load: 8 concurrent workers each run 50 mutations
  (users and keys) on users of their own; every command exits 0, the final
  rows are exactly what the commands imply, every mutation has exactly one
  ``success`` audit row, ``seq`` is contiguous and ``vutf audit verify``
  passes.  Every subprocess has a timeout, so a deadlock fails the test
  instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey, AuditLog, User
from vutf_cli.db.uow import UnitOfWork

pytestmark = pytest.mark.slow

VUTF = Path(sys.executable).with_name("vutf")

# One command may queue behind every other writer; far longer than that means a hang.
COMMAND_TIMEOUT = 120.0

RACERS = 20
RACE_NAME = "same-name"

WORKERS = 8
USERS_PER_WORKER = 5
# Ten steps per user, so each worker runs 10 x 5 = 50 commands.
STEPS = (
    "create",
    "key-create-first",
    "update-name",
    "key-create-second",
    "set-password",
    "deactivate",
    "revoke-first",
    "activate",
    "verify",
    "update-email",
)
COMMANDS_PER_WORKER = len(STEPS) * USERS_PER_WORKER
# What each step leaves in the audit log (one success row per command).
STEP_ACTIONS = {
    "create": "user.create",
    "key-create-first": "api_key.create",
    "update-name": "user.update",
    "key-create-second": "api_key.create",
    "set-password": "user.set_password",
    "deactivate": "user.deactivate",
    "revoke-first": "api_key.revoke",
    "activate": "user.activate",
    "verify": "user.verify",
    "update-email": "user.update",
}
# A user starts at version 1 and every step that changes it bumps the version once.
USER_STEPS = ("update-name", "set-password", "deactivate", "activate", "verify", "update-email")
USER_VERSION_AFTER = 1 + len(USER_STEPS)
# Whole run, per backend; measured at about a minute on a 2-core machine.
LOAD_BOUND_SECONDS = 300.0

# Runs the installed script once its imports are warm and a start file appears,
# so that the processes race on the database rather than on Python start-up.
BARRIER_WRAPPER = """
import os, runpy, sys, time
import argon2, sqlalchemy, sqlalchemy.orm
import vutf_cli.cli.app, vutf_cli.cli.users, vutf_cli.services.users
import vutf_cli.db.database, vutf_cli.db.repositories.users, vutf_cli.db.repositories.audit
import vutf_cli.security.passwords
ready, go, script, *args = sys.argv[1:]
open(ready, "w").close()
deadline = time.monotonic() + 120
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("barrier: never released")
    time.sleep(0.001)
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""


def _password(tag: str) -> str:
    return f"concurrency password {tag} long enough"


def _vutf_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["VUTF_DATABASE_URL"] = database_url
    assert env.get("VUTF_ARGON2_PROFILE") == "test", "the cheap argon2 profile must be set"
    return env


@dataclass(frozen=True)
class Outcome:
    label: str
    returncode: int | None  # None: killed after COMMAND_TIMEOUT
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"{self.label}: exit {self.returncode}: {self.stderr.strip()[-300:]}"


def _run_vutf(
    label: str, args: Sequence[str], env: Mapping[str, str], stdin: str | None = None
) -> Outcome:
    try:
        done = subprocess.run(
            [str(VUTF), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return Outcome(label, None, "", stderr)
    return Outcome(label, done.returncode, done.stdout, done.stderr)


def _scalar(db: Database, statement: Any) -> Any:
    return db.run(lambda uow: uow.session.execute(statement).scalar_one(), read_only=True)


def _audit_seqs(db: Database) -> list[int]:
    def read(uow: UnitOfWork) -> list[int]:
        return list(uow.session.scalars(select(AuditLog.seq).order_by(AuditLog.seq)))

    return db.run(read, read_only=True)


def _audit_counts(db: Database) -> Counter[tuple[str, str]]:
    def read(uow: UnitOfWork) -> Counter[tuple[str, str]]:
        rows = uow.session.execute(
            select(AuditLog.action, AuditLog.status, func.count()).group_by(
                AuditLog.action, AuditLog.status
            )
        )
        return Counter({(action, status): count for action, status, count in rows})

    return db.run(read, read_only=True)


def _verify_chain_with_cli(env: Mapping[str, str], expected_rows: int) -> None:
    verified = _run_vutf("audit verify", ["audit", "verify", "-o", "json"], env)
    assert verified.returncode == 0, verified.describe()
    report = json.loads(verified.stdout)
    assert report["ok"] is True
    assert report["checked"] == expected_rows
    assert report["first_seq"] == 1
    assert report["last_seq"] == expected_rows


# -- case 7: twenty processes create the same user ----------------------------------
def test_twenty_processes_race_to_create_one_user(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    env = _vutf_env(database_url)
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{index}" for index in range(RACERS)]
    args = [
        "users",
        "create",
        RACE_NAME,
        "--email",
        f"{RACE_NAME}@example.com",
        "--password-stdin",
        "-o",
        "json",
    ]
    wrapper = [sys.executable, "-c", BARRIER_WRAPPER]
    processes = []
    for index in range(RACERS):
        secret = tmp_path / f"password-{index}"
        secret.write_text(_password(f"racer {index}"))
        with secret.open() as stdin:
            processes.append(
                subprocess.Popen(
                    [*wrapper, str(ready[index]), str(go), str(VUTF), *args],
                    stdin=stdin,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
            )

    # Release them together once every one has finished importing.
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while not all(path.exists() for path in ready):
        assert time.monotonic() < deadline, "the racers never got ready"
        assert all(p.poll() is None for p in processes), "a racer died before the start"
        time.sleep(0.01)
    released = time.monotonic()
    go.touch()

    outcomes: list[Outcome] = []
    for index, process in enumerate(processes):
        try:
            stdout, stderr = process.communicate(timeout=COMMAND_TIMEOUT)
            outcomes.append(Outcome(f"racer {index}", process.returncode, stdout, stderr))
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            outcomes.append(Outcome(f"racer {index}", None, stdout, stderr))
    elapsed = time.monotonic() - released

    codes = Counter(outcome.returncode for outcome in outcomes)
    assert codes == {0: 1, 4: RACERS - 1}, [o.describe() for o in outcomes if o.returncode != 0]
    winner = next(outcome for outcome in outcomes if outcome.returncode == 0)
    assert json.loads(winner.stdout)["username"] == RACE_NAME
    for loser in (outcome for outcome in outcomes if outcome.returncode == 4):
        assert loser.stdout == ""
        error = json.loads(loser.stderr.strip().splitlines()[-1])["error"]
        assert error["code"] == "conflict"
        assert error["exit_code"] == 4
        assert "already exists" in error["message"]

    users = _scalar(db, select(func.count()).select_from(User))
    assert users == 1
    audit = _audit_counts(db)
    assert audit == {("user.create", "success"): 1, ("user.create", "failure"): RACERS - 1}
    assert _audit_seqs(db) == list(range(1, RACERS + 1))
    _verify_chain_with_cli(env, RACERS)
    print(f"\n[case 7 {db.dialect}] {RACERS} racers, exits {dict(codes)}, {elapsed:.1f}s")


# -- case 8: eight workers, fifty mixed mutations each -------------------------------
def _worker(worker: int, env: Mapping[str, str]) -> list[Outcome]:
    """Run this worker's 50 commands in order; stop at the first failure."""
    outcomes: list[Outcome] = []
    first_keys: dict[str, str] = {}
    usernames = [f"w{worker}-user{index}" for index in range(USERS_PER_WORKER)]
    for step in STEPS:
        for name in usernames:
            label = f"worker {worker} {step} {name}"
            stdin: str | None = None
            if step == "create":
                args = ["users", "create", name, "--email", f"{name}@example.com"]
                args += ["--full-name", f"User {name}", "--password-stdin"]
                stdin = _password(f"{name} first")
            elif step == "key-create-first":
                args = ["keys", "create", "--user", name, "--name", "first"]
            elif step == "update-name":
                args = ["users", "update", name, "--full-name", f"Renamed {name}"]
            elif step == "key-create-second":
                args = ["keys", "create", "--user", name, "--name", "second"]
                args += ["--scope", "read,targets:write", "--expires-in", "30d"]
            elif step == "set-password":
                args = ["users", "set-password", name, "--password-stdin"]
                stdin = _password(f"{name} second")
            elif step == "deactivate":
                args = ["users", "deactivate", name]
            elif step == "revoke-first":
                args = ["--yes", "keys", "revoke", first_keys[name]]
            elif step == "activate":
                args = ["users", "activate", name]
            elif step == "verify":
                args = ["users", "verify", name]
            else:
                args = ["users", "update", name, "--email", f"{name}@changed.example.com"]
            outcome = _run_vutf(label, [*args, "-o", "json"], env, stdin)
            outcomes.append(outcome)
            if outcome.returncode != 0:
                return outcomes
            if step == "key-create-first":
                first_keys[name] = json.loads(outcome.stdout)["id"]
    return outcomes


def test_eight_workers_run_mixed_mutations_without_loss_or_deadlock(
    database_url: str, db: Database
) -> None:
    env = _vutf_env(database_url)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(_worker, worker, env) for worker in range(WORKERS)]
        results = [future.result(timeout=LOAD_BOUND_SECONDS * 2) for future in futures]
    elapsed = time.monotonic() - started

    outcomes = [outcome for result in results for outcome in result]
    failures = [outcome.describe() for outcome in outcomes if outcome.returncode != 0]
    assert failures == []
    assert len(outcomes) == WORKERS * COMMANDS_PER_WORKER
    assert elapsed < LOAD_BOUND_SECONDS, f"took {elapsed:.0f}s: something queued far too long"

    # The users: each went through every step, in order, exactly once.
    total_users = WORKERS * USERS_PER_WORKER

    def read_users(uow: UnitOfWork) -> list[tuple[str, str, str | None, bool, bool, bool, int]]:
        rows = uow.session.execute(
            select(
                User.username,
                User.email,
                User.full_name,
                User.is_active,
                User.is_verified,
                User.is_deleted,
                User.version,
            ).order_by(User.username)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]

    users = db.run(read_users, read_only=True)
    assert len(users) == total_users
    for username, email, full_name, active, verified, deleted, version in users:
        assert email == f"{username}@changed.example.com"
        assert full_name == f"Renamed {username}"
        assert (active, verified, deleted) == (True, True, False)
        assert version == USER_VERSION_AFTER

    # The keys: two per user, the first revoked, the second live with its scopes.
    def read_keys(uow: UnitOfWork) -> Counter[tuple[str, bool, str]]:
        rows = uow.session.execute(select(ApiKey.name, ApiKey.revoked_at, ApiKey.permissions))
        return Counter(
            (name, revoked_at is not None, ",".join(sorted(permissions)))
            for name, revoked_at, permissions in rows
        )

    keys = db.run(read_keys, read_only=True)
    assert keys == {
        ("first", True, "read"): total_users,
        ("second", False, "read,targets:write"): total_users,
    }

    # The audit log: one success row per command, nothing else, one linear chain.
    expected_audit: Counter[tuple[str, str]] = Counter()
    for step in STEPS:
        expected_audit[(STEP_ACTIONS[step], "success")] += total_users
    audit = _audit_counts(db)
    assert audit == expected_audit
    total_rows = WORKERS * COMMANDS_PER_WORKER
    assert sum(audit.values()) == total_rows
    assert _audit_seqs(db) == list(range(1, total_rows + 1))
    _verify_chain_with_cli(env, total_rows)

    # The last password set is the one that works.
    checked = _run_vutf(
        "check-password",
        ["users", "check-password", "w7-user4", "--password-stdin"],
        env,
        _password("w7-user4 second"),
    )
    assert checked.returncode == 0, checked.describe()

    print(
        f"\n[case 8 {db.dialect}] {WORKERS} workers x {COMMANDS_PER_WORKER} commands = "
        f"{len(outcomes)} commands, all exit 0, {elapsed:.1f}s "
        f"({elapsed / len(outcomes) * WORKERS:.2f}s per command per worker)"
    )
