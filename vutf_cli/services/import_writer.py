"""The write transaction of ``vutf users import``: the users, then one audit row each.

Called by :func:`vutf_cli.services.user_transfer.import_users` inside ONE
unit of work, after every row was validated; all or nothing.

The users go in with :meth:`UserRepository.create_many` (PostgreSQL: one
``COPY users FROM STDIN`` per chunk of rows; SQLite: one executemany per
chunk; a chunk is 10,000 rows, ``user_transfer._WRITE_CHUNK``).  Their ``user.create``
audit rows differ only in id, seq, created_at, user_id, resource_id and
changes, so their canonical text is written from ONE
:class:`~vutf_cli.security.audit_chain.RowTemplate` per import:

* the first row goes through the ordinary path (``audit_trail.append_many``):
  it takes the writers' lock, reads the head, checks and stores the shared
  fields (actor, metadata, ...) and hashes them;
* that stored row, read back, is what the template is built from (its
  ``metadata`` as the database returns it: the form that is hashed), and the
  template's text of the first row must hash to the first row's stored
  ``row_hash``, so the template cannot drift from the one canonical text;
* the other rows are chained after it (seq + 1, prev_hash = the previous
  row_hash) and written with ``COPY audit_log FROM STDIN`` (PostgreSQL), where
  migration 0002's BEFORE INSERT trigger checks each row's link as it arrives,
  or one executemany (SQLite), where the same trigger does, a chunk at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

from sqlalchemy import Table

from vutf_cli.db.models import AuditLog
from vutf_cli.db.types import utcnow
from vutf_cli.errors import IntegrityFailure
from vutf_cli.security.audit_chain import (
    RowTemplate,
    canonical_value_text,
    format_timestamp,
    row_hasher,
)
from vutf_cli.services import audit_trail
from vutf_cli.services.user_changes import RESOURCE

if TYPE_CHECKING:
    from vutf_cli.db.uow import UnitOfWork
    from vutf_cli.services.user_import import ImportRow

__all__ = ["write_import"]

_ACTION: Final = "user.create"
# The fields in which one import's user.create rows differ (besides changes).
_VARYING: Final = ("id", "seq", "created_at", "user_id", "resource_id")
_SHARED: Final = (
    "actor",
    "action",
    "resource_type",
    "status",
    "error_message",
    "duration_ms",
    "ip_address",
    "user_agent",
)
_COPY_COLUMNS: Final = (*_VARYING, *_SHARED, "changes", "metadata", "prev_hash", "row_hash")


def _changes(row: ImportRow) -> dict[str, Any]:
    # What create_user's audit row says, plus where the user came from.
    changes: dict[str, Any] = {
        "username": row.username,
        "email": row.email,
        "full_name": row.full_name,
        "is_active": row.is_active,
        "is_superuser": row.is_superuser,
        "is_verified": row.is_verified,
        "source": "import",
    }
    if row.weak_hash:
        changes["rehash_on_login"] = True
    return changes


def write_import(
    uow: UnitOfWork,
    rows: Sequence[ImportRow],
    hashes: Mapping[int, str],
    summary: Mapping[str, Any],
    advance: Callable[[int], None],
    *,
    chunk: int,
) -> int:
    """Insert ``rows`` (with ``hashes`` for the plaintext ones) and their audit rows; how many.

    ``chunk`` rows per statement (it bounds the memory one COPY payload or
    one executemany takes); all of them in ``uow``'s one transaction.
    """
    now = utcnow()
    created = _CreatedRows(uow)
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        ids = uow.users.create_many(
            [
                {
                    "username": row.username,
                    "email": row.email,
                    "full_name": row.full_name,
                    "is_active": row.is_active,
                    "is_superuser": row.is_superuser,
                    "is_verified": row.is_verified,
                    "password_hash": hashes.get(row.row, row.password_hash),
                    "verified_at": now if row.is_verified else None,
                }
                for row in part
            ]
        )
        created.append(ids, [_changes(row) for row in part])
        advance(len(part))
    audit_trail.append(uow, action="user.import", resource_type=RESOURCE, changes=summary)
    return len(rows)


def _entry(user_id: uuid.UUID, changes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "action": _ACTION,
        "resource_type": RESOURCE,
        "resource_id": str(user_id),
        "user_id": user_id,
        "changes": changes,
    }


class _CreatedRows:
    """The ``user.create`` rows of one import, chained chunk after chunk from one template."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._hasher = row_hasher(uow.settings.audit_key)
        self._postgresql = uow.session.get_bind().dialect.name == "postgresql"
        self._template: RowTemplate | None = None
        self._shared: dict[str, Any] = {}
        self._metadata: str | None = None
        self._seq = 0
        self._prev_hash = ""

    def _first(self, user_id: uuid.UUID, changes: dict[str, Any]) -> RowTemplate:
        """Write the import's first row the ordinary way; the template of the others, from it."""
        uow = self._uow
        (seq,) = audit_trail.append_many(uow, [_entry(user_id, changes)])
        first = uow.audit.get(str(seq))
        if first is None:  # just flushed in this transaction
            raise IntegrityFailure("the audit row just written cannot be read back")
        self._shared = {name: getattr(first, name) for name in _SHARED}
        self._metadata = canonical_value_text(first.meta)
        template = RowTemplate(self._shared, self._metadata, _VARYING)
        # The template must reproduce the stored first row exactly, and the
        # stored changes (secrets scrubbed, stored form) must be the ones
        # given: the other rows, with the same keys and kinds of values, are
        # then written as given.
        user = str(user_id)
        varying = (str(first.id), first.seq, format_timestamp(first.created_at), user, user)
        first_text = template.text(varying, canonical_value_text(first.changes))
        if first.changes != changes or self._hasher(first.prev_hash, first_text) != first.row_hash:
            raise IntegrityFailure("the import's audit template does not match its first row")
        self._seq, self._prev_hash = first.seq, first.row_hash
        return template

    def append(self, ids: Sequence[uuid.UUID], changes: Sequence[dict[str, Any]]) -> None:
        """One row per user, in order, chained at the head of the log."""
        if not ids:
            return
        template = self._template
        if template is None:
            template = self._template = self._first(ids[0], changes[0])
            ids, changes = ids[1:], changes[1:]
        hasher = self._hasher
        seq, prev_hash = self._seq, self._prev_hash
        records: list[tuple[Any, ...]] = []
        for user_id, user_changes in zip(ids, changes, strict=True):
            seq += 1
            row_id = uuid.uuid4()
            stamp = utcnow()
            created_at = format_timestamp(stamp)
            user = str(user_id)
            changes_text = canonical_value_text(user_changes)
            row_hash = hasher(
                prev_hash, template.text((str(row_id), seq, created_at, user, user), changes_text)
            )
            records.append(
                (row_id, seq, stamp, created_at, user_id, changes_text, prev_hash, row_hash)
            )
            prev_hash = row_hash
        if not records:
            return
        if self._postgresql:
            _copy_rows(self._uow, self._shared, self._metadata, records)
        else:
            _insert_rows(self._uow, self._shared, self._metadata, records)
        self._seq, self._prev_hash = seq, prev_hash


def _copy_rows(
    uow: UnitOfWork, shared: Mapping[str, Any], metadata: str | None, records: list[tuple[Any, ...]]
) -> None:
    from vutf_cli.db.copy_in import NULL, copy_in, copy_text

    def field(value: Any) -> str:
        return NULL if value is None else copy_text(str(value))

    # Between resource_id and changes: the shared fields, the same in every line.
    middle = "\t".join(field(shared[name]) for name in _SHARED)
    meta = copy_text(metadata)
    lines = (
        f"{row_id}\t{seq}\t{created_at}\t{user_id}\t{user_id}\t{middle}\t"
        f"{copy_text(changes_text)}\t{meta}\t{prev_hash}\t{row_hash}"
        for row_id, seq, _stamp, created_at, user_id, changes_text, prev_hash, row_hash in records
    )
    copy_in(uow.session.connection(), "audit_log", _COPY_COLUMNS, lines)


def _insert_rows(
    uow: UnitOfWork, shared: Mapping[str, Any], metadata: str | None, records: list[tuple[Any, ...]]
) -> None:
    from vutf_cli.db.copy_in import insert_many

    # The nullable shared fields of a user.create row (error_message, ...) are
    # NULL: left out of the INSERT.
    given = {name: value for name, value in shared.items() if value is not None}
    constant = tuple(given.values())
    insert_many(
        uow.session.connection(),
        cast(Table, AuditLog.__table__),
        (*_VARYING, *given, "changes", "metadata", "prev_hash", "row_hash"),
        [
            (row_id, seq, stamp, user_id, str(user_id), *constant, changes, metadata, prev, row)
            for row_id, seq, stamp, _text, user_id, changes, prev, row in records
        ],
        # Stored on SQLite as the canonical text itself: no second encoding.
        as_is=frozenset({"changes", "metadata"}),
    )
