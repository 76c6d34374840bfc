"""Concurrent audit writers keep one linear chain (docs/architecture.md §3.2), on both backends.

Four processes ('spawn': nothing is inherited but the URL) each append 25
rows, one transaction per row, all starting together.  Without the
PostgreSQL advisory lock (or SQLite's BEGIN IMMEDIATE) two writers would
read the same head and either collide on ``seq`` or fork the chain.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from sqlalchemy import func, select

from vutf_cli.db.database import Database
from vutf_cli.db.models import AuditLog
from vutf_cli.db.uow import UnitOfWork

WORKERS = 4
APPENDS_PER_WORKER = 25


def _append_rows(url: str, worker: int, start: Any, results: Any) -> None:
    """Worker process: build a Database from the URL alone and append rows one by one."""
    from vutf_cli.settings import Settings

    database = Database(
        Settings(
            database_url=url, actor=f"worker-{worker}", argon2_profile="test", db_deadline=15.0
        )
    )
    seqs: list[int] = []
    try:
        start.wait(timeout=60)
        for index in range(APPENDS_PER_WORKER):
            resource_id = f"{worker}:{index}"

            def append(uow: UnitOfWork, resource_id: str = resource_id) -> int:
                return uow.audit.append(
                    action="test.append", resource_type="test", resource_id=resource_id
                ).seq

            seqs.append(database.run(append))
        results.put((worker, seqs, None))
    except Exception as exc:
        results.put((worker, seqs, f"{type(exc).__name__}: {exc}"))
    finally:
        database.dispose()


def test_concurrent_appends_keep_one_linear_chain(database_url: str, db: Database) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    processes = [
        context.Process(target=_append_rows, args=(database_url, worker, start, results))
        for worker in range(WORKERS)
    ]
    began = time.monotonic()
    for process in processes:
        process.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    elapsed = time.monotonic() - began

    errors = [error for _, _, error in outcomes if error]
    assert errors == []
    # Every worker saw its own seqs strictly increase, and no seq was handed out twice.
    all_seqs: list[int] = []
    for _, seqs, _ in outcomes:
        assert len(seqs) == APPENDS_PER_WORKER
        assert seqs == sorted(seqs)
        all_seqs.extend(seqs)
    total = WORKERS * APPENDS_PER_WORKER
    assert sorted(all_seqs) == list(range(1, total + 1))

    def read(uow: UnitOfWork) -> tuple[int, list[int], set[str | None]]:
        count = uow.session.execute(select(func.count()).select_from(AuditLog)).scalar_one()
        seqs = list(uow.session.scalars(select(AuditLog.seq).order_by(AuditLog.seq)))
        resources = set(uow.session.scalars(select(AuditLog.resource_id)))
        return count, seqs, resources

    count, seqs, resources = db.run(read, read_only=True)
    assert count == total
    assert seqs == list(range(1, total + 1))
    assert resources == {f"{w}:{i}" for w in range(WORKERS) for i in range(APPENDS_PER_WORKER)}

    report = db.run(lambda uow: uow.audit.verify_chain(), read_only=True)
    assert report.ok, report.detail
    assert (report.checked, report.first_seq, report.last_seq) == (total, 1, total)
    assert elapsed < 30
