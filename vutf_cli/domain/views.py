"""Frozen views that leave a unit of work: what services return and output renders.

Field names are the schema's column names (the JSON output contract).  Views
are built from ORM objects or result rows inside the transaction
(``from_row``) so no ORM object ever escapes ``with uow:``.  Secrets are never
part of a view, except the plaintext key of ``services.keys.IssuedKey`` (shown
once) and ``password_hash`` in ``services.users.UserExport`` (exported only
with ``--include-hashes``).

:class:`UserView` lives in :mod:`vutf_cli.domain.user_view` (re-exported
here) so that listing users does not create the classes of the other views.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from vutf_cli.domain.user_view import UserView

__all__ = ["ApiKeyView", "AuditEntry", "ChainReport", "UserView", "api_key_state"]


class _ApiKeyRow(Protocol):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    description: str | None
    key_prefix: str
    permissions: dict[str, Any]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None
    usage_count: int
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None
    version: int
    is_deleted: bool
    deleted_at: datetime | None
    deleted_by: str | None


def api_key_state(row: _ApiKeyRow, now: datetime) -> str:
    """deleted > revoked > expired > active."""
    if row.is_deleted:
        return "deleted"
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: uuid.UUID
    user_id: uuid.UUID
    username: str | None
    name: str
    description: str | None
    key_prefix: str
    permissions: dict[str, Any]
    scopes: tuple[str, ...]
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None
    usage_count: int
    state: str
    created_at: datetime
    created_by: str | None
    updated_at: datetime
    updated_by: str | None
    version: int
    is_deleted: bool
    deleted_at: datetime | None
    deleted_by: str | None

    @classmethod
    def from_row(cls, row: _ApiKeyRow, *, username: str | None, now: datetime) -> ApiKeyView:
        permissions = dict(row.permissions or {})
        return cls(
            id=row.id,
            user_id=row.user_id,
            username=username,
            name=row.name,
            description=row.description,
            key_prefix=row.key_prefix,
            permissions=permissions,
            scopes=tuple(sorted(k for k, v in permissions.items() if v)),
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            last_used_ip=row.last_used_ip,
            usage_count=row.usage_count,
            state=api_key_state(row, now),
            created_at=row.created_at,
            created_by=row.created_by,
            updated_at=row.updated_at,
            updated_by=row.updated_by,
            version=row.version,
            is_deleted=row.is_deleted,
            deleted_at=row.deleted_at,
            deleted_by=row.deleted_by,
        )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: uuid.UUID
    seq: int
    created_at: datetime
    actor: str
    user_id: uuid.UUID | None
    action: str
    resource_type: str
    resource_id: str | None
    status: str
    changes: dict[str, Any] | None
    metadata: dict[str, Any] | None
    error_message: str | None
    duration_ms: int | None
    ip_address: str | None
    user_agent: str | None
    prev_hash: str
    row_hash: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of recomputing the audit hash chain."""

    ok: bool
    checked: int
    first_seq: int | None
    last_seq: int | None
    head_hash: str | None
    bad_seq: int | None = None
    problem: str | None = None  # edited | missing | reordered | inserted | anchor
    detail: str | None = None
