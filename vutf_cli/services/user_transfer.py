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
  ``lower(...) IN (...)`` queries, and users and audit rows go in as one
  ``COPY ... FROM STDIN`` each on PostgreSQL, one executemany each on SQLite,
  the audit rows' canonical text written from one template per import
  (:mod:`vutf_cli.services.import_writer`).
  ``dry_run`` validates everything, the clash check included, and writes
  nothing at all.  A ``password_hash`` weaker than the configured profile is
  a problem of its row unless ``allow_weak_hashes``; then its ``user.create``
  row says ``rehash_on_login`` (the hash's own parameters are the mark: the
  next successful login replaces it) and the summary counts ``weak_hashes``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

from vutf_cli.db.database import Database
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.errors import InvalidInput
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
USER_FIELDS: Final = tuple(f.name for f in fields(UserView))
# Users (and their audit rows) per bulk statement of an import: one COPY
# (PostgreSQL) or executemany (SQLite) of this many rows at most bounds the
# memory a payload takes; all of them are in one transaction.
_WRITE_CHUNK: Final = 10_000


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
        plain = UserView.from_row(user)
        if not include_hashes:
            return plain
        values = {name: getattr(plain, name) for name in USER_FIELDS}  # derived ones too
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
    allow_weak_hashes: bool = False,
) -> ImportReport:
    """Register the users in ``data`` (json, jsonl or csv), all or nothing.

    ``progress`` is called as ``progress(total, description)`` and must
    return a context manager yielding ``advance(steps)`` (what
    ``Terminal.progress`` is); ``workers`` sizes the hashing pool (default:
    the number of CPUs).  The users and their audit rows are written with
    bulk statements (COPY on PostgreSQL), in one transaction.
    """
    from vutf_cli.services.import_writer import write_import
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
        weakness=passwords.weakness,
        allow_weak_hashes=allow_weak_hashes,
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
    weak = sum(row.weak_hash for row in to_create)
    if weak:  # the hashes' own parameters mark them: rehashed at the next login
        summary["weak_hashes"] = weak

    with bar(len(to_create), "importing users") as advance:
        created = mutate(
            db,
            lambda uow: write_import(uow, to_create, hashes, summary, advance, chunk=_WRITE_CHUNK),
            action="user.import",
            resource_type=RESOURCE,
        )
    return dataclasses.replace(report, created=created)
