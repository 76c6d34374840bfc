"""Mutations and their audit rows.

Every mutating service runs through :func:`mutate`: the change and its
``success`` audit row are written by ``fn`` in one transaction (both commit or
neither).  When the mutation is refused (conflict, denied, not found) a
``failure`` row is written in a transaction of its own, so refusals are on
the record even though nothing else changed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.errors import Conflict, Denied, NotFound, VutfError

T = TypeVar("T")

REFUSALS: tuple[type[VutfError], ...] = (Conflict, Denied, NotFound)


def mutate(
    db: Database,
    fn: Callable[[UnitOfWork], T],
    *,
    action: str,
    resource_type: str,
    resource_id: str | None = None,
) -> T:
    """Run ``fn`` (which appends its own success row) and record a refusal as a failure row."""
    started = time.monotonic()
    try:
        return db.run(fn)
    except REFUSALS as exc:
        record_failure(
            db,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            error=exc,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
        raise


def record_failure(
    db: Database,
    *,
    action: str,
    resource_type: str,
    resource_id: str | None,
    error: VutfError,
    duration_ms: int | None = None,
) -> None:
    def write(uow: UnitOfWork) -> None:
        uow.audit.append(
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            status="failure",
            error_message=f"{error.code}: {error.message}",
            duration_ms=duration_ms,
        )

    # The refusal itself is what the user must see; a failure to record it
    # (e.g. the database went away) must not replace that error.
    with contextlib.suppress(VutfError):
        db.run(write)


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
