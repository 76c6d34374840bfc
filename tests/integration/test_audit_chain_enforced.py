"""The database refuses an audit row that does not extend the chain (docs/architecture.md §2.3).

Raw INSERTs, as the superuser and (PostgreSQL) as the least-privilege runtime
role: a wedging ``seq``, a gap and a wrong ``prev_hash`` are refused (SQLSTATE
VU001 on PostgreSQL, ``RAISE(ABORT)`` on SQLite); a correctly linked row is
accepted, and vutf's own single and bulk appends still work after it.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.integration.test_least_privilege import (
    admin,
    as_role,
    drop_roles,
    grant,
    quoted,
    unique_role,
)
from vutf_cli.db import migrations
from vutf_cli.db.database import Database
from vutf_cli.db.engine import make_engine
from vutf_cli.security.audit_chain import GENESIS_HASH
from vutf_cli.services import audit_trail
from vutf_cli.settings import Settings

WEDGE = 2**63 - 1
ENTRY = {"action": "user.create", "resource_type": "user"}


class Refused(Exception):
    """The database refused the INSERT as not extending the chain."""


@contextmanager
def _raw(url: str) -> Iterator[Any]:
    """A DB-API connection outside vutf: psycopg2 or sqlite3."""
    parts = make_url(url)
    if parts.get_backend_name() == "sqlite":
        conn: Any = sqlite3.connect(parts.database or "")
    else:
        import psycopg2

        conn = psycopg2.connect(
            host=parts.host, port=parts.port or 5432, dbname=parts.database, user=parts.username
        )
    try:
        yield conn
    finally:
        conn.close()


def raw_insert(
    url: str, *rows: tuple[int, str], table: str = "audit_log", before: str | None = None
) -> None:
    """INSERT ``(seq, prev_hash)`` rows in ONE statement; Refused when the chain trigger says no.

    ``before`` runs first on the same connection.
    """
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    mark = "?" if is_sqlite else "%s"
    values = ", ".join(
        f"({mark}, {mark}, CURRENT_TIMESTAMP, 'mallory', 'x.y', 'x', 'success', {mark}, {mark})"
        for _ in rows
    )
    params: list[Any] = []
    for seq, prev_hash in rows:
        params += [str(uuid.uuid4()), seq, prev_hash, f"{seq:064x}"]
    sql = (
        f"INSERT INTO {table} (id, seq, created_at, actor, action, resource_type, status, "
        f"prev_hash, row_hash) VALUES {values}"
    )
    with _raw(url) as conn:
        try:
            if before is not None:
                conn.cursor().execute(before)
            conn.cursor().execute(sql, params)
            conn.commit()
        except sqlite3.IntegrityError as exc:
            raise Refused(str(exc)) from None
        except Exception as exc:
            if getattr(exc, "pgcode", None) != "VU001":
                raise
            raise Refused(str(exc)) from None


def head(url: str) -> tuple[int, str]:
    with _raw(url) as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT seq, row_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        row = cursor.fetchone()
    return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))


def assert_enforced(url: str) -> None:
    """Wedge, gap, wrong prev_hash refused; a linked row accepted."""
    seq, row_hash = head(url)
    for bad in [(WEDGE, row_hash), (seq + 2, row_hash), (seq + 1, "f" * 64)]:
        with pytest.raises(Refused, match="does not extend the chain"):
            raw_insert(url, bad)
    assert head(url) == (seq, row_hash)
    raw_insert(url, (seq + 1, row_hash))
    assert head(url) == (seq + 1, f"{seq + 1:064x}")


def test_unlinked_rows_are_refused_linked_ones_accepted(database_url: str) -> None:
    assert_enforced(database_url)  # the genesis case: seq 1 after the 64 zeros
    assert_enforced(database_url)


def test_one_statement_of_many_rows_must_be_in_chain_order(database_url: str) -> None:
    """A row trigger sees the rows the same statement inserted before it."""
    with pytest.raises(Refused, match="does not extend the chain"):
        raw_insert(database_url, (1, GENESIS_HASH), (3, f"{2:064x}"), (2, f"{1:064x}"))
    assert head(database_url) == (0, GENESIS_HASH)  # the whole statement rolled back
    raw_insert(database_url, (1, GENESIS_HASH), (2, f"{1:064x}"), (3, f"{2:064x}"))
    assert head(database_url) == (3, f"{3:064x}")


def test_vutf_single_and_bulk_appends_still_work(db: Database, database_url: str) -> None:
    db.run(lambda uow: audit_trail.append(uow, **ENTRY))
    assert db.run(lambda uow: audit_trail.append_many(uow, [ENTRY] * 300)) == range(2, 302)
    raw_insert(database_url, (302, head(database_url)[1]))
    db.run(lambda uow: audit_trail.append(uow, **ENTRY))
    assert db.run(lambda uow: audit_trail.append_many(uow, [ENTRY] * 3)) == range(304, 307)
    assert head(database_url)[0] == 306


@pytest.fixture
def runtime_role(database_url: str) -> Iterator[str]:
    """A LOGIN role given `vutf db grant-runtime`, dropped when the test ends."""
    role = unique_role()
    admin(database_url, f"CREATE ROLE {quoted(role)} LOGIN")
    try:
        assert grant(database_url, role).exit_code == 0
        yield role
    finally:
        drop_roles(database_url, role)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"])  # roles exist on PostgreSQL only
def test_the_runtime_role_is_held_to_the_chain(database_url: str, runtime_role: str) -> None:
    role = runtime_role
    as_runtime = as_role(database_url, role)
    assert_enforced(as_runtime)
    # A temporary table named audit_log cannot stand in for the real one when
    # the trigger reads the head: its search_path is pinned, pg_temp last.
    with pytest.raises(Refused, match="does not extend the chain"):
        raw_insert(
            as_runtime,
            (WEDGE, GENESIS_HASH),
            table="public.audit_log",
            before=(
                f"CREATE TEMP TABLE audit_log AS SELECT {WEDGE - 1}::bigint AS seq, "
                f"'{GENESIS_HASH}'::text AS row_hash"
            ),
        )
    # The replica-mode sidestep is not the runtime role's to take.
    with pytest.raises(Exception, match="session_replication_role"), _raw(as_runtime) as conn:
        conn.cursor().execute("SET session_replication_role = replica")


def test_downgrade_and_upgrade_keep_the_rows(empty_database_url: str) -> None:
    settings = Settings(database_url=empty_database_url, db_deadline=5.0)
    engine = make_engine(settings)
    try:
        migrations.upgrade(settings, engine)
        raw_insert(empty_database_url, (1, GENESIS_HASH), (2, f"{1:064x}"))

        migrations.downgrade(settings, engine, "0001_initial")
        raw_insert(empty_database_url, (7, "f" * 64))  # no longer refused
        with engine.connect() as conn:
            seqs = conn.execute(sa.text("SELECT seq FROM audit_log ORDER BY seq")).scalars()
            assert list(seqs) == [1, 2, 7]

        migrations.upgrade(settings, engine)
        migrations.check_drift(settings, engine)
        assert_enforced(empty_database_url)
        assert head(empty_database_url)[0] == 8
    finally:
        engine.dispose()
