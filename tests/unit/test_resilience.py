"""Unit tests for vutf_cli.db.resilience, .retry and .breaker: no database, no real waiting.

Time is a fake clock that only the fake ``sleep`` (and tests that simulate a
slow attempt) advance, so deadlines and cool-downs are checked exactly.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc

from vutf_cli.db.breaker import CircuitBreaker, CircuitOpenError
from vutf_cli.db.resilience import ErrorKind, classify, describe
from vutf_cli.db.retry import RetryPolicy, run_with_retry
from vutf_cli.errors import DatabaseUnavailable, ExitCode

TARGET = "postgresql://app:***@db.example:5432/vutf"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(float(seconds))
        self.now += float(seconds)


class FakeDriverError(Exception):
    """Stands in for a psycopg2 error: a message and a ``pgcode`` (None at connect time)."""

    def __init__(self, message: str, pgcode: str | None = None) -> None:
        super().__init__(message)
        self.pgcode = pgcode


def op_error(message: str, pgcode: str | None = None) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", None, FakeDriverError(message, pgcode))


def conn_error() -> sa_exc.OperationalError:
    return op_error(
        'connection to server at "db.example" (10.0.0.5), port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
    )


def contention_error() -> sa_exc.OperationalError:
    return op_error("could not serialize access due to concurrent update\n", "40001")


def integrity_error() -> sa_exc.IntegrityError:
    return sa_exc.IntegrityError(
        "INSERT INTO users (email) VALUES (%(email)s)",
        {"email": "secret@example.com"},
        FakeDriverError(
            'duplicate key value violates unique constraint "users_email_key"\n'
            "DETAIL:  Key (email)=(secret@example.com) already exists.\n",
            "23505",
        ),
        hide_parameters=True,
    )


def state_of(breaker: CircuitBreaker) -> str:
    # A plain str, so mypy does not narrow the Literal across state changes.
    return breaker.state


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("pgcode", "kind"),
    [
        ("08000", ErrorKind.CONNECTION),
        ("08001", ErrorKind.CONNECTION),
        ("08006", ErrorKind.CONNECTION),
        ("57P01", ErrorKind.CONNECTION),
        ("57P02", ErrorKind.CONNECTION),
        ("57P03", ErrorKind.CONNECTION),
        ("53300", ErrorKind.CONNECTION),
        ("40001", ErrorKind.CONTENTION),
        ("40P01", ErrorKind.CONTENTION),
        ("28000", ErrorKind.CREDENTIALS),
        ("28P01", ErrorKind.CREDENTIALS),
        ("57014", ErrorKind.PERMANENT),
        ("VU001", ErrorKind.PERMANENT),
        ("23505", ErrorKind.PERMANENT),
        ("22P02", ErrorKind.PERMANENT),
        ("42P01", ErrorKind.PERMANENT),
        ("53100", ErrorKind.PERMANENT),
    ],
)
def test_classify_by_sqlstate(pgcode: str, kind: ErrorKind) -> None:
    assert classify(sa_exc.DBAPIError("SELECT 1", None, FakeDriverError("boom", pgcode))) is kind


def test_sqlstate_wins_over_message() -> None:
    # A statement timeout whose text happens to mention a timeout is still permanent.
    assert classify(op_error("timeout expired", "57014")) is ErrorKind.PERMANENT


def test_unwrapped_driver_error_is_classified() -> None:
    assert classify(FakeDriverError("x", "40P01")) is ErrorKind.CONTENTION
    assert classify(FakeDriverError("server closed the connection unexpectedly")) is (
        ErrorKind.CONNECTION
    )


@pytest.mark.parametrize(
    "message",
    [
        'connection to server at "127.0.0.1", port 1 failed: Connection refused\n\tIs the '
        "server running on that host and accepting TCP/IP connections?\n",
        "could not connect to server: Connection refused\n",
        "server closed the connection unexpectedly\n\tThis probably means the server "
        "terminated abnormally\n",
        'connection to server at "10.1.2.3", port 5432 failed: timeout expired\n',
        'could not translate host name "db.nowhere" to address: Name or service not known\n',
        "SSL connection has been closed unexpectedly\n",
        "terminating connection due to administrator command\n",
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  the database system '
        "is starting up\n",
        "FATAL:  sorry, too many clients already\n",
    ],
)
def test_connection_messages_without_pgcode(message: str) -> None:
    assert classify(op_error(message)) is ErrorKind.CONNECTION


@pytest.mark.parametrize(
    "message",
    [
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
        'authentication failed for user "app"\n',
        'connection to server at "127.0.0.1", port 5432 failed: FATAL:  role "ghost" does '
        "not exist\n",
        'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "app", database "vutf"\n',
        "fe_sendauth: no password supplied\n",
    ],
)
def test_credential_messages_without_pgcode(message: str) -> None:
    assert classify(op_error(message)) is ErrorKind.CREDENTIALS


def test_missing_database_is_permanent() -> None:
    message = 'connection to server at "127.0.0.1", port 5432 failed: FATAL:  database "x" '
    assert classify(op_error(message + "does not exist\n")) is ErrorKind.PERMANENT


def test_invalidated_connection_is_connection() -> None:
    err = sa_exc.DBAPIError(
        "SELECT 1", None, FakeDriverError("something odd"), connection_invalidated=True
    )
    assert classify(err) is ErrorKind.CONNECTION
    assert classify(sa_exc.DisconnectionError("pre-ping failed")) is ErrorKind.CONNECTION


@pytest.mark.parametrize(
    "message", ["database is locked", "database is busy", "database table is locked"]
)
def test_sqlite_busy_messages(message: str) -> None:
    err = sa_exc.OperationalError("INSERT ...", None, sqlite3.OperationalError(message))
    assert classify(err) is ErrorKind.CONTENTION


def test_real_sqlite_lock_is_contention(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(sqlite3.OperationalError) as caught:
            waiter.execute("INSERT INTO t VALUES (1)")
    finally:
        holder.close()
        waiter.close()
    assert classify(caught.value) is ErrorKind.CONTENTION
    wrapped = sa_exc.OperationalError("INSERT INTO t VALUES (?)", (1,), caught.value)
    assert classify(wrapped) is ErrorKind.CONTENTION


def test_other_sqlite_errors_are_permanent() -> None:
    err = sa_exc.OperationalError("SELECT", None, sqlite3.OperationalError("no such table: t"))
    assert classify(err) is ErrorKind.PERMANENT


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("connection refused"),  # not a database error, whatever it says
        ConnectionRefusedError(111, "Connection refused"),
        KeyboardInterrupt(),
        DatabaseUnavailable("database unavailable at x"),
        CircuitOpenError("circuit breaker is open", retry_in=3.0),
        sa_exc.ArgumentError("bad URL"),
    ],
)
def test_non_database_errors_are_permanent(exc: BaseException) -> None:
    assert classify(exc) is ErrorKind.PERMANENT


# --------------------------------------------------------------------- describe


def test_describe_uses_first_line_of_driver_message_only() -> None:
    text = describe(integrity_error())
    assert text == 'duplicate key value violates unique constraint "users_email_key"'
    assert "secret@example.com" not in text
    assert "INSERT" not in text


def test_describe_collapses_whitespace_and_keeps_host() -> None:
    text = describe(
        op_error('could not translate host name "db.nowhere" to address: Name or service\n')
    )
    assert text == 'could not translate host name "db.nowhere" to address: Name or service'
    fatal = describe(op_error('failed: FATAL:  role "ghost" does not exist\n'))
    assert fatal == 'failed: FATAL: role "ghost" does not exist'


def test_describe_redacts_values_in_data_errors() -> None:
    err = sa_exc.DataError(
        "SELECT",
        None,
        FakeDriverError('invalid input syntax for type uuid: "hunter2"\n', "22P02"),
    )
    assert "hunter2" not in describe(err)
    assert describe(err).startswith("invalid input syntax for type uuid")


def test_describe_never_shows_sql_of_a_statement_error() -> None:
    err = sa_exc.StatementError(
        "(builtins.TypeError) bad bind", "SELECT :pw", {"pw": "hunter2"}, TypeError("bad bind")
    )
    assert describe(err) == "bad bind"
    assert classify(err) is ErrorKind.PERMANENT


def test_describe_falls_back_to_class_name_and_truncates() -> None:
    assert describe(RuntimeError()) == "RuntimeError"
    long = describe(op_error("x" * 1000))
    assert len(long) <= 300
    assert "\n" not in long


# ---------------------------------------------------------------- circuit breaker


def test_breaker_opens_at_threshold_and_fails_fast(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout=30.0, clock=clock)
    assert state_of(breaker) == "closed"
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert state_of(breaker) == "closed"
    breaker.before_call()
    breaker.record_failure()
    assert state_of(breaker) == "open"

    clock.now += 10.0
    with pytest.raises(CircuitOpenError) as caught:
        breaker.before_call()
    err = caught.value
    assert isinstance(err, DatabaseUnavailable)
    assert err.exit_code == ExitCode.UNAVAILABLE
    assert "open" in err.message
    assert "20.0 s" in err.message
    assert err.retry_in == pytest.approx(20.0)


def test_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) == "closed"
    assert breaker.consecutive_failures == 2


def test_half_open_trial_success_closes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    assert state_of(breaker) == "open"
    clock.now += 5.0
    breaker.before_call()  # the trial
    assert state_of(breaker) == "half_open"
    breaker.record_success()
    assert state_of(breaker) == "closed"
    breaker.before_call()
    breaker.before_call()  # closed: no limit on calls


def test_only_one_half_open_trial(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 6.0
    breaker.before_call()
    with pytest.raises(CircuitOpenError, match="half-open"):
        breaker.before_call()
    assert state_of(breaker) == "half_open"


def test_half_open_trial_failure_reopens_with_fresh_cooldown(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout=5.0, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 5.0
    breaker.before_call()
    breaker.record_failure()
    assert state_of(breaker) == "open"
    clock.now += 4.9  # measured from the re-opening, not the first opening
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now += 0.1
    breaker.before_call()
    assert state_of(breaker) == "half_open"


def test_release_frees_the_trial_slot(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    breaker.before_call()
    breaker.release()
    assert state_of(breaker) == "half_open"
    breaker.before_call()  # a new trial is allowed


def test_half_open_admits_one_thread_of_many(clock: FakeClock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 2.0
    barrier = threading.Barrier(16)
    admitted: list[int] = []
    refused: list[int] = []

    def worker(n: int) -> None:
        barrier.wait()
        try:
            breaker.before_call()
        except CircuitOpenError:
            refused.append(n)
        else:
            admitted.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1
    assert len(refused) == 15


def test_breaker_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_timeout=-1)


# ---------------------------------------------------------------- run_with_retry


class Flaky:
    """Raises the given errors in turn, then returns ``result``."""

    def __init__(self, errors: list[BaseException], result: str = "ok") -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.result


class AlwaysFails:
    """Raises a fresh ``make()`` every call, optionally taking ``duration`` fake seconds."""

    def __init__(
        self,
        make: Callable[[], BaseException],
        clock: FakeClock | None = None,
        duration: float = 0.0,
    ) -> None:
        self.make = make
        self.calls = 0
        self.clock = clock
        self.duration = duration
        self.raised: list[BaseException] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.clock is not None:
            self.clock.now += self.duration  # a slow attempt (e.g. connect_timeout)
        err = self.make()
        self.raised.append(err)
        raise err


def run(fn: object, clock: FakeClock, **kwargs: object) -> object:
    params: dict[str, object] = {
        "policy": RetryPolicy(),
        "target": TARGET,
        "sleep": clock.sleep,
        "clock": clock,
    }
    params.update(kwargs)
    return run_with_retry(fn, **params)  # type: ignore[arg-type]


def test_success_needs_no_retry(clock: FakeClock) -> None:
    fn = Flaky([])
    assert run(fn, clock) == "ok"
    assert fn.calls == 1
    assert clock.sleeps == []


def test_transient_errors_are_retried(clock: FakeClock) -> None:
    fn = Flaky([conn_error(), contention_error(), conn_error()])
    assert run(fn, clock) == "ok"
    assert fn.calls == 4
    assert len(clock.sleeps) == 3


def test_backoff_grows_exponentially_and_is_capped(clock: FakeClock) -> None:
    policy = RetryPolicy(deadline=100.0, initial_wait=0.1, max_wait=0.5, jitter=0.0)
    fn = Flaky([conn_error() for _ in range(5)])
    run(fn, clock, policy=policy)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_jitter_stays_within_bounds(clock: FakeClock) -> None:
    policy = RetryPolicy(deadline=100.0, initial_wait=0.1, max_wait=10.0, jitter=0.05)
    run(Flaky([conn_error() for _ in range(4)]), clock, policy=policy)
    for n, slept in enumerate(clock.sleeps):
        base = 0.1 * 2**n
        assert base <= slept <= base + 0.05


def test_retry_stops_at_the_deadline_exactly(clock: FakeClock) -> None:
    policy = RetryPolicy(deadline=1.0, initial_wait=0.1, max_wait=0.4, jitter=0.0)
    fn = AlwaysFails(conn_error)
    start = clock.now
    with pytest.raises(DatabaseUnavailable) as caught:
        run(fn, clock, policy=policy)
    # Attempts at t=0, 0.1, 0.3, 0.7; the next wait (0.4) would end at 1.1 > 1.0.
    assert fn.calls == 4
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert clock.now - start == pytest.approx(0.7)
    err = caught.value
    assert err.message == (
        f'database unavailable at {TARGET}: connection to server at "db.example" '
        "(10.0.0.5), port 5432 failed: Connection refused"
    )
    assert err.exit_code == ExitCode.UNAVAILABLE
    assert err.hint is not None
    assert "4 attempt(s)" in err.hint
    assert err.__cause__ is fn.raised[-1]


def test_default_policy_uses_but_never_exceeds_the_deadline(clock: FakeClock) -> None:
    policy = RetryPolicy()
    fn = AlwaysFails(conn_error)
    start = clock.now
    with pytest.raises(DatabaseUnavailable):
        run(fn, clock, policy=policy)
    elapsed = clock.now - start
    assert elapsed <= policy.deadline
    # It gave up only because the next wait (at most max_wait + jitter) would cross it.
    assert elapsed + policy.max_wait + policy.jitter >= policy.deadline
    assert fn.calls == len(clock.sleeps) + 1
    assert max(clock.sleeps) <= policy.max_wait


def test_slow_attempts_count_against_the_deadline(clock: FakeClock) -> None:
    policy = RetryPolicy(deadline=10.0, initial_wait=0.5, max_wait=1.0, jitter=0.0)
    fn = AlwaysFails(conn_error, clock=clock, duration=3.0)
    start = clock.now
    with pytest.raises(DatabaseUnavailable):
        run(fn, clock, policy=policy)
    # t=3 fail, sleep .5 -> 3.5; t=6.5 fail, sleep 1 -> 7.5; t=10.5 fail: no more sleeping.
    assert fn.calls == 3
    assert clock.sleeps == pytest.approx([0.5, 1.0])
    assert clock.now - start == pytest.approx(10.5)


def test_exhausted_contention_says_busy(clock: FakeClock) -> None:
    policy = RetryPolicy(deadline=0.5, initial_wait=0.1, max_wait=0.1, jitter=0.0)
    fn = AlwaysFails(contention_error)
    with pytest.raises(DatabaseUnavailable) as caught:
        run(fn, clock, policy=policy)
    assert caught.value.message == (
        f"database busy at {TARGET}: could not serialize access due to concurrent update"
    )
    assert caught.value.__cause__ is fn.raised[-1]
    assert fn.calls > 1


def test_permanent_errors_are_not_retried_or_translated(clock: FakeClock) -> None:
    original = integrity_error()
    fn = Flaky([original])
    with pytest.raises(sa_exc.IntegrityError) as caught:
        run(fn, clock)
    assert caught.value is original
    assert fn.calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("pgcode", ["57014", "VU001"])
def test_statement_timeout_and_trigger_refusal_are_not_retried(
    clock: FakeClock, pgcode: str
) -> None:
    original = sa_exc.DBAPIError("UPDATE audit_log ...", None, FakeDriverError("no", pgcode))
    fn = Flaky([original])
    with pytest.raises(sa_exc.DBAPIError) as caught:
        run(fn, clock)
    assert caught.value is original
    assert fn.calls == 1


def test_non_database_errors_pass_through(clock: FakeClock) -> None:
    fn = Flaky([KeyError("bug")])
    with pytest.raises(KeyError):
        run(fn, clock)
    assert fn.calls == 1


def test_keyboard_interrupt_is_not_retried(clock: FakeClock) -> None:
    fn = Flaky([KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        run(fn, clock)
    assert fn.calls == 1


def test_credentials_fail_at_once(clock: FakeClock) -> None:
    original = op_error(
        'connection to server at "db.example" (10.0.0.5), port 5432 failed: FATAL:  '
        'password authentication failed for user "app"\n'
    )
    fn = Flaky([original])
    with pytest.raises(DatabaseUnavailable) as caught:
        run(fn, clock)
    assert caught.value.message == (
        f'cannot log in to {TARGET}: connection to server at "db.example" (10.0.0.5), '
        'port 5432 failed: FATAL: password authentication failed for user "app"'
    )
    assert caught.value.__cause__ is original
    assert fn.calls == 1
    assert clock.sleeps == []


def test_no_deprecation_warnings_from_tenacity(clock: FakeClock) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert run(Flaky([conn_error()]), clock) == "ok"


def test_zero_deadline_means_one_attempt(clock: FakeClock) -> None:
    fn = AlwaysFails(conn_error)
    with pytest.raises(DatabaseUnavailable):
        run(fn, clock, policy=RetryPolicy(deadline=0.0))
    assert fn.calls == 1
    assert clock.sleeps == []


def test_a_child_forked_while_another_thread_holds_the_breaker_can_use_it() -> None:
    # The clock runs under the breaker's lock (trip): a thread parked in it holds the lock.
    inside, leave = threading.Event(), threading.Event()

    def parking_clock() -> float:
        if threading.current_thread().name == "holder":
            inside.set()
            leave.wait(30)
        return 0.0

    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.0, clock=parking_clock)
    holder = threading.Thread(target=breaker.trip, name="holder")
    holder.start()
    assert inside.wait(30)
    pid = os.fork()
    if pid == 0:  # the child: only this thread exists, the lock was held at the fork
        breaker.renew_lock_after_fork()
        try:
            breaker.record_success()
            os._exit(0 if breaker.state == "closed" else 1)
        finally:
            os._exit(2)
    leave.set()
    holder.join(30)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the child was stuck on the breaker's inherited lock")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
