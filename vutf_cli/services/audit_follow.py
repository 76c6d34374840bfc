"""`vutf audit follow`: new matching entries as they are appended, like ``tail -f``."""

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
@dataclass(frozen=True, slots=True)
class Following:
    """A started follow: entries after ``after_seq`` are yielded by ``entries`` as they come."""

    after_seq: int
    entries: Iterator[AuditEntry]


def follow(
    db: Database,
    query: AuditQuery,
    *,
    since_seq: int | None = None,
    interval: float = 1.0,
    max_events: int | None = None,
    timeout: float | None = None,
    on_outage: Callable[[VutfError], None] | None = None,
    on_recovery: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Following:
    """Follow new matching entries as they are appended, like ``tail -f``.

    The starting point is fixed before this returns: after the current head,
    or just before ``since_seq`` to replay from there.  ``entries`` then polls
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
    if since_seq is not None:
        check_seq("--since-seq", since_seq)
    deadline = None if timeout is None else clock() + timeout

    def start(uow: UnitOfWork) -> tuple[ResolvedFilters, int]:
        filters = resolve_filters(uow, query)
        if since_seq is not None:
            return filters, since_seq - 1
        found = uow.audit.head()
        return filters, 0 if found is None else found[0]

    filters, after_seq = db.run(start, read_only=True)

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

    return Following(after_seq, entries())
