"""Reading users, the work behind ``vutf users list`` and ``show``.

Each read runs in one read-only unit of work and returns frozen views built
inside it; no ORM object leaves it.

Decisions where the issue left room (the command help refers here):

* Users are named by username, email (anything with ``@``) or id.  ``show``
  also finds soft-deleted users (a live user of the same name wins; a
  deleted one is marked ``is_deleted``).
* ``list`` pages by keyset: ``--sort`` is ``username``, ``email`` or
  ``created_at`` (default), ``-`` in front for descending; the cursor of the
  next page is only valid with the same sort.  :func:`stream_users` walks
  the pages (every user, or ``--limit`` of them; sizes in
  :mod:`vutf_cli.services.paging`).  ``--deleted`` lists only deleted users,
  ``--include-deleted`` both.  ``--search`` is a case-insensitive substring
  of the username, email or full name in which ``%`` and ``_`` are literal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from vutf_cli.db.database import Database
from vutf_cli.db.types import utcnow
from vutf_cli.db.uow import UnitOfWork
from vutf_cli.domain.user_view import UserView
from vutf_cli.errors import InvalidInput
from vutf_cli.services.paging import DEFAULT_PAGE_SIZE, Listing, check_limit

if TYPE_CHECKING:
    from vutf_cli.domain.user_results import UserDetail

__all__ = [
    "DELETED_SCOPES",
    "MAX_SEARCH_LENGTH",
    "SORT_FIELDS",
    "UserPage",
    "list_users",
    "parse_sort",
    "scope_arguments",
    "show_user",
    "stream_users",
]

SORT_FIELDS: Final = ("username", "email", "created_at")
DELETED_SCOPES: Final = ("live", "deleted", "all")
MAX_SEARCH_LENGTH = 254  # the longest searchable column (email)


@dataclass(frozen=True, slots=True)
class UserPage:
    items: tuple[UserView, ...]
    next_cursor: str | None


def parse_sort(spec: str) -> tuple[str, bool]:
    """``username`` -> (``username``, ascending); ``-created_at`` -> descending."""
    text = spec.strip()
    descending = text.startswith("-")
    name = text[1:] if descending else text
    if name not in SORT_FIELDS:
        raise InvalidInput(
            f"cannot sort users by {spec!r}",
            hint="use one of: " + ", ".join(SORT_FIELDS) + " (prefix - for descending)",
        )
    return name, descending


def scope_arguments(deleted: str) -> tuple[dict[str, Any], bool]:
    """(filters, include_deleted) for live / deleted / all users."""
    if deleted not in DELETED_SCOPES:
        raise InvalidInput(f"unknown scope {deleted!r}; use one of: {', '.join(DELETED_SCOPES)}")
    if deleted == "deleted":
        return {"is_deleted": True}, True
    return {}, deleted == "all"


def list_users(
    db: Database,
    *,
    active: bool | None = None,
    superuser: bool | None = None,
    search: str | None = None,
    deleted: str = "live",
    sort: str = "created_at",
    limit: int = DEFAULT_PAGE_SIZE,
    cursor: str | None = None,
) -> UserPage:
    """One keyset page of users; pass ``next_cursor`` back (same filters and sort) for more."""
    order_by, descending = parse_sort(sort)
    check_limit(limit)
    filters, include_deleted = scope_arguments(deleted)
    if active is not None:
        filters["is_active"] = active
    if superuser is not None:
        filters["is_superuser"] = superuser
    text = (search or "").strip()
    if len(text) > MAX_SEARCH_LENGTH:
        # Longer than any searchable column; also keeps LIKE patterns sane.
        raise InvalidInput(f"--search text too long (at most {MAX_SEARCH_LENGTH} characters)")

    def read(uow: UnitOfWork) -> UserPage:
        # Rows, not ORM objects: only their values are copied into views.
        page = uow.users.keyset_rows(
            filters=filters,
            order_by=order_by,
            descending=descending,
            cursor=cursor,
            limit=limit,
            include_deleted=include_deleted,
            where=[uow.users.search_condition(text)] if text else [],
        )
        return UserPage(tuple(UserView.from_row(u) for u in page.items), page.next_cursor)

    return db.run(read, read_only=True)


def stream_users(
    db: Database,
    *,
    active: bool | None = None,
    superuser: bool | None = None,
    search: str | None = None,
    deleted: str = "live",
    sort: str = "created_at",
    limit: int | None = None,
    cursor: str | None = None,
) -> Listing[UserView]:
    """Every user after ``cursor`` (or the first ``limit``), one page per transaction."""

    def fetch(after: str | None, size: int) -> tuple[tuple[UserView, ...], str | None]:
        page = list_users(
            db,
            active=active,
            superuser=superuser,
            search=search,
            deleted=deleted,
            sort=sort,
            limit=size,
            cursor=after,
        )
        return page.items, page.next_cursor

    return Listing(fetch, cursor=cursor, limit=limit)


def show_user(db: Database, ident: str, *, with_keys: bool = False) -> UserDetail:
    """One user by username, email or id, deleted ones included; optionally with their keys."""
    from vutf_cli.domain.user_results import UserDetail
    from vutf_cli.domain.views import ApiKeyView

    def read(uow: UnitOfWork) -> UserDetail:
        user = uow.users.require(ident, include_deleted=True)
        if not with_keys:
            return UserDetail(UserView.from_row(user))
        loaded = uow.users.get_or_raise(user.id, include_deleted=True, load=("api_keys",))
        now = utcnow()
        keys = sorted(
            (key for key in loaded.api_keys if not key.is_deleted),
            key=lambda key: (key.created_at, str(key.id)),
        )
        return UserDetail(
            UserView.from_row(loaded),
            tuple(ApiKeyView.from_row(key, username=loaded.username, now=now) for key in keys),
        )

    return db.run(read, read_only=True)
