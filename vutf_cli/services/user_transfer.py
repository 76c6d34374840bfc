"""Users in bulk, the work behind ``vutf users export`` and ``import``.

Decisions where the issue left room (the command help refers here):

* ``export`` streams keyset pages of 500 rows, each read in its own
  read-only unit of work, so memory stays constant; its rows are the same
  views (and field names) as ``list``.  With ``include_hashes`` each row also
  carries ``password_hash``.
* ``import`` (formats and columns: :mod:`vutf_cli.services.user_import`) is
  all-or-nothing: every problem of every row is collected (invalid values,
  weak passwords, duplicates inside the file, clashes with existing users)
  and, unless ``skip_invalid``, any problem refuses the whole file with
  nothing written (exit 2, or 4 when the only problems are clashes with
  existing users, which also leaves a ``failure`` audit row).
  ``skip_existing`` leaves users whose username exists alone.  Plaintext
  passwords are hashed in a process pool before the write transaction; the
  rows are then written in ONE transaction with one ``user.create`` audit row
  each plus one ``user.import`` summary row.  The availability check is a few
  ``lower(...) IN (...)`` queries, and users and audit rows go in as bulk
  INSERTs of 1000 rows, so ten thousand users take seconds, not minutes.
  ``dry_run`` validates everything, the clash check included, and writes
  nothing at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from vutf_cli.db.database import Database
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.errors import InvalidInput
from vutf_cli.services import audit_trail
from vutf_cli.services.audit_trail import mutate, record_failure
from vutf_cli.services.user_changes import RESOURCE
from vutf_cli.services.user_queries import scope_arguments

if TYPE_CHECKING:
    from sqlalchemy import Row

    # Imported where used: reading users (`vutf users list`) never loads the
    # import machinery (multiprocessing, file formats, password hashing).
    from vutf_cli.services.user_import import ImportRow, ProgressFactory, RowProblem

__all__ = ["EXPORT_BATCH", "USER_FIELDS", "ImportReport", "export_users", "import_users"]

EXPORT_BATCH: Final = 500
# Users (and their audit rows) per bulk INSERT of an import.
_WRITE_CHUNK: Final = 1000
USER_FIELDS: Final = tuple(f.name for f in fields(UserView))


@dataclass(frozen=True, slots=True)
class ImportReport:
    format: str
    rows: int
    to_create: int
    created: int
    skipped: int
    invalid: int
    dry_run: bool
    problems: tuple[RowProblem, ...] = ()


# -- export ----------------------------------------------------------------------
def export_users(
    db: Database,
    *,
    deleted: str = "live",
    include_hashes: bool = False,
    batch_size: int = EXPORT_BATCH,
) -> Iterator[UserView]:
    """Every user in (created_at, id) order, streamed in keyset pages.

    Arguments are checked now; rows are read as the iterator is consumed, a
    page at a time, each page in its own read-only unit of work.
    """
    from vutf_cli.domain.user_results import UserExport

    filters, include_deleted = scope_arguments(deleted)
    if batch_size < 1:
        raise InvalidInput("the batch size must be at least 1")

    def view(user: Row[Any]) -> UserView:
        if not include_hashes:
            return UserView.from_row(user)
        values = {name: getattr(user, name) for name in USER_FIELDS}
        return UserExport(**values, password_hash=user.password_hash)

    def page(cursor: str | None) -> tuple[list[UserView], str | None]:
        def read(uow: UnitOfWork) -> tuple[list[UserView], str | None]:
            found = uow.users.keyset_rows(
                filters=filters,
                order_by="created_at",
                cursor=cursor,
                limit=batch_size,
                include_deleted=include_deleted,
            )
            return [view(user) for user in found.items], found.next_cursor

        return db.run(read, read_only=True)

    def rows() -> Iterator[UserView]:
        cursor: str | None = None
        while True:
            items, cursor = page(cursor)
            yield from items
            if cursor is None:
                return

    return rows()


# -- import ----------------------------------------------------------------------
def _chunks(rows: Sequence[ImportRow], size: int) -> Iterator[Sequence[ImportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _clashes(
    uow: UnitOfWork, rows: Sequence[ImportRow], skip_existing: bool
) -> tuple[set[int], list[RowProblem]]:
    """(rows to skip, problems) for rows whose username or email a live user holds."""
    holders = uow.users.holders_of((row.username for row in rows), (row.email for row in rows))
    taken_names = {username.lower(): username for username, _ in holders}
    taken_emails = {email.lower(): username for username, email in holders}
    skipped: set[int] = set()
    problems: list[RowProblem] = []
    for row in rows:
        holder = taken_names.get(row.username.lower())
        if holder is not None and skip_existing:
            skipped.add(row.row)
            continue
        if holder is not None:
            problems.append(row.problem(f"user {row.username!r} already exists"))
        email_holder = taken_emails.get(row.email)
        if email_holder is not None:
            problems.append(
                row.problem(f"email {row.email!r} already belongs to user {email_holder!r}")
            )
    return skipped, problems


def _write_import(
    uow: UnitOfWork,
    rows: Sequence[ImportRow],
    hashes: dict[int, str],
    summary: dict[str, Any],
    advance: Callable[[int], None],
) -> int:
    """Insert ``rows`` and their audit rows in bulk, a chunk at a time; how many."""
    now = utcnow()
    for chunk in _chunks(rows, _WRITE_CHUNK):
        profiles = [
            {
                "username": row.username,
                "email": row.email,
                "full_name": row.full_name,
                "is_active": row.is_active,
                "is_superuser": row.is_superuser,
                "is_verified": row.is_verified,
            }
            for row in chunk
        ]
        # Validated above exactly as create_user would; the unique indexes
        # still refuse a user registered meanwhile (Conflict, nothing written).
        ids = uow.users.create_many(
            [
                {
                    **profile,
                    "password_hash": hashes.get(row.row, row.password_hash),
                    "verified_at": now if row.is_verified else None,
                }
                for row, profile in zip(chunk, profiles, strict=True)
            ]
        )
        # The same user.create rows as create_user writes, one per user.
        audit_trail.append_many(
            uow,
            [
                {
                    "action": "user.create",
                    "resource_type": RESOURCE,
                    "resource_id": str(user_id),
                    "user_id": user_id,
                    "changes": {**profile, "source": "import"},
                }
                for user_id, profile in zip(ids, profiles, strict=True)
            ],
        )
        advance(len(chunk))
    audit_trail.append(uow, action="user.import", resource_type=RESOURCE, changes=summary)
    return len(rows)


def import_users(
    db: Database,
    data: bytes,
    *,
    fmt: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
    skip_existing: bool = False,
    skip_invalid: bool = False,
    progress: ProgressFactory | None = None,
    workers: int | None = None,
) -> ImportReport:
    """Register the users in ``data`` (json, jsonl or csv), all or nothing.

    ``progress`` is called as ``progress(total, description)`` and must
    return a context manager yielding ``advance(steps)`` (what
    ``Terminal.progress`` is); ``workers`` sizes the hashing pool (default:
    the number of CPUs).  The users and their audit rows are written with
    bulk INSERTs (a chunk of rows per statement), in one transaction.
    """
    from vutf_cli.services.user_import import (
        ImportConflict,
        ImportRejected,
        hash_passwords,
        parse_records,
        validate_records,
    )

    passwords = db.passwords
    parsed = parse_records(data, fmt=fmt, source=source)
    rows, problems = validate_records(
        parsed.records,
        check_strength=passwords.check_strength,
        is_argon2id_hash=passwords.is_argon2id_hash,
    )
    invalid_rows = {problem.row for problem in problems}
    skipped, clashes = db.run(lambda uow: _clashes(uow, rows, skip_existing), read_only=True)
    all_problems = sorted([*problems, *clashes], key=lambda problem: problem.row)
    if all_problems and not skip_invalid:
        if problems:
            raise ImportRejected(all_problems)
        conflict = ImportConflict(all_problems)
        if not dry_run:
            record_failure(
                db,
                action="user.import",
                resource_type=RESOURCE,
                resource_id=None,
                error=conflict,
            )
        raise conflict
    invalid_rows |= {problem.row for problem in clashes}
    to_create = [row for row in rows if row.row not in skipped and row.row not in invalid_rows]
    report = ImportReport(
        format=parsed.format,
        rows=len(parsed.records),
        to_create=len(to_create),
        created=0,
        skipped=len(skipped),
        invalid=len(invalid_rows),
        dry_run=dry_run,
        problems=tuple(all_problems),
    )
    if dry_run:
        return report

    def bar(total: int, description: str) -> AbstractContextManager[Callable[[int], None]]:
        if progress is None or total == 0:
            return nullcontext(lambda _steps=1: None)
        return progress(total, description)

    plaintext = [row for row in to_create if row.password is not None]
    hashed = hash_passwords(
        [row.password for row in plaintext if row.password is not None],
        profile=passwords.profile,
        min_length=passwords.min_length,
        workers=workers,
        progress=progress,
    )
    hashes = {row.row: digest for row, digest in zip(plaintext, hashed, strict=True)}
    summary = {
        "format": report.format,
        "source": source or "-",
        "rows": report.rows,
        "created": len(to_create),
        "skipped": report.skipped,
        "invalid": report.invalid,
    }

    with bar(len(to_create), "importing users") as advance:
        created = mutate(
            db,
            lambda uow: _write_import(uow, to_create, hashes, summary, advance),
            action="user.import",
            resource_type=RESOURCE,
        )
    return dataclasses.replace(report, created=created)
