"""A pgbouncer in transaction-pooling mode in front of the test PostgreSQL server.

The ``pgbouncer`` session fixture starts the Debian package's ``pgbouncer``
on a free port of 127.0.0.1 with a generated configuration in a temporary
folder, and stops it at the end.  pgbouncer refuses to run as root, so as
root it runs as ``postgres`` (``subprocess.Popen(user=...)``, the same as
``runuser -u postgres --`` but with pgbouncer itself as our child, so
stopping it is one signal to one process id).

The configuration is the one a deployment that outgrew its connection
budget would use: ``pool_mode = transaction``, a small pool
(``default_pool_size = 2``), every database forwarded (``* = host=...``),
``auth_type = trust`` (the test server trusts 127.0.0.1; ``trust`` still
wants the user in ``auth_file``).  ``ignore_startup_parameters`` is left
empty on purpose: pgbouncer then refuses a client that sends the libpq
``options`` startup parameter, so these tests also prove vutf does not rely
on one (its session settings are ``SET LOCAL`` at every transaction's start).

Without pgbouncer installed the tests skip, unless ``CI=true``: then they fail.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import postgres_admin_url

POOL_SIZE = 2
STARTUP_SECONDS = 15.0
RUN_AS = "postgres"  # pgbouncer will not run as root


@dataclass(frozen=True)
class Pgbouncer:
    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    def url_for(self, database_url: str) -> str:
        """``database_url`` (same user and database) reached through pgbouncer."""
        url = make_url(database_url).set(host=self.host, port=self.port)
        return url.render_as_string(hide_password=False)

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on pgbouncer's admin console (e.g. POOLS), as dicts."""
        import psycopg2

        conn = psycopg2.connect(
            host=self.host, port=self.port, dbname="pgbouncer", user=RUN_AS, connect_timeout=5
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"SHOW {what}")
                names = [column.name for column in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            conn.close()

    def log(self) -> str:
        path = self.workdir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (
            path
            for path in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
            if os.access(path, os.X_OK)
        ),
        None,
    )


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the pgbouncer tests must run)")
    pytest.skip(f"{reason}; `apt-get install pgbouncer` to run these tests")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_config(workdir: Path, port: int) -> Path:
    upstream = make_url(postgres_admin_url())
    userlist = workdir / "userlist.txt"
    userlist.write_text(f'"{RUN_AS}" ""\n')
    config = workdir / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"* = host={upstream.host or '127.0.0.1'} port={upstream.port or 5432}\n"
        "\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {userlist}\n"
        f"admin_users = {RUN_AS}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {POOL_SIZE}\n"
        "min_pool_size = 0\n"
        "reserve_pool_size = 0\n"
        "max_client_conn = 200\n"
        "query_wait_timeout = 60\n"
        "ignore_startup_parameters =\n"
    )
    for path in (userlist, config):
        path.chmod(0o644)
    return config


def _start(binary: str, workdir: Path) -> Pgbouncer | None:
    """pgbouncer on a free port, answering; None if it could not listen (port taken)."""
    import psycopg2

    port = _free_port()
    config = _write_config(workdir, port)
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(RUN_AS)
        except KeyError:
            _unavailable(f"no {RUN_AS!r} user to run pgbouncer as (it refuses root)")
        as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    with (workdir / "pgbouncer.log").open("ab") as log:
        process = subprocess.Popen(
            [binary, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            **as_user,
        )
    bouncer = Pgbouncer("127.0.0.1", port, workdir, process)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        try:
            bouncer.show("VERSION")
            return bouncer
        except psycopg2.OperationalError:
            time.sleep(0.1)
    _stop(process)
    pytest.fail(f"pgbouncer did not answer within {STARTUP_SECONDS:g} s:\n{bouncer.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def pgbouncer(postgres_template: str | None) -> Iterator[Pgbouncer]:
    if postgres_template is None:
        pytest.skip("PostgreSQL is unreachable (set VUTF_REQUIRE_POSTGRES=1 to fail instead)")
    binary = _binary()
    if binary is None:
        _unavailable("pgbouncer is not installed (Debian package pgbouncer)")
        return
    workdir = Path(tempfile.mkdtemp(prefix="vutf-pgbouncer-"))
    # Readable by the user pgbouncer runs as (it holds no secret); pgbouncer
    # writes only to the log descriptor it inherits.
    workdir.chmod(0o755)
    bouncer = None
    try:
        for _ in range(3):  # another process may take the free port first
            bouncer = _start(binary, workdir)
            if bouncer is not None:
                break
        if bouncer is None:
            log = (workdir / "pgbouncer.log").read_text(errors="replace")
            pytest.fail(f"pgbouncer did not start:\n{log}")
        yield bouncer
    finally:
        if bouncer is not None:
            _stop(bouncer.process)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def backend() -> str:
    """pgbouncer pools PostgreSQL connections only (overrides the two-backend fixture)."""
    return "postgresql"


@pytest.fixture
def bouncer_url(pgbouncer: Pgbouncer, database_url: str) -> str:
    """A fresh migrated database (made directly on the server), reached through pgbouncer."""
    return pgbouncer.url_for(database_url)
