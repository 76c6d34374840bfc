"""Classification, retries and the circuit breaker against real PostgreSQL errors.

(docs/architecture.md §4.)

The fake exceptions in the unit tests are only as good as our idea of what
psycopg2 raises; these tests produce the real ones.  Notable shapes: every
error raised while *connecting* has ``pgcode=None`` (even a FATAL with a
SQLSTATE such as a missing role), and a backend killed with
``pg_terminate_backend`` surfaces as "server closed the connection
unexpectedly", also without a pgcode, not as 57P01.

Skipped when the server is unreachable, unless ``VUTF_REQUIRE_POSTGRES=1``.
Only session-local temporary tables are created, under unique names.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

from vutf_cli.db.breaker import CircuitBreaker
from vutf_cli.db.database import Database
from vutf_cli.db.resilience import ErrorKind, classify, describe
from vutf_cli.db.retry import RetryPolicy, run_with_retry
from vutf_cli.errors import DatabaseUnavailable
from vutf_cli.settings import Settings

pytestmark = pytest.mark.postgres

DEFAULT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _base_url() -> URL:
    url = make_url(os.environ.get("VUTF_TEST_POSTGRES_URL", DEFAULT_URL))
    return url.set(drivername="postgresql+psycopg2")


BASE_URL = _base_url()


def _reachable(url: URL) -> bool:
    try:
        with socket.create_connection((url.host or "127.0.0.1", url.port or 5432), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module", autouse=True)
def _require_postgres() -> None:
    if _reachable(BASE_URL):
        return
    where = f"{BASE_URL.host}:{BASE_URL.port or 5432}"
    if os.environ.get("VUTF_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL at {where} is unreachable and VUTF_REQUIRE_POSTGRES=1")
    pytest.skip(f"PostgreSQL at {where} is unreachable (set VUTF_REQUIRE_POSTGRES=1 to fail)")


def make_engine(url: URL = BASE_URL, **kwargs: object) -> Engine:
    connect_args = {"connect_timeout": 3}
    return sa.create_engine(url, hide_parameters=True, connect_args=connect_args, **kwargs)


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = make_engine()
    yield eng
    eng.dispose()


def raw_connect() -> psycopg2.extensions.connection:
    return psycopg2.connect(
        host=BASE_URL.host,
        port=BASE_URL.port or 5432,
        user=BASE_URL.username,
        password=BASE_URL.password,
        dbname=BASE_URL.database,
        connect_timeout=3,
    )


@pytest.fixture
def admin() -> Iterator[psycopg2.extensions.connection]:
    """A second, independent connection used to kill backends."""
    conn = raw_connect()
    conn.autocommit = True
    yield conn
    conn.close()


def terminate(admin: psycopg2.extensions.connection, pid: int) -> None:
    """pg_terminate_backend, then wait until the backend has really gone."""
    with admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert cur.fetchone() == (True,)
        for _ in range(250):
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            row = cur.fetchone()
            if row is not None and row[0] == 0:
                return
            time.sleep(0.02)
    pytest.fail(f"backend {pid} did not exit after pg_terminate_backend")


def error_from(engine: Engine, *statements: str) -> sa_exc.DBAPIError:
    """The error the last statement raises (the transaction is rolled back)."""
    *setup, last = statements
    with engine.begin() as conn:
        for statement in setup:
            conn.execute(sa.text(statement))
        with pytest.raises(sa_exc.DBAPIError) as caught:
            conn.execute(sa.text(last))
    return caught.value


def connect_error(url: URL) -> sa_exc.DBAPIError:
    eng = make_engine(url)
    try:
        with pytest.raises(sa_exc.DBAPIError) as caught, eng.connect():
            pass
    finally:
        eng.dispose()
    return caught.value


def pgcode(err: sa_exc.DBAPIError) -> object:
    return getattr(err.orig, "pgcode", None)


FAST = RetryPolicy(deadline=0.5, initial_wait=0.02, max_wait=0.1, jitter=0.01)


# ------------------------------------------------------------ classification


def test_closed_port_is_connection() -> None:
    err = connect_error(BASE_URL.set(host="127.0.0.1", port=1))
    assert isinstance(err, sa_exc.OperationalError)
    assert pgcode(err) is None  # libpq gives no SQLSTATE for connect failures
    assert classify(err) is ErrorKind.CONNECTION
    assert "Connection refused" in describe(err)


def test_unknown_host_is_connection_and_names_the_host() -> None:
    err = connect_error(BASE_URL.set(host="vutf-no-such-host.invalid"))
    assert classify(err) is ErrorKind.CONNECTION
    assert "vutf-no-such-host.invalid" in describe(err)


def test_unknown_role_is_credentials() -> None:
    role = f"vutf_no_role_{uuid.uuid4().hex[:8]}"
    err = connect_error(BASE_URL.set(username=role, password=None))
    # A FATAL with SQLSTATE 28000 on the server, but pgcode is None client-side.
    assert pgcode(err) is None
    assert classify(err) is ErrorKind.CREDENTIALS
    assert f'role "{role}" does not exist' in describe(err)


def test_unknown_database_is_permanent() -> None:
    err = connect_error(BASE_URL.set(database=f"vutf_no_db_{uuid.uuid4().hex[:8]}"))
    assert classify(err) is ErrorKind.PERMANENT


@pytest.mark.parametrize("code", ["40001", "40P01"])
def test_serialization_and_deadlock_are_contention(engine: Engine, code: str) -> None:
    err = error_from(engine, f"DO $$ BEGIN RAISE EXCEPTION 'x' USING ERRCODE = '{code}'; END $$")
    assert pgcode(err) == code
    assert classify(err) is ErrorKind.CONTENTION
    assert describe(err) == "x"  # no CONTEXT line, no SQL


def test_statement_timeout_is_permanent(engine: Engine) -> None:
    err = error_from(engine, "SET statement_timeout = 50", "SELECT pg_sleep(1)")
    # SQLAlchemy maps QueryCanceled to OperationalError: the class alone says nothing.
    assert isinstance(err, sa_exc.OperationalError)
    assert pgcode(err) == "57014"
    assert classify(err) is ErrorKind.PERMANENT
    assert describe(err) == "canceling statement due to statement timeout"


def test_audit_trigger_refusal_is_permanent(engine: Engine) -> None:
    err = error_from(
        engine,
        "DO $$ BEGIN RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'VU001'; END $$",
    )
    assert pgcode(err) == "VU001"
    assert classify(err) is ErrorKind.PERMANENT
    assert describe(err) == "audit_log is append-only"


def test_unique_violation_is_permanent_and_described_without_values(engine: Engine) -> None:
    table = f"vutf_resilience_{uuid.uuid4().hex[:12]}"
    insert = sa.text(f"INSERT INTO {table} (email) VALUES (:email)")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TEMP TABLE {table} (email text PRIMARY KEY)"))
        conn.execute(insert, {"email": "secret@example.com"})
        with pytest.raises(sa_exc.IntegrityError) as caught:
            conn.execute(insert, {"email": "secret@example.com"})
    err = caught.value
    assert pgcode(err) == "23505"
    assert classify(err) is ErrorKind.PERMANENT
    assert describe(err) == f'duplicate key value violates unique constraint "{table}_pkey"'
    # hide_parameters=True hides the bound parameters, but the server's DETAIL
    # line still quotes the value: str() of the wrapper is never safe to show.
    assert "[SQL parameters hidden due to hide_parameters=True]" in str(err)
    assert "Key (email)=(secret@example.com)" in str(err)
    assert "secret@example.com" not in describe(err)


def test_terminated_backend_is_connection(
    engine: Engine, admin: psycopg2.extensions.connection
) -> None:
    with engine.connect() as conn:
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        terminate(admin, pid)
        with pytest.raises(sa_exc.DBAPIError) as caught:
            conn.execute(sa.text("SELECT 1"))
    err = caught.value
    # Not 57P01: the client only sees the socket close.
    assert pgcode(err) is None
    assert err.connection_invalidated
    assert classify(err) is ErrorKind.CONNECTION
    assert describe(err) == "server closed the connection unexpectedly"


def test_terminated_backend_unwrapped_psycopg2_is_connection(
    admin: psycopg2.extensions.connection,
) -> None:
    conn = raw_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            row = cur.fetchone()
            assert row is not None
            terminate(admin, row[0])
            with pytest.raises(psycopg2.OperationalError) as caught:
                cur.execute("SELECT 1")
    finally:
        conn.close()
    assert classify(caught.value) is ErrorKind.CONNECTION


# ------------------------------------------------------------ run_with_retry


def test_retry_survives_a_killed_connection(admin: psycopg2.extensions.connection) -> None:
    eng = make_engine(pool_pre_ping=True)
    pids: list[int] = []

    def unit_of_work() -> int:
        with eng.begin() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            pids.append(pid)
            if len(pids) == 1:
                terminate(admin, pid)  # the server goes away mid-transaction
            return int(conn.execute(sa.text("SELECT 41 + 1")).scalar_one())

    try:
        result = run_with_retry(
            unit_of_work,
            policy=RetryPolicy(deadline=5.0),
            target="postgresql://postgres@127.0.0.1:5432/test",
        )
    finally:
        eng.dispose()
    assert result == 42
    assert len(pids) == 2  # the whole function ran again...
    assert pids[0] != pids[1]  # ...on a fresh connection


def test_pre_ping_replaces_a_killed_idle_connection(
    admin: psycopg2.extensions.connection,
) -> None:
    eng = make_engine(pool_pre_ping=True, pool_size=1, max_overflow=0)
    calls = 0

    def unit_of_work() -> int:
        nonlocal calls
        calls += 1
        with eng.connect() as conn:
            return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())

    try:
        first = unit_of_work()
        terminate(admin, first)  # kill it while it sits idle in the pool
        second = run_with_retry(unit_of_work, policy=FAST, target="postgresql://.../test")
    finally:
        eng.dispose()
    assert second != first
    assert calls == 2  # pre-ping hid the dead connection: no retry was needed


def test_closed_port_gives_up_at_the_deadline() -> None:
    eng = make_engine(BASE_URL.set(host="127.0.0.1", port=1))
    calls = 0

    def unit_of_work() -> None:
        nonlocal calls
        calls += 1
        with eng.connect():
            pass

    target = "postgresql://postgres@127.0.0.1:1/test"
    started = time.monotonic()
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            run_with_retry(unit_of_work, policy=FAST, target=target)
    finally:
        eng.dispose()
    elapsed = time.monotonic() - started
    assert caught.value.message.startswith(f"database unavailable at {target}: ")
    assert "Connection refused" in caught.value.message
    assert "\n" not in caught.value.message
    assert isinstance(caught.value.__cause__, sa_exc.OperationalError)
    assert calls > 1
    assert elapsed < FAST.deadline + 1.0


# ------------------------------------------------------------ Database: the circuit breaker


def _closed_port_database(breaker: CircuitBreaker) -> Database:
    url = BASE_URL.set(host="127.0.0.1", port=1).render_as_string(hide_password=False)
    return Database(
        Settings(database_url=url, db_deadline=0.5, connect_timeout=1.0), breaker=breaker
    )


def test_breaker_opens_on_a_closed_port() -> None:
    breaker = CircuitBreaker(failure_threshold=50, reset_timeout=60.0)
    db = _closed_port_database(breaker)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            db.run(lambda uow: uow.schema_revision(), read_only=True)
        assert "Connection refused" in caught.value.message
        # The deadline went on connection failures: open, however few they were.
        assert breaker.state == "open"
        # The next operation fails fast, without touching the network.
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="circuit breaker is open"):
            db.run(lambda uow: uow.schema_revision(), read_only=True)
        assert time.monotonic() - started < 0.1
    finally:
        db.dispose()


def test_alembic_operations_share_the_breaker() -> None:
    """run_operation (Alembic's way in) is refused by the circuit run() opened."""
    breaker = CircuitBreaker(failure_threshold=50, reset_timeout=60.0)
    db = _closed_port_database(breaker)
    calls = 0

    def operation() -> None:
        nonlocal calls
        calls += 1

    try:
        with pytest.raises(DatabaseUnavailable):
            db.run(lambda uow: uow.schema_revision(), read_only=True)
        with pytest.raises(DatabaseUnavailable, match="circuit breaker is open"):
            db.run_operation(operation)
        assert calls == 0
    finally:
        db.dispose()


def test_a_half_open_trial_gets_one_attempt() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout=0.0)
    breaker.record_failure()  # open, with no cool-down: the next call is the trial
    db = _closed_port_database(breaker)
    attempts = 0

    def operation() -> None:
        nonlocal attempts
        attempts += 1
        with db.engine.connect():
            pass

    try:
        with pytest.raises(DatabaseUnavailable):
            db.run_operation(operation)
    finally:
        db.dispose()
    assert attempts == 1
    assert breaker.state == "open"


def test_unknown_role_is_not_retried() -> None:
    role = f"vutf_no_role_{uuid.uuid4().hex[:8]}"
    eng = make_engine(BASE_URL.set(username=role, password=None))
    calls = 0

    def unit_of_work() -> None:
        nonlocal calls
        calls += 1
        with eng.connect():
            pass

    target = f"postgresql://{role}@127.0.0.1:5432/test"
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            run_with_retry(unit_of_work, policy=FAST, target=target)
    finally:
        eng.dispose()
    assert calls == 1
    assert caught.value.message.startswith(f"cannot log in to {target}: ")
    assert f'role "{role}" does not exist' in caught.value.message
