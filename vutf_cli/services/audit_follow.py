"""`vutf audit follow`: new matching entries as they are appended, like ``tail -f``.

Where it starts (decided before :func:`follow` returns, so nothing appended
meanwhile is missed or printed twice):

* ``last=N`` (``-n N``; the command's default is 10, the library's 0): the
  last N matching entries first, oldest first, then what is appended;
* ``since_seq``: every matching entry from that seq on, then what is appended;
* a ``since`` time in the query (``--since``): every matching entry from
  that time on, then what is appended (the query keeps filtering by it).

``max_events`` counts every entry yielded, those shown first included, so
``-n 0 --max-events 1`` waits for the next one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.views import AuditEntry
from vutf_cli.errors import DatabaseUnavailable, InvalidInput, VutfError
from vutf_cli.services.audit import (
    AuditQuery,
    ResolvedFilters,
    check_seq,
    fetch_entries,
    resolve_filters,
)

__all__ = ["Following", "follow"]

# Polling faster than this only loads the database; a pause longer than an
# hour, or a timeout beyond a year, is a typo.
MIN_FOLLOW_INTERVAL: Final = 0.01
MAX_FOLLOW_INTERVAL: Final = 3600.0
MAX_FOLLOW_TIMEOUT: Final = 366 * 86400.0
# How many new rows one poll fetches before looking again at once.
FOLLOW_BATCH: Final = 500
# Longest wait between two polls while the database is unreachable.
MAX_OUTAGE_BACKOFF: Final = 30.0


# -- follow ----------------------------------------------------------------------------
# The most entries -n may ask to see first (as --limit of the lists).
MAX_FOLLOW_LAST: Final = 100_000
# Recent entries a table measures its columns by when none is shown first.
SAMPLE_SIZE: Final = 20


@dataclass(frozen=True, slots=True)
class Following:
    """A started follow: the entries shown first, then those after ``after_seq`` as they come.

    ``after_seq`` is the head when the follow started (or the seq before
    ``since_seq``); ``shown_first`` how many entries ``entries`` yields
    before the new ones (``-n``, never more than ``max_events``).
    ``sample``: recent matching entries, like those to come, for a table to
    measure its columns by before the first one arrives (not to be shown).
    """

    after_seq: int
    entries: Iterator[AuditEntry]
    shown_first: int = 0
    sample: tuple[AuditEntry, ...] = ()


def follow(
    db: Database,
    query: AuditQuery,
    *,
    since_seq: int | None = None,
    last: int = 0,
    interval: float = 1.0,
    max_events: int | None = None,
    timeout: float | None = None,
    on_outage: Callable[[VutfError], None] | None = None,
    on_recovery: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Following:
    """Follow new matching entries as they are appended, like ``tail -f``.

    The starting point is fixed before this returns: after the current head
    (with the ``last`` matching entries before it shown first), just before
    ``since_seq`` to replay from there, or at the start when the query has a
    ``since`` time (module docstring).  ``entries`` then polls
    every ``interval`` seconds.  While the database is unreachable,
    ``on_outage`` is called once and polling goes on with a growing pause (up
    to 30 s; the circuit breaker makes each try fail fast meanwhile);
    ``on_recovery`` is called when a poll succeeds again.  Rows are written
    in seq order under the append lock, so "seq greater than the last one
    seen" never misses a row.  Ends after ``max_events`` entries or
    ``timeout`` seconds, if given.
    """
    # Written so that NaN fails every check (it compares false with everything).
    if not MIN_FOLLOW_INTERVAL <= interval <= MAX_FOLLOW_INTERVAL:
        raise InvalidInput(
            f"--interval must be between {MIN_FOLLOW_INTERVAL} and "
            f"{MAX_FOLLOW_INTERVAL:.0f} seconds (got {interval})"
        )
    if max_events is not None and max_events < 1:
        raise InvalidInput("--max-events must be at least 1")
    if timeout is not None and not (math.isfinite(timeout) and 0 <= timeout <= MAX_FOLLOW_TIMEOUT):
        raise InvalidInput(
            f"--timeout must be between 0 and {MAX_FOLLOW_TIMEOUT:.0f} seconds (got {timeout})"
        )
    if not 0 <= last <= MAX_FOLLOW_LAST:
        raise InvalidInput(f"-n must be between 0 and {MAX_FOLLOW_LAST} (got {last})")
    if since_seq is not None:
        check_seq("--since-seq", since_seq)
        if query.since is not None:
            raise InvalidInput("give --since or --since-seq, not both")
    deadline = None if timeout is None else clock() + timeout

    # --max-events counts what is shown first: -n 3 --max-events 2 shows the
    # newest 2 of those 3, not the oldest 2 (the newest would then be missing).
    shown = last if max_events is None else min(last, max_events)

    def start(
        uow: UnitOfWork,
    ) -> tuple[ResolvedFilters, int, list[AuditEntry], list[AuditEntry]]:
        filters = resolve_filters(uow, query)
        found = uow.audit.head()  # read before the entries: see below

        def recent() -> list[AuditEntry]:
            return fetch_entries(
                uow, filters, descending=True, after_seq=None, limit=max(shown, SAMPLE_SIZE)
            )

        if since_seq is not None:
            return filters, since_seq - 1, [], recent()
        if query.since is not None:
            return filters, 0, [], recent()  # the since filter picks the first entry
        head = 0 if found is None else found[0]
        newest = recent()
        backlog = newest[:shown][::-1]
        # A row appended between the two reads may be in the backlog: never twice.
        return filters, max([head, *(entry.seq for entry in backlog)]), backlog, newest

    filters, after_seq, backlog, sample = db.run(start, read_only=True)

    def poll(last_seq: int) -> list[AuditEntry]:
        return db.run(
            lambda uow: fetch_entries(
                uow, filters, descending=False, after_seq=last_seq, limit=FOLLOW_BATCH
            ),
            read_only=True,
        )

    def entries() -> Iterator[AuditEntry]:
        last_seq = after_seq
        emitted = 0
        for entry in backlog:
            yield entry
            emitted += 1
            if max_events is not None and emitted >= max_events:
                return
        outage = False
        pause = interval
        while True:
            batch: list[AuditEntry] | None
            try:
                batch = poll(last_seq)
            except DatabaseUnavailable as exc:
                if not outage and on_outage is not None:
                    on_outage(exc)
                outage = True
                pause = min(pause * 2, MAX_OUTAGE_BACKOFF)
                batch = None
            else:
                if outage and on_recovery is not None:
                    on_recovery()
                outage = False
                pause = interval
            for entry in batch or ():
                last_seq = entry.seq
                yield entry
                emitted += 1
                if max_events is not None and emitted >= max_events:
                    return
            if batch is not None and len(batch) == FOLLOW_BATCH:
                continue  # more are waiting: no pause
            wait = pause
            if deadline is not None:
                wait = min(wait, deadline - clock())
                if wait <= 0:
                    return
            sleep(wait)

    return Following(after_seq, entries(), shown_first=len(backlog), sample=tuple(sample))
