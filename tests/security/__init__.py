"""Security tests: hostile input, argv fuzzing, secrets, file modes (shared helpers).

The helpers here are shared by the modules of this package (it has no
conftest of its own):

* :func:`run` runs the real root command in-process (``tests/cli/conftest.py``'s
  ``invoke``) against a database URL; :func:`run_subprocess` runs ``python -m
  vutf_cli`` for what only a real process shows (argv bytes, ``sys.argv`` in
  the audit metadata, a pseudo-terminal, the umask);
* :func:`leaf_commands` walks the live command tree, :func:`value_kind` says
  what kind of value a parameter of it takes;
* :func:`seed` fills a fresh database with users, keys and audit rows;
* :func:`state_fingerprint` hashes everything a command could write (rows of
  the three tables, minus ``failure`` audit rows, plus the schema) and
  :func:`dump_database` produces ``sqlite3 .dump`` / ``pg_dump`` text;
* :func:`terminal_controls` finds what must never reach a terminal;
* :func:`record` collects each module's figures, printed at the end of the
  run as one summary line per module (for the README's reliability table).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import CliResult, invoke
from tests.roles_support import grant_role_at

PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "definitely not the right password"
REPO_ROOT = Path(__file__).resolve().parents[2]
# Every exit code of the documented table except 1 (an internal error is a bug).
DOCUMENTED_EXIT_CODES = frozenset({0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 130})  # 10: vutf plan, changes
# A short deadline: nothing here waits for an unreachable server on purpose.
FAST_ENV = {"VUTF_DB_DEADLINE": "3"}


# -- running vutf ----------------------------------------------------------------------------
def run(
    url: str,
    *args: str,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> CliResult:
    """``vutf ARGS`` in-process against ``url``."""
    merged = {"VUTF_DATABASE_URL": url, **FAST_ENV, **(env or {})}
    return invoke(list(args), input=input, env=merged)


def run_subprocess(
    args: Sequence[str | bytes],
    *,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
    umask: int | None = None,
    timeout: float = 60,
    stdin_path: Path | None = None,
    memory_limit: int | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``python -m vutf_cli ARGS`` in a real process (argv may hold raw bytes); its stdin
    is ``input``, or the file ``stdin_path`` (e.g. /dev/zero, which never ends).

    ``memory_limit`` (bytes of address space) makes a process that reads without
    bound fail fast (MemoryError) instead of taking the machine's memory."""
    full_env = {**os.environ, **FAST_ENV, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )

    def set_limits() -> None:
        if umask is not None:
            os.umask(umask)
        if memory_limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    # Without a preexec_fn subprocess may spawn the faster way (vfork / posix_spawn).
    preexec = None if umask is None and memory_limit is None else set_limits
    with contextlib.ExitStack() as stack:
        stdin = None if stdin_path is None else stack.enter_context(stdin_path.open("rb"))
        return subprocess.run(
            [sys.executable.encode(), b"-m", b"vutf_cli", *[os.fsencode(a) for a in args]],
            input=None if stdin is not None else (input if input is not None else b""),
            stdin=stdin,
            capture_output=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
            preexec_fn=preexec,
            check=False,
        )


# -- the command tree ------------------------------------------------------------------------
@dataclass(frozen=True)
class Leaf:
    """One runnable command: its path below ``vutf`` and its click command."""

    path: tuple[str, ...]
    command: Any = field(compare=False)

    @property
    def name(self) -> str:
        return " ".join(self.path)


def root_command() -> Any:
    import typer

    from vutf_cli.cli.app import app

    return typer.main.get_command(app)


def leaf_commands() -> list[Leaf]:
    """Every leaf of the live tree (``vutf GROUP COMMAND``), groups built on the way."""
    leaves: list[Leaf] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children is None:
            leaves.append(Leaf(path, command))
            return
        for name in list(children):
            walk(children[name], (*path, name))

    walk(root_command(), ())
    return leaves


# The ``name`` click gives each parameter type (a public attribute of every
# ``ParamType``), by the kind of value the option takes.
_KIND_BY_TYPE_NAME = {
    "int": "int",
    "int range": "int",
    "float": "float",
    "float range": "float",
    "file": "path",
    "directory": "path",
    "path": "path",
}


def value_kind(param: Any) -> str:
    """What a parameter of the tree takes: ``int``, ``float``, ``path`` or ``text``."""
    return _KIND_BY_TYPE_NAME.get(param.type.name, "text")


# -- the seeded database ---------------------------------------------------------------------
@dataclass
class Seeded:
    """What :func:`seed` created, to draw realistic references from."""

    usernames: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    user_ids: list[str] = field(default_factory=list)
    key_ids: list[str] = field(default_factory=list)
    key_prefixes: list[str] = field(default_factory=list)
    # name -> plaintext: "active" (alice, read + targets:write), "bot" (bob,
    # no expiry), "revoked" (alice, revoked).
    plaintexts: dict[str, str] = field(default_factory=dict)


def _ok(result: CliResult) -> CliResult:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def seed(url: str) -> Seeded:
    """Users alice (superuser), bob, carol (inactive), dave (deleted); three API keys."""
    seeded = Seeded()
    for name, extra in (
        ("alice", ["--superuser", "--full-name", "Alice Example"]),
        ("bob", []),
        ("carol", []),
        ("dave", []),
    ):
        created = _ok(
            run(
                url,
                "--json",
                "users",
                "create",
                name,
                "--email",
                f"{name}@example.com",
                "--password-stdin",
                *extra,
                input=PASSWORD,
            )
        ).json()
        seeded.usernames.append(name)
        seeded.emails.append(f"{name}@example.com")
        seeded.user_ids.append(created["id"])
    for name in ("alice", "bob"):  # a key never carries more than its owner holds
        grant_role_at(url, name)
    _ok(run(url, "users", "deactivate", "carol"))
    _ok(run(url, "--yes", "users", "delete", "dave"))
    for label, args in (
        ("active", ["-u", "alice", "-n", "ci", "--scope", "read,targets:write"]),
        ("bot", ["-u", "bob", "-n", "bot", "--no-expiry"]),
        ("revoked", ["-u", "alice", "-n", "old", "--expires-in", "30d"]),
    ):
        issued = _ok(run(url, "--json", "keys", "create", *args)).json()
        seeded.plaintexts[label] = issued["key"]
        seeded.key_ids.append(issued["id"])
        seeded.key_prefixes.append(issued["key_prefix"])
    _ok(run(url, "--yes", "keys", "revoke", seeded.key_prefixes[-1]))
    return seeded


# -- the database, as data -------------------------------------------------------------------
def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_file(url: str) -> Path:
    return Path(url.split("sqlite:///", 1)[1])


def database_name(url: str) -> str:
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    assert name
    return name


# Tables vutf writes, each with the column that orders it, and what is
# excluded from the "nothing written" comparison (failure audit rows).
_TABLES = (
    ("users", "id", ""),
    ("api_keys", "id", ""),
    ("roles", "id", ""),
    ("user_roles", "id", ""),
    ("audit_log", "seq", "WHERE status <> 'failure'"),
    ("alembic_version", "version_num", ""),
)
# A refused password check is recorded (its failure audit row, left out above)
# and counted for lockout: those counters are what a failed login writes.
_LOGIN_BOOKKEEPING = {
    "users": ("failed_login_count", "last_failed_login_at", "locked_until"),
}


def state_fingerprint(url: str) -> str:
    """A hash of every row vutf could write (failure audit rows left out) and of the schema."""
    digest = hashlib.sha256()
    if is_sqlite(url):
        conn = sqlite3.connect(sqlite_file(url))
        try:
            for (sql,) in conn.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type, name"
            ):
                digest.update(sql.encode())
            for table, order, where in _TABLES:
                try:
                    rows = conn.execute(f"SELECT * FROM {table} {where} ORDER BY {order}")
                    names = [column[0] for column in rows.description]
                    kept = [
                        i
                        for i, name in enumerate(names)
                        if name not in _LOGIN_BOOKKEEPING.get(table, ())
                    ]
                    digest.update(f"[{table}]".encode())
                    for row in rows:
                        digest.update(repr(tuple(row[i] for i in kept)).encode())
                except sqlite3.OperationalError:
                    digest.update(f"[{table} missing]".encode())
        finally:
            conn.close()
        return digest.hexdigest()
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                "SELECT table_name, column_name, data_type, is_nullable FROM "
                "information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
            )
            digest.update(repr(cur.fetchall()).encode())
            for table, order, where in _TABLES:
                omitted = ", ".join(f"'{name}'" for name in _LOGIN_BOOKKEEPING.get(table, ()))
                try:
                    cur.execute(
                        f"SELECT (to_jsonb(t) - ARRAY[{omitted}]::text[])::text"
                        f" FROM {table} t {where} ORDER BY {order}"
                    )
                    digest.update(f"[{table}]".encode())
                    for (row,) in cur.fetchall():
                        digest.update(row.encode())
                except psycopg2.errors.UndefinedTable:
                    digest.update(f"[{table} missing]".encode())
    finally:
        conn.close()
    return digest.hexdigest()


def dump_database(url: str) -> bytes:
    """``sqlite3 FILE .dump`` or ``pg_dump`` of the database, as bytes."""
    if is_sqlite(url):
        argv = ["sqlite3", str(sqlite_file(url)), ".dump"]
    else:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        argv = [
            "pg_dump",
            "-h",
            parsed.host or "127.0.0.1",
            "-p",
            str(parsed.port or 5432),
            "-U",
            parsed.username or "postgres",
            database_name(url),
        ]
    done = subprocess.run(argv, capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout, "empty dump"
    return done.stdout


def audit_rows(url: str) -> list[dict[str, Any]]:
    """Every audit row as a dict (metadata/changes parsed), oldest first."""
    if is_sqlite(url):
        conn = sqlite3.connect(sqlite_file(url))
        conn.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY seq")]
        finally:
            conn.close()
        for row in rows:
            for key in ("metadata", "changes"):
                if isinstance(row.get(key), str):
                    row[key] = json.loads(row[key])
        return rows
    import psycopg2
    import psycopg2.extras

    conn = psycopg2.connect(url)
    try:
        with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("SELECT * FROM audit_log ORDER BY seq")
            return [dict(r) for r in cur.fetchall()]
    finally:
        conn.close()


def execute_sql(url: str, statement: str, params: Sequence[Any] = ()) -> None:
    """One write outside vutf (to plant data that vutf's validation would refuse)."""
    if is_sqlite(url):
        conn = sqlite3.connect(sqlite_file(url))
        try:
            conn.execute(statement.replace("%s", "?"), tuple(params))
            conn.commit()
        finally:
            conn.close()
        return
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, tuple(params))
    finally:
        conn.close()


# -- files -----------------------------------------------------------------------------------
def tree_fingerprint(*roots: Path) -> dict[str, tuple[int, str]]:
    """path -> (mode, sha256) for every file and folder under ``roots``."""
    found: dict[str, tuple[int, str]] = {}
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            mode = path.lstat().st_mode
            content = "" if not path.is_file() else hashlib.sha256(path.read_bytes()).hexdigest()
            found[str(path)] = (mode, content)
    return found


# -- terminal safety -------------------------------------------------------------------------
# ESC (CSI, OSC, ...), the 8-bit CSI/OSC/ST, BEL, and the bidi overrides/isolates.
_TERMINAL_CONTROLS = re.compile("[\x1b\x9b\x9d\x9c\x07\u202a-\u202e\u2066-\u2069]")


def terminal_controls(text: str) -> list[str]:
    """The characters of ``text`` that would act on a terminal instead of being shown."""
    return _TERMINAL_CONTROLS.findall(text)


# -- per-module figures, printed at the end of the run ----------------------------------------
FIGURES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def record(module: str, **figures: int) -> None:
    for name, value in figures.items():
        FIGURES[module][name] += value


class _SummaryPlugin:
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not FIGURES:
            return
        terminalreporter.section("security tests: figures")
        for module in sorted(FIGURES):
            parts = ", ".join(f"{name}={value}" for name, value in FIGURES[module].items())
            terminalreporter.write_line(f"{module}: {parts}")


def register_summary(config: pytest.Config) -> None:
    """Print :data:`FIGURES` at the end of the run (once, whichever module asks first)."""
    name = "vutf-security-figures"
    if not config.pluginmanager.has_plugin(name):
        config.pluginmanager.register(_SummaryPlugin(), name)
