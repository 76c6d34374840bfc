"""Benchmark databases: created, migrated by ``vutf db upgrade``, bulk-seeded, dropped.

Audit rows are seeded with a VALID hash chain, so ``vutf audit verify`` has
real work to do and exits 0.  Each row is built as the repository builds it:
``changes`` and ``metadata`` in their stored form (:func:`stored_json`), the
hashed fields picked by :func:`hash_content` and serialized by
:func:`canonical_json`.  The chain itself is
``sha256(prev_hash || canonical JSON)``, i.e. :func:`compute_row_hash`
without ``VUTF_AUDIT_KEY``; to keep the rows fast to make, the canonical JSON
is computed in worker processes and only the (cheap, sequential) chaining in
this one.  The first row of every chunk is checked against
:func:`compute_row_hash` itself, computed from the row's stored JSON text
read back, so a drift in the formula or in the stored form stops the seeding
instead of producing a chain that does not verify.

Loading is bulk: PostgreSQL ``COPY ... FROM STDIN`` streamed while the rows
are being made, SQLite ``executemany`` in one transaction with
``synchronous=OFF`` (seeding only; the journal goes back to WAL afterwards).
The audit table's secondary indexes (and SQLite's replace-guard trigger)
are dropped for the load and recreated afterwards from the exact DDL the
database reports for them, so the schema ends up exactly as migrated.

Variety: 20 actors (a few do most of the work), the ~1000 seeded users as
subjects, 15 actions over ``user`` and ``api_key`` resources, statuses mostly
``success``, ``created_at`` increasing with ``seq`` over the 90 days before
the seeding.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import json
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from tests.benchmarks.environment import (
    child_environment,
    libpq_url,
    postgres_admin_url,
    vutf_executable,
    with_database,
)
from vutf_cli.db.repositories.audit import hash_content, stored_json
from vutf_cli.db.types import dumps_json
from vutf_cli.security.audit_chain import GENESIS_HASH, canonical_json, compute_row_hash
from vutf_cli.security.audit_fields import ENTRY_FIELDS

if TYPE_CHECKING:
    from tests.benchmarks.settings import Settings

# Every column of audit_log, in the order vutf lists and exports them.
AUDIT_COLUMNS: Final = ENTRY_FIELDS
USER_COLUMNS: Final = (
    "id",
    "username",
    "email",
    "password_hash",
    "full_name",
    "is_active",
    "is_superuser",
    "is_verified",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "version",
    "is_deleted",
)
HISTORY: Final = timedelta(days=90)
CHUNK_ROWS: Final = 20_000
# Below this many rows, worker processes cost more than they save.
PARALLEL_ROWS: Final = 50_000
USER_PASSWORD: Final = "benchmark passphrase for every seeded user"
SEED_ACTOR: Final = "bench@benchmarks"

# (actor, host, weight): a few actors do most of the work, as in real logs.
ACTORS: Final = tuple(
    (f"{name}@{host}", host, weight)
    for name, host, weight in [
        ("alice", "ops-1", 30),
        ("bob", "ops-2", 18),
        ("ci-bot", "runner-1", 40),
        ("ci-bot", "runner-2", 35),
        ("carol", "ops-1", 12),
        ("dave", "ops-3", 9),
        ("erin", "laptop-erin", 7),
        ("frank", "laptop-frank", 6),
        ("grace", "ops-2", 5),
        ("heidi", "ops-3", 5),
        ("ivan", "laptop-ivan", 4),
        ("judy", "ops-1", 4),
        ("mallory", "laptop-mallory", 2),
        ("niaj", "ops-4", 3),
        ("olivia", "ops-4", 3),
        ("peggy", "laptop-peggy", 2),
        ("rupert", "ops-2", 2),
        ("sybil", "ops-5", 2),
        ("trent", "ops-5", 1),
        ("api", "violentutf-api-1", 50),
    ]
)
# (action, resource_type, weight)
ACTIONS: Final = (
    ("user.create", "user", 8),
    ("user.update", "user", 14),
    ("user.set_password", "user", 6),
    ("user.activate", "user", 3),
    ("user.deactivate", "user", 3),
    ("user.verify", "user", 4),
    ("user.delete", "user", 2),
    ("user.restore", "user", 1),
    ("user.import", "user", 1),
    ("api_key.create", "api_key", 10),
    ("api_key.revoke", "api_key", 5),
    ("api_key.rotate", "api_key", 4),
    ("api_key.extend", "api_key", 3),
    ("api_key.set_scopes", "api_key", 3),
    ("api_key.use", "api_key", 33),
)
STATUSES: Final = (("success", 950), ("failure", 40), ("error", 10))
SCOPES: Final = ("targets:read", "sessions:write", "users:read", "api_keys:*", "read", "write")


_ACTOR_CUM: Final = list(accumulate(weight for _, _, weight in ACTORS))
_ACTION_CUM: Final = list(accumulate(weight for _, _, weight in ACTIONS))
_STATUS_CUM: Final = list(accumulate(weight for _, weight in STATUSES))


class SeedError(RuntimeError):
    """A benchmark database could not be created, migrated or seeded."""


# -- the databases -----------------------------------------------------------------------
@dataclass(frozen=True)
class SeedUser:
    id: str
    username: str
    email: str


@dataclass
class BenchDatabase:
    """One migrated database; ``url`` is what vutf is given."""

    backend: str
    label: str
    url: str
    sqlite_path: Path | None = None
    pg_name: str | None = None
    users: list[SeedUser] = field(default_factory=list)
    audit_rows: int = 0

    @property
    def psql_url(self) -> str:
        return libpq_url(self.url)


def _connect_pg(url: str) -> Any:
    import psycopg2

    return psycopg2.connect(libpq_url(url), connect_timeout=5)


class DatabaseFarm:
    """Creates benchmark databases and drops them all in :meth:`close`.

    PostgreSQL databases are named ``vutf_bench_<random>_<label>`` on the
    server of ``VUTF_TEST_POSTGRES_URL``; SQLite databases are files in
    ``workdir``.
    """

    def __init__(self, workdir: Path, *, admin_url: str | None = None) -> None:
        self.workdir = workdir
        self.admin_url = admin_url or postgres_admin_url()
        self.token = random.SystemRandom().getrandbits(40).to_bytes(5, "big").hex()
        self._pg_names: list[str] = []
        self._templates: dict[str, str] = {}

    def _admin(self, statement: str) -> None:
        connection = _connect_pg(self.admin_url)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def postgres_reachable(self) -> str | None:
        """None when the server answers, else why not."""
        try:
            self._admin("SELECT 1")
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
        return None

    def _new(self, backend: str, label: str, *, template: str | None = None) -> BenchDatabase:
        if backend == "postgresql":
            name = f"vutf_bench_{self.token}_{label}"
            clause = "" if template is None else f' TEMPLATE "{template}"'
            self._admin(f'CREATE DATABASE "{name}"{clause}')
            self._pg_names.append(name)
            return BenchDatabase(
                backend, label, with_database(libpq_url(self.admin_url), name), pg_name=name
            )
        if backend == "sqlite":
            path = self.workdir / f"{label}.db"
            if template is not None:
                shutil.copyfile(template, path)
                path.chmod(0o600)
            return BenchDatabase(backend, label, f"sqlite:///{path}", sqlite_path=path)
        raise ValueError(f"unknown backend {backend!r}")

    def create(self, backend: str, label: str) -> BenchDatabase:
        """A new, empty database at the schema's head.

        The first one of each backend is migrated by the installed ``vutf db
        upgrade``; the others are copies of it (``CREATE DATABASE ...
        TEMPLATE`` on PostgreSQL, a file copy on SQLite), which is faster.
        """
        template = self._templates.get(backend)
        if template is None:
            migrated = self._new(backend, "template")
            run_vutf_checked(self.workdir, migrated.url, ["db", "upgrade"])
            if migrated.sqlite_path is not None:
                # Fold the WAL into the file so that a plain copy is complete.
                connection = sqlite3.connect(migrated.sqlite_path)
                try:
                    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    connection.close()
            template = migrated.pg_name or str(migrated.sqlite_path)
            self._templates[backend] = template
        return self._new(backend, label, template=template)

    def close(self) -> list[str]:
        """Drop every PostgreSQL database made here; returns the problems seen."""
        problems = []
        while self._pg_names:
            name = self._pg_names.pop()
            try:
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:
                problems.append(f"could not drop {name}: {exc}")
        return problems


def run_vutf_checked(home: Path, url: str, args: Sequence[str]) -> str:
    """Run the installed vutf to set something up; SeedError if it fails."""
    result = subprocess.run(
        [str(vutf_executable()), *args],
        env=child_environment(home, database_url=url),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise SeedError(
            f"vutf {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}"
        )
    return result.stdout


# -- users ---------------------------------------------------------------------------------
def cheap_password_hashes(count: int) -> list[str]:
    """``count`` distinct argon2id hashes at vutf's ``test`` profile."""
    from vutf_cli.security.passwords import Passwords

    passwords = Passwords("test")
    return [passwords.hash(f"{USER_PASSWORD} {i}") for i in range(count)]


def make_users(count: int, *, seed: int = 7) -> list[SeedUser]:
    rng = random.Random(f"users:{seed}")
    users = []
    for i in range(count):
        username = f"bench_user_{i:04d}"
        users.append(SeedUser(_uuid(rng), username, f"{username}@example.com"))
    return users


def _sqlite_timestamp(moment: datetime) -> str:
    """How vutf's UTCDateTime stores an instant in SQLite: naive UTC text with microseconds."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def seed_users(database: BenchDatabase, users: Sequence[SeedUser], password_hash: str) -> None:
    """Insert ``users`` (one shared password hash is enough for listing)."""
    end = datetime.now(UTC) - HISTORY
    rows = []
    for i, user in enumerate(users):
        created = end - timedelta(minutes=len(users) - i)
        rows.append(
            (
                user.id,
                user.username,
                user.email,
                password_hash,
                f"Bench User {i}",
                i % 20 != 0,
                i % 100 == 0,
                i % 3 == 0,
                created,
                SEED_ACTOR,
                created,
                SEED_ACTOR,
                1,
                False,
            )
        )
    columns = ", ".join(USER_COLUMNS)
    if database.backend == "sqlite":
        assert database.sqlite_path is not None
        sqlite_rows = [
            tuple(_sqlite_timestamp(v) if isinstance(v, datetime) else v for v in row)
            for row in rows
        ]
        with sqlite3.connect(database.sqlite_path) as connection:
            connection.executemany(
                f"INSERT INTO users ({columns}) VALUES ({', '.join('?' * len(USER_COLUMNS))})",
                sqlite_rows,
            )
        connection.close()
    else:
        from psycopg2.extras import execute_values

        connection = _connect_pg(database.url)
        try:
            with connection, connection.cursor() as cursor:
                execute_values(cursor, f"INSERT INTO users ({columns}) VALUES %s", rows)
        finally:
            connection.close()
    database.users = list(users)


def truncate_users(database: BenchDatabase) -> None:
    """Empty ``users`` (and their keys) so that an import starts from scratch."""
    if database.backend == "sqlite":
        assert database.sqlite_path is not None
        connection = sqlite3.connect(database.sqlite_path, timeout=30)
        try:
            with connection:
                connection.execute("DELETE FROM api_keys")
                connection.execute("DELETE FROM users")
        finally:
            connection.close()
        return
    connection = _connect_pg(database.url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("TRUNCATE users CASCADE")
    finally:
        connection.close()


def count_rows(database: BenchDatabase, table: str) -> int:
    if database.backend == "sqlite":
        assert database.sqlite_path is not None
        connection = sqlite3.connect(database.sqlite_path)
        try:
            return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            connection.close()
    connection = _connect_pg(database.url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


# -- audit rows ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditSpec:
    """Everything a worker needs to make rows ``first_seq..`` deterministically."""

    rows: int
    user_ids: tuple[str, ...]
    usernames: tuple[str, ...]
    start_us: int  # created_at of seq 1, microseconds since the epoch (UTC)
    span_us: int
    seed: int


# A made row: the 15 hashed column values in AUDIT_COLUMNS order (created_at
# as the canonical ISO text, changes/metadata as vutf's stored JSON text) and
# the canonical JSON that is hashed.
MadeRow = tuple[tuple[Any, ...], bytes]


def _uuid(rng: random.Random) -> str:
    """A random (version 4) UUID in its canonical spelling, much faster than uuid4()."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


_EPOCH: Final = datetime(1970, 1, 1)


def _iso(micros: int) -> str:
    """The canonical spelling (format_timestamp) of an instant given in epoch microseconds."""
    return (_EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds") + "Z"


def _changes(action: str, rng: random.Random, username: str, stamp: str) -> dict[str, Any] | None:
    if action in ("user.create", "user.import"):
        return {
            "username": username,
            "email": f"{username}@example.com",
            "full_name": f"Bench User {username[-4:]}",
            "is_active": True,
            "is_superuser": False,
            "is_verified": rng.random() < 0.3,
        }
    if action == "user.update":
        return {"full_name": {"old": "Bench User", "new": f"Bench User {rng.randrange(10_000)}"}}
    if action in ("user.activate", "user.deactivate"):
        return {"is_active": {"old": action == "user.activate", "new": action != "user.activate"}}
    if action == "user.verify":
        return {"is_verified": {"old": False, "new": True}, "verified_at": stamp}
    if action == "user.delete":
        return {"is_deleted": {"old": False, "new": True}, "revoked_keys": rng.randrange(4)}
    if action == "user.set_password":
        return {"password_changed": True}
    if action in ("api_key.create", "api_key.set_scopes"):
        return {
            "name": f"key-{rng.randrange(100)}",
            "permissions": {scope: True for scope in rng.sample(SCOPES, 2)},
        }
    if action in ("api_key.revoke", "api_key.rotate"):
        return {"revoked_at": stamp}
    if action == "api_key.extend":
        return {"expires_at": {"old": stamp, "new": stamp}}
    return None  # user.restore, api_key.use


def make_rows(spec: AuditSpec, first_seq: int, count: int) -> list[MadeRow]:
    """Rows ``first_seq .. first_seq+count-1``: values and canonical JSON (no hashes yet)."""
    rng = random.Random(f"audit:{spec.seed}:{first_seq}")
    actors = rng.choices(range(len(ACTORS)), cum_weights=_ACTOR_CUM, k=count)
    actions = rng.choices(range(len(ACTIONS)), cum_weights=_ACTION_CUM, k=count)
    status_cum = _STATUS_CUM
    step = spec.span_us / max(spec.rows, 1)
    made: list[MadeRow] = []
    for offset in range(count):
        seq = first_seq + offset
        actor, host, _ = ACTORS[actors[offset]]
        action, resource_type, _ = ACTIONS[actions[offset]]
        user_index = rng.randrange(len(spec.user_ids))
        user_id = spec.user_ids[user_index]
        username = spec.usernames[user_index]
        # Strictly increasing with seq: each row lies inside its own time slot.
        stamp = _iso(spec.start_us + int((seq - 1 + rng.random() * 0.9) * step))
        status = STATUSES[bisect.bisect_right(status_cum, rng.randrange(status_cum[-1]))][0]
        error_message = None
        if status == "failure":
            error_message = (
                f"user {username!r} already exists"
                if action == "user.create"
                else ("permission denied")
            )
        elif status == "error":
            error_message = "database unavailable: server closed the connection unexpectedly"
        from_api = actor.startswith("api@")
        resource_id = username if resource_type == "user" else _uuid(rng)
        command = (
            "api"
            if from_api
            else f"vutf {resource_type.replace('api_key', 'keys').replace('user', 'users')} "
            f"{action.split('.', 1)[1].replace('_', '-')} {username}"
        )
        changes = stored_json(_changes(action, rng, username, stamp))
        metadata = stored_json(
            {
                "host": host,
                "os_user": actor.split("@", 1)[0],
                "vutf_version": "0.1.0",
                "command": command,
                "request_id": _uuid(rng),
            }
        )
        content = {
            "id": _uuid(rng),
            "seq": seq,
            "created_at": stamp,
            "actor": actor,
            "user_id": user_id,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "status": status,
            "changes": changes,
            "metadata": metadata,
            "error_message": error_message,
            "duration_ms": rng.randrange(1, 250),
            "ip_address": f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            if from_api
            else None,
            "user_agent": "ViolentUTF-API/1.4 (python-httpx)" if from_api else None,
        }
        values = tuple(
            dumps_json(content[name])
            if name in ("changes", "metadata") and content[name] is not None
            else content[name]
            for name in AUDIT_COLUMNS[:15]
        )
        made.append((values, canonical_json(hash_content(content))))
    return made


def _content_from_values(values: tuple[Any, ...]) -> dict[str, Any]:
    """The hashed content as vutf reads it back from the stored values."""
    content = dict(zip(AUDIT_COLUMNS[:15], values, strict=True))
    for name in ("changes", "metadata"):
        if content[name] is not None:
            content[name] = json.loads(content[name])
    content["created_at"] = datetime.fromisoformat(content["created_at"])
    return content


def _chunks(rows: int) -> list[tuple[int, int]]:
    return [(first, min(CHUNK_ROWS, rows - first + 1)) for first in range(1, rows + 1, CHUNK_ROWS)]


def _made_chunks(spec: AuditSpec, workers: int) -> Iterator[list[MadeRow]]:
    """The chunks in seq order; made by ``workers`` processes, at most a few ahead."""
    chunks = _chunks(spec.rows)
    if workers <= 1 or spec.rows < PARALLEL_ROWS:
        for first, count in chunks:
            yield make_rows(spec, first, count)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future[list[MadeRow]]] = deque()
        upcoming = iter(chunks)
        for first, count in upcoming:
            pending.append(pool.submit(make_rows, spec, first, count))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.popleft().result()
            following = next(upcoming, None)
            if following is not None:
                pending.append(pool.submit(make_rows, spec, *following))
            yield done


def chained_rows(spec: AuditSpec, workers: int) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of complete rows (17 values, hashes included), seq ascending from 1."""
    prev_hash = GENESIS_HASH
    for chunk in _made_chunks(spec, workers):
        out = []
        first_values = chunk[0][0]
        expected = compute_row_hash(prev_hash, _content_from_values(first_values))
        for values, canonical in chunk:
            row_hash = hashlib.sha256(prev_hash.encode("utf-8") + canonical).hexdigest()
            out.append((*values, prev_hash, row_hash))
            prev_hash = row_hash
        if out[0][-1] != expected:
            raise SeedError(
                f"seeded row {first_values[1]} hashes differently from compute_row_hash: "
                "the canonical form drifted"
            )
        yield out


def _audit_spec(rows: int, users: Sequence[SeedUser], seed: int) -> AuditSpec:
    now_us = int((datetime.now(UTC).replace(tzinfo=None) - _EPOCH) / timedelta(microseconds=1))
    span_us = int(HISTORY / timedelta(microseconds=1))
    return AuditSpec(
        rows=rows,
        user_ids=tuple(u.id for u in users),
        usernames=tuple(u.username for u in users),
        start_us=now_us - span_us,
        span_us=span_us,
        seed=seed,
    )


def seed_audit(database: BenchDatabase, rows: int, *, seed: int = 1, workers: int = 2) -> float:
    """Append ``rows`` chained audit rows to an EMPTY audit log; returns the seconds taken."""
    if not database.users:
        raise SeedError("seed the users first: audit rows refer to them")
    started = time.perf_counter()
    spec = _audit_spec(rows, database.users, seed)
    if rows:
        if database.backend == "sqlite":
            _load_sqlite(database, chained_rows(spec, workers))
        else:
            _load_postgres(database, chained_rows(spec, workers))
    database.audit_rows = rows
    return time.perf_counter() - started


def _load_sqlite(database: BenchDatabase, chunks: Iterator[list[tuple[Any, ...]]]) -> None:
    assert database.sqlite_path is not None
    connection = sqlite3.connect(database.sqlite_path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("PRAGMA cache_size=-1000000")
        deferred = connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'audit_log' "
            "AND sql IS NOT NULL AND (type = 'index' OR name = 'audit_log_no_replace')"
        ).fetchall()
        placeholders = ", ".join("?" * len(AUDIT_COLUMNS))
        insert = f"INSERT INTO audit_log ({', '.join(AUDIT_COLUMNS)}) VALUES ({placeholders})"
        connection.execute("BEGIN")
        for kind, name, _ in deferred:
            connection.execute(f'DROP {kind.upper()} "{name}"')
        for chunk in chunks:
            connection.executemany(
                insert,
                [(*row[:2], _sqlite_stamp(row[2]), *row[3:]) for row in chunk],
            )
        for _, _, sql in deferred:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def _sqlite_stamp(iso: str) -> str:
    """``2026-01-02T03:04:05.123456Z`` -> ``2026-01-02 03:04:05.123456`` (UTCDateTime on SQLite)."""
    return f"{iso[:10]} {iso[11:26]}"


def _copy_field(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return (
                value.replace("\\", "\\\\")
                .replace("\t", "\\t")
                .replace("\n", "\\n")
                .replace("\r", "\\r")
            )
        return value
    return str(value)


class _CopySource:
    """A file-like ``read()`` for ``copy_expert`` that makes the next chunk on demand,
    so PostgreSQL loads one chunk while the next is being made."""

    def __init__(self, chunks: Iterator[list[tuple[Any, ...]]]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1) -> str:
        chunk = next(self._chunks, None)
        if chunk is None:
            return ""
        return "".join("\t".join(map(_copy_field, row)) + "\n" for row in chunk)

    def readline(self, size: int = -1) -> str:  # copy_expert only needs read()
        return self.read(size)


def _load_postgres(database: BenchDatabase, chunks: Iterator[list[tuple[Any, ...]]]) -> None:
    connection = _connect_pg(database.url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i "
                "WHERE i.schemaname = current_schema() AND i.tablename = 'audit_log' "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
            )
            deferred = cursor.fetchall()
            for name, _ in deferred:
                cursor.execute(f'DROP INDEX "{name}"')
            cursor.copy_expert(
                f"COPY audit_log ({', '.join(AUDIT_COLUMNS)}) FROM STDIN",
                _CopySource(chunks),
                size=1 << 20,
            )
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for _, definition in deferred:
                cursor.execute(definition)
        connection.autocommit = True
        with connection.cursor() as cursor:
            # What autovacuum would soon do on a live database: fresh statistics
            # and a visibility map, so the plans are the ones production gets.
            cursor.execute("VACUUM ANALYZE audit_log")
            cursor.execute("VACUUM ANALYZE users")
    finally:
        connection.close()


# -- import files --------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportFiles:
    """Input for the ``users import`` cases."""

    hashed_csv: Path  # username,email,full_name,password_hash: what vutf imports
    hashed_copy_csv: Path  # the same users as every column of `users`, for psql \copy
    hashed_count: int
    plain_csv: Path  # username,email,full_name,password
    plain_count: int


COPY_COLUMNS: Final = USER_COLUMNS


def write_import_files(directory: Path, *, hashed: int, plain: int) -> ImportFiles:
    """Write the import inputs; hashes at the ``test`` profile (a few, reused)."""
    directory.mkdir(parents=True, exist_ok=True)
    hashes = cheap_password_hashes(min(hashed, 16) or 1)
    rng = random.Random("import-files")
    now = datetime.now(UTC)
    hashed_csv = directory / "users-hashed.csv"
    copy_csv = directory / "users-hashed-copy.csv"
    with (
        hashed_csv.open("w", newline="", encoding="utf-8") as short,
        copy_csv.open("w", newline="", encoding="utf-8") as full,
    ):
        short_writer = csv.writer(short)
        full_writer = csv.writer(full)
        short_writer.writerow(["username", "email", "full_name", "password_hash"])
        full_writer.writerow(COPY_COLUMNS)
        for i in range(hashed):
            username = f"imported_{i:05d}"
            email = f"{username}@example.org"
            name = f"Imported User {i}"
            password_hash = hashes[i % len(hashes)]
            short_writer.writerow([username, email, name, password_hash])
            stamp = now.isoformat()
            full_writer.writerow(
                [
                    _uuid(rng),
                    username,
                    email,
                    password_hash,
                    name,
                    "true",
                    "false",
                    "false",
                    stamp,
                    SEED_ACTOR,
                    stamp,
                    SEED_ACTOR,
                    1,
                    "false",
                ]
            )
    plain_csv = directory / "users-plain.csv"
    with plain_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["username", "email", "full_name", "password"])
        for i in range(plain):
            username = f"plain_{i:05d}"
            password = f"correct horse battery staple {rng.getrandbits(64):016x}"
            writer.writerow([username, f"{username}@example.org", f"Plain User {i}", password])
    return ImportFiles(hashed_csv, copy_csv, hashed, plain_csv, plain)


HASH_BASELINE_SCRIPT: Final = """\
import csv, sys
from argon2 import PasswordHasher
from argon2.profiles import RFC_9106_LOW_MEMORY
hasher = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY)
with open(sys.argv[1], newline="", encoding="utf-8") as handle:
    passwords = [row["password"] for row in csv.DictReader(handle)]
hashes = [hasher.hash(password) for password in passwords]
print(len(hashes))
"""


# -- everything a run needs ---------------------------------------------------------------
@dataclass
class Resources:
    """Databases and files the cases run against, made before anything is measured."""

    workdir: Path
    home: Path
    farm: DatabaseFarm
    audit: dict[tuple[str, int], BenchDatabase] = field(default_factory=dict)
    users: dict[str, BenchDatabase] = field(default_factory=dict)
    imports: dict[str, BenchDatabase] = field(default_factory=dict)
    files: ImportFiles | None = None
    notes: list[str] = field(default_factory=list)
    seed_seconds: dict[str, float] = field(default_factory=dict)
    seed_cpu_seconds: dict[str, float] = field(default_factory=dict)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the row makers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def prepare(settings: Settings, resources: Resources) -> None:
    """Create and seed every database the selected cases need.

    Every audit database holds the same users (same ids), so a ``--user``
    filter means the same user at every size; ``users list`` runs on the
    smallest audit database (or a database of its own when no audit case runs).
    """
    sizes = settings.audit_sizes()
    users = make_users(settings.users)
    user_hash = cheap_password_hashes(1)[0]
    for backend in settings.backends:
        for rows in sizes:
            finish = progress(f"seeding {backend}: {len(users)} users, {rows} audit rows")
            database = resources.farm.create(backend, f"a{rows}")
            seed_users(database, users, user_hash)
            cpu_before = _cpu_seconds()
            seconds = seed_audit(database, rows, workers=settings.seed_workers)
            resources.seed_seconds[f"{backend}:{rows}"] = round(seconds, 1)
            # This process and its row makers; not the database server's share.
            resources.seed_cpu_seconds[f"{backend}:{rows}"] = round(_cpu_seconds() - cpu_before, 1)
            resources.audit[(backend, rows)] = database
            finish()
        if settings.wants("users.list"):
            if sizes:
                resources.users[backend] = resources.audit[(backend, sizes[0])]
            else:
                database = resources.farm.create(backend, "users")
                seed_users(database, users, user_hash)
                resources.users[backend] = database
        if settings.wants("users.import-hashed", "users.import-plain"):
            resources.imports[backend] = resources.farm.create(backend, "import")
    if settings.wants("users.import-hashed", "users.import-plain"):
        finish = progress("writing the import files")
        resources.files = write_import_files(
            resources.workdir / "import",
            hashed=settings.import_hashed,
            plain=settings.import_plain,
        )
        finish()


def progress(message: str) -> Callable[[], None]:
    """Print ``message...`` on stderr now and ``done in N s`` when the returned callable runs."""
    import sys

    started = time.perf_counter()
    sys.stderr.write(f"[bench] {message} ...\n")
    sys.stderr.flush()

    def finish() -> None:
        sys.stderr.write(f"[bench] {message}: {time.perf_counter() - started:.1f} s\n")
        sys.stderr.flush()

    return finish


@contextmanager
def standalone_farm(name: str) -> Iterator[tuple[DatabaseFarm, Path, Path]]:
    """A case run alone (``python -m tests.benchmarks.CASE``): a farm, its workdir and a home.

    The home has an empty data folder (``child_environment``'s isolation); the
    farm's databases are dropped and the workdir removed at the end, whatever
    happened, each problem dropping them reported as a warning.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"vutf-bench-{name}-"))
    home = workdir / "home"
    (home / "data").mkdir(parents=True)
    farm = DatabaseFarm(workdir)
    try:
        yield farm, workdir, home
    finally:
        for problem in farm.close():
            sys.stderr.write(f"warning: {problem}\n")
        shutil.rmtree(workdir, ignore_errors=True)
