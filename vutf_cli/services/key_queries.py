"""Reading API keys, the work behind ``vutf keys list`` and ``show``.

Each read runs in one read-only unit of work and returns views built inside
it, as of one moment.  ``list`` pages by keyset, oldest first, and
:func:`stream_keys` walks the pages (every key, or ``--limit`` of them; sizes
in :mod:`vutf_cli.services.paging`); ``show`` finds
deleted (pruned) keys too.  A KEY reference is the key id or its prefix, never
the key itself (:func:`vutf_cli.services.key_arguments.check_reference`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, or_

from vutf_cli.db.database import Database
from vutf_cli.db.models import ApiKey
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain import validation
from vutf_cli.domain.views import ApiKeyView
from vutf_cli.errors import InvalidInput
from vutf_cli.services.key_arguments import check_reference, parse_optional_duration
from vutf_cli.services.key_transactions import key_view, lookup_user
from vutf_cli.services.paging import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Listing, check_limit

__all__ = [
    "LIST_STATES",
    "MAX_LIST_LIMIT",
    "KeyPage",
    "list_keys",
    "show_key",
    "stream_keys",
]

MAX_LIST_LIMIT: Final = MAX_PAGE_SIZE  # the name callers of list_keys know
# "active" (the default), "expired", "revoked", or "all" (every key, deleted ones too).
LIST_STATES: Final = ("active", "expired", "revoked", "all")


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of a listing; pass ``next_cursor`` back for the next (None: last page)."""

    items: tuple[ApiKeyView, ...]
    next_cursor: str | None


def list_keys(
    db: Database,
    *,
    user: str | None = None,
    state: str = "active",
    expiring_within: str | None = None,
    unused_for: str | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> KeyPage:
    """Keys in ``state``, oldest first, one keyset page at a time.

    ``expiring_within``: expiring after now and within that duration;
    ``unused_for``: last used that long ago, or never used and created that
    long ago.  Filters combine with AND.
    """
    if state not in LIST_STATES:
        raise InvalidInput(
            f"unknown key state {validation.shorten_for_message(state)}; "
            f"use one of {', '.join(LIST_STATES)}"
        )
    check_limit(limit)
    expiring = parse_optional_duration(expiring_within)
    unused = parse_optional_duration(unused_for)

    def read(uow: UnitOfWork) -> KeyPage:
        now = utcnow()
        where: list[ColumnElement[bool]] = []
        if state != "all":
            where.append(uow.keys.state_condition(state, now))
        if expiring is not None:
            where.append(and_(ApiKey.expires_at > now, ApiKey.expires_at <= now + expiring))
        if unused is not None:
            cutoff = now - unused
            where.append(
                or_(
                    ApiKey.last_used_at <= cutoff,
                    and_(ApiKey.last_used_at.is_(None), ApiKey.created_at <= cutoff),
                )
            )
        filters: dict[str, Any] = {}
        if user is not None:
            filters["user_id"] = lookup_user(uow, user, include_deleted=state == "all").id
        page = uow.keys.keyset(
            filters=filters,
            order_by="created_at",
            cursor=cursor,
            limit=limit,
            include_deleted=state == "all",
            load=["user"],
            where=where,
        )
        return KeyPage(
            items=tuple(key_view(key, now) for key in page.items), next_cursor=page.next_cursor
        )

    return db.run(read, read_only=True)


def stream_keys(
    db: Database,
    *,
    user: str | None = None,
    state: str = "active",
    expiring_within: str | None = None,
    unused_for: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Listing[ApiKeyView]:
    """Every key after ``cursor`` (or the first ``limit``), one page per transaction."""

    def fetch(after: str | None, size: int) -> tuple[tuple[ApiKeyView, ...], str | None]:
        page = list_keys(
            db,
            user=user,
            state=state,
            expiring_within=expiring_within,
            unused_for=unused_for,
            limit=size,
            cursor=after,
        )
        return page.items, page.next_cursor

    return Listing(fetch, cursor=cursor, limit=limit)


def show_key(db: Database, ref: str) -> ApiKeyView:
    """One key by id or prefix, deleted (pruned) keys included."""
    ref = check_reference(ref)

    def read(uow: UnitOfWork) -> ApiKeyView:
        return key_view(uow.keys.resolve(ref, include_deleted=True), utcnow())

    return db.run(read, read_only=True)
