"""Fixtures for fault injection against real PostgreSQL servers (docs/architecture.md §4).

* ``pg``: a private PostgreSQL server (see :mod:`tests.reliability.pg_instance`)
  for the whole session; tests may stop and restart it.  Skipped when the
  server binaries are missing, unless ``VUTF_REQUIRE_POSTGRES=1``.
* ``pg_database``: a migrated database on it with no rows: a clone of a
  template migrated once, emptied after a test and reused by the next
  (:mod:`tests.postgres_clones`; dropped instead if it changed beyond rows).
* ``proxy``: a :class:`~tests.reliability.tcp_proxy.TcpProxy` in front of it.
* ``run_vutf`` (a function): runs the installed ``vutf`` console script in a
  subprocess, with a timeout, so that a hang fails the test instead of stalling it.

When a test that used the private server fails, the tail of that server's log
is attached to the report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.postgres_clones import PostgresClones
from tests.reliability.pg_instance import PgInstance, PgUnavailable, start_instance
from tests.reliability.tcp_proxy import TcpProxy

VUTF = Path(sys.executable).with_name("vutf")

_INSTANCES: list[PgInstance] = []


def _required() -> bool:
    return os.environ.get("VUTF_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def pg() -> Iterator[PgInstance]:
    try:
        instance = start_instance()
    except PgUnavailable as exc:
        if _required():
            pytest.fail(f"VUTF_REQUIRE_POSTGRES=1 but a private server cannot start: {exc}")
        pytest.skip(f"no private PostgreSQL server: {exc}")
    _INSTANCES.append(instance)
    try:
        yield instance
    finally:
        _INSTANCES.remove(instance)
        instance.destroy()


# Why the private server could not be started again, once that happened: the
# later tests fail at once instead of each waiting minutes for it.
_START_FAILURE: dict[str, str] = {}


@pytest.fixture
def pg_running(pg: PgInstance) -> PgInstance:
    """The private server, started again if an earlier test left it stopped."""
    if "reason" in _START_FAILURE:
        pytest.fail(f"the private server could not be started earlier: {_START_FAILURE['reason']}")
    try:
        if not pg.is_running():
            pg.start()
        pg.wait_ready()
    except Exception as exc:
        _START_FAILURE["reason"] = f"{type(exc).__name__}: {exc}"[:500]
        raise
    return pg


@pytest.fixture(scope="session")
def pg_template(pg: PgInstance) -> str:
    from vutf_cli.db import migrations
    from vutf_cli.db.engine import make_engine
    from vutf_cli.settings import Settings

    name = f"vutf_tpl_{uuid.uuid4().hex[:8]}"
    pg.execute(f'CREATE DATABASE "{name}"')
    settings = Settings(database_url=pg.url(name))
    engine = make_engine(settings)
    try:
        migrations.upgrade(settings, engine)
    finally:
        engine.dispose()
    return name


@pytest.fixture(scope="session")
def pg_clones(pg: PgInstance, pg_template: str) -> Iterator[PostgresClones]:
    clones = PostgresClones(pg.url(), pg_template, prefix="vutf_r_")
    try:
        yield clones
    finally:
        if pg.is_running():
            clones.close()


@pytest.fixture
def pg_database(pg_running: PgInstance, pg_clones: PostgresClones) -> Iterator[str]:
    """Name of a migrated database with no rows on the private server."""
    name = pg_clones.take()
    try:
        yield name
    finally:
        pg_running.wait_ready()
        pg_clones.give_back(name)


@pytest.fixture
def proxy(pg_running: PgInstance) -> Iterator[TcpProxy]:
    tcp_proxy = TcpProxy(pg_running.port)
    try:
        yield tcp_proxy
    finally:
        tcp_proxy.close()


# -- running the installed command ---------------------------------------------------
@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    ended: float  # time.monotonic() when the process had exited

    def describe(self) -> str:
        return (
            f"vutf {' '.join(self.args)} -> {self.exit_code} in {self.seconds:.2f} s\n"
            f"stdout: {self.stdout!r}\nstderr: {self.stderr!r}"
        )


RunVutf = Callable[..., Run]


def vutf_env(database_url: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "VUTF_DATABASE_URL": database_url,
            "VUTF_ARGON2_PROFILE": "test",
            "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def run_vutf(
    *args: str,
    database_url: str,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
) -> Run:
    if not VUTF.exists():
        pytest.fail(f"the vutf console script is not installed next to {sys.executable}")
    started = time.monotonic()
    result = subprocess.run(
        [str(VUTF), *args],
        input=input,
        capture_output=True,
        text=True,
        env=vutf_env(database_url, env),
        timeout=timeout,
        check=False,
    )
    ended = time.monotonic()
    return Run(
        args=args,
        exit_code=result.returncode,
        stdout=result.stdout,
        stderr=result.stderr,
        seconds=ended - started,
        ended=ended,
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _INSTANCES and "pg" in getattr(item, "fixturenames", ()):
        for instance in _INSTANCES:
            report.sections.append(
                (f"private PostgreSQL log ({instance.logfile})", instance.log_tail(80))
            )
