"""The view of a user, on its own so that listing users creates no other view class.

Creating a frozen dataclass costs about a millisecond at import (its methods
are generated and compiled), and ``vutf users list`` needs only this one.
:mod:`vutf_cli.domain.views` re-exports it with the other views.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

# What `users show` calls a user's condition, for operators (docs/architecture.md §3.4).
USER_STATES: Final = ("active", "inactive", "locked", "deleted")


class _UserRow(Protocol):
    id: uuid.UUID
    username: str
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    is_verified: bool
    verified_at: datetime | None
    last_login_at: datetime | None
    last_login_ip: str | None
    failed_login_count: int
    last_failed_login_at: datetime | None
    locked_until: datetime | None
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None
    version: int
    is_deleted: bool
    deleted_at: datetime | None
    deleted_by: str | None


def user_state(
    *, is_deleted: bool, is_active: bool, locked_until: datetime | None, now: datetime
) -> str:
    """``deleted``, ``locked`` (a lock not yet over), ``inactive`` or ``active``, first match."""
    if is_deleted:
        return "deleted"
    if locked_until is not None and locked_until > now:
        return "locked"
    return "active" if is_active else "inactive"


@dataclass(frozen=True, slots=True)
class UserView:
    id: uuid.UUID
    username: str
    email: str
    full_name: str | None
    is_active: bool
    is_superuser: bool
    is_verified: bool
    verified_at: datetime | None
    last_login_at: datetime | None
    last_login_ip: str | None
    # Failed password checks in the current lockout window, and the lock's end.
    failed_login_count: int
    last_failed_login_at: datetime | None
    locked_until: datetime | None
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None
    version: int
    is_deleted: bool
    deleted_at: datetime | None
    deleted_by: str | None
    # Derived, for operators: one of USER_STATES (as of when the view was made).
    state: str

    @classmethod
    def from_row(cls, row: _UserRow, *, now: datetime | None = None) -> UserView:
        return cls(
            id=row.id,
            username=row.username,
            email=row.email,
            full_name=row.full_name,
            is_active=row.is_active,
            is_superuser=row.is_superuser,
            is_verified=row.is_verified,
            verified_at=row.verified_at,
            last_login_at=row.last_login_at,
            last_login_ip=row.last_login_ip,
            failed_login_count=row.failed_login_count,
            last_failed_login_at=row.last_failed_login_at,
            locked_until=row.locked_until,
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            version=row.version,
            is_deleted=row.is_deleted,
            deleted_at=row.deleted_at,
            deleted_by=row.deleted_by,
            state=user_state(
                is_deleted=row.is_deleted,
                is_active=row.is_active,
                locked_until=row.locked_until,
                now=datetime.now(UTC) if now is None else now,
            ),
        )
