"""A private, throw-away PostgreSQL server for fault-injection tests.

The shared server at 127.0.0.1:5432 is used by other test runs at the same
time, so it is never restarted or stopped here.  Tests that need to restart
a server (or to log in with a password) start one of these instead:

* ``initdb`` into a fresh temporary directory (owned by the ``postgres`` OS
  user when running as root, because ``initdb``/``pg_ctl`` refuse root);
* a free TCP port on 127.0.0.1, the unix socket inside the temporary
  directory, ``fsync=off`` and friends for speed;
* ``trust`` for every role except :data:`PASSWORD_ROLE`, which must log in
  with a password (``scram-sha-256``), so a wrong password is a real
  authentication failure;
* the server log goes to a file, shown by :meth:`PgInstance.log_tail`.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PASSWORD_ROLE = "vutf_pw"
PASSWORD = "s3cret-Passw0rd-for-tests"
SUPERUSER = "postgres"


class PgUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed here."""


def find_bindir() -> Path:
    """``VUTF_TEST_PG_BINDIR``, or the newest ``.../bin`` holding both ``initdb`` and ``pg_ctl``."""
    candidates: list[Path] = []
    explicit = os.environ.get("VUTF_TEST_PG_BINDIR")
    if explicit:
        # Given explicitly: that one or none (no silent fallback).
        bindir = Path(explicit)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
        raise PgUnavailable(f"VUTF_TEST_PG_BINDIR={explicit} holds no initdb and pg_ctl")

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    candidates.extend(Path(path) for path in found)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    for directory in (Path(p).parent for p in filter(None, [shutil.which("initdb")])):
        candidates.append(directory)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PgInstance:
    """One private PostgreSQL server: ``start()``, ``stop()``, ``restart()``, ``destroy()``."""

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="vutf-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self.port = free_port()
        self._run_as: str | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PgUnavailable("running as root and there is no `postgres` OS user") from None
            if shutil.which("runuser") is None:
                raise PgUnavailable("running as root and `runuser` is missing")
            self._run_as = "postgres"
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.root.chmod(0o700)

    # -- commands -------------------------------------------------------------
    def _command(self, *args: str) -> list[str]:
        if self._run_as is None:
            return list(args)
        return ["runuser", "-u", self._run_as, "--", *args]

    def _run(self, args: Sequence[str], *, timeout: float = 60) -> str:
        result = subprocess.run(
            self._command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n--- server log ---\n{self.log_tail()}"
            )
        return result.stdout

    def _pg_ctl(self, *args: str, timeout: float = 60) -> str:
        return self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args], timeout=timeout
        )

    # -- lifecycle ------------------------------------------------------------
    def init(self) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            # fsync=off is safe here: the tests crash processes, never the kernel.
            # synchronous_commit stays on, so an acknowledged COMMIT is in the
            # WAL before the client hears of it, even across `-m immediate`.
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "32MB",
            "password_encryption": "'scram-sha-256'",
            "log_connections": "on",
            "log_disconnections": "off",
            "log_line_prefix": "'%m [%p] %a '",
            "ssl": "off",
        }
        with (self.datadir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# vutf reliability tests\n")
            for name, value in settings.items():
                conf.write(f"{name} = {value}\n")
        # First match wins: the password role must authenticate, everyone else is trusted.
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n",
            encoding="utf-8",
        )

    def start(self) -> None:
        self._pg_ctl("-l", str(self.logfile), "-w", "-t", "60", "start", timeout=90)

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-t", "60", "-m", mode, "stop", timeout=90)

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("-l", str(self.logfile), "-w", "-t", "60", "-m", mode, "restart", timeout=90)

    def is_running(self) -> bool:
        try:
            self._pg_ctl("status", timeout=20)
        except RuntimeError:
            return False
        return True

    def destroy(self) -> None:
        try:
            if (self.datadir / "postmaster.pid").exists():
                self.stop("immediate")
        except (RuntimeError, subprocess.SubprocessError):
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- access ---------------------------------------------------------------
    def url(
        self,
        database: str = "postgres",
        *,
        user: str = SUPERUSER,
        password: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> str:
        auth = user if password is None else f"{user}:{password}"
        return f"postgresql://{auth}@{host}:{port or self.port}/{database}"

    def connect(self, database: str = "postgres", **kwargs: Any) -> Any:
        """A psycopg2 connection as the superuser (autocommit), for setup and inspection."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            connect_timeout=5,
            application_name="vutf-tests-admin",
            **kwargs,
        )
        conn.autocommit = True
        return conn

    @contextmanager
    def cursor(self, database: str = "postgres") -> Iterator[Any]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def execute(self, sql: str, *params: Any, database: str = "postgres") -> list[tuple[Any, ...]]:
        with self.cursor(database) as cur:
            cur.execute(sql, params or None)
            if cur.description is None:
                return []
            return list(cur.fetchall())

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.logfile.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def start_instance() -> PgInstance:
    """initdb + start, retrying on another port if the chosen one was taken meanwhile."""
    instance = PgInstance()
    try:
        instance.init()
        for _ in range(3):
            try:
                instance.start()
                break
            except RuntimeError:
                if "could not bind" not in instance.log_tail() and "in use" not in (
                    instance.log_tail()
                ):
                    raise
                instance.port = free_port()
                conf = instance.datadir / "postgresql.conf"
                conf.write_text(
                    conf.read_text(encoding="utf-8") + f"port = {instance.port}\n",
                    encoding="utf-8",
                )
        else:
            raise RuntimeError("could not find a free port for the private PostgreSQL server")
        instance.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
        return instance
    except BaseException:
        instance.destroy()
        raise
