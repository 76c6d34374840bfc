"""Lockout (issue 13 item 4) on real SQLite and PostgreSQL.

N failed password checks, each within the window of the previous one, lock
the user for the lock period, even for the right password; a success resets
the count; ``unlock_user`` ends a lock (audited, idempotent); failures from
many processes at once are counted exactly (one guarded atomic UPDATE each).
"""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog, User
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Denied, InvalidInput, NotFound
from vutf_cli.services import lockout, user_passwords
from vutf_cli.settings import Settings, load_settings

PASSWORD = "correct horse battery staple"
WRONG = "definitely not the right one"
USERS = User.__table__


def database(settings: Settings, **lockout_settings: int) -> Database:
    return Database(settings.with_overrides(**lockout_settings))


@pytest.fixture
def locking_db(settings: Settings) -> Iterator[Database]:
    db = database(settings, lockout_threshold=3, lockout_window=600, lockout_duration=900)
    try:
        yield db
    finally:
        db.dispose()


def make_user(db: Database, username: str, **values: Any) -> uuid.UUID:
    password_hash = db.passwords.hash(PASSWORD)
    return db.run(
        lambda uow: (
            uow.users.create_user(
                username=username,
                email=f"{username}@example.org",
                password_hash=password_hash,
                **values,
            ).id
        )
    )


def counters(db: Database, username: str) -> dict[str, Any]:
    def read(uow: UnitOfWork) -> dict[str, Any]:
        row = uow.session.execute(
            sa.select(
                USERS.c.failed_login_count,
                USERS.c.last_failed_login_at,
                USERS.c.locked_until,
                USERS.c.version,
                USERS.c.updated_at,
            ).where(USERS.c.username == username)
        ).one()
        return dict(row._mapping)

    return db.run(read, read_only=True)


def shift(db: Database, username: str, delta: timedelta) -> None:
    """Move the user's failure and lock times by ``delta`` (as if time had passed)."""

    def move(uow: UnitOfWork) -> None:
        row = uow.session.execute(
            sa.select(USERS.c.last_failed_login_at, USERS.c.locked_until).where(
                USERS.c.username == username
            )
        ).one()
        uow.session.execute(
            sa.update(USERS)
            .where(USERS.c.username == username)
            .values(
                last_failed_login_at=None if row[0] is None else row[0] + delta,
                locked_until=None if row[1] is None else row[1] + delta,
            )
        )

    db.run(move)


def login_rows(db: Database, username: str | None = None) -> list[dict[str, Any]]:
    def read(uow: UnitOfWork) -> list[dict[str, Any]]:
        statement = sa.select(AuditLog).where(AuditLog.action == "user.login")
        rows = uow.session.scalars(statement.order_by(AuditLog.seq))
        return [{"status": row.status, **(row.changes or {})} for row in rows]

    return db.run(read, read_only=True)


def attempt(db: Database, username: str, password: str) -> str | None:
    """None if the check passed, else the reason of its audit row."""
    refused = False
    try:
        user_passwords.check_password(db, username, password)
    except Denied:
        refused = True
    if not refused:
        return None
    return str(login_rows(db)[-1]["reason"])


def test_threshold_failures_lock_even_the_right_password(locking_db: Database) -> None:
    db = locking_db
    make_user(db, "ann")
    before = counters(db, "ann")
    assert [attempt(db, "ann", WRONG) for _ in range(3)] == ["wrong_password"] * 3
    state = counters(db, "ann")
    assert state["failed_login_count"] == 3
    assert state["locked_until"] is not None
    lock_span = state["locked_until"] - state["last_failed_login_at"]
    assert timedelta(seconds=899) < lock_span <= timedelta(seconds=900)
    # The failure that locked says so; later attempts are "locked", right password or not,
    # counted, and do not extend the lock.
    rows = login_rows(db)
    assert rows[-1]["locked_until"] is not None
    assert [row.get("failed_login_count") for row in rows] == [1, 2, 3]
    assert attempt(db, "ann", PASSWORD) == "locked"
    assert attempt(db, "ann", WRONG) == "locked"
    after = counters(db, "ann")
    assert (after["failed_login_count"], after["locked_until"]) == (5, state["locked_until"])
    # Login bookkeeping is not an administrative change.
    assert (after["version"], after["updated_at"]) == (before["version"], before["updated_at"])


def test_the_lock_runs_out_and_a_success_resets_the_count(locking_db: Database) -> None:
    db = locking_db
    make_user(db, "bea")
    for _ in range(3):
        attempt(db, "bea", WRONG)
    assert attempt(db, "bea", PASSWORD) == "locked"
    shift(db, "bea", -timedelta(seconds=901))  # the lock is over
    view = user_passwords.check_password(db, "bea", PASSWORD)
    assert (view.state, view.failed_login_count, view.locked_until) == ("active", 0, None)
    state = counters(db, "bea")
    assert (state["failed_login_count"], state["locked_until"]) == (0, None)
    # After a lock ran out, the first failure starts a new count.
    for _ in range(3):
        attempt(db, "bea", WRONG)
    shift(db, "bea", -timedelta(seconds=901))
    assert attempt(db, "bea", WRONG) == "wrong_password"
    assert counters(db, "bea")["failed_login_count"] == 1
    assert counters(db, "bea")["locked_until"] is None


def test_failures_count_only_within_the_window_of_the_previous_one(
    locking_db: Database,
) -> None:
    db = locking_db
    make_user(db, "cat")
    attempt(db, "cat", WRONG)
    attempt(db, "cat", WRONG)
    shift(db, "cat", -timedelta(seconds=601))  # quiet for longer than the window
    assert attempt(db, "cat", WRONG) == "wrong_password"
    assert counters(db, "cat")["failed_login_count"] == 1
    shift(db, "cat", -timedelta(seconds=599))  # within it
    attempt(db, "cat", WRONG)
    assert counters(db, "cat")["failed_login_count"] == 2
    assert counters(db, "cat")["locked_until"] is None


def test_what_counts(locking_db: Database) -> None:
    db = locking_db
    make_user(db, "dan", is_active=False)
    make_user(db, "eve")
    # The right password of an inactive user is no guess: not counted.
    assert attempt(db, "dan", PASSWORD) == "inactive"
    assert counters(db, "dan")["failed_login_count"] == 0
    # A wrong one is.
    assert attempt(db, "dan", WRONG) == "wrong_password"
    assert counters(db, "dan")["failed_login_count"] == 1
    # Unknown and deleted users have no counters to change.
    assert attempt(db, "nobody", WRONG) == "unknown_user"
    db.run(lambda uow: uow.users.delete(uow.users.require("eve")))
    assert attempt(db, "eve", WRONG) == "deleted"
    assert counters(db, "eve")["failed_login_count"] == 0


def test_a_threshold_of_zero_never_locks(settings: Settings) -> None:
    db = database(settings, lockout_threshold=0)
    try:
        make_user(db, "fay")
        assert {attempt(db, "fay", WRONG) for _ in range(7)} == {"wrong_password"}
        state = counters(db, "fay")
        assert (state["failed_login_count"], state["locked_until"]) == (7, None)
        assert attempt(db, "fay", PASSWORD) is None
    finally:
        db.dispose()


def test_the_defaults_are_five_fifteen_minutes_fifteen_minutes(db: Database) -> None:
    assert (
        db.settings.lockout_threshold,
        db.settings.lockout_window,
        db.settings.lockout_duration,
    ) == (5, 900, 900)
    make_user(db, "gus")
    assert [attempt(db, "gus", WRONG) for _ in range(5)] == ["wrong_password"] * 5
    assert attempt(db, "gus", PASSWORD) == "locked"


def test_unlock_ends_the_lock_audited_and_is_idempotent(locking_db: Database) -> None:
    db = locking_db
    user_id = make_user(db, "hal")
    for _ in range(3):
        attempt(db, "hal", WRONG)
    locked = counters(db, "hal")
    result = lockout.unlock_user(db, "hal")
    assert (result.changed, result.user.state, result.user.failed_login_count) == (
        True,
        "active",
        0,
    )
    assert result.user.locked_until is None
    assert result.user.version == locked["version"] + 1  # an operator's change
    assert attempt(db, "hal", PASSWORD) is None

    def unlock_rows(uow: UnitOfWork) -> list[tuple[str, Any, Any]]:
        rows = uow.session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "user.unlock").order_by(AuditLog.seq)
        )
        return [(row.status, row.user_id, row.changes) for row in rows]

    (status, row_user, changes), *more = db.run(unlock_rows, read_only=True)
    assert (status, row_user, more) == ("success", user_id, [])
    assert changes["was_locked"] is True
    assert changes["failed_login_count"] == {"old": 3, "new": 0}
    assert changes["locked_until"]["new"] is None
    # Nothing to unlock: unchanged, no row.
    again = lockout.unlock_user(db, "hal")
    assert again.changed is False
    assert len(db.run(unlock_rows, read_only=True)) == 1
    # Failures without a lock are cleared too.
    attempt(db, "hal", WRONG)
    cleared = lockout.unlock_user(db, "hal")
    assert (cleared.changed, cleared.fields) == (True, ("failed_login_count",))
    # An unknown user: not found, and the refusal is recorded.
    with pytest.raises(NotFound):
        lockout.unlock_user(db, "nobody")
    statuses = [row[0] for row in db.run(unlock_rows, read_only=True)]
    assert statuses == ["success", "success", "failure"]


def test_lockout_settings_are_checked_at_start_up(tmp_path: Any) -> None:
    env = {"VUTF_CONFIG": os.devnull}
    loaded = load_settings(
        env={
            **env,
            "VUTF_LOCKOUT_THRESHOLD": "0",
            "VUTF_LOCKOUT_WINDOW": "60",
            "VUTF_LOCKOUT_DURATION": "3600",
        }
    )
    assert (loaded.lockout_threshold, loaded.lockout_window, loaded.lockout_duration) == (
        0,
        60,
        3600,
    )
    for name, value in (
        ("VUTF_LOCKOUT_THRESHOLD", "-1"),
        ("VUTF_LOCKOUT_THRESHOLD", "nan"),
        ("VUTF_LOCKOUT_THRESHOLD", "2.5"),
        ("VUTF_LOCKOUT_WINDOW", "0"),
        ("VUTF_LOCKOUT_WINDOW", "inf"),
        ("VUTF_LOCKOUT_DURATION", "1e308"),
        ("VUTF_LOCKOUT_DURATION", ""),
    ):
        with pytest.raises(InvalidInput, match=name):
            load_settings(env={**env, name: value})


# -- concurrency ---------------------------------------------------------------------
RACERS = 20


def _race(url: str, threshold: int, username: str, gate: Any, results: Any) -> None:
    """One process: wait for the gun, then make one password check."""
    db = Database(
        Settings(
            database_url=url,
            actor="racer@test",
            argon2_profile="test",
            db_deadline=60.0,
            lockout_threshold=threshold,
        )
    )
    gate.wait()
    try:
        user_passwords.check_password(db, username, WRONG)
        results.put("ok")
    except Denied:
        results.put("denied")
    except Exception as exc:  # reported to the parent, which fails the test
        results.put(f"{type(exc).__name__}: {exc}")
    finally:
        db.dispose()


def _run_racers(database_url: str, username: str, threshold: int) -> list[str]:
    context = multiprocessing.get_context("fork")
    gate = context.Event()
    results = context.Queue()
    racers = [
        context.Process(target=_race, args=(database_url, threshold, username, gate, results))
        for _ in range(RACERS)
    ]
    for racer in racers:
        racer.start()
    gate.set()  # all at once
    outcomes = [results.get(timeout=120) for _ in racers]
    for racer in racers:
        racer.join(timeout=60)
    return outcomes


@pytest.mark.slow
@pytest.mark.parametrize("threshold", [0, 5])
def test_concurrent_failures_from_many_processes_are_counted_exactly(
    db: Database, database_url: str, threshold: int
) -> None:
    make_user(db, "racer")
    db.dispose()  # no connection of the parent's pool crosses the fork
    outcomes = _run_racers(database_url, "racer", threshold)
    assert outcomes == ["denied"] * RACERS
    state = counters(db, "racer")
    # Every failure counted once (also those refused as locked): nothing lost.
    assert state["failed_login_count"] == RACERS
    rows = login_rows(db)
    assert len(rows) == RACERS
    assert sorted(row["failed_login_count"] for row in rows) == list(range(1, RACERS + 1))
    reasons = [row["reason"] for row in rows]
    if threshold == 0:
        assert state["locked_until"] is None
        assert reasons == ["wrong_password"] * RACERS
    else:
        # Exactly `threshold` wrong passwords, the last of which set the one lock.
        assert state["locked_until"] is not None
        assert sorted(reasons) == ["locked"] * (RACERS - 5) + ["wrong_password"] * 5
        setters = [row for row in rows if "locked_until" in row]
        assert [row["failed_login_count"] for row in setters] == [5]
        assert {row["failed_login_count"] for row in rows if row["reason"] == "locked"} == set(
            range(6, RACERS + 1)
        )
