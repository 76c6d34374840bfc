"""`vutf audit export` (jsonl, streamed with ``COPY ... TO STDOUT``) against real faults.

The export lifts vutf's wait callback for the COPY (psycopg2 refuses COPY
while one is installed) and bounds the wait with a watchdog thread instead
(``vutf_cli.db.copy_out``).  These tests run the installed ``vutf`` against
a private server holding one COPY batch and a bit more of rows, mostly
through the fault-injecting TCP proxy:

* stalled mid-stream (the proxy stops forwarding, the kernel still
  acknowledges): exit 7 with one ``error:`` line, about statement timeout +
  connect timeout after the stall; stdout holds whole lines, in order;
* dropped, reset or terminated by the server mid-stream: exit 7 at once,
  not retried; stdout holds whole lines;
* healthy: more than one COPY batch (two COPY statements, read from the
  server's statement log) gives every row once, in order, also when the rows
  fill the first batch exactly (that the lines are `audit list`'s, byte for
  byte, is tests/cli/test_audit_export_identity.py's);
* the reader's side: one that pauses, closes the pipe (``| head``), or
  presses Ctrl-C, with the csv export (the ordinary query path) as control.

Run with ``-s`` for the figures.  About 50 s on 2 cores.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO

import pytest

from tests.reliability.conftest import VUTF, vutf_env
from tests.reliability.pg_instance import PgInstance
from tests.reliability.tcp_proxy import Mode, TcpProxy
from vutf_cli.services.audit_export import POSTGRES_COPY_BATCH
from vutf_cli.settings import mask_url

pytestmark = pytest.mark.postgres

NEWLINE = b"\n"

# Rows that make the export take two COPY statements; FAILURES of them are
# failures, so `--status success` selects exactly one full batch.
FAILURES = 37
TOTAL_ROWS = POSTGRES_COPY_BATCH + FAILURES

# Small limits for the fault cases: the watchdog gives up after
# statement timeout + connect timeout without a row.
STATEMENT_TIMEOUT_MS = 1000
CONNECT_TIMEOUT = 1.0
WAIT_LIMIT = STATEMENT_TIMEOUT_MS / 1000 + CONNECT_TIMEOUT
# Beyond the limit: the watchdog's poll (0.25 s), the rows still buffered
# when the fault began, and the process ending, on a busy 2-core machine.
MARGIN = 2.0
FAULT_ENV = {
    "VUTF_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT_MS),
    "VUTF_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    "VUTF_DB_DEADLINE": "3",
}

# One statement (no round trip per row).  Some rows take the export's
# slower paths on purpose: a decimal (rendered by Python), a backslash and
# a quote (parsed back), non-ASCII text (escaped by the output layer).
SEED_EPOCH = 1704067200  # 2024-01-01T00:00:00Z, the seed's seq 0
SEED_SQL = f"""
INSERT INTO audit_log (id, seq, created_at, actor, user_id, action, resource_type,
    resource_id, status, changes, metadata, error_message, duration_ms, ip_address,
    user_agent, prev_hash, row_hash)
SELECT gen_random_uuid(), n,
    timestamptz '2024-01-01 00:00:00+00' + n * interval '1 second',
    CASE WHEN n % 1000 = 0 THEN 'back\\slash "quoted"' ELSE 'seeder' END,
    NULL, 'user.create', 'user', 'u' || (n % 97),
    CASE WHEN n % {TOTAL_ROWS // FAILURES} = 0 AND n <= {FAILURES * (TOTAL_ROWS // FAILURES)}
         THEN 'failure' ELSE 'success' END,
    CASE WHEN n % 777 = 0 THEN jsonb_build_object('n', n, 'ratio', 0.25)
         ELSE jsonb_build_object('n', n, 'name', 'row ' || n || ' zoë') END,
    '{{"host": "seed", "tags": [1, 2]}}'::jsonb, NULL, n % 500, '10.0.0.1', NULL,
    -- linked as the chain trigger demands: row n's prev_hash is row n-1's row_hash
    CASE WHEN n = 1 THEN repeat('0', 64) ELSE md5((n + 1)::text) || md5((n + 2)::text) END,
    md5((n + 2)::text) || md5((n + 3)::text)
FROM generate_series(1, {TOTAL_ROWS}) AS n
"""


# -- fixtures ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BigDatabase:
    name: str
    ids: list[str]  # by seq - 1
    failure_seqs: frozenset[int]


@pytest.fixture(scope="module")
def big_database(pg: PgInstance, pg_template: str) -> Iterator[BigDatabase]:
    """A database with TOTAL_ROWS audit rows, shared by the module (exports only read it)."""
    if not pg.is_running():
        pg.start()
    pg.wait_ready()
    name = f"vutf_copy_{uuid.uuid4().hex[:10]}"
    pg.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        pg.execute(SEED_SQL, database=name)
        pg.execute("ANALYZE audit_log", database=name)
        failures = pg.execute("SELECT seq FROM audit_log WHERE status = 'failure'", database=name)
        assert len(failures) == FAILURES
        ids = [
            row[0]
            for row in pg.execute("SELECT id::text FROM audit_log ORDER BY seq", database=name)
        ]
        assert len(ids) == TOTAL_ROWS
        yield BigDatabase(name, ids, frozenset(row[0] for row in failures))
    finally:
        pg.wait_ready()
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- running an export in the background ---------------------------------------------------
@dataclass
class RunningExport:
    """A `vutf audit export` process whose stdout and stderr are read as they arrive."""

    process: subprocess.Popen[bytes]
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    first_output: threading.Event = field(default_factory=threading.Event)
    readers: list[threading.Thread] = field(default_factory=list)
    exited_at: float | None = None

    def read_in_background(self, *, stdout: bool = True) -> None:
        streams: list[tuple[IO[bytes] | None, bytearray, bool]] = [
            (self.process.stderr, self.stderr, False)
        ]
        if stdout:
            streams.append((self.process.stdout, self.stdout, True))
        for stream, sink, signals in streams:
            assert stream is not None
            reader = threading.Thread(target=self._pump, args=(stream, sink, signals), daemon=True)
            reader.start()
            self.readers.append(reader)

    def _pump(self, stream: IO[bytes], sink: bytearray, signals: bool) -> None:
        while chunk := os.read(stream.fileno(), 65536):
            sink += chunk
            if signals:
                self.first_output.set()

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self.exited_at = time.monotonic()
        for reader in self.readers:
            reader.join(10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def describe(self) -> str:
        return (
            f"exit {self.process.returncode}; {bytes(self.stdout).count(NEWLINE)} lines on stdout; "
            f"stderr: {bytes(self.stderr)!r}"
        )


def start_export(
    database_url: str, *args: str, env: Mapping[str, str] | None = None
) -> RunningExport:
    process = subprocess.Popen(
        [str(VUTF), "audit", "export", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=vutf_env(database_url, env),
    )
    return RunningExport(process)


@pytest.fixture
def exports() -> Iterator[list[RunningExport]]:
    """Processes to kill if a test ends early."""
    started: list[RunningExport] = []
    yield started
    for export in started:
        export.kill()


def whole_lines(stdout: bytes, ids: list[str]) -> int:
    """Assert ``stdout`` is whole JSON lines of seq 1, 2, 3, ... in order; return how many."""
    assert stdout.endswith(b"\n") or not stdout, stdout[-200:]
    lines = stdout.splitlines()
    for number, line in enumerate(lines, start=1):
        entry = json.loads(line)
        assert entry["seq"] == number, line
        assert entry["id"] == ids[number - 1], line
    return len(lines)


def one_error_line(export: RunningExport, url: str) -> str:
    """Exactly one ``error:`` line naming the masked URL (and maybe a hint), no traceback."""
    text = export.stderr.decode("utf-8")
    assert "Traceback" not in text, export.describe()
    lines = text.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, export.describe()
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), export.describe()
    assert mask_url(url) in errors[0], export.describe()
    return errors[0]


# -- faults mid-stream -----------------------------------------------------------------------
def test_export_stalled_mid_stream_exits_7_within_the_wait_limit(
    big_database: BigDatabase, proxy: TcpProxy, exports: list[RunningExport]
) -> None:
    url = proxy.url(big_database.name)
    export = start_export(url, env=FAULT_ENV)
    exports.append(export)
    export.read_in_background()
    assert export.first_output.wait(30), export.describe()
    # Lines are flowing: from now on the proxy forwards nothing either way.
    proxy.set_mode(Mode.STALL)
    stalled_at = time.monotonic()
    code = export.wait(timeout=WAIT_LIMIT + MARGIN + 10)
    proxy.set_mode(Mode.PASS)
    assert code is not None, "the export hung on a stalled server"
    assert export.exited_at is not None
    took = export.exited_at - stalled_at
    print(f"\n[figures] stalled export: exit {code} {took:.2f} s after the stall")
    assert code == 7, export.describe()
    error = one_error_line(export, url)
    # The reason should name the timeout; today the unit of work's failing
    # rollback replaces it with "connection already closed" (exit 7 either
    # way): tests/integration/test_copy_out.py shows it in-process.
    print(f"[figures] {error}")
    # It waited for the server (the limit) once: a retry would have waited the
    # limit a second time.
    assert WAIT_LIMIT - 0.5 < took < 2 * WAIT_LIMIT + MARGIN, export.describe()
    written = whole_lines(bytes(export.stdout), big_database.ids)
    assert 0 < written < TOTAL_ROWS


@pytest.mark.parametrize(
    "fault",
    [
        "drop",
        "reset",
        "terminate",
    ],
)
def test_export_losing_its_connection_mid_stream_exits_7_at_once(
    fault: str,
    pg: PgInstance,
    big_database: BigDatabase,
    proxy: TcpProxy,
    exports: list[RunningExport],
) -> None:
    url = proxy.url(big_database.name)
    export = start_export(url, env=FAULT_ENV)
    exports.append(export)
    export.read_in_background()
    assert export.first_output.wait(30), export.describe()
    if fault == "terminate":
        # The server ends the session (FATAL 57P01, as in a fast shutdown).
        pg.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'vutf' AND datname = %s",
            big_database.name,
        )
    else:
        proxy.set_mode(Mode(fault))  # ends the open connection, refuses new ones
    cut_at = time.monotonic()
    code = export.wait(timeout=30)
    proxy.set_mode(Mode.PASS)
    assert code is not None, "the export hung on a lost connection"
    assert export.exited_at is not None
    took = export.exited_at - cut_at
    print(f"\n[figures] export, connection {fault}: exit {code} {took:.2f} s after the cut")
    assert code == 7, export.describe()
    error = one_error_line(export, url)
    print(f"[figures] {error}")
    # Not retried (what was written would be written twice), no waiting: the
    # remaining buffered rows and the process ending.
    assert took < 2.0, export.describe()
    written = whole_lines(bytes(export.stdout), big_database.ids)
    assert 0 < written < TOTAL_ROWS


# -- more than one COPY batch ---------------------------------------------------------------
def _copy_statements(pg: PgInstance, offset: int) -> list[str]:
    """The COPY statements the server logged after ``offset`` (one entry may span lines)."""
    with pg.logfile.open("rb") as log:
        log.seek(offset)
        text = log.read().decode("utf-8", errors="replace")
    entries = re.split(r"\n(?=\d{4}-\d\d-\d\d )", text)
    return [entry for entry in entries if "statement: COPY (" in entry]


@pytest.fixture
def statement_log(pg: PgInstance, big_database: BigDatabase) -> Iterator[None]:
    """The private server logs every statement run in the big database meanwhile."""
    pg.execute(f"ALTER DATABASE \"{big_database.name}\" SET log_statement = 'all'")
    try:
        yield
    finally:
        pg.execute(f'ALTER DATABASE "{big_database.name}" RESET log_statement')


@pytest.mark.parametrize(
    ("filters", "through_proxy"),
    [((), True), (("--status", "success"), False)],
    ids=["batch-and-a-bit-through-the-proxy", "exactly-one-batch"],
)
def test_export_larger_than_one_copy_batch_is_whole(
    filters: tuple[str, ...],
    through_proxy: bool,
    pg: PgInstance,
    big_database: BigDatabase,
    proxy: TcpProxy,
    statement_log: None,
    exports: list[RunningExport],
) -> None:
    if filters:  # --status success: every row but the failures, exactly one batch of them
        expected_seqs = [
            seq for seq in range(1, TOTAL_ROWS + 1) if seq not in big_database.failure_seqs
        ]
        assert len(expected_seqs) == POSTGRES_COPY_BATCH
    else:
        expected_seqs = list(range(1, TOTAL_ROWS + 1))
    url = proxy.url(big_database.name) if through_proxy else pg.url(big_database.name)
    log_offset = pg.logfile.stat().st_size
    started = time.monotonic()
    export = start_export(url, *filters)
    exports.append(export)
    export.read_in_background()
    code = export.wait(timeout=120)
    took = time.monotonic() - started
    print(f"\n[figures] export of {len(expected_seqs)} rows: {took:.2f} s")
    assert code == 0, export.describe()
    assert export.stderr.decode() == f"exported {len(expected_seqs)} audit entries\n"
    stdout = bytes(export.stdout)
    assert stdout.endswith(b"\n")
    lines = stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    # Every row once, in seq order, each the row it says it is.
    seqs = [entry["seq"] for entry in entries]
    assert seqs == expected_seqs
    assert [entry["id"] for entry in entries] == [big_database.ids[seq - 1] for seq in seqs]
    # Two COPY statements: the second starts after the seq of the first's last line
    # (and finds nothing when the first filled its batch exactly).
    edge = seqs[POSTGRES_COPY_BATCH - 1]
    copies = _copy_statements(pg, log_offset)
    assert len(copies) == 2, copies
    assert "audit_log.seq > 0 " in copies[0], copies[0]
    assert f"audit_log.seq > {edge} " in copies[1], copies[1]


# -- the consumer's side ---------------------------------------------------------------------
# The first 5000 rows (a few MB: far more than a pipe and the socket buffers hold).
FIRST_ROWS = 5000
FIRST_ROWS_WINDOW = (
    "--until",
    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(SEED_EPOCH + FIRST_ROWS + 1)),
)


@pytest.mark.parametrize(
    "export_format",
    [
        "csv",
        "jsonl",
    ],
)
def test_a_reader_that_pauses_longer_than_the_wait_limit_gets_every_line(
    export_format: str, big_database: BigDatabase, pg: PgInstance, exports: list[RunningExport]
) -> None:
    # csv reads through the ordinary, batched query path: the control case.
    url = pg.url(big_database.name)
    export = start_export(url, "-o", export_format, *FIRST_ROWS_WINDOW, env=FAULT_ENV)
    exports.append(export)
    export.read_in_background(stdout=False)
    time.sleep(WAIT_LIMIT + 1.5)  # the pipe is full long before: vutf waits on the reader
    assert export.process.stdout is not None
    stdout = export.process.stdout.read()
    code = export.wait(timeout=60)
    assert code == 0, f"exit {code}: {bytes(export.stderr)!r}"
    lines = stdout.splitlines()
    if export_format == "csv":
        lines = lines[1:]  # the header
    assert len(lines) == FIRST_ROWS
    if export_format == "jsonl":
        assert whole_lines(stdout, big_database.ids) == FIRST_ROWS


@pytest.mark.parametrize(
    "export_format",
    [
        "csv",
        "jsonl",
    ],
)
def test_a_reader_that_closes_the_pipe_ends_the_export_quietly(
    export_format: str, big_database: BigDatabase, pg: PgInstance, exports: list[RunningExport]
) -> None:
    # `vutf audit export | head -1`: exit 0, nothing on stderr (the CLI's contract for
    # a closed stdout, which the csv export keeps).
    export = start_export(pg.url(big_database.name), "-o", export_format)
    exports.append(export)
    export.read_in_background(stdout=False)
    assert export.process.stdout is not None
    assert export.process.stdout.read(100)
    export.process.stdout.close()
    code = export.wait(timeout=60)
    assert code is not None, "the export hung on a closed pipe"
    assert (code, bytes(export.stderr)) == (0, b"")


@pytest.mark.parametrize(
    "export_format",
    [
        "csv",
        "jsonl",
    ],
)
def test_ctrl_c_mid_export_exits_130(
    export_format: str, big_database: BigDatabase, pg: PgInstance, exports: list[RunningExport]
) -> None:
    export = start_export(pg.url(big_database.name), "-o", export_format)
    exports.append(export)
    export.read_in_background()
    assert export.first_output.wait(30), export.describe()
    export.process.send_signal(signal.SIGINT)
    code = export.wait(timeout=30)
    assert code is not None, "the export ignored Ctrl-C"
    assert code == 130, export.describe()
    assert b"Traceback" not in export.stderr, export.describe()
    assert len(export.stderr.splitlines()) <= 1, export.describe()
    if export_format == "jsonl":
        whole_lines(bytes(export.stdout), big_database.ids)


@pytest.mark.parametrize(
    "export_format",
    [
        "csv",
        "jsonl",
    ],
)
def test_ctrl_c_on_a_stalled_export_ends_it_at_once(
    export_format: str, big_database: BigDatabase, proxy: TcpProxy, exports: list[RunningExport]
) -> None:
    # A wait limit long enough to tell "at once" from "when the watchdog gives up".
    env = {**FAULT_ENV, "VUTF_STATEMENT_TIMEOUT": "10000"}
    export = start_export(proxy.url(big_database.name), "-o", export_format, env=env)
    exports.append(export)
    export.read_in_background()
    assert export.first_output.wait(30), export.describe()
    proxy.set_mode(Mode.STALL)
    time.sleep(1.0)  # what was buffered is written; vutf waits on the server
    export.process.send_signal(signal.SIGINT)
    signalled_at = time.monotonic()
    code = export.wait(timeout=3.0)
    proxy.set_mode(Mode.PASS)
    assert code is not None, "Ctrl-C did not end the wait on a stalled server within 3 s"
    assert export.exited_at is not None
    took = export.exited_at - signalled_at
    print(f"\n[figures] Ctrl-C on a stalled {export_format} export: exit {code} in {took:.2f} s")
    assert code == 130, export.describe()
