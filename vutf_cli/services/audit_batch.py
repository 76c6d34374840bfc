"""Group commit: concurrent callers' audited decisions in one transaction, one chain append.

Every audit row extends one hash chain, so appends are serialized (the
advisory lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) from the lock to
the COMMIT: one round of lock, head read, INSERT and a durable COMMIT per
row bounds how many audited operations a database can take per second
(docs/architecture.md §3.2).  :func:`run_audited` lets the threads of one
process share that round: a caller hands in ``decide``, a function of a
unit of work that reads what it needs and returns ``(row, result)``; one
caller (the leader; at most two batches are under way at once) runs every
decision waiting at that moment, in arrival order, inside ONE transaction,
appends their rows with one
:func:`~vutf_cli.services.audit_trail.append_many` (one lock, one head, one
INSERT) and commits once.  Each caller gets its own ``result`` only after
its row is committed; a caller alone is a batch of one.

Exactness: every decision is still made in the transaction that writes its
row (as without batching), each caller's result is its own, and the rows
are those :func:`~vutf_cli.services.audit_trail.append` would write one by
one (``append_many``'s promise).  The rows of one batch share the
transaction's ``request_id``.  A transient error re-runs the whole batch
(``Database.run``).  An error that can belong to one decision (bad input,
a refusal raised rather than returned) re-runs each decision in a
transaction of its own, so that one caller's bad input never costs another
caller its answer; any other error (the database busy or unreachable past
the deadline, the schema outdated, a broken chain) is every caller's
answer at once, so a batch never waits more than one deadline.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, Final, Generic, TypeVar

from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, Denied, InvalidInput, NotFound
from vutf_cli.services.audit_trail import append_many

__all__ = ["Decision", "run_audited"]

T = TypeVar("T")

# What ``decide`` returns: the audit row (append's keyword arguments) and the result.
Decision = tuple[Mapping[str, Any], T]


class _Job(Generic[T]):
    __slots__ = ("decide", "done", "error", "result")

    def __init__(self, decide: Callable[[UnitOfWork], Decision[T]]) -> None:
        self.decide = decide
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


# Batches of one process under way at once: while one waits for the chain's
# lock and its COMMIT, the next already runs its decisions' queries (measured:
# 2 gives 1.6-1.8x the throughput of 1 at 8 threads; 4, no more than 2).
_LEADERS: Final = 2

# Errors one decision can cause alone (its row, its subject): only these make
# the others re-run alone.  Re-running on DatabaseUnavailable would give each
# job a whole deadline of its own, one after another (review finding 3).
_ONE_DECISIONS_FAULT: Final = (InvalidInput, NotFound, Conflict, Denied)


class _GroupCommit:
    """The batches of one Database: at most ``_LEADERS`` leaders, the others wait their turn."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._changed = threading.Condition()
        self._pending: list[_Job[Any]] = []
        self._leading = 0  # batches being decided and committed now (at most _LEADERS)

    def run(self, decide: Callable[[UnitOfWork], Decision[T]]) -> T:
        job: _Job[T] = _Job(decide)
        with self._changed:
            self._pending.append(job)
            while not job.done and (self._leading >= _LEADERS or job not in self._pending):
                self._changed.wait()
            if job.done:  # a leader committed it meanwhile
                return job.outcome()
            # Lead: take everything waiting now, this job included.
            self._leading += 1
            batch, self._pending = self._pending, []
        try:
            self._commit(batch)
        finally:
            with self._changed:
                self._leading -= 1
                for waiting in batch:
                    waiting.done = True
                self._changed.notify_all()
        return job.outcome()

    def _commit(self, batch: list[_Job[Any]]) -> None:
        def together(uow: UnitOfWork) -> list[Any]:
            rows, results = [], []
            for job in batch:
                row, result = job.decide(uow)
                rows.append(row)
                results.append(result)
            append_many(uow, rows)
            return results

        try:
            results = self._db.run(together)
        except BaseException as exc:
            if len(batch) == 1 or not isinstance(exc, _ONE_DECISIONS_FAULT):
                for job in batch:
                    job.error = exc
                return
            for job in batch:  # one bad decision must not fail the others
                self._commit_alone(job)
            return
        for job, result in zip(batch, results, strict=True):
            job.result = result

    def _commit_alone(self, job: _Job[Any]) -> None:
        def alone(uow: UnitOfWork) -> Any:
            row, result = job.decide(uow)
            append_many(uow, [row])
            return result

        try:
            job.result = self._db.run(alone)
        except BaseException as exc:
            job.error = exc


_BATCHERS: weakref.WeakKeyDictionary[Database, _GroupCommit] = weakref.WeakKeyDictionary()
_BATCHERS_LOCK = threading.Lock()


def _reset_after_fork() -> None:
    # Only the forking thread lives on in a child: a batch that another thread
    # was leading (or a lock it held) would never be released there.
    global _BATCHERS_LOCK
    _BATCHERS_LOCK = threading.Lock()
    _BATCHERS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def run_audited(db: Database, decide: Callable[[UnitOfWork], Decision[T]]) -> T:
    """``decide``'s result, after its audit row is committed, batched with concurrent callers."""
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(db)
        if batcher is None:
            batcher = _BATCHERS[db] = _GroupCommit(db)
    return batcher.run(decide)
