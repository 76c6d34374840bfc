"""The resilience contract (docs/architecture.md §4) against real PostgreSQL servers.

Faults are injected for real: a private server (``pg``) is stopped and
restarted with ``pg_ctl``, backends are killed with ``pg_terminate_backend``,
and a TCP proxy (``proxy``) drops, resets or stalls connections, or cuts the
client off right after it sent COMMIT.  Commands are the installed ``vutf``
console script in subprocesses; where a fault must hit an exact point of a
transaction, ``Database.run`` is driven in-process instead.

1. Database unreachable before the command (stopped, wrong port, wrong host,
   dropped, reset, bad credentials): exit 7 within the deadline, one
   ``error:`` line naming the masked URL, no traceback.
2. Server restarted (fast, immediate, fast) during more than 200 ``users
   create`` commands: every command exits 0 or 7, the database holds exactly
   the users whose command exited 0, each with exactly one success audit row,
   and ``vutf audit verify`` passes.
3. ``pg_terminate_backend`` mid-transaction: the whole transaction is re-run
   on a new connection; one row, one audit row.
4. Connection cut right after COMMIT was sent (it landed) and right before
   (it did not): the retry consults the request id and applies the change
   exactly once either way.
5. Circuit breaker: during an outage calls are refused without connecting,
   one trial per cool-down reaches the server (the breaker's clock is the
   test's, so cool-downs are exact), and the breaker recovers through
   half-open; ``audit follow`` rides out an outage with few attempts;
   ``users import`` hit mid-write (its COPY of the users, or of their audit
   rows) fails with exit 7 and imports nothing.
6. Stalled server (accepts, never answers): the command ends by its deadline,
   also when the stall begins after the connection was made.

Run with ``-s`` to see the figures each test prints; a summary table is
printed at the end of the module.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import text

from tests.reliability.conftest import Run, run_vutf, vutf_env
from tests.reliability.pg_instance import PASSWORD, PASSWORD_ROLE, PgInstance, free_port
from tests.reliability.tcp_proxy import Mode, TcpProxy
from vutf_cli.db.breaker import CircuitBreaker
from vutf_cli.db.database import BREAKER_THRESHOLD, Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import DatabaseUnavailable
from vutf_cli.settings import Settings, mask_url

pytestmark = pytest.mark.postgres

DEADLINE = 3.0  # VUTF_DB_DEADLINE for the "down" cases
# How far past its deadline vutf may report having retried: the last attempt
# may begin just before the deadline and is given at least 0.05 s to connect
# (vutf_cli.db.engine.wait_limit); the rest is scheduling on a busy machine.
LAST_ATTEMPT_SLACK = 1.0
USER_PASSWORD = "correct horse battery staple 1"

# (test, faults injected, commands/operations, rows checked, lost, duplicated, note)
FIGURES: list[tuple[str, int, int, int, int, int, str]] = []


def record(
    name: str,
    *,
    faults: int,
    commands: int,
    rows: int = 0,
    lost: int = 0,
    duplicated: int = 0,
    note: str = "",
) -> None:
    FIGURES.append((name, faults, commands, rows, lost, duplicated, note))
    print(
        f"\n[figures] {name}: faults={faults} commands={commands} rows_checked={rows} "
        f"lost={lost} duplicated={duplicated} {note}"
    )


@pytest.fixture(scope="module", autouse=True)
def _figures_table() -> Iterator[None]:
    yield
    if not FIGURES:
        return
    lines = [
        "",
        "| test | faults injected | commands / operations | rows checked | lost | duplicated "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, faults, commands, rows, lost, duplicated, note in FIGURES:
        lines.append(
            f"| {name} | {faults} | {commands} | {rows} | {lost} | {duplicated} | {note} |"
        )
    totals = [sum(row[i] for row in FIGURES) for i in range(1, 6)]  # type: ignore[misc]
    lines.append(f"| **total ({len(FIGURES)} cases)** | " + " | ".join(map(str, totals)) + " | |")
    print("\n".join(lines))


# -- helpers -----------------------------------------------------------------------------
def settings_for(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "actor": "reliability@test",
        "argon2_profile": "test",
        "db_deadline": 10.0,
    }
    values.update(overrides)
    return Settings(**values)


class CountingDatabase(Database):
    """A real Database that records each request-id lookup made before a retry."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.lookups: list[tuple[str, bool]] = []

    def _request_committed(self, request_id: str) -> bool:
        found = super()._request_committed(request_id)
        self.lookups.append((request_id, found))
        return found


@pytest.fixture
def open_databases() -> Iterator[list[Database]]:
    opened: list[Database] = []
    yield opened
    for database in opened:
        database.dispose()


def create_user_with_audit(uow: UnitOfWork, username: str) -> str:
    """What `vutf users create` writes: the user and its success audit row, one transaction."""
    user = uow.users.create_user(
        username=username,
        email=f"{username}@example.com",
        password_hash=uow.passwords.hash(USER_PASSWORD),
    )
    uow.audit.append(
        action="user.create",
        resource_type="user",
        resource_id=str(user.id),
        user_id=user.id,
        changes={"username": username},
    )
    return str(user.id)


def _answers(db: Database) -> bool:
    try:
        db.run(lambda uow: uow.audit.head(), read_only=True)
    except DatabaseUnavailable:
        return False
    return True


def breaker_state(db: Database) -> str:
    # A function, so that mypy does not narrow the property between two reads.
    return db.breaker.state


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.02)


def user_rows(pg: PgInstance, database: str, username: str) -> list[tuple[Any, ...]]:
    return pg.execute("SELECT id FROM users WHERE username = %s", username, database=database)


def audit_rows(pg: PgInstance, database: str, username: str) -> list[tuple[Any, ...]]:
    return pg.execute(
        "SELECT seq, status, metadata->>'request_id' FROM audit_log "
        "WHERE action = 'user.create' AND changes->>'username' = %s",
        username,
        database=database,
    )


def verify_chain(database_url: str) -> Run:
    result = run_vutf("audit", "verify", database_url=database_url)
    assert result.exit_code == 0, result.describe()
    return result


def assert_clean_unavailable(result: Run, url: str) -> str:
    """Exit 7, nothing on stdout, exactly one ``error:`` line naming the masked URL."""
    assert result.exit_code == 7, result.describe()
    assert result.stdout == "", result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.describe()
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), result.describe()
    assert mask_url(url) in errors[0], result.describe()
    return errors[0]


def server_log_offset(pg: PgInstance) -> int:
    try:
        return pg.logfile.stat().st_size
    except OSError:
        return 0


def server_log_since(pg: PgInstance, offset: int) -> str:
    with pg.logfile.open("rb") as log:
        log.seek(offset)
        return log.read().decode("utf-8", errors="replace")


class ManualClock:
    """The breaker's clock: it moves only when the test says, so cool-downs are exact."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


RETRIES = re.compile(r"gave up after (\d+) attempt\(s\) in ([0-9.]+) s")


def reported_retries(text: str | None) -> tuple[int, float]:
    """vutf's own account of its retries, from its hint: (attempts, seconds)."""
    found = RETRIES.search(text or "")
    assert found is not None, text
    return int(found.group(1)), float(found.group(2))


# -- 1. database unreachable before the command -------------------------------------------
DOWN_CASES = ("server-stopped", "wrong-port", "wrong-host", "proxy-drops", "proxy-resets")


@pytest.mark.parametrize("case", DOWN_CASES)
def test_unreachable_database_exits_7_within_the_deadline(
    case: str, pg_running: PgInstance, pg_database: str, proxy: TcpProxy
) -> None:
    pg = pg_running
    url = pg.url(pg_database)
    if case == "wrong-port":
        url = pg.url(pg_database, port=free_port())
    elif case == "wrong-host":
        url = pg.url(pg_database, host="nonexistent.invalid")
    elif case == "proxy-drops":
        proxy.set_mode(Mode.DROP)
        url = proxy.url(pg_database)
    elif case == "proxy-resets":
        proxy.set_mode(Mode.RESET)
        url = proxy.url(pg_database)
    if case == "server-stopped":
        pg.stop()
    try:
        result = run_vutf(
            "users", "list", database_url=url, env={"VUTF_DB_DEADLINE": str(DEADLINE)}
        )
    finally:
        if case == "server-stopped":
            pg.start()
    error = assert_clean_unavailable(result, url)
    assert "database unavailable at" in error
    # Transient: retried until the deadline, and the hint says so.
    attempts, seconds = reported_retries(result.stderr)
    assert attempts >= 2, result.describe()
    assert seconds <= DEADLINE + LAST_ATTEMPT_SLACK, result.describe()
    if case == "wrong-host":
        assert "nonexistent.invalid" in error
    if case.startswith("proxy"):
        assert proxy.attempts >= attempts  # every attempt reached the server's side
    record(
        f"1. down before the command: {case}",
        faults=1,
        commands=1,
        note=f"exit 7: {attempts} attempts in {seconds:.1f} s (deadline {DEADLINE:g} s)",
    )


def test_bad_credentials_exit_7_at_once_without_retry(
    pg_running: PgInstance, pg_database: str
) -> None:
    pg = pg_running
    wrong = f"not-the-password-{uuid.uuid4().hex[:6]}"
    url = pg.url(pg_database, user=PASSWORD_ROLE, password=wrong)
    offset = server_log_offset(pg)
    # A long deadline: any retry would show in the time taken.
    result = run_vutf(
        "users", "list", database_url=url, env={"VUTF_DB_DEADLINE": "60"}, timeout=120
    )
    error = assert_clean_unavailable(result, url)
    assert "cannot log in to" in error
    assert "password authentication failed" in error
    assert wrong not in result.stderr
    assert f"{PASSWORD_ROLE}:***@" in error
    assert "gave up after" not in result.stderr
    # It did not wait for the deadline; that it did not retry at all is the
    # server's count below (a bound on the time would measure the load instead).
    assert result.seconds < 60, result.describe()
    # The server saw exactly one login attempt: no retry.
    failures = server_log_since(pg, offset).count(
        f'password authentication failed for user "{PASSWORD_ROLE}"'
    )
    assert failures == 1
    # The right password works: only the credentials were wrong.
    good = run_vutf(
        "users", "list", database_url=pg.url(pg_database, user=PASSWORD_ROLE, password=PASSWORD)
    )
    assert good.exit_code == 0, good.describe()
    record(
        "1. bad credentials",
        faults=1,
        commands=2,
        note=f"exit 7 in {result.seconds:.2f} s, 1 login attempt (deadline 60 s)",
    )


# -- 2. server restarts during a loop of mutating commands ------------------------------
# Runs `vutf users create` for each name in argv through the installed console
# script's entry point, in one process (a fresh settings/engine/Database per
# command, as in a separate process, without paying the interpreter start-up
# 200 times), and prints one JSON line per command.
DRIVER = r"""
import io, json, sys, time
from importlib.metadata import entry_points

(entry,) = entry_points(group="console_scripts", name="vutf")
main = entry.load()
password = sys.stdin.readline().rstrip("\n")
real_out, real_err = sys.stdout, sys.stderr
for name in sys.argv[1:]:
    argv = ["users", "create", name, "--email", f"{name}@example.com", "--password-stdin"]
    sys.stdin = io.StringIO(password + "\n")
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    started, wall = time.monotonic(), time.time()
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        code = -1
        sys.stderr.write(repr(exc))
    finally:
        err = sys.stderr.getvalue()
        sys.stdout, sys.stderr = real_out, real_err
    line = {"name": name, "exit": code, "start": wall,
            "seconds": round(time.monotonic() - started, 3), "stderr": err[-400:]}
    print(json.dumps(line), flush=True)
"""


@dataclass
class CommandResult:
    name: str
    exit: int
    start: float
    seconds: float
    stderr: str
    via: str


@dataclass
class LoopState:
    results: list[CommandResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    progress: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.progress = threading.Condition(self.lock)

    def add(self, result: CommandResult) -> None:
        with self.progress:
            self.results.append(result)
            self.progress.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        with self.progress:
            return self.progress.wait_for(lambda: len(self.results) >= count, timeout)


def _read_driver(stream: IO[str], state: LoopState, garbage: list[str]) -> None:
    for line in stream:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            garbage.append(line)
            continue
        state.add(
            CommandResult(
                data["name"], data["exit"], data["start"], data["seconds"], data["stderr"], "driver"
            )
        )


@pytest.mark.slow
def test_server_restarts_during_200_mutating_commands(
    pg_running: PgInstance, pg_database: str, tmp_path: Path
) -> None:
    pg = pg_running
    url = pg.url(pg_database)
    env = vutf_env(url, {"VUTF_DB_DEADLINE": "15"})
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    batches = [[f"ra{n:03d}" for n in range(105)], [f"rb{n:03d}" for n in range(105)]]
    restarts_at = [(50, "fast"), (110, "immediate"), (165, "fast")]
    state = LoopState()
    garbage: list[str] = []
    restarts: list[tuple[str, float, float]] = []
    offset = server_log_offset(pg)

    processes = []
    readers = []
    for names in batches:
        process = subprocess.Popen(
            [sys.executable, str(driver), *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(USER_PASSWORD + "\n")
        process.stdin.close()
        reader = threading.Thread(
            target=_read_driver, args=(process.stdout, state, garbage), daemon=True
        )
        reader.start()
        processes.append(process)
        readers.append(reader)

    drivers_done = threading.Event()

    def separate_processes() -> None:
        # The real thing as well: one `vutf` process per command, while the
        # drivers (and the restarts) go on.
        for n in range(40):
            if drivers_done.is_set() and n >= 6:
                return
            name = f"rs{n:03d}"
            wall = time.time()
            result = run_vutf(
                "users",
                "create",
                name,
                "--email",
                f"{name}@example.com",
                "--password-stdin",
                database_url=url,
                env={"VUTF_DB_DEADLINE": "15"},
                input=USER_PASSWORD + "\n",
            )
            state.add(
                CommandResult(
                    name, result.exit_code, wall, result.seconds, result.stderr[-400:], "process"
                )
            )

    separate = threading.Thread(target=separate_processes, daemon=True)
    separate.start()
    try:
        for threshold, mode in restarts_at:
            assert state.wait_for(threshold, timeout=120), "the commands stopped making progress"
            began = time.time()
            pg.restart(mode)
            restarts.append((mode, began, time.time()))
        for process in processes:
            process.wait(timeout=180)
    finally:
        drivers_done.set()
        for process in processes:
            if process.poll() is None:
                process.kill()
        separate.join(timeout=120)
        for reader in readers:
            reader.join(timeout=10)
    driver_errors = [p.stderr.read() if p.stderr else "" for p in processes]
    assert not garbage, garbage
    assert all(p.returncode == 0 for p in processes), driver_errors

    results = state.results
    commands = len(results)
    assert commands >= 200
    assert len({r.name for r in results}) == commands
    unexpected = [r for r in results if r.exit not in (0, 7)]
    assert not unexpected, unexpected[:5]
    succeeded = {r.name for r in results if r.exit == 0}
    failed = {r.name for r in results if r.exit == 7}
    for result in results:
        if result.exit == 7:
            assert "database unavailable" in result.stderr, result

    # Nothing acknowledged is lost, nothing else is there, nothing twice.
    counts = dict(
        pg.execute("SELECT username, count(*) FROM users GROUP BY username", database=pg_database)
    )
    in_db = set(counts)
    lost = succeeded - in_db
    phantom = in_db - succeeded
    duplicated = {name: n for name, n in counts.items() if n != 1}
    assert not lost, sorted(lost)
    assert not phantom, sorted(phantom)
    assert not duplicated, duplicated

    audit = pg.execute(
        "SELECT changes->>'username', status, metadata->>'request_id', resource_id "
        "FROM audit_log "
        "WHERE action = 'user.create'",
        database=pg_database,
    )
    ids = dict(pg.execute("SELECT username, id::text FROM users", database=pg_database))
    success_rows: dict[str, int] = {}
    for username, status, _request_id, resource_id in audit:
        # A change replayed blindly would have been refused as a duplicate: a failure row.
        assert status == "success", (username, status)
        assert resource_id == ids[username]
        success_rows[username] = success_rows.get(username, 0) + 1
    assert success_rows == {name: 1 for name in succeeded}
    request_ids = [row[2] for row in audit]
    assert None not in request_ids
    assert len(set(request_ids)) == len(request_ids)
    verify = verify_chain(url)

    log = server_log_since(pg, offset)
    killed = len(re.findall(r" vutf FATAL:  terminating connection", log))
    in_flight = sum(
        1
        for r in results
        for _mode, began, ended in restarts
        if r.start <= ended and r.start + r.seconds >= began
    )
    separate_count = sum(1 for r in results if r.via == "process")
    slowest = max(r.seconds for r in results)
    print(
        f"\n[figures] restarts: {[(m, round(e - b, 2)) for m, b, e in restarts]}; "
        f"commands {commands} ({separate_count} as separate processes), exit 0: "
        f"{len(succeeded)}, exit 7: {len(failed)}; in flight during a restart: {in_flight}; "
        f"vutf backends terminated by the server: {killed}; slowest command {slowest:.2f} s; "
        f"verify: {verify.stdout.strip()[:80]!r}"
    )
    assert len(restarts) == 3
    record(
        "2. server restarted x3 (fast, immediate, fast) during `users create`",
        faults=len(restarts),
        commands=commands,
        rows=len(counts) + len(audit),
        lost=len(lost),
        duplicated=sum(n - 1 for n in counts.values()),
        note=f"exit 0: {len(succeeded)}, exit 7: {len(failed)}, in flight at a restart: "
        f"{in_flight}, backends killed: {killed}",
    )


# -- 3. backend terminated mid-transaction -------------------------------------------------
def test_terminated_backend_mid_transaction_is_retried_whole(
    pg_running: PgInstance, pg_database: str, open_databases: list[Database]
) -> None:
    pg = pg_running
    db = CountingDatabase(settings_for(pg.url(pg_database)))
    open_databases.append(db)
    pids: list[int] = []

    def work(uow: UnitOfWork) -> str:
        pid = int(uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one())
        pids.append(pid)
        user_id = create_user_with_audit(uow, "terminated")
        if len(pids) == 1:
            # The row and its audit row are written (flushed) but not committed.
            assert user_rows(pg, pg_database, "terminated") == []
            (killed,) = pg.execute("SELECT pg_terminate_backend(%s)", pid)[0]
            assert killed is True
            wait_until(lambda: not pg.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", pid))
        uow.session.execute(text("SELECT 1"))  # the first attempt dies here
        return user_id

    user_id = db.run(work)
    assert len(pids) == 2  # the whole function ran again...
    assert pids[0] != pids[1]  # ...on a new connection
    assert db.lookups == []  # the COMMIT was never sent: nothing to look up
    rows = user_rows(pg, pg_database, "terminated")
    assert [str(row[0]) for row in rows] == [user_id]
    audit = audit_rows(pg, pg_database, "terminated")
    assert len(audit) == 1
    assert audit[0][1] == "success"
    assert breaker_state(db) == "closed"
    verify_chain(pg.url(pg_database))
    record(
        "3. pg_terminate_backend mid-transaction",
        faults=1,
        commands=1,
        rows=len(rows) + len(audit),
        note="2 attempts, 1 user row, 1 audit row",
    )


# -- 4. connection lost around COMMIT --------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "landed"),
    [(Mode.DROP_AFTER_COMMIT, True), (Mode.DROP_BEFORE_COMMIT, False)],
    ids=["after-commit-sent", "before-commit-sent"],
)
def test_unknown_commit_outcome_is_resolved_by_the_request_id(
    mode: Mode,
    landed: bool,
    pg_running: PgInstance,
    pg_database: str,
    proxy: TcpProxy,
    open_databases: list[Database],
) -> None:
    pg = pg_running
    db = CountingDatabase(settings_for(proxy.url(pg_database)))
    open_databases.append(db)
    username = f"commit_{'landed' if landed else 'lost'}"
    calls = 0

    def work(uow: UnitOfWork) -> str:
        nonlocal calls
        calls += 1
        return create_user_with_audit(uow, username)

    proxy.set_mode(mode)
    user_id = db.run(work)  # returns normally: the client never saw the COMMIT's answer

    assert proxy.commits_dropped == 1
    assert len(db.lookups) == 1
    looked_up, found = db.lookups[0]
    assert found is landed
    if landed:
        # The server did answer the COMMIT (to the proxy, not to vutf)...
        assert b"C\x00\x00\x00\x0bCOMMIT\x00" in proxy.commit_answers[0]
        # ...so the retry found the request id and did not run the work again.
        assert calls == 1
    else:
        assert calls == 2  # nothing landed: the whole transaction ran again
    rows = user_rows(pg, pg_database, username)
    assert [str(row[0]) for row in rows] == [user_id]
    audit = audit_rows(pg, pg_database, username)
    assert len(audit) == 1
    assert audit[0][1] == "success"
    assert audit[0][2] == looked_up  # the request id the retry looked for is the row's
    verify_chain(pg.url(pg_database))
    record(
        f"4. connection cut {'after' if landed else 'before'} COMMIT was sent",
        faults=1,
        commands=1,
        rows=len(rows) + len(audit),
        note=f"request id found: {found}; work ran {calls}x",
    )


# -- 5. circuit breaker ---------------------------------------------------------------------
class NeverOpens(CircuitBreaker):
    """The control: a breaker that never opens (vutf without a circuit breaker)."""

    def record_failure(self) -> None:
        pass

    def trip(self) -> None:
        pass


def _head(db: Database) -> None:
    db.run(lambda uow: uow.audit.head(), read_only=True)


def _refused(db: Database, proxy: TcpProxy, calls: int) -> None:
    """``calls`` operations, each refused by the open circuit without reaching the server."""
    before = proxy.attempts
    for _ in range(calls):
        with pytest.raises(DatabaseUnavailable, match="circuit breaker is open"):
            _head(db)
    assert proxy.attempts == before


@pytest.mark.slow
def test_circuit_breaker_stops_hammering_and_recovers_through_half_open(
    pg_running: PgInstance, pg_database: str, proxy: TcpProxy, open_databases: list[Database]
) -> None:
    deadline, cooldown, cooldowns, calls = 1.0, 30.0, 3, 20
    settings = settings_for(proxy.url(pg_database), db_deadline=deadline, connect_timeout=1.0)
    clock = ManualClock()
    breaker = CircuitBreaker(
        failure_threshold=BREAKER_THRESHOLD, reset_timeout=cooldown, clock=clock
    )
    db = Database(settings, breaker=breaker)
    open_databases.append(db)
    assert db.run(lambda uow: uow.audit.head(), read_only=True) is None

    proxy.set_mode(Mode.DROP)
    before = proxy.attempts
    with pytest.raises(DatabaseUnavailable) as first:  # the first operation meets the outage...
        _head(db)
    first_op_attempts = proxy.attempts - before
    retried, _ = reported_retries(first.value.hint)
    assert retried >= 2  # it retried within its deadline
    assert first_op_attempts == retried  # one connection per attempt, each reaching the proxy
    assert breaker_state(db) == "open"  # ...and opens the circuit

    # Open: nothing reaches the server until the cool-down ends, then one
    # trial per cool-down, which fails and starts a fresh cool-down.
    trial_connections = []
    for _ in range(cooldowns):
        _refused(db, proxy, calls)
        clock.advance(cooldown - 0.1)
        _refused(db, proxy, 1)
        clock.advance(0.1)
        before = proxy.attempts
        with pytest.raises(DatabaseUnavailable) as trial:
            _head(db)
        assert "circuit breaker" not in trial.value.message
        assert reported_retries(trial.value.hint)[0] == 1  # a trial gets one attempt
        trial_connections.append(proxy.attempts - before)
        assert breaker_state(db) == "open"
    assert trial_connections == [1] * cooldowns

    proxy.set_mode(Mode.PASS)
    _refused(db, proxy, 1)  # the server is back, but the cool-down decides
    clock.advance(cooldown)
    states_inside: list[str] = []

    def probe(uow: UnitOfWork) -> None:
        states_inside.append(db.breaker.state)
        uow.audit.head()

    db.run(probe, read_only=True)  # the first call after the cool-down recovers
    assert states_inside == ["half_open"]  # the one trial call got through...
    assert breaker_state(db) == "closed"  # ...and closed the circuit
    assert db.breaker.consecutive_failures == 0

    # The same outage without a breaker that ever opens: every call retries.
    control = Database(settings, breaker=NeverOpens())
    open_databases.append(control)
    assert control.run(lambda uow: uow.audit.head(), read_only=True) is None
    proxy.set_mode(Mode.DROP)
    control_calls, control_retries = 3, []
    before = proxy.attempts
    for _ in range(control_calls):
        with pytest.raises(DatabaseUnavailable) as failed:
            _head(control)
        control_retries.append(reported_retries(failed.value.hint)[0])
    control_attempts = proxy.attempts - before
    proxy.set_mode(Mode.PASS)
    assert all(n >= 2 for n in control_retries)
    assert control_attempts == sum(control_retries)

    refused = cooldowns * (calls + 1) + 1
    print(
        f"\n[figures] breaker: first operation {retried} attempts ({first_op_attempts} "
        f"connections), then {refused} calls refused without connecting and one trial per "
        f"cool-down ({trial_connections} connections); recovered on the first call after "
        f"the cool-down. Without a breaker: {control_calls} calls, {control_attempts} "
        "connections."
    )
    record(
        "5. circuit breaker, calls during an outage",
        faults=2,
        commands=refused + cooldowns + control_calls + 3,
        note=f"connections: {sum(trial_connections)} for {refused + cooldowns} calls with "
        f"breaker vs {control_attempts} for {control_calls} without; recovered via half-open",
    )


@dataclass
class Background:
    """A running `vutf` process whose output lines are collected as they arrive."""

    process: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        for stream, sink in (
            (self.process.stdout, self.stdout),
            (self.process.stderr, self.stderr),
        ):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            with self.changed:
                sink.append(line)
                self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def _append_marker(db: Database, marker: str) -> int:
    return db.run(
        lambda uow: (
            uow.audit.append(action="test.marker", resource_type="test", resource_id=marker).seq
        )
    )


@pytest.mark.slow
def test_audit_follow_rides_out_an_outage_with_few_attempts(
    pg_running: PgInstance, pg_database: str, proxy: TcpProxy, open_databases: list[Database]
) -> None:
    deadline, outage = 2.0, 5.0
    writer = Database(settings_for(pg_running.url(pg_database)))
    open_databases.append(writer)
    follower = Background(
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("vutf")),
                *("-o", "jsonl", "audit", "follow", "--interval", "0.2", "--action", "test.*"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=vutf_env(proxy.url(pg_database), {"VUTF_DB_DEADLINE": str(deadline)}),
        )
    )

    def printed(marker: str) -> Callable[[], bool]:
        return lambda: any(json.loads(line)["resource_id"] == marker for line in follower.stdout)

    try:
        assert follower.wait_for(
            lambda: any("following the audit log" in line for line in follower.stderr), 30
        ), follower.stderr
        _append_marker(writer, "before")
        assert follower.wait_for(printed("before"), 15), follower.stdout

        proxy.set_mode(Mode.DROP)
        before = proxy.attempts
        started = time.monotonic()
        assert follower.wait_for(
            lambda: any("still following" in line for line in follower.stderr), 15
        ), follower.stderr
        # The outage goes on for a while (its length is the fault, not a wait
        # for something); the bound below uses the length it really had.
        time.sleep(max(0.0, outage - (time.monotonic() - started)))
        outage_attempts = proxy.attempts - before
        proxy.set_mode(Mode.PASS)
        back = time.monotonic()
        outage = back - started

        _append_marker(writer, "after")
        assert follower.wait_for(printed("after"), 40), (follower.stdout, follower.stderr)
        resumed_after = time.monotonic() - back
        # (stderr is read by its own thread: the notice may arrive just after.)
        assert follower.wait_for(
            lambda: any("reachable again" in line for line in follower.stderr), 10
        ), follower.stderr
    finally:
        code = follower.stop()
    assert code == 0, follower.stderr
    markers = [json.loads(line)["resource_id"] for line in follower.stdout]
    assert markers == ["before", "after"]  # each once, in order
    # One deadline's worth of retries (backoff from 0.05 s: at most 6 in 2 s),
    # then at most one trial per cool-down (= the deadline here).
    bound = 7 + outage / deadline + 1
    print(
        f"\n[figures] follow: {outage_attempts} connection attempts in a {outage:.1f} s outage "
        f"(bound {bound:.1f}); resumed {resumed_after:.1f} s after the server came back"
    )
    assert 1 <= outage_attempts <= bound
    record(
        "5. `audit follow` through an outage",
        faults=1,
        commands=1,
        rows=len(markers),
        note=f"{outage_attempts} attempts in {outage:.1f} s; new row printed "
        f"{resumed_after:.1f} s after recovery",
    )


IMPORTED_USERS = 20


def _users_to_import(tmp_path: Path) -> Path:
    """A JSON-lines file of IMPORTED_USERS new users (imp00, imp01, ...) with passwords."""
    rows = [
        {"username": f"imp{n:02d}", "email": f"imp{n:02d}@example.com", "password": USER_PASSWORD}
        for n in range(IMPORTED_USERS)
    ]
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return source


def _imported(pg_running: PgInstance, pg_database: str) -> tuple[int, int]:
    """How many of those users, and how many user.create/user.import audit rows, exist."""
    users = pg_running.execute(
        "SELECT count(*) FROM users WHERE username LIKE 'imp%%'", database=pg_database
    )[0][0]
    audit = pg_running.execute(
        "SELECT count(*) FROM audit_log WHERE action IN ('user.create', 'user.import')",
        database=pg_database,
    )[0][0]
    return int(users), int(audit)


@pytest.mark.slow
# users import writes with COPY ... FROM STDIN: the users, then their audit rows.
@pytest.mark.parametrize("statement", [b"COPY users", b"COPY audit_log"], ids=bytes.decode)
def test_users_import_hit_by_an_outage_mid_write_exits_7_and_imports_nothing(
    statement: bytes,
    pg_running: PgInstance,
    pg_database: str,
    proxy: TcpProxy,
    tmp_path: Path,
) -> None:
    deadline = 2.0
    source = _users_to_import(tmp_path)
    # The outage starts the moment the import's write transaction starts that COPY
    # (for the audit rows: after the users went in, in the same transaction).
    proxy.drop_on(statement, Mode.DROP)
    before = proxy.attempts
    result = run_vutf(
        "users",
        "import",
        str(source),
        database_url=proxy.url(pg_database),
        env={"VUTF_DB_DEADLINE": str(deadline)},
    )
    attempts = proxy.attempts - before
    proxy.set_mode(Mode.PASS)
    assert proxy.attempts_by_mode[Mode.DROP] >= 1  # the outage did hit the import
    assert_clean_unavailable(result, proxy.url(pg_database))
    assert proxy.triggered_at is not None
    outage_to_exit = result.ended - proxy.triggered_at
    # The write that met the outage retried for no longer than the deadline.
    retried, seconds = reported_retries(result.stderr)
    assert seconds <= deadline + LAST_ATTEMPT_SLACK, result.describe()
    assert _imported(pg_running, pg_database) == (0, 0)  # all or nothing: users, audit rows
    assert attempts <= 1 + 7  # the first connection, then one deadline of retries
    verify_chain(pg_running.url(pg_database))
    record(
        f"5. `users import` hit by an outage mid-write ({statement.decode()})",
        faults=1,
        commands=1,
        rows=IMPORTED_USERS,
        note=f"exit 7 {outage_to_exit:.2f} s after the outage began ({retried} attempt(s) in "
        f"{seconds:.1f} s), {attempts} connections, 0 rows imported",
    )


# -- 6. stalled server -----------------------------------------------------------------------
@pytest.mark.parametrize("command", [("db", "ping"), ("users", "list")], ids=" ".join)
def test_stalled_server_ends_by_the_deadline(
    command: tuple[str, ...],
    pg_running: PgInstance,
    pg_database: str,
    proxy: TcpProxy,
) -> None:
    proxy.set_mode(Mode.STALL)
    url = proxy.url(pg_database)
    result = run_vutf(*command, database_url=url, env={"VUTF_DB_DEADLINE": str(DEADLINE)})
    error = assert_clean_unavailable(result, url)
    assert "timeout expired" in error
    attempts, seconds = reported_retries(result.stderr)
    # It did wait for the server, up to the deadline, and no longer.
    assert DEADLINE - 0.5 <= seconds <= DEADLINE + LAST_ATTEMPT_SLACK, result.describe()
    assert proxy.attempts >= attempts
    record(
        f"6. stalled server: `vutf {' '.join(command)}`",
        faults=1,
        commands=1,
        note=f"exit 7: {attempts} attempt(s) in {seconds:.1f} s (deadline {DEADLINE:g} s), "
        f"{proxy.attempts} connection(s)",
    )


@pytest.mark.slow
def test_users_import_on_a_server_that_stalls_mid_copy_exits_7_and_imports_nothing(
    pg_running: PgInstance, pg_database: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    # COPY runs without vutf's wait callback (psycopg2 refuses COPY with one):
    # its watchdog ends the wait after the statement timeout plus the connect
    # timeout. The stall begins at the audit rows' COPY, after the users went in.
    deadline, wait_limit = 2.0, 1.0 + 1.0
    env = {
        "VUTF_DB_DEADLINE": str(deadline),
        "VUTF_STATEMENT_TIMEOUT": "1000",
        "VUTF_CONNECT_TIMEOUT": "1",
    }
    proxy.drop_on(b"COPY audit_log", Mode.STALL)
    url = proxy.url(pg_database)
    result = run_vutf("users", "import", str(_users_to_import(tmp_path)), database_url=url, env=env)
    proxy.set_mode(Mode.PASS)
    assert proxy.triggered_at is not None  # the stall did meet the import
    error = assert_clean_unavailable(result, url)
    assert "timeout expired" in error  # the COPY's wait, or a retry's connection, gave up
    stall_to_exit = result.ended - proxy.triggered_at
    # One wait of the limit, then what is left of the deadline; never a hang.
    assert stall_to_exit <= wait_limit + deadline + LAST_ATTEMPT_SLACK, result.describe()
    assert _imported(pg_running, pg_database) == (0, 0)
    verify_chain(pg_running.url(pg_database))
    record(
        "6. stalled server mid-`users import` (COPY audit_log)",
        faults=1,
        commands=1,
        rows=IMPORTED_USERS,
        note=f"exit 7 {stall_to_exit:.2f} s after the stall began, 0 rows imported",
    )


def test_stall_after_connecting_ends_by_the_deadline(
    pg_running: PgInstance, pg_database: str, proxy: TcpProxy, open_databases: list[Database]
) -> None:
    # libpq has no read timeout, and keepalives see a healthy peer (the
    # proxy's kernel acknowledges everything): only vutf's own limit helps.
    settings = settings_for(
        proxy.url(pg_database), db_deadline=DEADLINE, connect_timeout=1.0, statement_timeout_ms=1000
    )
    clock = ManualClock()
    cooldown = 30.0
    breaker = CircuitBreaker(
        failure_threshold=BREAKER_THRESHOLD, reset_timeout=cooldown, clock=clock
    )
    db = Database(settings, breaker=breaker)
    open_databases.append(db)
    assert db.run(lambda uow: uow.audit.head(), read_only=True) is None  # connected, pooled
    proxy.set_mode(Mode.STALL)
    outcome: queue.Queue[BaseException | None] = queue.Queue()

    def second_operation() -> None:
        try:
            db.run(lambda uow: uow.audit.head(), read_only=True)
        except BaseException as exc:
            outcome.put(exc)
        else:
            outcome.put(None)

    worker = threading.Thread(target=second_operation, daemon=True)
    worker.start()
    worker.join(timeout=60)  # a hang guard, not a measure
    proxy.set_mode(Mode.PASS)
    assert not worker.is_alive(), "the operation hung on a stalled connection"
    error = outcome.get_nowait()
    assert isinstance(error, DatabaseUnavailable), error
    assert "timeout expired" in error.message
    attempts, seconds = reported_retries(error.hint)
    # A wait for a statement's answer is limited to statement timeout +
    # connect timeout (vutf_cli.db.engine.wait_limit), not cut by the deadline.
    assert seconds <= DEADLINE + 1.0 + 1.0 + LAST_ATTEMPT_SLACK, error.hint
    # The circuit opened; the server answering again does not close it, the
    # end of the cool-down does (through a half-open trial).
    assert breaker_state(db) == "open"
    assert not _answers(db)
    clock.advance(cooldown)
    assert _answers(db)
    assert breaker_state(db) == "closed"
    record(
        "6. stall after connecting (in-process)",
        faults=1,
        commands=4,
        note=f"DatabaseUnavailable: {attempts} attempt(s) in {seconds:.1f} s "
        f"(deadline {DEADLINE:g} s)",
    )
