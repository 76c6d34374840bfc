"""Case ``verify.throughput``: audited API-key verifications from 8 threads of one process.

What a web service's worker pool does with the Python API: one
:class:`~vutf_cli.store.Store` shared by ``--threads`` threads, each calling
``store.verify_key(key)`` in a loop, every call appending its ``api_key.use``
audit row (PostgreSQL only: the request path of a deployment).  The key's
owner is an ordinary user holding its scope (``read``) through the built-in
``viewer`` role, so each call also reads the owner's live role scopes.  Reported:
verifications per second and the p50/p99/max latency of one call, next to
two references measured in the same run, so the table says what bounds it:

* ``1 thread``: the same calls, one at a time (the latency of a call alone);
* ``no audit row``: ``record=False`` (a read-only check, ``vutf keys verify
  --no-record``), 8 threads: what the reads and Python cost without the write.

Each variant runs in a process of its own (``python -m
tests.benchmarks.verify_throughput``), started by :func:`measure`, which the
runner calls after its table; the child prints one JSON object.  The goal
(issue 13): at least 500 audited verifications per second with p99 under
25 ms on the 2-core machine.  The runner checks that exactly one audit row
was written per audited call.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from tests.benchmarks.seed import Resources
    from tests.benchmarks.settings import Settings

CASE: Final = "verify.throughput"
THREADS: Final = 8
BASE_CALLS: Final = 4000  # audited calls of the 8-thread run at --scale 1
WARMUP_CALLS: Final = 5  # per thread, untimed: connections opened, code paths warm
GOAL_PER_SECOND: Final = 500.0
GOAL_P99_MS: Final = 25.0
OWNER_ROLE: Final = "viewer"  # built in: grants "read", the key's scope
REPO_ROOT: Final = Path(__file__).resolve().parents[2]

# (label, threads, record, share of the calls)
VARIANTS: Final = (
    ("8 threads, audit row written", THREADS, True, 1.0),
    ("1 thread, audit row written", 1, True, 0.25),
    ("8 threads, no audit row (record=False)", THREADS, False, 1.0),
)


# -- the child: one variant, measured in its own process ------------------------------------
def _percentile(sorted_values: Sequence[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def run_variant(key: str, *, threads: int, calls: int, record: bool) -> dict[str, Any]:
    """``calls`` verifications of ``key`` spread over ``threads`` threads of one Store."""
    from vutf_cli.services import key_verification
    from vutf_cli.services.audit_trail import database_for
    from vutf_cli.settings import load_settings
    from vutf_cli.store import Store

    store = Store.from_settings()  # VUTF_DATABASE_URL etc. from the environment
    # The read-only check has no Store method (recording nothing, it is no
    # authentication attempt): the service call behind Store.verify_key.
    unrecorded = database_for(load_settings())
    per_thread = max(1, calls // threads)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    ready = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)

    def verify() -> None:
        if record:
            store.verify_key(key)
        else:
            key_verification.verify_key(unrecorded, key, record=False)

    def worker(index: int) -> None:
        try:
            for _ in range(WARMUP_CALLS):
                verify()
            ready.wait()
            mine = latencies[index]
            for _ in range(per_thread):
                started = time.perf_counter()
                verify()
                mine.append(time.perf_counter() - started)
        except BaseException as exc:
            errors.append(exc)
            ready.abort()
        finally:
            done.wait()

    pool = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in pool:
        thread.start()
    ready.wait()
    cpu_before = _cpu()
    started = time.perf_counter()
    done.wait()
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu_before
    store.close()
    unrecorded.dispose()
    if errors:
        raise errors[0]
    every = sorted(value for mine in latencies for value in mine)
    return {
        "threads": threads,
        "record": record,
        "calls": len(every),
        "warmup_calls": WARMUP_CALLS * threads,
        "seconds": seconds,
        "per_second": len(every) / seconds,
        "p50_ms": statistics.median(every) * 1000,
        "p99_ms": _percentile(every, 0.99) * 1000,
        "max_ms": every[-1] * 1000,
        "process_cpu_seconds": cpu,
    }


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.verify_throughput")
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--calls", type=int, default=BASE_CALLS)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    key = args.key_file.read_text(encoding="utf-8").strip()
    result = run_variant(key, threads=args.threads, calls=args.calls, record=not args.no_record)
    print(json.dumps(result))
    return 0


# -- the runner's side ----------------------------------------------------------------------
def measure(settings: Settings, resources: Resources) -> tuple[list[str], list[dict[str, Any]]]:
    """Run every variant on a fresh PostgreSQL database: the report lines and the raw results."""
    from tests.benchmarks.environment import child_environment, python_executable

    # SeedError: the runner reports it as a failed run (exit 1).
    from tests.benchmarks.seed import SeedError, count_rows, progress
    from vutf_cli.store import Store

    if "postgresql" not in settings.backends:
        return [f"{CASE} skipped: it runs on PostgreSQL (--backend postgresql or both)"], []
    database = resources.farm.create("postgresql", "verify")
    with Store.from_url(database.url, actor="bench", argon2_profile="test") as store:
        # An ordinary owner holding the key's scope through a role, as in a
        # deployment: every verification reads the owner's live role scopes.
        store.create_user("bench-verify", "bench-verify@example.com", password="x" * 20)
        _grant_role(database.url, "bench-verify", OWNER_ROLE)
        if not store.user_permissions("bench-verify").grants("read"):
            raise SeedError(f"{CASE}: the owner does not hold 'read' through '{OWNER_ROLE}'")
        issued = store.create_key("bench-verify", "throughput", scopes=["read"], no_expiry=True)
    key_file = resources.workdir / "verify-throughput.key"
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(issued.plaintext)
    calls = settings.scaled(BASE_CALLS, 80)
    env = child_environment(resources.home, database_url=database.url)
    results: list[dict[str, Any]] = []
    for label, threads, record, share in VARIANTS:
        finish = progress(f"{CASE}: {label}")
        rows_before = count_rows(database, "audit_log")
        command = [
            python_executable(),
            "-m",
            "tests.benchmarks.verify_throughput",
            "--key-file",
            str(key_file),
            "--threads",
            str(threads),
            "--calls",
            str(max(threads, round(calls * share))),
            *([] if record else ["--no-record"]),
        ]
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=settings.timeout,
            check=False,
        )
        finish()
        if done.returncode != 0:
            raise SeedError(f"{CASE} ({label}) failed: {done.stderr.strip()[-1500:]}")
        result = json.loads(done.stdout)
        written = count_rows(database, "audit_log") - rows_before
        expected = result["calls"] + result["warmup_calls"] if record else 0
        if written != expected:
            raise SeedError(f"{CASE} ({label}): {written} audit rows for {expected} calls")
        result.update(
            label=label,
            audit_rows_written=written,
            commits=_transactions_since(database.url, rows_before) if record else 0,
        )
        results.append(result)
    return [_line(result) for result in results] + [_verdict(results[0])], results


def _grant_role(url: str, username: str, role: str) -> None:
    """Give ``username`` the built-in ``role`` through the service (``vutf users add-role``)."""
    from vutf_cli.services.audit_trail import database_for
    from vutf_cli.services.role_assignments import Target, add_role
    from vutf_cli.settings import Settings

    db = database_for(Settings(database_url=url, actor="bench", argon2_profile="test"))
    try:
        db.ensure_schema()
        add_role(db, [Target(username)], role)
    finally:
        db.dispose()


def _transactions_since(url: str, seq: int) -> int:
    """How many transactions wrote the rows after ``seq`` (one request_id each)."""
    import psycopg2

    from tests.benchmarks.environment import libpq_url

    connection = psycopg2.connect(libpq_url(url), connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(DISTINCT metadata->>'request_id') FROM audit_log WHERE seq > %s",
                (seq,),
            )
            return int(cursor.fetchone()[0])
    finally:
        connection.close()


def _line(result: dict[str, Any]) -> str:
    commits = result["commits"]
    batching = f", {result['audit_rows_written'] / commits:.1f} rows per commit" if commits else ""
    return (
        f"{CASE} (postgresql): verify_key, {result['label']}: "
        f"{result['per_second']:.0f} verifications/s, p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms "
        f"({result['calls']} calls in {result['seconds']:.2f} s, "
        f"{result['process_cpu_seconds']:.2f} s CPU in the process{batching})"
    )


def _verdict(audited: dict[str, Any]) -> str:
    met = audited["per_second"] >= GOAL_PER_SECOND and audited["p99_ms"] < GOAL_P99_MS
    return (
        f"{CASE} goal (>= {GOAL_PER_SECOND:.0f}/s with p99 < {GOAL_P99_MS:.0f} ms, "
        f"8 threads, audited): {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    sys.exit(main())
