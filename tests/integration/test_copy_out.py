"""``vutf_cli.db.copy_out`` against real PostgreSQL: inlined parameters, the wait callback.

COPY takes no bind parameters, so ``inline_statement`` inlines the filter
values with SQLAlchemy's bind processors and psycopg2's own quoting.  Each
hostile value here is stored in a row and then looked up: the inlined SQL
must select exactly what the ordinary parametrized execution selects, and
that must be the row that holds the value (an empty result proves nothing).

``copy_rows`` lifts vutf's process-wide psycopg2 wait callback for the COPY
(psycopg2 refuses COPY while one is set): whatever was installed before is
installed again afterwards, after a success, an error in a later row, and a
stall ended by the watchdog; the transaction goes on after a success.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import psycopg2
import psycopg2.errors
import psycopg2.extras
import pytest
from psycopg2 import extensions
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    Text,
    create_engine,
    literal_column,
    select,
    text,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, SQLAlchemyError

from tests.audit_seed import bulk_seed
from tests.cli.conftest import invoke
from tests.conftest import _fresh_database
from vutf_cli.db.audit_sql import AuditFilters as ResolvedFilters
from vutf_cli.db.audit_sql import filter_conditions
from vutf_cli.db.copy_out import copy_rows, inline_statement
from vutf_cli.db.database import Database
from vutf_cli.db.engine import bounded_waits, parse_database_url, wait_for_server
from vutf_cli.db.models import AuditLog
from vutf_cli.settings import Settings

pytestmark = pytest.mark.postgres

AUDIT = cast(Table, AuditLog.__table__)
Sink = Callable[[bytes], None]
BASE = datetime(2024, 1, 1, tzinfo=UTC)

# Each is stored as one row's actor, resource id and part of its action.
HOSTILE = [
    "o'brien",
    "''",
    "'; DROP TABLE audit_log; --",
    "back\\slash",
    "ends with a backslash\\",
    "\\'",
    "E'\\x41'",
    "100%",
    "%(x)s",
    "%s %% %",
    "%(actor_1)s",
    "semi;colon; SELECT 1",
    "$$dollar$$ $q$",
    '"double" quotes',
    "zoë 🔑 ü 中文",
    "tab\there",
    "bidi \u202e isolate \u2066",
    ":name ?",
]


def _row(index: int) -> dict[str, Any]:
    """Row ``index`` (seq index + 1): hostile text, its own user id, ``index`` hours in."""
    value = HOSTILE[index % len(HOSTILE)]
    return {
        "actor": value,
        "resource_id": value,
        "action": f"weird%_\\{index}" if index % 2 else f"weirdXY\\{index}",
        "user_id": uuid.UUID(int=index + 1),
        "created_at": BASE + timedelta(hours=index),
    }


ROWS = [_row(index) for index in range(len(HOSTILE))]


def _settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "actor": "tester@test",
        "argon2_profile": "test",
        "db_deadline": 5.0,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def backend() -> str:
    """This module is about PostgreSQL's COPY: the conftest's `db` runs on PostgreSQL only."""
    return "postgresql"


@pytest.fixture(scope="module")
def seeded_url(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Any,
    postgres_template: str | None,
) -> Iterator[str]:
    """A database holding ROWS (seq = index + 1), shared by the tests that only read it."""
    unused = tmp_path_factory.mktemp("copy-out") / "unused.db"  # (the SQLite branch's file)
    with _fresh_database("postgresql", unused, sqlite_template, postgres_template) as url:
        database = Database(_settings(url))
        try:
            bulk_seed(database, len(ROWS), lambda seq: _row(seq - 1))
        finally:
            database.dispose()
        yield url


@pytest.fixture
def seeded_db(seeded_url: str) -> Iterator[Database]:
    """A Database (its own pool) on the shared seeded database."""
    database = Database(_settings(seeded_url))
    try:
        yield database
    finally:
        database.dispose()


def _seqs_where(rows: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [index + 1 for index, row in enumerate(rows) if keep(row)]


def _hours(hours: int, offset: timedelta, microseconds: int = 0) -> datetime:
    """BASE + ``hours`` as a wall-clock time at UTC``offset`` (the same instant)."""
    instant = BASE + timedelta(hours=hours, microseconds=microseconds)
    return instant.astimezone(timezone(offset))


IST, PST = timedelta(hours=5, minutes=30), timedelta(hours=-8)

# (case id, filters, which stored rows must match)
FilterCase = tuple[str, ResolvedFilters, Callable[[dict[str, Any]], bool]]
FILTER_CASES: list[FilterCase] = [
    *(
        (f"actor-{number}", ResolvedFilters(actor=value), lambda row, v=value: row["actor"] == v)
        for number, value in enumerate(HOSTILE)
    ),
    *(
        (
            f"resource-id-{number}",
            ResolvedFilters(resource_id=value),  # without a type: the loose index scan
            lambda row, v=value: row["resource_id"] == v,
        )
        for number, value in enumerate(HOSTILE)
    ),
    (
        "resource-type-and-id",
        ResolvedFilters(resource_type="user", resource_id="%(x)s"),
        lambda row: row["resource_id"] == "%(x)s",
    ),
    (
        "user-id",
        ResolvedFilters(user_id=uuid.UUID(int=4)),
        lambda row: row["user_id"] == uuid.UUID(int=4),
    ),
    (
        # % _ \ are literal in a glob: only the odd rows' actions start with weird%_\.
        "action-glob-with-like-characters",
        ResolvedFilters(action="weird%_\\*"),
        lambda row: row["action"].startswith("weird%_\\"),
    ),
    (
        "action-exact",
        ResolvedFilters(action="weirdXY\\4"),
        lambda row: row["action"] == "weirdXY\\4",
    ),
    (
        "since-ist-until-pst",
        ResolvedFilters(since=_hours(3, IST), until=_hours(7, PST)),
        lambda row: BASE + timedelta(hours=3) <= row["created_at"] < BASE + timedelta(hours=7),
    ),
    (
        "since-one-microsecond-after-a-row",
        ResolvedFilters(since=_hours(3, PST, microseconds=1), until=_hours(6, IST)),
        lambda row: BASE + timedelta(hours=3) < row["created_at"] < BASE + timedelta(hours=6),
    ),
    (
        "everything-at-once",
        ResolvedFilters(
            actor="o'brien",
            user_id=uuid.UUID(int=1),
            action="weirdXY\\0",
            resource_type="user",
            resource_id="o'brien",
            status="success",
            since=_hours(0, PST),
            until=_hours(1, IST),
        ),
        lambda row: row["user_id"] == uuid.UUID(int=1),
    ),
]


def _seq_statement(filters: ResolvedFilters) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = filter_conditions(filters, "postgresql")
    return select(sql_cast(AUDIT.c.seq, Text)).where(*conditions).order_by(AUDIT.c.seq)


def _run_inlined(connection: Connection, sql: str) -> list[int]:
    """Run SQL text as it is: no parameters, so psycopg2 leaves every % alone."""
    raw: Any = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute(sql)
        return [int(row[0]) for row in cursor.fetchall()]


@pytest.mark.parametrize(
    ("filters", "keep"),
    [pytest.param(filters, keep, id=name) for name, filters, keep in FILTER_CASES],
)
def test_inlined_filters_select_what_the_parametrized_statement_selects(
    seeded_db: Database,
    filters: ResolvedFilters,
    keep: Callable[[dict[str, Any]], bool],
) -> None:
    expected = _seqs_where(ROWS, keep)
    assert expected, "the case must match a stored row"
    statement = _seq_statement(filters)
    with seeded_db.unit_of_work(read_only=True) as uow:
        connection = uow.session.connection()
        parametrized = [int(seq) for seq in connection.execute(statement).scalars()]
        assert parametrized == expected
        inlined = inline_statement(connection, statement)
        assert _run_inlined(connection, inlined) == expected
        copied: list[bytes] = []
        count, last = copy_rows(connection, statement, copied.append)
        assert [int(row) for row in copied] == expected
        assert (count, last) == (len(expected), copied[-1])
        # The audit_log is still there (the DROP TABLE value stayed a value).
        assert uow.audit.head() is not None


def test_inlined_statement_without_filters(seeded_db: Database) -> None:
    statement = _seq_statement(ResolvedFilters())
    with seeded_db.unit_of_work(read_only=True) as uow:
        connection = uow.session.connection()
        assert _run_inlined(connection, inline_statement(connection, statement)) == list(
            range(1, len(ROWS) + 1)
        )


def test_inlining_is_right_when_backslashes_are_escapes(seeded_url: str) -> None:
    """With standard_conforming_strings off a backslash escapes in '...': quoting must know."""
    engine = create_engine(parse_database_url(seeded_url))
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SET standard_conforming_strings = off")
            connection.exec_driver_sql("SET escape_string_warning = off")
            for value in ("back\\slash", "ends with a backslash\\", "\\'", "E'\\x41'"):
                statement = _seq_statement(ResolvedFilters(actor=value))
                expected = _seqs_where(ROWS, lambda row, v=value: row["actor"] == v)
                assert expected
                assert _run_inlined(connection, inline_statement(connection, statement)) == expected
    finally:
        engine.dispose()


# -- the wait callback -----------------------------------------------------------------------
def _seq_rows() -> Select[Any]:
    return select(sql_cast(AUDIT.c.seq, Text)).order_by(AUDIT.c.seq)


def _big_rows(tail: str) -> Select[Any]:
    """One row per seq, 9000 characters long (the server's output buffer is 8 KiB, so
    each row is on its way before the next one is made), then ``tail``."""
    return (
        select(literal_column(f"audit_log.seq::text || repeat('x', 9000) || {tail}", Text()))
        .select_from(AUDIT)
        .order_by(AUDIT.c.seq)
    )


def test_copy_lifts_the_wait_callback_and_puts_it_back(seeded_db: Database) -> None:
    seen_during: list[object] = []

    def sink(row: bytes) -> None:
        seen_during.append(extensions.get_wait_callback())

    with seeded_db.unit_of_work(read_only=True) as uow:
        before = extensions.get_wait_callback()
        assert before is wait_for_server  # installed by the unit of work
        connection = uow.session.connection()
        count, last = copy_rows(connection, _seq_rows(), sink)
        assert extensions.get_wait_callback() is before
        assert (count, last) == (len(ROWS), f"{len(ROWS)}\n".encode())
        assert seen_during == [None] * len(ROWS)
        # The same transaction goes on: statements, the ORM, a second COPY.
        raw: Any = connection.connection.dbapi_connection
        assert raw.get_transaction_status() == extensions.TRANSACTION_STATUS_INTRANS
        assert uow.session.execute(text("SELECT count(*) FROM audit_log")).scalar_one() == count
        assert uow.audit.head() is not None
        assert copy_rows(connection, _seq_rows(), lambda row: None) == (count, last)
        assert extensions.get_wait_callback() is before
    assert extensions.get_wait_callback() is None  # the unit of work took it away again


def test_copy_puts_back_whatever_was_installed(seeded_url: str) -> None:
    # Outside vutf's units of work: nothing, or someone else's callback.
    engine = create_engine(parse_database_url(seeded_url))
    try:
        for installed in (None, psycopg2.extras.wait_select):
            extensions.set_wait_callback(installed)
            try:
                with engine.connect() as connection:
                    assert copy_rows(connection, _seq_rows(), lambda row: None)[0] == len(ROWS)
                    assert extensions.get_wait_callback() is installed
                    assert connection.execute(text("SELECT 1")).scalar_one() == 1
            finally:
                extensions.set_wait_callback(None)
    finally:
        engine.dispose()


def test_an_error_in_a_later_row_is_raised_and_the_callback_put_back(
    seeded_db: Database,
) -> None:
    # Division by zero at seq 3: rows 1 and 2 were sent before the error.
    # (random() makes the expression volatile: computed after the sort, row by row.)
    failing = _big_rows("(100 / (audit_log.seq - 3 + floor(random())::int))::text")
    received: list[bytes] = []
    with seeded_db.unit_of_work(read_only=True) as uow:
        before = extensions.get_wait_callback()
        connection = uow.session.connection()
        with pytest.raises(DBAPIError) as caught:
            copy_rows(connection, failing, received.append)
        assert isinstance(caught.value.orig, psycopg2.errors.DivisionByZero)
        # Raised as SQLAlchemy raises it for any statement: vutf maps the class to an exit code.
        assert isinstance(caught.value, DataError)
        assert extensions.get_wait_callback() is before
        assert [row.replace(b"x" * 9000, b"") for row in received] == [b"1-50\n", b"2-100\n"]
        # The transaction is aborted (as after any failed statement); a
        # rollback makes the connection usable again.
        uow.session.rollback()
        count = uow.session.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
        assert count == len(ROWS)


# -- stalls and lost connections --------------------------------------------------------------
# The watchdog's limit in stall_db: statement timeout + connect timeout.
WAIT_LIMIT = 0.5 + 1.0
# The server sleeps before row 3, longer than WAIT_LIMIT (its own timeout is lifted).
STALLING = _big_rows("CASE WHEN audit_log.seq = 3 THEN pg_sleep(4)::text ELSE '' END")


@pytest.fixture
def stall_db(seeded_url: str) -> Iterator[Database]:
    """The watchdog gives up after statement timeout + connect timeout = WAIT_LIMIT."""
    database = Database(_settings(seeded_url, connect_timeout=1.0, statement_timeout_ms=500))
    try:
        yield database
    finally:
        database.dispose()


def test_a_server_that_stops_sending_mid_copy_is_given_up_on(stall_db: Database) -> None:
    received: list[bytes] = []
    with bounded_waits(), stall_db.engine.connect() as connection:
        before = extensions.get_wait_callback()
        assert before is wait_for_server
        # Only the watchdog bounds the COPY (the server would cancel the sleep first).
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        started = time.monotonic()
        try:
            # (Which exception: see the test below.)
            with pytest.raises((SQLAlchemyError, psycopg2.Error)):
                copy_rows(connection, STALLING, received.append)
            took = time.monotonic() - started
            assert extensions.get_wait_callback() is before
        finally:
            connection.invalidate()  # the socket was shut down
    assert received, "the server sent nothing before it stalled"
    assert received[0].startswith(b"1xxx")
    # Gave up after the limit (plus the watchdog's poll), not after the server's sleep.
    assert WAIT_LIMIT - 0.1 < took < WAIT_LIMIT + 1.0, took


def test_a_stalled_copy_raises_operational_error_naming_the_timeout(stall_db: Database) -> None:
    with stall_db.engine.connect() as connection:
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        try:
            with pytest.raises(OperationalError) as caught:
                copy_rows(connection, STALLING, lambda row: None)
        finally:
            connection.invalidate()
    assert caught.value.connection_invalidated
    assert "timeout expired" in str(caught.value.orig)


# The server sleeps before row 3 (shorter than the watchdog's limit).
PAUSING = _big_rows("CASE WHEN audit_log.seq = 3 THEN pg_sleep(1.2)::text ELSE '' END")


def _terminate_backend_after_row_1(db: Database, connection: Connection) -> Sink:
    """A sink that has the server end the COPY's connection while it pauses (a lost
    connection: what a restart or a network cut mid-export looks like)."""
    raw: Any = connection.connection.dbapi_connection
    pid = raw.get_backend_pid()
    url = make_url(db.settings.database_url).set(drivername="postgresql")

    def terminate() -> None:
        admin = psycopg2.connect(url.render_as_string(hide_password=False))
        try:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
        finally:
            admin.close()

    def sink(row: bytes) -> None:
        if row.startswith(b"1x"):
            threading.Timer(0.3, terminate).start()

    return sink


def _copy_in_unit_of_work(db: Database, fault: str) -> None:
    """What an export does, a COPY inside a read-only unit of work, meeting ``fault``."""
    with db.unit_of_work(read_only=True) as uow:
        # Only the watchdog bounds the COPY (the server would cancel the sleep first).
        uow.session.execute(text("SET LOCAL statement_timeout = 0"))
        connection = uow.session.connection()
        if fault == "stalled":
            copy_rows(connection, STALLING, lambda row: None)
        else:
            copy_rows(connection, PAUSING, _terminate_backend_after_row_1(db, connection))


@pytest.mark.parametrize("fault", ["stalled", "terminated"])
def test_the_reason_a_copy_failed_reaches_the_caller(fault: str, stall_db: Database) -> None:
    with pytest.raises(SQLAlchemyError) as caught:
        _copy_in_unit_of_work(stall_db, fault)
    # psycopg2 reports a terminated backend as "server closed the connection unexpectedly".
    reason = "timeout expired" if fault == "stalled" else "server closed the connection"
    assert reason in str(caught.value)


class SinkFailed(Exception):
    pass


def test_a_sink_that_raises_leaves_the_connection_usable(seeded_db: Database) -> None:
    def sink(row: bytes) -> None:
        raise SinkFailed

    with seeded_db.unit_of_work(read_only=True) as uow:
        before = extensions.get_wait_callback()
        connection = uow.session.connection()
        with pytest.raises(SinkFailed):
            copy_rows(connection, _seq_rows(), sink)
        assert extensions.get_wait_callback() is before
        uow.session.rollback()
        assert uow.session.execute(text("SELECT 1")).scalar_one() == 1


# -- through the CLI ---------------------------------------------------------------------------
def _cli(database_url: str, *args: str) -> str:
    result = invoke(list(args), env={"VUTF_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_export_is_utf8_whatever_the_client_encoding(database_url: str, db: Database) -> None:
    bulk_seed(db, 3, lambda seq: {"actor": "zoë"})
    name = parse_database_url(database_url).database
    with db.engine.connect() as connection:
        connection.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET client_encoding = 'LATIN1'")
        connection.commit()
    listed = _cli(database_url, "audit", "list", "--reverse", "-o", "jsonl")
    assert json.loads(listed.splitlines()[0])["actor"] == "zoë"
    assert _cli(database_url, "audit", "export") == listed
