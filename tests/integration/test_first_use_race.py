"""First use and migration are race-free (docs/architecture.md §4, §5.1).

Real processes of the installed ``vutf``, started together: several that are
the first to touch a fresh default SQLite database, and several ``vutf db
upgrade`` on a fresh database of either backend, all end 0, and exactly one
of the upgrades migrates while the others find the work done.

Python's start-up spreads processes started together over a second or so, so
the tests also line the processes up behind what another process would hold
(SQLite: the write lock on the new, still empty WAL file, as the first vutf
to arrive holds it while it migrates; PostgreSQL: another migrator's
transaction midway through creating the version table) and let go of it once
they are all waiting: then they all reach the migration at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest

from vutf_cli.db.schema_version import HEAD_REVISION

VUTF = Path(sys.executable).with_name("vutf")
PROCESSES = 6
TIMEOUT = 60.0
# Long enough for every process to have started and to be waiting on the holder.
HOLD_SECONDS = 2.0

Holder = Callable[[], AbstractContextManager[object]]


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.exit_code}; stdout {self.stdout!r}; stderr {self.stderr!r}"


def _together(*args: str, holder: Holder = nullcontext) -> list[Outcome]:
    """Start PROCESSES ``vutf ARGS`` at once (while ``holder`` holds, if given); all outcomes."""
    with holder():
        processes = [
            subprocess.Popen(
                [str(VUTF), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        if holder is not nullcontext:
            time.sleep(HOLD_SECONDS)
    outcomes = []
    for process in processes:
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        outcomes.append(Outcome(process.returncode, stdout, stderr))
    failed = [str(outcome) for outcome in outcomes if outcome.exit_code != 0]
    assert not failed, "\n".join(failed)
    return outcomes


def _sqlite_writer(path: Path) -> Holder:
    """The write lock on ``path``, an empty WAL database (what vutf's first connection makes)."""

    @contextmanager
    def hold() -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("PRAGMA journal_mode=WAL")
            holder.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder.close()

    return hold


def _postgres_migrator_midway(url: str) -> Holder:
    """A transaction that has created ``alembic_version`` and not committed yet."""

    @contextmanager
    def hold() -> Iterator[None]:
        from sqlalchemy import create_engine

        from vutf_cli.db.engine import parse_database_url

        engine = create_engine(parse_database_url(url))
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql(
                    "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"
                )
                yield
                connection.rollback()
        finally:
            engine.dispose()

    return hold


def _default_data_dir() -> Path:
    return Path(os.environ["VUTF_DATA_DIR"])  # an empty folder per test (tests/conftest.py)


def _assert_migrated(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        found = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        conn.close()
    assert found == [(HEAD_REVISION,)]


def test_first_use_of_the_default_database_by_several_processes() -> None:
    data_dir = _default_data_dir()
    assert not data_dir.exists()
    outcomes = _together("users", "list")
    assert all("no users found" in outcome.stderr for outcome in outcomes)
    _assert_migrated(data_dir / "vutf.db")


def test_first_use_of_the_default_database_by_processes_arriving_at_once() -> None:
    path = _default_data_dir() / "vutf.db"
    _together("users", "list", holder=_sqlite_writer(path))
    _assert_migrated(path)


@pytest.mark.fresh_database
def test_concurrent_upgrades_of_a_fresh_database(
    backend: str, empty_database_url: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        holder = _sqlite_writer(tmp_path / "empty.db")
    else:
        holder = _postgres_migrator_midway(empty_database_url)
    outcomes = _together(
        "--database-url", empty_database_url, "--json", "db", "upgrade", holder=holder
    )
    results = [json.loads(outcome.stdout) for outcome in outcomes]
    assert all(result["current"] == result["head"] for result in results)
    # One process migrated; the others waited and found the database at head.
    assert sorted(result["changed"] for result in results) == [False] * (PROCESSES - 1) + [True]
    assert sorted(result["previous"] or "base" for result in results) == [HEAD_REVISION] * (
        PROCESSES - 1
    ) + ["base"]
