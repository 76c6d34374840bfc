"""Many ``vutf`` processes at once against one database (issue 6, cases 7 and 8).

Every command is a process of its own that runs the installed ``vutf``
console script, on both backends, so everything between argv and the
database is exercised: the retry policy, SQLite's ``BEGIN IMMEDIATE`` queue
(writers wait for the lock instead of failing with "database is locked"),
PostgreSQL's unique-index waits and the audit chain's advisory lock.

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

Python's start-up (~0.5 s of CPU per ``vutf`` run here) would dominate both
cases, and the interpreter start is not what they test, so each command is a
process forked from a warm interpreter that has imported everything: case 7
forks its twenty racers and releases them together (a pipe they all wait on
is closed), and case 8's workers fork a fresh process per command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
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
# Whole case-8 run, per backend: 36-97 s were measured on a shared 2-core machine
# (load average 8-28 from other work); 7 s for one worker alone.
LOAD_BOUND_SECONDS = 300.0

# Everything one command imports, loaded once in a parent process that then
# forks a fresh process per command (a Python start costs ~0.5 s of CPU).
# ``run_child`` runs in such a fork: the
# installed script with its own stdin, stdout and stderr files, its own engine
# and database connections, and its exit code as the process's; SIGALRM ends
# a command that hangs.
WARM_PARENT = """
import importlib, json, os, runpy, signal, sys, time, traceback
for module in (
    "argon2", "sqlalchemy", "sqlalchemy.orm", "vutf_cli.output",
    "vutf_cli.cli.app", "vutf_cli.cli.users", "vutf_cli.cli.keys",
    "vutf_cli.services.users", "vutf_cli.services.keys", "vutf_cli.db.database",
    "vutf_cli.db.repositories.users", "vutf_cli.db.repositories.api_keys",
    "vutf_cli.db.repositories.audit", "vutf_cli.security.passwords",
    "vutf_cli.security.api_keys",
):
    importlib.import_module(module)
for module in ("platformdirs", "zoneinfo"):
    try:  # imported lazily by the command line, in the versions installed here
        importlib.import_module(module)
    except ImportError:
        pass


def fork_command(script, args, stdin, stdout, stderr, timeout, wait=None):
    # Fork a process that runs the script (after wait(), if given); its pid.
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.alarm(timeout)
        for fd, path, flags in (
            (0, stdin, os.O_RDONLY),
            (1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        if wait is not None:
            wait()
        sys.argv = [script, *args]
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (exc.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(int(code))


def outcome(label, pid, stdout, stderr, **extra):
    # Wait for the forked command; its outcome as a JSON-ready dict.
    _, status = os.waitpid(pid, 0)
    with open(stdout) as out, open(stderr) as err:
        return {"label": label, "returncode": os.waitstatus_to_exitcode(status),
                "stdout": out.read(), "stderr": err.read(), **extra}
"""

# Case 7: fork every racer first; each waits on a pipe that the parent then
# closes, so that all of them start at once and race on the database.
RACE = (
    WARM_PARENT
    + """
folder, script, racers, timeout, *args = sys.argv[1:]
gun, trigger = os.pipe()


def wait_for_the_gun():
    os.close(trigger)
    os.read(gun, 1)  # end of file once the parent closed its end


files = [
    [os.path.join(folder, f"racer-{index}.{n}") for n in ("in", "out", "err")]
    for index in range(int(racers))
]
pids = [fork_command(script, args, *paths, int(timeout), wait=wait_for_the_gun) for paths in files]
os.close(trigger)
outcomes = [
    outcome(f"racer {index}", pid, *paths[1:])
    for index, (pid, paths) in enumerate(zip(pids, files))
]
json.dump(outcomes, sys.stdout)
"""
)

# Case 8: 400 Python starts on two cores took six minutes, so each worker
# imports once and then forks a fresh process per command.
FORK_WORKER = (
    WARM_PARENT
    + """
folder, script, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(os.path.join(folder, "plan.json")) as plan_file:
    plan = json.load(plan_file)
ids, outcomes = {}, []
for number, command in enumerate(plan):
    args = [ids[arg[1:]] if arg.startswith("@") else arg for arg in command["args"]]
    stdin, stdout, stderr = (os.path.join(folder, f"{number}.{n}") for n in ("in", "out", "err"))
    with open(stdin, "w") as secret:
        secret.write(command.get("stdin", ""))
    began, started = time.monotonic(), time.time()
    pid = fork_command(script, args, stdin, stdout, stderr, timeout)
    result = outcome(command["label"], pid, stdout, stderr)
    seconds = time.monotonic() - began
    result.update({"seconds": seconds, "started": started, "ended": started + seconds,
                   "worker": int(os.path.basename(folder).rsplit("-", 1)[1])})
    outcomes.append(result)
    if result["returncode"] != 0:
        break
    if "remember" in command:
        ids[command["remember"]] = json.loads(result["stdout"])["id"]
json.dump(outcomes, sys.stdout)
"""
)


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
    returncode: int | None  # None: killed after COMMAND_TIMEOUT (negative: by a signal)
    stdout: str
    stderr: str
    seconds: float = 0.0
    worker: int = -1
    started: float = 0.0  # wall clock, to check that the workers overlapped
    ended: float = 0.0

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


def _kill_leftovers(processes: Sequence[subprocess.Popen[str]]) -> None:
    """Kill and reap whatever a failed test left running (each by its own pid)."""
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.communicate()


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
    for index in range(RACERS):
        (tmp_path / f"racer-{index}.in").write_text(_password(f"racer {index}"))
    race = [sys.executable, "-c", RACE, str(tmp_path), str(VUTF)]
    started = time.monotonic()
    parent = subprocess.Popen(
        [*race, str(RACERS), str(int(COMMAND_TIMEOUT)), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # Each racer ends itself after COMMAND_TIMEOUT (SIGALRM); this is the parent's guard.
        stdout, stderr = parent.communicate(timeout=COMMAND_TIMEOUT + 60)
    finally:
        _kill_leftovers([parent])
    elapsed = time.monotonic() - started
    assert parent.returncode == 0, stderr[-2000:]
    outcomes = [Outcome(**record) for record in json.loads(stdout)]
    assert len(outcomes) == RACERS

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
def _plan(worker: int) -> list[dict[str, Any]]:
    """This worker's 50 commands, step by step over its own five users.

    An argument ``@NAME`` stands for the id in the JSON output of the earlier
    command that has ``remember: NAME`` (the revoke needs the key's id).
    """
    plan: list[dict[str, Any]] = []
    usernames = [f"w{worker}-user{index}" for index in range(USERS_PER_WORKER)]
    for step in STEPS:
        for name in usernames:
            command: dict[str, Any] = {"label": f"worker {worker} {step} {name}"}
            if step == "create":
                args = ["users", "create", name, "--email", f"{name}@example.com"]
                args += ["--full-name", f"User {name}", "--password-stdin"]
                args += ["--superuser"]  # a key carries no scope its owner lacks
                command["stdin"] = _password(f"{name} first")
            elif step == "key-create-first":
                args = ["keys", "create", "--user", name, "--name", "first"]
                command["remember"] = f"first-key-of-{name}"
            elif step == "update-name":
                args = ["users", "update", name, "--full-name", f"Renamed {name}"]
            elif step == "key-create-second":
                args = ["keys", "create", "--user", name, "--name", "second"]
                args += ["--scope", "read,targets:write", "--expires-in", "30d"]
            elif step == "set-password":
                args = ["users", "set-password", name, "--password-stdin"]
                command["stdin"] = _password(f"{name} second")
            elif step == "deactivate":
                args = ["users", "deactivate", name]
            elif step == "revoke-first":
                args = ["--yes", "keys", "revoke", f"@first-key-of-{name}"]
            elif step == "activate":
                args = ["users", "activate", name]
            elif step == "verify":
                args = ["users", "verify", name]
            else:
                args = ["users", "update", name, "--email", f"{name}@changed.example.com"]
            command["args"] = [*args, "-o", "json"]
            plan.append(command)
    return plan


def _run_workers(
    plans: Sequence[list[dict[str, Any]]], env: Mapping[str, str], tmp_path: Path
) -> list[Outcome]:
    """Run the plans in concurrent fork-server workers; every command's outcome, in order."""
    processes = []
    for worker, plan in enumerate(plans):
        folder = tmp_path / f"worker-{worker}"
        folder.mkdir()
        (folder / "plan.json").write_text(json.dumps(plan))
        argv = [sys.executable, "-c", FORK_WORKER, str(folder), str(VUTF)]
        processes.append(
            subprocess.Popen(
                [*argv, str(int(COMMAND_TIMEOUT))],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=dict(env),
            )
        )
    deadline = time.monotonic() + LOAD_BOUND_SECONDS
    outcomes: list[Outcome] = []
    try:
        for worker, process in enumerate(processes):
            try:
                stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {worker} still running after {LOAD_BOUND_SECONDS:.0f}s")
            assert process.returncode == 0, f"worker {worker} crashed: {stderr[-2000:]}"
            outcomes += [Outcome(**record) for record in json.loads(stdout)]
    finally:
        _kill_leftovers(processes)
    return outcomes


def test_eight_workers_run_mixed_mutations_without_loss_or_deadlock(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    env = _vutf_env(database_url)
    started = time.monotonic()
    outcomes = _run_workers([_plan(worker) for worker in range(WORKERS)], env, tmp_path)
    elapsed = time.monotonic() - started

    failures = [outcome.describe() for outcome in outcomes if outcome.returncode != 0]
    assert failures == []
    assert len(outcomes) == WORKERS * COMMANDS_PER_WORKER
    # The workers really ran at the same time: there is a moment when all were busy.
    spans = [
        (min(o.started for o in mine), max(o.ended for o in mine))
        for mine in ([o for o in outcomes if o.worker == w] for w in range(WORKERS))
    ]
    assert max(first for first, _ in spans) < min(last for _, last in spans)

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
        f"(slowest command {max(o.seconds for o in outcomes):.2f}s)"
    )
