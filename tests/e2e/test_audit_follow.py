"""`vutf audit follow` as a separate process: the installed console script, real pipes.

The follower is started with ``-o jsonl`` and reads what this test appends
from its own connection.  It must print each entry as soon as it is seen
(stdout is a pipe, so that means flushing per line), end with exit 0 on
Ctrl-C (SIGINT), and ride out the database going away: on PostgreSQL the
follower connects through the fault-injection TCP proxy
(:mod:`tests.reliability.tcp_proxy`), which the test switches to dropping
every connection, old and new, as during a server restart, and back.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy.engine import make_url

from tests.reliability.tcp_proxy import Mode, TcpProxy
from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork

VUTF = Path(sys.executable).with_name("vutf")
WAIT = 30.0  # seconds any single expected event may take


def _append(db: Database, action: str) -> int:
    def work(uow: UnitOfWork) -> int:
        return uow.audit.append(action=action, resource_type="user", resource_id=action).seq

    return db.run(work)


@dataclass
class Follower:
    """A running `vutf ... audit follow` whose stdout and stderr lines arrive on queues."""

    process: subprocess.Popen[str]
    stdout: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr: queue.Queue[str] = field(default_factory=queue.Queue)
    stderr_seen: list[str] = field(default_factory=list)
    pumps: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        streams = ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr))
        for stream, lines in streams:
            pump = threading.Thread(target=_pump, args=(stream, lines), daemon=True)
            pump.start()
            self.pumps.append(pump)

    def next_line(self) -> dict[str, Any]:
        import json

        try:
            line = self.stdout.get(timeout=WAIT)
        except queue.Empty:
            pytest.fail(f"no entry within {WAIT} s; stderr so far: {self.stderr_seen}")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def wait_stderr(self, text: str) -> str:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.stderr.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.stderr.empty():
                    break
                continue
            self.stderr_seen.append(line)
            if text in line:
                return line
        pytest.fail(f"{text!r} never appeared on stderr; saw {self.stderr_seen}")

    def finish(self) -> int:
        """Wait for the exit; afterwards ``all_stderr`` holds everything it wrote there."""
        try:
            code = self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("the follower did not exit")
        for pump in self.pumps:
            pump.join(timeout=WAIT)
        return code

    def all_stderr(self) -> list[str]:
        return [*self.stderr_seen, *list(self.stderr.queue)]


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))


@pytest.fixture
def start_follow(database_url: str) -> Iterator[Any]:
    started: list[Follower] = []

    def start(*args: str, url: str = database_url, **env: str) -> Follower:
        environment = {**os.environ, "VUTF_DATABASE_URL": url, **env}
        process = subprocess.Popen(
            [str(VUTF), "-o", "jsonl", "audit", "follow", "--interval", "0.1", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=environment,
        )
        follower = Follower(process)
        started.append(follower)
        # Until this line the starting point is not fixed: rows appended
        # before it could be taken as history.
        follower.wait_stderr("following the audit log after seq")
        return follower

    yield start
    for follower in started:
        if follower.process.poll() is None:
            follower.process.kill()
            follower.process.wait()


def test_follow_prints_rows_appended_by_another_process(db: Database, start_follow: Any) -> None:
    _append(db, "user.create")  # history: not printed with -n 0
    follower = start_follow("-n", "0", "--max-events", "3")
    seqs = []
    for action in ("user.update", "api_key.create", "user.delete"):
        seq = _append(db, action)
        line = follower.next_line()  # arrives before the next row is written
        assert (line["seq"], line["action"]) == (seq, action)
        assert line["row_hash"]
        assert line["metadata"]["request_id"]
        seqs.append(seq)
    assert seqs == [2, 3, 4]
    assert follower.finish() == 0
    assert follower.stdout.empty()


def test_follow_applies_filters(db: Database, start_follow: Any) -> None:
    follower = start_follow("--max-events", "1", "--action", "api_key.*")
    _append(db, "user.create")
    _append(db, "api_key.revoke")
    assert follower.next_line()["action"] == "api_key.revoke"
    assert follower.finish() == 0


def test_ctrl_c_ends_follow_with_exit_0(db: Database, start_follow: Any) -> None:
    follower = start_follow()
    _append(db, "user.create")
    assert follower.next_line()["seq"] == 1
    follower.process.send_signal(signal.SIGINT)
    assert follower.finish() == 0
    stderr = follower.all_stderr()
    assert not any("Traceback" in line or "error" in line for line in stderr), stderr


# -- surviving a database restart (PostgreSQL, through a proxy) -----------------------------
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_follow_survives_a_database_restart(
    database_url: str, db: Database, start_follow: Any
) -> None:
    url = make_url(database_url)
    proxy = TcpProxy(url.port or 5432, url.host or "127.0.0.1")
    try:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        follower = start_follow("--max-events", "3", url=proxied, VUTF_DB_DEADLINE="2")
        first = _append(db, "user.create")
        assert follower.next_line()["seq"] == first

        # The server "goes away": connections dropped, new ones closed at once.
        proxy.set_mode(Mode.DROP)
        follower.wait_stderr("warning: database unavailable")
        second = _append(db, "user.update")  # written directly while the follower is cut off
        proxy.set_mode(Mode.PASS)  # back
        follower.wait_stderr("database reachable again")
        assert follower.next_line()["seq"] == second
        third = _append(db, "user.delete")
        assert follower.next_line()["seq"] == third
        assert follower.finish() == 0
    finally:
        proxy.close()
    warnings = [line for line in follower.all_stderr() if line.startswith("warning:")]
    assert len(warnings) == 1, warnings  # once per outage, not once per failed poll
    assert "still following, retrying" in warnings[0]
